"""Hydra entry points, one module per app: thin shells that validate config, call the library
and report. Shared helpers live here."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

# The repository's conf/ (nnflow is installed editable: `pip install -e .`, as the Makefile does).
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def run_dir() -> Path:
    """The Hydra run (or multirun job) directory."""
    return Path(HydraConfig.get().runtime.output_dir)


def check_positive(cfg: DictConfig, *keys: str, allow_none: tuple[str, ...] = ()) -> None:
    """Raise ValueError naming the key if a config value is not a positive number."""
    for key in keys:
        value = OmegaConf.select(cfg, key)
        if value is None and key in allow_none:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"config value {key}={value!r} must be a positive number")


def device_from_config(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available")
    return torch.device(name)


def manifold_from_config(cfg: DictConfig):
    """Hypersurface from the manifold config group (name + preset parameters)."""
    from nnflow.geometry import make_hypersurface

    params = OmegaConf.to_container(cfg, resolve=True)
    return make_hypersurface(params.pop("name"), **params)
