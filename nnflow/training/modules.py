"""LightningModules: thin shells that train a metric model with a Monge–Ampère loss.

A *metric model* is any nn.Module with ``metric(z, jac) -> (B, n, n)`` complex (the pulled-back
metric); KahlerPotential is one. The module logs per validation epoch: train loss, σ_val with
its standard error, volume, and the fraction of validation points where the metric is positive
definite (geometry.measures.metric_summary; ``evaluate_metric`` gives the same on the test set).

Training routes (``MetricModule(route=...)``, ``ROUTES``), all the same metric and gradient:

- "packed": the θ-independent parts (the packed feature jet and the reference metric in real
  components) are cached per training point and each step is real arithmetic only
  (``packed_inputs`` / ``packed_metric``); the one route ``compile`` applies to. Needs a model
  that offers it (a KahlerPotential whose network has ``jet_packed``: the MLP).
- "reference": only the reference metric g_FS − α∂∂̄f_θ0 is cached (``reference_metric`` /
  ``metric_from_reference``); the feature jet is computed every step.
- "direct": ``model.metric`` every step; any metric model.
- "auto": "packed" if the model offers it and either ``compile`` is set or the feature-jet cache
  fits in ``packed_cache_limit`` (default PACKED_CACHE_BYTES, 2 GiB); else "reference" if offered;
  else "direct". Without a datamodule there is nothing to cache: "direct".

A model lists what it offers in ``training_routes`` (absent: "direct" only). The frozen flow's
module has its own route, "flow". The resolved route is ``module.route`` from on_train_start on.

(One file of ~420 lines: FrozenFlowModule reuses MetricModule's validation, health checks and
logging, and the route choice is part of MetricModule's state; splitting would scatter one class.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from nnflow.flows.losses import data_parallel_loss, loss_power
from nnflow.geometry.hermitian import real_hermitian_det, real_to_hermitian
from nnflow.geometry.linalg import hermitian_det, hermitian_positive
from nnflow.geometry.measures import metric_summary, sigma_measure
from nnflow.models.networks import lr_groups

log = logging.getLogger("nnflow")

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ROUTES = ("auto", "packed", "reference", "direct")
# route="auto": the packed route caches the feature jet of every training point; above this size
# (degree-2 features on 10^5 points) it is taken only when compiling ("reference" otherwise).
PACKED_CACHE_BYTES = 2 * 1024**3


def compile_mode(value) -> str | None:
    """A ``compile`` setting as a torch.compile mode, or None for eager (None, False, "none")."""
    if value in (None, False, "none"):
        return None
    if value not in COMPILE_MODES:
        raise ValueError(f"compile={value!r}; choose from none, {', '.join(COMPILE_MODES)}")
    return value


def optimizer_family(factory: Callable) -> str:
    """"adam" (Adam, AdamW, Adamax, NAdam, RAdam), "sgd" (SGD) or "other" for an optimizer factory
    (a class, or a functools.partial of one as Hydra's ``_partial_`` gives): the learning-rate
    table μP networks take (models.networks.MLP.lr_scales)."""
    cls = getattr(factory, "func", factory)
    adam = (torch.optim.Adam, torch.optim.AdamW, torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam)
    if isinstance(cls, type) and issubclass(cls, adam):
        return "adam"
    if isinstance(cls, type) and issubclass(cls, torch.optim.SGD):
        return "sgd"
    return "other"


def build_optimizer(model: torch.nn.Module, factory: Callable) -> torch.optim.Optimizer:
    """``factory`` (taking parameters, with its own lr) applied to ``model``'s parameters, with
    per-layer learning rates lr·lr_scale where the model sets them (μP; models.networks.lr_groups):
    one param group per factor, each keeping its ``lr_scale``; a plain ``factory(parameters)``
    (one group, as checkpoints of such runs hold) when every factor is 1."""
    groups = lr_groups(model, optimizer_family(factory))
    if all(group["lr_scale"] == 1.0 for group in groups):
        return factory(model.parameters())
    optimizer = factory(groups)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group["lr_scale"]
    return optimizer


class TrainingDivergedError(RuntimeError):
    """Training produced NaN/inf or a metric that is not positive definite."""


def cosine_schedule(
    optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    min_ratio: float = 0.01,
    budget_s: float | None = None,
    elapsed_s: Callable[[], float] | None = None,
):
    """LambdaLR: linear warm-up, then cosine decay from 1 to ``min_ratio``.

    Progress is ``(step − warmup)/(total_steps − warmup)``, or, for a run with a wall-clock
    budget (``trainer.max_time``), the larger of that and ``elapsed_s()/budget_s``: the rate
    reaches ``min_ratio`` when the time is up even though the step count is not known ahead.
    ``elapsed_s`` should survive a resume (Lightning's Timer does), so the decay continues
    where it stopped.
    """
    if (budget_s is None) != (elapsed_s is None):
        raise ValueError("cosine_schedule needs both budget_s and elapsed_s, or neither")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"budget_s={budget_s!r} must be positive")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        if budget_s is not None:
            progress = max(progress, elapsed_s() / budget_s)
        progress = min(1.0, progress)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def model_routes(model: torch.nn.Module) -> tuple[str, ...]:
    """The training routes a metric model offers: its ``training_routes`` (KahlerPotential),
    or ("direct",) for a model that only has ``metric``."""
    return tuple(getattr(model, "training_routes", ("direct",)))


def describe_model(model: torch.nn.Module) -> str:
    """The model's class, with its network's for a potential (for error messages and logs)."""
    network = getattr(model, "network", None)
    name = type(model).__name__
    return name if network is None else f"{name} with {type(network).__name__}"


class MetricModule(L.LightningModule):
    """Trains ``model`` (a metric model) with the Monge–Ampère loss.

    Args:
        model: nn.Module with ``metric(z, jac)``.
        optimizer: partial(torch.optim.X, lr=…) taking the parameters (per-layer learning rates for
            μP networks: build_optimizer).
        scheduler: partial(cosine_schedule, …) taking (optimizer, total_steps), or None.
        loss: "ma2" (squared) or "ma1" (σ-like).
        kappa: det g/|Ω|² of the Ricci-flat metric in the class (flows.losses.class_kappa).
        stop_on_nonpositive: stop (TrainingDivergedError) when a training batch has det g ≤ 0.
        compile: torch.compile mode for the training metric (COMPILE_MODES): None/"none" runs
            eagerly; "reduce-overhead" also captures CUDA graphs on a GPU. It applies to the
            packed route only, and is refused (ValueError) with any other route.
        route: "auto", "packed", "reference" or "direct" (module doc). A route the model does
            not offer is a ValueError here; the resolved route is ``self.route`` after
            on_train_start (None before, for "auto").
        packed_cache_limit: route "auto" takes "packed" without ``compile`` only if the
            feature-jet cache (``packed_cache_bytes``) has at most this many bytes.
        check_every_n_steps: read the steps' health (NaN loss, det g ≤ 0) from the device every
            this many steps, and always before validation and checkpoints (1: every step). A
            divergence is reported at the step where it happened either way.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        loss: str = "ma2",
        kappa: float = 1.0,
        stop_on_nonpositive: bool = True,
        compile: str | None = None,
        check_every_n_steps: int = 1,
        route: str = "auto",
        packed_cache_limit: int = PACKED_CACHE_BYTES,
    ):
        super().__init__()
        if not isinstance(check_every_n_steps, int) or check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps={check_every_n_steps!r} must be a positive integer")
        self.check_every_n_steps = check_every_n_steps
        self._health: list[tuple[int, int, torch.Tensor]] = []  # (step, points, [loss, n det ≤ 0, min det])
        compile = compile_mode(compile)
        if route not in ROUTES:
            raise ValueError(f"route={route!r}; choose from {ROUTES}")
        offered = model_routes(model)
        if route != "auto" and route not in offered:
            raise ValueError(f"route={route!r} is not offered by {describe_model(model)}; it offers {offered}")
        if compile is not None and route not in ("auto", "packed"):
            raise ValueError(f"compile={compile!r} applies to route='packed' only; got route={route!r}")
        if compile is not None and "packed" not in offered:
            raise ValueError(
                f"compile={compile!r} needs a Kähler potential whose network propagates packed jets "
                f"(the MLP); {describe_model(model)} does not"
            )
        self.compile_mode = compile
        self.requested_route = route
        self.packed_cache_limit = int(packed_cache_limit)
        self.route: str | None = None if route == "auto" else route
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.power = loss_power(loss)
        self.kappa = float(kappa)
        self.stop_on_nonpositive = stop_on_nonpositive
        self._val_dets: list[torch.Tensor] = []
        self._val_positive: list[torch.Tensor] = []
        self._train_losses: list[torch.Tensor] = []  # detached: no host sync per step
        self.last_val_metrics: dict[str, float] = {}
        self.last_val_step: int | None = None  # global step of the last full validation
        self.fit_start_step = 0  # global step when fit started (after a restored checkpoint)
        self._reference: torch.Tensor | None = None  # model.reference_metric on the training points
        # packed route, per training point on the device: reference, feature jet, |Ω|², weights
        self._packed: tuple[torch.Tensor, ...] | None = None
        self._packed_det: Callable | None = None

    def on_train_start(self) -> None:
        self.fit_start_step = self.trainer.global_step
        self._reference, self._packed = None, None
        self.route, why = self.resolve_route()
        log.info("training route: %s (%s)", self.route, why)
        if self.route == "packed":
            points = self.trainer.datamodule.split("train")
            reference, feature_jet = self.training_cache(self.model.packed_inputs)
            self._packed = (reference, feature_jet, points.omega2.to(self.device), points.weights.to(self.device))
            self._packed_det = self._build_packed_det()
        elif self.route == "reference":
            (self._reference,) = self.training_cache(lambda z, jac: (self.model.reference_metric(z, jac),))

    def resolve_route(self) -> tuple[str, str]:
        """The route this fit takes and why (module doc: the "auto" rule)."""
        has_data = self.trainer.datamodule is not None
        if self.requested_route != "auto":
            if self.requested_route != "direct" and not has_data:
                raise ValueError(
                    f"route={self.requested_route!r} caches terms per training point and needs a datamodule "
                    "with a 'train' split"
                )
            return self.requested_route, "asked for"
        if not has_data:
            return "direct", "auto: no datamodule, nothing to cache"
        offered = model_routes(self.model)
        why = ""
        if "packed" in offered:
            if self.compile_mode is not None:
                return "packed", f"auto: compile={self.compile_mode} compiles the packed metric"
            size = self.packed_cache_bytes()
            if size <= self.packed_cache_limit:
                return "packed", f"auto: the feature-jet cache, {size / 2**20:.1f} MiB, fits in packed_cache_limit"
            why = f"the feature-jet cache, {size / 2**20:.1f} MiB, exceeds packed_cache_limit; "
        if "reference" in offered:
            return "reference", f"auto: {why}the reference metric is cached"
        return "direct", f"auto: {describe_model(self.model)} offers no cached route"

    def packed_cache_bytes(self) -> int:
        """Bytes of the packed feature-jet cache on the training points: N·(1 + 2n + n²)·d·itemsize."""
        points = self.trainer.datamodule.split("train")
        n = points.jac.shape[-2]
        bytes_per = torch.finfo(next(self.model.parameters()).dtype).bits // 8
        return len(points) * (1 + 2 * n + n * n) * self.model.features.dim * bytes_per

    @torch.no_grad()
    def training_cache(self, fn: Callable) -> tuple[torch.Tensor, ...]:
        """``fn(z, jac)`` (a tuple of per-point tensors) on every training point, in batches,
        concatenated on the model's device: a tuple of (N, ...) tensors."""
        points = self.trainer.datamodule.split("train")
        step = self.trainer.datamodule.eval_batch_size
        parts = []
        for start in range(0, len(points), step):
            z = points.z[start : start + step].to(self.device)
            jac = points.jac[start : start + step].to(self.device)
            parts.append(fn(z, jac))
        return tuple(torch.cat(column) for column in zip(*parts))

    def _build_packed_det(self) -> Callable:
        """det g from the cached packed parts: (B, n²), (B, R, d) → (B,), compiled if asked."""
        model = self.model

        def packed_det(reference: torch.Tensor, feature_jet: torch.Tensor) -> torch.Tensor:
            return real_hermitian_det(model.packed_metric(reference, feature_jet))

        if self.compile_mode is None:
            return packed_det
        # fixed shapes (the last, smaller batch compiles once more) so no symbolic-shape guards
        return torch.compile(packed_det, mode=self.compile_mode, dynamic=False)

    # ------------------------------------------------------------------ steps
    def batch_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, det g) of a training batch by ``self.route``; cached routes read batch["index"]."""
        if self.route == "packed":
            index = batch["index"]
            if self.compile_mode == "reduce-overhead" and self.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()  # a new step: earlier graph outputs are done
            reference, feature_jet, omega2, weights = self._packed
            det_g = self._packed_det(reference[index], feature_jet[index])
            loss = data_parallel_loss(det_g, omega2[index], weights[index], self.kappa, self.power)
            return loss, det_g
        if self.route == "reference":
            g = self.model.metric_from_reference(self._reference[batch["index"]], batch["z"], batch["jac"])
        else:
            g = self.model.metric(batch["z"], batch["jac"])
        det_g = hermitian_det(g)
        # normalized over the global batch under data parallelism (flows/losses.py)
        return data_parallel_loss(det_g, batch["omega2"], batch["weights"], self.kappa, self.power), det_g

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, det_g = self.batch_loss(batch)
        # The health of each step (loss, number of det g ≤ 0, min det g) stays on the device and
        # is read every check_every_n_steps steps and always before a validation or checkpoint:
        # each read is a host sync, which on a GPU stalls the launch queue.
        self._health.append(
            (
                self.global_step,
                det_g.numel(),
                torch.stack([loss.detach(), (det_g <= 0).sum().to(loss.dtype), det_g.detach().min().to(loss.dtype)]),
            )
        )
        if len(self._health) >= self.check_every_n_steps:
            self.check_health()
        self._train_losses.append(loss.detach())
        if self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            # Lightning's log() costs about a millisecond (its result collection is walked each
            # call): as much as a compiled GPU step, so only the steps the logger keeps are logged
            self.log("train_loss", loss, prog_bar=True, batch_size=det_g.numel())
        return loss

    def check_health(self) -> None:
        """Raise TrainingDivergedError for the first unhealthy step since the last check."""
        if not self._health:
            return
        stats = torch.stack([h[2] for h in self._health]).cpu()  # the one host sync
        pending, self._health = self._health, []
        for (step, n_points, _), (loss, n_bad, min_det) in zip(pending, stats.tolist()):
            if not math.isfinite(loss):
                raise TrainingDivergedError(f"loss is {loss} at step {step}; the last good checkpoint is kept")
            if self.stop_on_nonpositive and n_bad > 0:
                raise TrainingDivergedError(
                    f"metric not positive definite at {int(n_bad)} of {n_points} training points at step "
                    f"{step} (min det g = {min_det:.3e}); lower the learning rate or the output scale. "
                    "The last good checkpoint is kept"
                )

    def on_train_epoch_end(self) -> None:
        self.check_health()

    def on_validation_epoch_start(self) -> None:
        self.check_health()  # before this validation's metrics and checkpoint

    def on_train_end(self) -> None:
        self.check_health()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        g = self.model.metric(batch["z"], batch["jac"])
        self._val_dets.append(hermitian_det(g))
        self._val_positive.append(hermitian_positive(g))

    def on_validation_epoch_end(self) -> None:
        det_g = torch.cat(self._val_dets).cpu()
        positive = torch.cat(self._val_positive).cpu()
        self._val_dets, self._val_positive = [], []
        points = self.trainer.datamodule.split("val").to("cpu")
        if len(det_g) != len(points):  # sanity-check pass on a subset: nothing to report
            return
        summary = metric_summary(points, det_g, positive)
        metrics = {
            "val_positive_fraction": summary["positive_fraction"],
            "val_sigma": summary["sigma"],
            "val_sigma_err": summary["sigma_err"],
            "val_volume": summary["volume"],
        }
        if self._train_losses:
            metrics["train_loss_epoch"] = torch.stack(self._train_losses).mean().item()
            self._train_losses = []
        self.last_val_metrics = dict(metrics)
        self.last_val_step = self.trainer.global_step
        self.log("val_sigma", metrics.pop("val_sigma"), prog_bar=True)
        self.log_dict(metrics)

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self):
        optimizer = build_optimizer(self.model, self.optimizer_factory)
        if self.scheduler_factory is None:
            return optimizer
        total = self.trainer.estimated_stepping_batches
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        budget = {}
        if timer is not None and timer._duration is not None:  # trainer.max_time: decay over the time
            if self.trainer.world_size > 1:
                # every replica must take the same rate, so rank 0's clock decides (one tiny
                # broadcast per step; the scheduler steps on all ranks together)
                strategy = self.trainer.strategy

                def elapsed() -> float:
                    return float(strategy.broadcast(timer.time_elapsed("train"), src=0))
            else:

                def elapsed() -> float:
                    return timer.time_elapsed("train")

            budget = {"budget_s": float(timer._duration), "elapsed_s": elapsed}
        total = int(total) if math.isfinite(total) else 2**62
        scheduler = self.scheduler_factory(optimizer, total_steps=total, **budget)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class FrozenFlowModule(MetricModule):
    """Runs a FrozenKernelFlow inside Lightning: each training step advances NTK time by ``dt``.

    The flow is full-batch by construction (the batch is ignored); validation, logging,
    checkpoints and the run directory are exactly those of finite networks. Its route is "flow".

    Args:
        flow: FrozenKernelFlow (its ``metric`` serves validation and test).
        dt: NTK time per step (the learning rate of the matching full-batch GD).
        integrator: "euler" (explicit steps of dt) or an adaptive torchdiffeq method
            ("dopri5", …) that advances by dt per step with error control.
    """

    def __init__(self, flow, dt: float, integrator: str = "euler", **kwargs):
        super().__init__(flow, optimizer=None, scheduler=None, kappa=flow.kappa, **kwargs)
        if not dt > 0:
            raise ValueError(f"flow step dt must be positive; got {dt!r}")
        self.dt = float(dt)
        self.integrator = integrator
        self.automatic_optimization = False
        self.route = "flow"

    def on_train_start(self) -> None:
        self.fit_start_step = self.trainer.global_step
        log.info("training route: flow (the frozen kernel flow advances NTK time by dt=%g per step)", self.dt)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        from nnflow.flows.frozen import FlowDivergedError

        try:
            if self.integrator == "euler":
                loss = self.model.step(self.dt)
            else:
                loss = self.model.integrate(self.model.time.item() + self.dt, method=self.integrator)
        except FlowDivergedError as err:
            raise TrainingDivergedError(f"{err}; the last good checkpoint is kept") from err
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"loss is {loss} at step {self.global_step}; the last good checkpoint is kept")
        self._train_losses.append(torch.as_tensor(float(loss)))
        self.log("train_loss", loss, prog_bar=True, batch_size=1)
        self.log("flow_time", self.model.time.item())
        # manual optimization: Lightning counts steps through the optimizer's step calls
        self.optimizers().step()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if not self.last_val_metrics:
            return
        # σ on the training points: the flow keeps its metric there (no kernel work), σ_train vs t
        flow = self.model
        with torch.no_grad():
            g = real_to_hermitian(flow.real_metric_train())
        det_g = hermitian_det(g).cpu()
        points = self.trainer.datamodule.split("train").to("cpu")
        extra = {"flow_time": flow.time.item()}
        if (det_g > 0).all():
            extra["train_sigma"] = sigma_measure(points, det_g)[0]
        self.last_val_metrics.update(extra)
        self.log_dict(extra)

    def configure_optimizers(self):
        # A no-op optimizer keeps Lightning's step counter, checkpointing and schedules uniform.
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
