"""Hydra entry points, one module per app: thin shells that validate config, call the library
and report. Shared helpers live here."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig

log = logging.getLogger("nnflow")

# The repository's conf/ (nnflow is installed editable: `pip install -e .`, as the Makefile does).
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def run_dir() -> Path:
    """The Hydra run (or multirun job) directory."""
    return Path(HydraConfig.get().runtime.output_dir)


def device_from_config(name: str) -> torch.device:
    """The torch device of config value ``device``: cpu, cuda or cuda:<index> (ValueError otherwise)."""
    ok = isinstance(name, str) and (name in ("cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()))
    if not ok:
        raise ValueError(f"config value device={name!r} must be cpu, cuda or cuda:<index>")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available")
    return torch.device(name)


def print_summary(summary: dict) -> None:
    """The summary as one JSON object on the last line of stdout (what scripts and tests read)."""
    print(json.dumps(summary), flush=True)


def write_summary(directory: Path, name: str, summary: dict) -> Path:
    """Write ``summary`` to directory/name (indented JSON), log where, and print it (print_summary)."""
    path = Path(directory) / name
    path.write_text(json.dumps(summary, indent=2))
    log.info("wrote %s", path)
    print_summary(summary)
    return path
