"""train(cfg, run_dir): one training run from a composed config, with everything it writes.

Separate from the Hydra wrapper (nnflow/cli/train.py) so that tests and sweeps call it
directly. A run directory holds: config.yaml (resolved), metrics.csv, sigma.png/.pdf,
checkpoints/{last,best}.ckpt and summary.json. Re-running with the same run directory resumes
from checkpoints/last.ckpt (``resume: auto``). What is trained is ``cfg.model.kind`` (finite,
linearized or frozen; FACTORIES); summary.json carries the provenance block (nnflow.provenance).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from nnflow.feasibility import check_feasible, frozen_flow, training
from nnflow.flows.frozen import KERNEL_KINDS, build_frozen_flow
from nnflow.flows.linearized import build_linearized
from nnflow.flows.losses import class_kappa, loss_power
from nnflow.geometry.cicy import CompleteIntersection, manifold_from_config
from nnflow.geometry.measures import evaluate_metric, fs_det, sigma_measure
from nnflow.models import build_potential
from nnflow.models.networks import MUP_OPTIMIZERS
from nnflow.models.potential import phase_options
from nnflow.precision import PRECISIONS, set_precision
from nnflow.provenance import provenance
from nnflow.tracking import arm_name, logger_options
from nnflow.training.callbacks import MetricsCSV, plot_sigma
from nnflow.training.data import PointDataModule
from nnflow.training.measure_run import ROUTES as CURVATURE_ROUTES
from nnflow.training.measure_run import curvature_route, measure_learned
from nnflow.training.modules import (
    ROUTES,
    FrozenFlowModule,
    MetricModule,
    TrainingDivergedError,
    compile_mode,
    optimizer_family,
)
from nnflow.validation import check_bool, check_choice, check_int, check_positive

log = logging.getLogger("nnflow")


def validate_config(cfg: DictConfig) -> None:
    """Reject bad values before anything is sampled or trained (ValueError naming the key)."""
    check_choice(cfg, "dtype", sorted(PRECISIONS))
    check_positive(cfg, "kahler_t")
    loss_power(cfg.loss.kind)
    model_factory(cfg.model)  # model.kind
    # width and depth where the architecture has them (the Gaussian kernel has neither)
    sizes = [f"model.{key}" for key in ("width", "depth") if cfg.model.get(key) is not None]
    check_int(cfg, *sizes)
    if OmegaConf.select(cfg, "optim.optimizer.lr") is not None:  # an optimizer without lr is its own business
        check_positive(cfg, "optim.optimizer.lr")
    if cfg.model.get("parameterization") == "mup" and cfg.model.kind != "frozen":
        family = optimizer_family(instantiate(cfg.optim.optimizer))
        if family not in MUP_OPTIMIZERS:
            raise ValueError(
                f"config value optim.optimizer._target_={cfg.optim.optimizer.get('_target_')!r}: "
                f"model.parameterization=mup has learning-rate tables for {MUP_OPTIMIZERS} only"
            )
    compile_mode(cfg.get("compile"))
    check_choice(cfg, "route", ROUTES)
    if "check_every_n_steps" in cfg:
        check_int(cfg, "check_every_n_steps")
    if cfg.trainer.get("max_epochs") is not None:  # None: Lightning's default
        check_int(cfg, "trainer.max_epochs")
    check_int(cfg, "data.n_train", "data.n_val", "data.n_test", "data.batch_size", "test_batch_size")
    check_int(cfg, "seed", "data.seed", minimum=-(2**63))  # any integer torch takes as a seed
    check_choice(cfg, "resume", ("auto", "never"))
    check_bool(cfg, "stop_on_nonpositive")
    if cfg.get("curvature") is not None:
        check_int(cfg, "curvature.points", "curvature.chunk_size", allow_none=("curvature.points",))
        check_choice(cfg, "curvature.route", CURVATURE_ROUTES)
        if wants_curvature(cfg) and cfg.model.kind == "frozen":
            raise ValueError("config value curvature.points: a frozen flow (model.kind=frozen) has no Kähler potential "
                             "to take curvature of; set curvature.points=null")
    if cfg.model.kind == "frozen":
        validate_flow_config(cfg)


def validate_flow_config(cfg: DictConfig) -> None:
    """The frozen flow's own keys where the model config sets them (build_frozen_flow's defaults
    otherwise): kernel, storage, blocks, cross-kernel cache; then the flow's step and integrator."""
    from torchdiffeq._impl.odeint import SOLVERS  # the methods odeint accepts

    model = cfg.model
    if "kernel" in model:
        check_choice(cfg, "model.kernel", KERNEL_KINDS)
    if "dense" in model:
        check_choice(cfg, "model.dense", (True, False, "auto"))
    check_int(cfg, *(f"model.{key}" for key in ("block_size", "dense_limit") if key in model))
    cache = model.get("cache_mb")
    if cache is not None and not (isinstance(cache, (int, float)) and not isinstance(cache, bool) and cache >= 0):
        raise ValueError(f"config value model.cache_mb={cache!r} must be a number ≥ 0")
    check_positive(cfg, "flow.dt", allow_none=("flow.dt",))
    check_choice(cfg, "flow.integrator", sorted(SOLVERS))


