"""load_run(run_dir): the trained metric model of an nnflow-train run directory, rebuilt.

A run directory (nnflow.training.run.train) holds config.yaml (the resolved config),
summary.json and checkpoints/. summary.json's ``checkpoint`` names the state that gave its
``sigma_test`` (checkpoints/last.ckpt, written at the final step; ``checkpoint_step`` is its
step). The model is rebuilt with the run's own factory (``run.build_model`` for
model.kind = finite | linearized, ``run.build_flow`` on the run's training points for
model.kind = frozen), in float64 on ``device``, and given that state: its ``metric(z, jac)``
((B, N+1) complex128, (B, n, N+1) complex128 → (B, n, n) complex128) is the run's tested
metric anywhere on X, and ``potential`` (finite and linearized) its Kähler potential K(z),
(..., N+1) → (...) real, for curvature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from nnflow.geometry import Hypersurface, PointSet


@dataclass
class LoadedRun:
    """A trained run: its model (eval mode, float64, on the device), manifold, resolved config,
    summary.json as a dict and the checkpoint it was loaded from."""

    model: torch.nn.Module
    surface: Hypersurface
    cfg: DictConfig
    summary: dict
    checkpoint: Path

    def split(self, name: str) -> PointSet:
        """The run's ``name`` split ("train", "val" or "test"): its point cache when present, else
        re-sampled from the run's data seed (the same points; complex128, on the CPU)."""
        from nnflow.training.data import load_or_sample

        data = self.cfg.data
        return load_or_sample(data.cache_dir, self.surface, name, int(data[f"n_{name}"]), int(data.seed))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err}); re-run the training") from err


def tested_checkpoint(run_dir: Path, summary: dict) -> Path:
    """The checkpoint that holds the state summary.json's sigma_test was measured on.

    summary.json names it (``checkpoint``); a summary from before that key falls back to
    checkpoints/last.ckpt. FileNotFoundError/ValueError name the file and the remedy.
    """
    if summary.get("status") == "skipped":
        raise ValueError(f"run {run_dir} was skipped ({summary.get('message')}): it has no trained model")
    if "checkpoint" in summary and summary["checkpoint"] is None:
        raise ValueError(
            f"{run_dir / 'summary.json'} names no checkpoint (status {summary.get('status')!r}: fast_dev_run, "
            "or diverged before the first checkpoint): the tested state was not saved; train it again"
        )
    path = run_dir / summary.get("checkpoint", "checkpoints/last.ckpt")
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint {path} not found: the run's trained state is missing; resume the run "
            f"(nnflow-train with the same config and hydra.run.dir={run_dir}) to write it"
        )
    return path


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """The trained model of an nnflow-train run directory, float64, eval mode, on ``device``.

    Raises:
        FileNotFoundError: no run directory, config.yaml, summary.json or checkpoint (named).
        ValueError: an unreadable file, a run that saved no tested state, or a checkpoint whose
            state dict does not fit the model of config.yaml (both named).
    """
    from nnflow.flows.losses import class_kappa
    from nnflow.geometry.cicy import manifold_from_config
    from nnflow.training.run import build_flow, build_model, read_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found")
    for name in ("config.yaml", "summary.json"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(
                f"{run_dir / name} not found: {run_dir} is not a finished nnflow-train run directory "
                "(a run writes summary.json after its test; resume an unfinished run to finish it)"
            )
    cfg = OmegaConf.load(run_dir / "config.yaml")
    summary = _read_json(run_dir / "summary.json")
    path = tested_checkpoint(run_dir, summary)
    checkpoint = read_checkpoint(path, remedy="re-run or resume the training to write it again")
    step = summary.get("checkpoint_step", summary.get("steps"))
    if step is not None and int(checkpoint.get("global_step", -1)) != int(step):
        raise ValueError(
            f"{path} holds step {checkpoint.get('global_step')}, not the tested step {step} of "
            f"{run_dir / 'summary.json'}: the run directory was changed after its test; resume the run"
        )
    surface = manifold_from_config(OmegaConf.to_container(cfg.manifold, resolve=True))
    loaded = LoadedRun(None, surface, cfg, summary, path)
    if cfg.model.kind == "frozen":
        train = loaded.split("train").to(dtype=torch.complex128)
        model = build_flow(cfg, surface, train, class_kappa(train, float(cfg.kahler_t)))
    else:
        model = build_model(cfg, surface, torch.float64)
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {path} does not match the model of {run_dir / 'config.yaml'} (was the config edited "
            f"after training?): {err}"
        ) from err
    loaded.model = model.to(device).eval()  # float64 already: build_model casts, a flow takes its points
    return loaded
