"""Hydra entry points: thin shells that validate config, call the library, and report."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("nnflow")
# The repository's conf/ (nnflow is installed editable: `pip install -e .`, as the Makefile does).
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def _check_positive(cfg: DictConfig, *keys: str, allow_none: tuple[str, ...] = ()) -> None:
    for key in keys:
        value = OmegaConf.select(cfg, key)
        if value is None and key in allow_none:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"config value {key}={value!r} must be a positive number")


def _device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available")
    return torch.device(name)


def manifold_from_config(cfg: DictConfig):
    from nnflow.geometry import make_hypersurface

    params = OmegaConf.to_container(cfg, resolve=True)
    return make_hypersurface(params.pop("name"), **params)


def measure(cfg: DictConfig) -> dict:
    """Sample points and measure the Fubini–Study metric; returns the result dict."""
    from nnflow.geometry import sample_points
    from nnflow.geometry.measures import measure_fubini_study

    _check_positive(cfg, "n_points", "kahler_t", "curvature_points", allow_none=("curvature_points",))
    device = _device(cfg.device)
    surface = manifold_from_config(cfg.manifold)
    start = time.perf_counter()
    log.info("sampling %d points on %s (seed %d)", cfg.n_points, surface, cfg.seed)
    points = sample_points(surface, int(cfg.n_points), seed=int(cfg.seed), device=device)
    t_sample = time.perf_counter() - start
    log.info("sampled in %.2f s; measuring (curvature on %s points)", t_sample, cfg.curvature_points)
    result = measure_fubini_study(
        points, t=float(cfg.kahler_t), curvature_points=cfg.curvature_points
    )
    result.update(
        manifold=surface.name,
        seed=int(cfg.seed),
        kahler_t=float(cfg.kahler_t),
        seconds_sampling=t_sample,
        seconds=time.perf_counter() - start,
        device=str(device),
    )
    return result, points


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="measure")
def measure_main(cfg: DictConfig) -> float:
    result, points = measure(cfg)
    out = _run_dir()
    (out / "measure.json").write_text(json.dumps(result, indent=2))
    if cfg.save_points:
        points.save(out / "points.pt")
    log.info("wrote %s", out / "measure.json")
    print(json.dumps(result), flush=True)
    return result["sigma"]