# What ``model.kind`` trains, and the factory that builds it from the model config's other keys:
# the network (MetricModule), its linearization around θ0 (MetricModule) or the frozen-NTK flow
# of the architecture on the training points (FrozenFlowModule).
FACTORIES: dict[str, Callable] = {
    "finite": build_potential,
    "linearized": build_linearized,
    "frozen": build_frozen_flow,
}


def model_factory(model_cfg: DictConfig) -> tuple[str, Callable, dict]:
    """(kind, factory, options) of cfg.model: the factory is ``FACTORIES[kind]``, or the config's
    own ``_target_`` when it names one (a custom model with metric(), e.g. a test model); options
    are the remaining keys, resolved to plain values."""
    options = OmegaConf.to_container(model_cfg, resolve=True)
    kind = options.pop("kind", None)
    if kind not in FACTORIES:
        raise ValueError(f"config value model.kind={kind!r} must be one of {tuple(FACTORIES)}")
    target = options.pop("_target_", None)
    return kind, (get_method(target) if target else FACTORIES[kind]), options


def duplicate_of_reference(cfg: DictConfig) -> str | None:
    """For model.kind=frozen in a sweep: the flow depends on neither width nor seed, so only the
    run at ``sweep_reference`` (width, seed) computes it; others say which run that is."""
    ref = cfg.get("sweep_reference")
    if cfg.model.kind != "frozen" or ref is None:
        return None
    if int(cfg.model.width) == int(ref.width) and int(cfg.seed) == int(ref.seed):
        return None
    return (
        f"model.kind=frozen is independent of width and seed: see the run with model.width={ref.width} seed={ref.seed}"
    )


def outside_sweep_cells(cfg: DictConfig) -> str | None:
    """For a study's arm that needs fewer cells of the multirun's product than the others
    (``sweep_cells``: {config key: allowed values}, e.g. {"seed": [0], "data.n_train": [1000]}):
    why this run is not one of them, else None."""
    cells = cfg.get("sweep_cells")
    if not cells:
        return None
    for key, allowed in cells.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            raise ValueError(f"config value sweep_cells.{key}: the config has no key {key!r}")
        if value not in list(allowed):
            return f"this arm ({arm_name(cfg)}) runs only {key} in {list(allowed)} (sweep_cells); this run has {value}"
    return None


def symmetry_kwargs(cfg: DictConfig, surface) -> dict:
    """The manifold's phase symmetries for ``feature_symmetry: phases`` (any kind), else nothing."""
    return phase_options(surface, cfg.model.get("feature_symmetry", "none"))


def model_kwargs(cfg: DictConfig, surface) -> dict:
    """What a network factory needs from the manifold and the run, besides cfg.model."""
    run = {"n_coords": surface.n_coords, "kahler_t": float(cfg.kahler_t), "seed": int(cfg.seed)}
    if isinstance(surface, CompleteIntersection):
        run["factors"] = surface.factors
    return run | symmetry_kwargs(cfg, surface)


