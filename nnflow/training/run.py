"""train(cfg, run_dir): one training run from a composed config, with everything it writes.

Separate from the Hydra wrapper (nnflow/cli/train.py) so that tests and sweeps call it
directly. A run directory holds: config.yaml (resolved), metrics.csv, sigma.png/.pdf,
checkpoints/{last,best}.ckpt and summary.json. Re-running with the same run directory resumes
from checkpoints/last.ckpt (``resume: auto``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from nnflow.flows.losses import class_kappa, loss_power
from nnflow.geometry import make_hypersurface
from nnflow.training.callbacks import MetricsCSV, plot_sigma
from nnflow.training.data import PointDataModule
from nnflow.training.modules import MetricModule, TrainingDivergedError, evaluate_points

log = logging.getLogger("nnflow")
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def validate_config(cfg: DictConfig) -> None:
    """Reject bad values before anything is sampled or trained (ValueError naming the key)."""
    if cfg.dtype not in DTYPES:
        raise ValueError(f"dtype={cfg.dtype!r}; choose from {sorted(DTYPES)}")
    if not cfg.kahler_t > 0:
        raise ValueError(f"kahler_t={cfg.kahler_t!r} must be positive")
    loss_power(cfg.loss.kind)
    for key in ("width", "depth"):
        value = cfg.model.get(key)
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"model.{key}={value!r} must be a positive integer")
    lr = OmegaConf.select(cfg, "optim.optimizer.lr")
    if lr is not None and not lr > 0:
        raise ValueError(f"optim.optimizer.lr={lr!r} must be positive")
    if cfg.trainer.get("max_epochs") is not None and cfg.trainer.max_epochs <= 0:
        raise ValueError(f"trainer.max_epochs={cfg.trainer.max_epochs!r} must be positive")


def build_surface(cfg: DictConfig):
    params = OmegaConf.to_container(cfg.manifold, resolve=True)
    return make_hypersurface(params.pop("name"), **params)


def build_model(cfg: DictConfig, surface, dtype: torch.dtype) -> torch.nn.Module:
    """The metric model from cfg.model (a KahlerPotential, or any _target_ with metric())."""
    try:
        model = instantiate(cfg.model, n_coords=surface.n_coords, kahler_t=float(cfg.kahler_t), seed=int(cfg.seed))
    except InstantiationException as err:  # surface the library's own message
        if isinstance(err.__cause__, (ValueError, TypeError)):
            raise type(err.__cause__)(f"model config: {err.__cause__}") from err
        raise
    return model.to(dtype)


def build_logger(cfg: DictConfig, run_dir: Path):
    if cfg.get("logger") is None:
        return False
    os.environ.setdefault("WANDB_MODE", "offline")  # no network at run time unless asked
    return instantiate(cfg.logger, save_dir=str(run_dir))


def train(cfg: DictConfig, run_dir: str | Path) -> tuple[dict, dict]:
    """Train, test and write the run directory.

    Returns:
        (summary, objects): the summary dict (also summary.json) and the live objects
        (module, datamodule, trainer) for callers that want them.
    Raises:
        ValueError: for bad config values, before any work.
    """
    validate_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    start = time.perf_counter()
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dtype = DTYPES[cfg.dtype]
    surface = build_surface(cfg)
    model = build_model(cfg, surface, dtype)  # first: a bad model option fails before sampling
    data = PointDataModule(
        surface,
        n_train=int(cfg.data.n_train),
        n_val=int(cfg.data.n_val),
        n_test=int(cfg.data.n_test),
        batch_size=int(cfg.data.batch_size),
        seed=int(cfg.seed),
        cache_dir=cfg.data.cache_dir,
        dtype=dtype,
    )
    data.prepare_data()
    kappa = class_kappa(data.split("train"), float(cfg.kahler_t))
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    scheduler = instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None
    module = MetricModule(
        model,
        optimizer=instantiate(cfg.optim.optimizer),
        scheduler=scheduler,
        loss=cfg.loss.kind,
        kappa=kappa,
        stop_on_nonpositive=bool(cfg.stop_on_nonpositive),
    )
    ckpt_dir = run_dir / "checkpoints"
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_sigma", mode="min", save_last=True, save_top_k=1
    )
    trainer = L.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        default_root_dir=str(run_dir),
        logger=build_logger(cfg, run_dir),
        callbacks=[checkpoint, MetricsCSV(run_dir / "metrics.csv")],
        num_sanity_val_steps=0,
    )
    logger = trainer.logger
    last = ckpt_dir / "last.ckpt"
    resume = str(last) if cfg.resume == "auto" and last.exists() else None
    if resume:
        log.info("resuming from %s", resume)
    status, message = "completed", ""
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume)
    except TrainingDivergedError as err:
        status, message = "diverged", str(err)
        log.error("training stopped: %s", err)
        if last.exists():  # evaluate the last good state, not the broken one
            state = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
    train_seconds = time.perf_counter() - start
    device = next(module.model.parameters()).device
    module.model.eval()
    test = evaluate_points(module.model, data.split("test").to(device), batch_size=int(cfg.test_batch_size))
    val_sigma = trainer.callback_metrics.get("val_sigma")
    summary = {
        "status": status,
        "message": message,
        "manifold": surface.name,
        "model": cfg.model.get("network", cfg.model.get("_target_")),
        "width": cfg.model.get("width"),
        "sigma_val": float(val_sigma) if val_sigma is not None else math.nan,
        "sigma_test": test["sigma"],
        "sigma_test_err": test["sigma_err"],
        "volume": test["volume"],
        "volume_err": test["volume_err"],
        "positive_fraction_test": test["positive_fraction"],
        "n_test": len(data.split("test")),
        "n_params": n_params,
        "steps": trainer.global_step,
        "epochs": trainer.current_epoch,
        "seconds": time.perf_counter() - start,
        "seconds_train": train_seconds,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "dtype": cfg.dtype,
        "seed": int(cfg.seed),
        "kappa": kappa,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if logger:
        logger.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
        if hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
            logger.experiment.finish()  # flush wandb (it prints) before the caller prints
    if (run_dir / "metrics.csv").exists():
        plot_sigma(run_dir / "metrics.csv", run_dir / "sigma", title=f"{surface.name}: {summary['model']}")
    return summary, {"module": module, "datamodule": data, "trainer": trainer}
