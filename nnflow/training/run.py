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
from omegaconf import DictConfig, OmegaConf, open_dict

from nnflow.flows.losses import class_kappa, loss_power
from nnflow.geometry import make_hypersurface
from nnflow.geometry.measures import evaluate_metric
from nnflow.precision import PRECISIONS, set_precision
from nnflow.training.callbacks import MetricsCSV, plot_sigma
from nnflow.training.data import PointDataModule
from nnflow.training.modules import (
    ROUTES,
    FrozenFlowModule,
    MetricModule,
    TrainingDivergedError,
    compile_mode,
)
from nnflow.validation import check_choice

log = logging.getLogger("nnflow")


def validate_config(cfg: DictConfig) -> None:
    """Reject bad values before anything is sampled or trained (ValueError naming the key)."""
    if cfg.dtype not in PRECISIONS:
        raise ValueError(f"dtype={cfg.dtype!r}; choose from {sorted(PRECISIONS)}")
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
    compile_mode(cfg.get("compile"))
    check_choice(cfg, "route", ROUTES)
    every = cfg.get("check_every_n_steps", 1)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"check_every_n_steps={every!r} must be a positive integer")
    if cfg.trainer.get("max_epochs") is not None and cfg.trainer.max_epochs <= 0:
        raise ValueError(f"trainer.max_epochs={cfg.trainer.max_epochs!r} must be positive")


ARMS = {
    "finite": "nnflow.models.build_potential",
    "linearized": "nnflow.flows.linearized.build_linearized",
    "frozen": "nnflow.flows.frozen.build_frozen_flow",
}


def apply_arm(cfg: DictConfig) -> DictConfig:
    """``arm=finite|linearized|frozen`` turns one architecture config into the finite network,
    its linearized model or its frozen-NTK flow (what a width sweep compares)."""
    arm = cfg.get("arm")
    if arm is None:
        return cfg
    if arm not in ARMS:
        raise ValueError(f"arm={arm!r}; choose from {sorted(ARMS)}")
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model._target_ = ARMS[arm]
        if arm == "frozen":
            cfg.model._partial_ = True
    return cfg


def arm_of(cfg: DictConfig) -> str:
    """finite / linearized / frozen, from ``arm`` or the model's _target_."""
    target = str(cfg.model.get("_target_", ""))
    return next((arm for arm, t in ARMS.items() if target == t), cfg.get("arm") or "finite")


def duplicate_of_reference(cfg: DictConfig) -> str | None:
    """For arm=frozen in a sweep: the flow depends on neither width nor seed, so only the
    run at ``sweep_reference`` (width, seed) computes it; others say which run that is."""
    ref = cfg.get("sweep_reference")
    if cfg.get("arm") != "frozen" or ref is None:
        return None
    if int(cfg.model.width) == int(ref.width) and int(cfg.seed) == int(ref.seed):
        return None
    return f"arm=frozen is independent of width and seed: see the run with model.width={ref.width} seed={ref.seed}"


def is_frozen_flow(cfg: DictConfig) -> bool:
    """model=frozen_ntk: a flow built on the training points, not a network."""
    return str(cfg.model.get("_target_", "")).endswith("build_frozen_flow")


def build_surface(cfg: DictConfig):
    params = OmegaConf.to_container(cfg.manifold, resolve=True)
    return make_hypersurface(params.pop("name"), **params)


def model_kwargs(cfg: DictConfig, surface) -> dict:
    """What a model factory needs from the manifold and the run, besides cfg.model."""
    out = {"n_coords": surface.n_coords, "kahler_t": float(cfg.kahler_t), "seed": int(cfg.seed)}
    if cfg.model.get("feature_symmetry", "none") == "phases":
        out.update(phases=surface.phase_symmetries(), phase_order=surface.degree)
    return out


def build_model(cfg: DictConfig, surface, dtype: torch.dtype) -> torch.nn.Module:
    """The metric model from cfg.model (a KahlerPotential, or any _target_ with metric())."""
    try:
        model = instantiate(cfg.model, **model_kwargs(cfg, surface))
    except InstantiationException as err:  # surface the library's own message
        if isinstance(err.__cause__, (ValueError, TypeError)):
            raise type(err.__cause__)(f"model config: {err.__cause__}") from err
        raise
    return model.to(dtype)


def build_flow(cfg: DictConfig, train_points, kappa: float) -> torch.nn.Module:
    """The frozen-NTK flow on the training points (model=frozen_ntk)."""
    factory = instantiate(cfg.model)
    try:
        return factory(
            train=train_points, kappa=kappa, power=loss_power(cfg.loss.kind),
            kahler_t=float(cfg.kahler_t), seed=int(cfg.seed),
        )
    except TypeError as err:
        raise ValueError(f"model config: {err}") from err