def build_model(cfg: DictConfig, surface, dtype: torch.dtype) -> torch.nn.Module:
    """The metric model of a finite or linearized kind (a KahlerPotential, or any model with metric())."""
    _, factory, options = model_factory(cfg.model)
    try:
        model = factory(**(options | model_kwargs(cfg, surface)))  # the run's values win, as in instantiate
    except (ValueError, TypeError) as err:  # the library's own message, naming the config
        raise type(err)(f"model config: {err}") from err
    features = getattr(model, "features", None) or getattr(getattr(model, "base", None), "features", None)
    if features is not None:  # the network's input width (build_potential stops beyond model.max_features)
        log.info("features: %d (degree %d%s)", features.dim, features.degree,
                 ", phase-invariant" if features.phases is not None else "")
    return model.to(dtype)


def build_flow(cfg: DictConfig, surface, train_points, kappa: float) -> torch.nn.Module:
    """The frozen-NTK flow on the training points (model.kind=frozen)."""
    _, factory, options = model_factory(cfg.model)
    try:
        run = {"train": train_points, "kappa": kappa, "power": loss_power(cfg.loss.kind),
               "kahler_t": float(cfg.kahler_t), "seed": int(cfg.seed)}
        if isinstance(surface, CompleteIntersection):
            run["factors"] = surface.factors
        return factory(**(options | run | symmetry_kwargs(cfg, surface)))
    except TypeError as err:
        raise ValueError(f"model config: {err}") from err


def build_kernel_tracking(cfg: DictConfig, run_dir: Path, surface):
    """KernelTracking with the architecture's analytic kernel Θ̄ when one exists (phase-invariant
    features take the manifold's phase symmetries)."""
    from nnflow.kernels import analytic_kernel
    from nnflow.training.kernel_tracking import KernelTracking

    _, _, options = model_factory(cfg.model)
    try:
        analytic = analytic_kernel(options | model_kwargs(cfg, surface))  # factors on a CICY
    except (ValueError, TypeError) as err:
        log.info("no analytic kernel for this model (%s): tracking the empirical kernel only", err)
        analytic = None
    t = cfg.kernel_tracking
    return KernelTracking(
        run_dir / "kernel.csv", probe_size=int(t.probe_size), every_n_steps=int(t.every_n_steps),
        analytic=analytic, n_eigenvalues=int(t.n_eigenvalues),
    )


def memory_estimates(cfg: DictConfig, surface) -> list:
    """What the run holds at once (nnflow.feasibility): the point sets and their cache, and for
    model.kind=frozen the flow's kernel (dense when model.dense says so or n_train ≤ dense_limit)."""
    n_train = int(cfg.data.n_train)
    parts = [training(n_train, int(cfg.data.n_val), int(cfg.data.n_test), surface.n_coords)]
    if cfg.model.kind == "frozen":
        defaults = {k: p.default for k, p in inspect.signature(build_frozen_flow).parameters.items()}
        option = {k: cfg.model.get(k, defaults[k]) for k in ("dense", "dense_limit", "block_size")}
        dense = n_train <= int(option["dense_limit"]) if option["dense"] == "auto" else bool(option["dense"])
        parts.append(frozen_flow(n_train, surface.dim, dense, int(option["block_size"])))
    return parts


RESUME_REMEDY = "move it away to start this run directory afresh, or pass resume=never"


def read_checkpoint(path: Path, remedy: str = RESUME_REMEDY) -> dict:
    """A Lightning checkpoint as a dict, or ValueError naming the file and the remedy (a truncated
    or corrupt file gives torch's internal "failed finding central directory" otherwise)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # RuntimeError, EOFError, UnpicklingError, … depending on the damage
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); {remedy}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"checkpoint {path} holds no state_dict; {remedy}")
    return checkpoint


def wants_curvature(cfg: DictConfig) -> bool:
    """Whether the run measures its learned metric's curvature after training (curvature.points set)."""
    return cfg.get("curvature") is not None and cfg.curvature.points is not None


