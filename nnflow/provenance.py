"""What produced a result: commit, package versions and device, for every app's summary.json."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "lightning", "hydra-core", "gpytorch", "numpy", "wandb")


def git_commit(root: Path = REPO_ROOT) -> str:
    """The checkout's commit (with "-dirty" if tracked files changed), or "unknown" outside one."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "") if commit else "unknown"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the numbers ("absent" if not installed)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def device_info(device: torch.device | str | None = None) -> dict[str, object]:
    """The device a run used: type, name (the GPU's, or the CPU's architecture), thread count."""
    device = torch.device(device if device is not None else "cpu")
    info: dict[str, object] = {"device": str(device), "threads": torch.get_num_threads()}
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        info["device_name"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
        info["device_count"] = torch.cuda.device_count()
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def provenance(device: torch.device | str | None = None) -> dict[str, object]:
    """``{"commit", "versions", **device_info}``: the block every summary.json carries."""
    return {"commit": git_commit(), "versions": package_versions(), **device_info(device)}