def build_kernel_tracking(cfg: DictConfig, run_dir: Path):
    """KernelTracking with the architecture's analytic kernel Θ̄ when one exists."""
    from nnflow.kernels import analytic_kernel
    from nnflow.training.kernel_tracking import KernelTracking

    options = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    try:
        analytic = analytic_kernel(options)
    except (ValueError, TypeError) as err:
        log.info("no analytic kernel for this model (%s): tracking the empirical kernel only", err)
        analytic = None
    t = cfg.kernel_tracking
    return KernelTracking(
        run_dir / "kernel.csv", probe_size=int(t.probe_size), every_n_steps=int(t.every_n_steps),
        analytic=analytic, n_eigenvalues=int(t.n_eigenvalues),
    )


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
    cfg = apply_arm(cfg)
    validate_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    duplicate = duplicate_of_reference(cfg)
    if duplicate:
        summary = {"status": "skipped", "message": duplicate, "arm": cfg.arm}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary, {}
    start = time.perf_counter()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dtype = set_precision(cfg.dtype)
    surface = build_surface(cfg)
    frozen = is_frozen_flow(cfg)
    if not frozen:
        model = build_model(cfg, surface, dtype)  # first: a bad model option fails before sampling
    data = PointDataModule(
        surface,
        n_train=int(cfg.data.n_train),
        n_val=int(cfg.data.n_val),
        n_test=int(cfg.data.n_test),
        batch_size=int(cfg.data.n_train if frozen else cfg.data.batch_size),  # flows are full-batch
        seed=int(cfg.data.seed),
        cache_dir=cfg.data.cache_dir,
        dtype=dtype,
        drop_last=bool(cfg.data.get("drop_last", False)) and not frozen,
        # a compiled step reads every per-point term from its device cache (MetricModule)
        train_index_only=compile_mode(cfg.get("compile")) is not None and not frozen,
    )
    data.prepare_data()
    kappa = class_kappa(data.split("train"), float(cfg.kahler_t))
    if frozen:
        model = build_flow(cfg, data.split("train"), kappa)
        dt = cfg.flow.dt if cfg.flow.dt is not None else cfg.optim.optimizer.lr
        module = FrozenFlowModule(
            model, dt=float(dt), integrator=cfg.flow.integrator, loss=cfg.loss.kind,
            stop_on_nonpositive=bool(cfg.stop_on_nonpositive),
        )
    else:
        scheduler = instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None
        module = MetricModule(
            model,
            optimizer=instantiate(cfg.optim.optimizer),
            scheduler=scheduler,
            loss=cfg.loss.kind,
            kappa=kappa,
            stop_on_nonpositive=bool(cfg.stop_on_nonpositive),
            compile=cfg.get("compile"),
            route=cfg.route,
            check_every_n_steps=cfg.get("check_every_n_steps", 1),
        )
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ckpt_dir = run_dir / "checkpoints"
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_sigma", mode="min", save_last=True, save_top_k=1
    )
    callbacks = [checkpoint, MetricsCSV(run_dir / "metrics.csv")]
    tracking = cfg.get("kernel_tracking")
    if tracking is not None and tracking.enabled and not frozen:
        callbacks.append(build_kernel_tracking(cfg, run_dir))
    trainer = L.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        default_root_dir=str(run_dir),
        logger=build_logger(cfg, run_dir),
        callbacks=callbacks,
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
    stale = module.last_val_step != trainer.global_step and trainer.global_step > module.fit_start_step
    if status == "completed" and not trainer.fast_dev_run and stale:
        # stopped between validations (trainer.max_time): validate the final state, so that
        # metrics.csv, the plot and sigma_val end where training ended
        trainer.validate(module, datamodule=data, verbose=False)
    train_seconds = time.perf_counter() - start
    if not trainer.is_global_zero:  # data-parallel ranks > 0: rank 0 tests and writes
        return {"status": status, "message": message, "rank": trainer.global_rank}, {"module": module}
    # Lightning's teardown moves the model back to the CPU: test where it trained
    device = trainer.strategy.root_device
    module.model.to(device)
    module.model.eval()
    test = evaluate_metric(data.split("test").to(device), module.model.metric, batch_size=int(cfg.test_batch_size))
    val_sigma = trainer.callback_metrics.get("val_sigma")
    summary = {
        "status": status,
        "message": message,
        "manifold": surface.name,
        "arm": arm_of(cfg),
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
        "flow_time": float(model.time) if frozen else None,
        "steps": trainer.global_step,
        "epochs": trainer.current_epoch,
        "seconds": time.perf_counter() - start,
        "seconds_train": train_seconds,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "dtype": cfg.dtype,
        "seed": int(cfg.seed),
        "kappa": kappa,
        "route": module.route,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if logger:
        logger.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
        if hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
            logger.experiment.finish()  # flush wandb (it prints) before the caller prints
    if (run_dir / "metrics.csv").exists():
        plot_sigma(run_dir / "metrics.csv", run_dir / "sigma", title=f"{surface.name}: {summary['model']}")
    return summary, {"module": module, "datamodule": data, "trainer": trainer}