def measure_curvature(cfg: DictConfig, model, test_points, run_dir: Path, surface) -> dict:
    """The learned metric's Ricci measure and χ on the leading ``curvature.points`` test points,
    with Fubini–Study's on the same points, for summary.json; writes the η and Ricci-scalar
    histograms (report.geometry) into the run directory."""
    from nnflow.report.geometry import plot_metric_histograms

    n = min(int(cfg.curvature.points), len(test_points))
    log.info("curvature of the learned metric on %d test points (route %s)", n, cfg.curvature.route)
    points = test_points.subset(slice(0, n))
    result = measure_learned(model, points, float(cfg.kahler_t), curvature_points=n,
                             chunk_size=int(cfg.curvature.chunk_size), route=str(cfg.curvature.route), per_point=True)
    fs = result["fubini_study"]
    plot_metric_histograms(result, fs, run_dir, f"{surface.name}:")
    log.info("learned Ricci measure %.4g ± %.2g (FS %.4g), χ = %.4g ± %.2g", result["ricci"], result["ricci_err"],
             fs["ricci"], result["euler"], result["euler_err"])
    return {"curvature_points": n, "curvature_route": result["curvature_route"],
            "ricci": result["ricci"], "ricci_err": result["ricci_err"], "euler": result["euler"],
            "euler_err": result["euler_err"], "ricci_fs": fs["ricci"], "ricci_fs_err": fs["ricci_err"],
            "euler_fs": fs["euler"], "euler_fs_err": fs["euler_err"], "seconds_curvature": result["seconds_curvature"]}


