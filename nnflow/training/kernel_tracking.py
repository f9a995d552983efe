"""KernelTracking: the empirical metric-NTK on a fixed probe set, during training.

At the start of training and every ``every_n_steps`` steps it computes Θ_t on ``probe_size``
validation points and appends a row to ``kernel.csv``:

    step, rel_change = ‖Θ_t − Θ_0‖_F/‖Θ_0‖_F,
    dist_analytic = ‖Θ_t − Θ̄‖_F/‖Θ̄‖_F and align_analytic = ⟨Θ_t, Θ̄⟩/(‖Θ_t‖‖Θ̄‖)
        (Θ̄: the infinite-width kernel of the architecture, when one exists),
    eig_1..eig_k, the leading eigenvalues of Θ_t,
    align_target = yᵀΘ_t y/(‖Θ_t‖_F ‖y‖²), the kernel–target alignment with the loss's descent
        direction y = −∂L/∂g at the probe points under the current metric
        (flows.losses.descent_direction; the rate at which the frozen-Θ_t flow lowers L, over
        its largest value for a kernel of that norm).

and writes ``kernel_spectrum.json``: every eigenvalue of Θ at the first and the latest record
(the spectrum at initialization and after training).

KahlerPotentials use nnflow.kernels.metric_ntk (fastest implementation); any other metric
model (e.g. the linearized network) uses a plain Jacobian contraction of its own ``metric``
over its own parameters, so a frozen kernel shows up as rel_change = 0 by computation.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import lightning as L
import torch
from torch.func import functional_call, jacrev

from nnflow.flows.losses import descent_direction
from nnflow.kernels import (
    alignment,
    as_matrix,
    hermitian_to_real,
    leading_eigenvalues,
    metric_ntk,
    relative_change,
    target_alignment,
)
from nnflow.models.potential import KahlerPotential

log = logging.getLogger("nnflow")


def model_metric_ntk(model: torch.nn.Module, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
    """Empirical metric-NTK of any metric model on points: (B, B, m, m) real."""
    if isinstance(model, KahlerPotential):
        return metric_ntk(model, (z, jac))
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}

    def r_of(p):
        return hermitian_to_real(functional_call(model, p, (z, jac)))

    J = jacrev(r_of)(params)  # name → (B, m, *shape)
    flat = torch.cat([J[k].flatten(2) for k in names], -1)  # (B, m, P)
    return torch.einsum("asp,btp->abst", flat, flat)


class KernelTracking(L.Callback):
    """Track the empirical metric-NTK on a probe set (see module doc).

    Args:
        path: kernel.csv to write.
        probe_size: number of validation points in the probe set (the first ones).
        every_n_steps: interval in optimizer steps.
        analytic: an AnalyticKernel for Θ̄, or None.
        n_eigenvalues: how many leading eigenvalues to log.
    """

    def __init__(self, path: str | Path, probe_size: int = 32, every_n_steps: int = 50,
                 analytic=None, n_eigenvalues: int = 3):
        if probe_size <= 0 or every_n_steps <= 0:
            raise ValueError(f"probe_size and every_n_steps must be positive; got {probe_size}, {every_n_steps}")
        self.path = Path(path)
        self.probe_size = probe_size
        self.every = every_n_steps
        self.analytic = analytic
        self.k = n_eigenvalues
        self.theta0 = None
        self.theta_bar = None
        self.last: dict = {}

    def _probe(self, trainer, pl_module):
        pts = trainer.datamodule.split("val").subset(slice(0, self.probe_size))
        return pts.to(next(pl_module.model.parameters()).device)

    def _target(self, pl_module, pts) -> torch.Tensor:
        """−∂L/∂g at the probe points under the model's current metric: (B, n²) real."""
        r = hermitian_to_real(pl_module.model.metric(pts.z, pts.jac)).detach()
        return descent_direction(r, pts.omega2, pts.weights, pl_module.kappa, pl_module.power)

    def _write_spectrum(self, step: int, K: torch.Tensor) -> None:
        evals = torch.linalg.eigvalsh(as_matrix(K)).flip(0).tolist()  # symmetric by construction
        path = self.path.with_name("kernel_spectrum.json")
        spectrum = json.loads(path.read_text()) if path.exists() else {}
        if "initial" not in spectrum or step == 0:
            spectrum["initial"] = {"step": step, "eigenvalues": evals}
        spectrum["final"] = {"step": step, "eigenvalues": evals}
        path.write_text(json.dumps(spectrum))

    def _record(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        pts = self._probe(trainer, pl_module)
        K = model_metric_ntk(pl_module.model, pts.z, pts.jac).detach()
        if self.theta0 is None:
            self.theta0 = K
            torch.save(K.cpu(), self._theta0_path)
        if self.theta_bar is None and self.analytic is not None:
            self.theta_bar = self.analytic.metric((pts.z, pts.jac)).to(K.dtype)
        row = {"step": trainer.global_step, "rel_change": relative_change(K, self.theta0)}
        if self.theta_bar is not None:
            row["dist_analytic"] = relative_change(K, self.theta_bar)
            row["align_analytic"] = alignment(K, self.theta_bar)
        eig = leading_eigenvalues(K, self.k)
        row.update({f"eig_{i + 1}": float(v) for i, v in enumerate(eig)})
        row["align_target"] = target_alignment(K, self._target(pl_module, pts))
        self._write_spectrum(trainer.global_step, K)
        self.last = row
        rows = [r for r in self._read() if int(r["step"]) < trainer.global_step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in row} for r in rows)
            writer.writerow(row)
        for key, value in row.items():
            if key != "step" and pl_module.logger:
                pl_module.logger.log_metrics({f"kernel/{key}": value}, step=trainer.global_step)

    @property
    def _theta0_path(self) -> Path:
        return self.path.with_name(self.path.stem + "_theta0.pt")

    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            return list(csv.DictReader(f))

    def on_train_start(self, trainer, pl_module) -> None:
        # On resume Θ_0 is the kernel at the true start, saved then, not at the resumed state.
        if trainer.global_step > 0 and self._theta0_path.exists():
            self.theta0 = torch.load(self._theta0_path, weights_only=True)
            self.theta0 = self.theta0.to(next(pl_module.model.parameters()).device)
        self._record(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self._record(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.last.get("step") != trainer.global_step:
            self._record(trainer, pl_module)