def build_logger(cfg: DictConfig, run_dir: Path):
    """The Lightning logger of ``cfg.logger`` (False for none); a WandbLogger gets the resolved
    config, the sweep's group and the run's name (nnflow.tracking.logger_options), offline unless
    WANDB_MODE says otherwise."""
    if cfg.get("logger") is None:
        return False
    os.environ.setdefault("WANDB_MODE", "offline")  # no network at run time unless asked
    extra = {}
    if "wandb" in str(cfg.logger.get("_target_", "")).lower():
        extra = logger_options(cfg)
    return instantiate(cfg.logger, _partial_=True)(save_dir=str(run_dir), **extra)  # partial: "config" is a kwarg


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
    duplicate = duplicate_of_reference(cfg) or outside_sweep_cells(cfg)
    if duplicate:
        summary = {"status": "skipped", "message": duplicate, "arm": arm_name(cfg), "provenance": provenance()}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary, {}
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    resume = str(last) if cfg.resume == "auto" and last.exists() else None
    if resume:
        read_checkpoint(last)  # an unreadable checkpoint stops here, named, before any work
    start = time.perf_counter()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dtype = set_precision(cfg.dtype)
    surface = manifold_from_config(OmegaConf.to_container(cfg.manifold, resolve=True))
    check_feasible(*memory_estimates(cfg, surface), max_memory_gb=cfg.get("max_memory_gb"))  # before sampling
    frozen = cfg.model.kind == "frozen"  # a flow built on the training points, not a network
    if not frozen:
        model = build_model(cfg, surface, dtype)  # first: a bad model option fails before sampling
        if wants_curvature(cfg):
            curvature_route(model, str(cfg.curvature.route), str(cfg.model.kind))  # no potential: stop before work
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
        model = build_flow(cfg, surface, data.split("train"), kappa)
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
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_sigma", mode="min", save_last=True, save_top_k=1
    )
    callbacks = [checkpoint, MetricsCSV(run_dir / "metrics.csv")]
    tracking = cfg.get("kernel_tracking")
    if tracking is not None and tracking.enabled and not frozen:
        callbacks.append(build_kernel_tracking(cfg, run_dir, surface))
    trainer = L.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        default_root_dir=str(run_dir),
        logger=build_logger(cfg, run_dir),
        callbacks=callbacks,
        num_sanity_val_steps=0,
    )
    logger = trainer.logger
    if resume:
        log.info("resuming from %s", resume)
    status, message = "completed", ""
    tested_step = None  # the step of the state that is tested, when checkpoints/last.ckpt holds it
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume)
    except TrainingDivergedError as err:
        status, message = "diverged", str(err)
        log.error("training stopped: %s", err)
        if last.exists():  # evaluate the last good state, not the broken one
            saved = read_checkpoint(last)
            module.load_state_dict(saved["state_dict"])
            tested_step = int(saved.get("global_step", -1))
    stale = module.last_val_step != trainer.global_step and trainer.global_step > module.fit_start_step
    if status == "completed" and not trainer.fast_dev_run and stale:
        # stopped between validations (trainer.max_time): validate the final state, so that
        # metrics.csv, the plot and sigma_val end where training ended
        trainer.validate(module, datamodule=data, verbose=False)
    if status == "completed" and not trainer.fast_dev_run:
        # Lightning (≥ 2.5) rewrites last.ckpt only when val_sigma improves: keep it at the final
        # step, so that a resume continues from the end and the report rebuilds the trained model;
        # it is the state tested below (summary.json's "checkpoint", what nnflow.load_run loads)
        trainer.save_checkpoint(last)
        tested_step = trainer.global_step
    train_seconds = time.perf_counter() - start
    if not trainer.is_global_zero:  # data-parallel ranks > 0: rank 0 tests and writes
        return {"status": status, "message": message, "rank": trainer.global_rank}, {"module": module}
    # Lightning's teardown moves the model back to the CPU: test where it trained
    device = trainer.strategy.root_device
    module.model.to(device)
    module.model.eval()
    test = evaluate_metric(data.split("test").to(device), module.model.metric, batch_size=int(cfg.test_batch_size))
    sigma_fs, sigma_fs_err = sigma_measure(data.split("test"), fs_det(data.split("test"), float(cfg.kahler_t)))
    val_sigma = trainer.callback_metrics.get("val_sigma")
    summary = {
        "status": status,
        "message": message,
        "manifold": surface.name,
        "manifold_params": surface.params,  # e.g. the Dwork family's psi
        "arm": arm_name(cfg),
        "kind": cfg.model.kind,
        "model": cfg.model.get("network", cfg.model.get("_target_")),
        "width": cfg.model.get("width"),
        "sigma_val": float(val_sigma) if val_sigma is not None else math.nan,
        "sigma_test": test["sigma"],
        "sigma_test_err": test["sigma_err"],
        "sigma_fs": sigma_fs,  # the Fubini–Study metric of class t on the same test points (where training starts)
        "sigma_fs_err": sigma_fs_err,
        "volume": test["volume"],
        "volume_err": test["volume_err"],
        "positive_fraction_test": test["positive_fraction"],
        "n_test": len(data.split("test")),
        "n_params": n_params,
        "flow_time": float(model.time) if frozen else None,
        "kernel_rank": getattr(model, "rank", None) if frozen else None,  # the Nyström route's rank
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # Linux: KiB
        "steps": trainer.global_step,
        # the weights that gave sigma_test (relative to the run directory; null when none was
        # saved: fast_dev_run, or a divergence before the first checkpoint) and their step
        "checkpoint": str(last.relative_to(run_dir)) if tested_step is not None else None,
        "checkpoint_step": tested_step,
        "epochs": trainer.current_epoch,
        "seconds": time.perf_counter() - start,
        "seconds_train": train_seconds,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "dtype": cfg.dtype,
        "seed": int(cfg.seed),
        "kappa": kappa,
        "route": module.route,
        "provenance": provenance(device),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))  # kept if the curvature step fails
    if wants_curvature(cfg) and status == "completed":  # a diverged run's last weights are not the result
        summary.update(measure_curvature(cfg, module.model, data.split("test").to(device), run_dir, surface))
        summary["seconds"] = time.perf_counter() - start  # the whole run, curvature included
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if logger:
        logger.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
        if hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
            logger.experiment.finish()  # flush wandb (it prints) before the caller prints
    if (run_dir / "metrics.csv").exists():
        plot_sigma(run_dir / "metrics.csv", run_dir / "sigma", title=f"{surface.name}: {summary['model']}")
    return summary, {"module": module, "datamodule": data, "trainer": trainer}
