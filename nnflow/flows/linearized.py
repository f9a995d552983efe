"""The linearized network: the finite-width model whose tangent kernel is frozen by construction.

    g_lin(x; θ) = g(x; θ0) + ∂g(x)/∂θ|_{θ0} · (θ − θ0)

computed with one forward-mode product (torch.func.jvp) per batch; gradients with respect to
θ flow through the tangent. Its empirical metric-NTK is exactly that of the network at θ0 at
every step, so full-batch gradient descent of g_lin *is* the frozen-kernel flow with the
network's initial kernel (tests check this to round-off).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jvp

from nnflow.models.networks import lr_factors


class LinearizedPotential(nn.Module):
    """First-order Taylor model of a metric model around its current parameters θ0.

    Args:
        base: a metric model (``metric(z, jac)``), e.g. KahlerPotential; its parameters at
            construction become θ0 (buffers) and the initial values of the trainable θ.
    """

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
        self._names = [name for name, _ in base.named_parameters()]
        self.theta = nn.ParameterList([nn.Parameter(p.detach().clone()) for p in base.parameters()])
        for i, p in enumerate(base.parameters()):
            self.register_buffer(f"theta0_{i}", p.detach().clone())
            p.requires_grad_(False)

    def lr_scales(self, optimizer: str = "adam") -> dict[str, float]:
        """θ_i's learning-rate factor is its base parameter's (models.networks.lr_factors: μP's table)."""
        base = lr_factors(self.base, optimizer)
        return {f"theta.{i}": base[name] for i, name in enumerate(self._names) if name in base}

    def _theta0(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f"theta0_{i}") for i in range(len(self._names)))

    def metric(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """g(θ0) + J(θ − θ0): (B, N+1), (B, n, N+1) → (B, n, n) complex."""
        theta0 = self._theta0()
        delta = tuple(t - t0 for t, t0 in zip(self.theta, theta0))

        def g_of(*params):
            return torch.view_as_real(functional_call(self.base, dict(zip(self._names, params)), (z, jac)))

        g0, dg = jvp(g_of, theta0, delta)
        return torch.view_as_complex((g0 + dg).contiguous())

    forward = metric

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """K_lin(z) = K(θ0) + ∂K/∂θ·(θ − θ0): (..., N+1) → (...)."""
        theta0 = self._theta0()
        delta = tuple(t - t0 for t, t0 in zip(self.theta, theta0))

        def k_of(*params):
            return functional_call(
                _PotentialCall(self.base), {"base." + k: v for k, v in zip(self._names, params)}, (z,)
            )

        k0, dk = jvp(k_of, theta0, delta)
        return k0 + dk


    @property
    def has_exact_curvature(self) -> bool:
        """Whether ``metric_derivatives`` has an exact route (the base's: an MLP potential)."""
        return bool(getattr(self.base, "has_exact_curvature", False))

    @torch.no_grad()
    def metric_derivatives(self, z: torch.Tensor, jac: torch.Tensor, hess: torch.Tensor, block: int = 64):
        """(g, ∂g, ∂̄g, ∂∂̄g) of the linearized metric, exactly: K_lin = K(θ0) + ∂K/∂θ·(θ − θ0), so its
        bi-jets are the base's at θ0 plus their derivative along θ − θ0
        (``KahlerPotential.metric_derivatives`` with ``params`` and ``tangent``). Shapes as there."""
        if not self.has_exact_curvature:
            raise ValueError(f"exact curvature jets need an MLP potential; got {type(self.base).__name__}")
        theta0 = self._theta0()
        network = {name.removeprefix("network."): t0 for name, t0 in zip(self._names, theta0)}
        delta = {name.removeprefix("network."): t - t0 for name, t, t0 in zip(self._names, self.theta, theta0)}
        return self.base.metric_derivatives(z, jac, hess, block, params=network, tangent=delta)


class _PotentialCall(nn.Module):
    """Exposes ``base.potential`` as ``forward`` for functional_call."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, z):
        return self.base.potential(z)


def build_linearized(**model_kwargs) -> LinearizedPotential:
    """LinearizedPotential around a fresh KahlerPotential built from conf/model options."""
    from nnflow.models.potential import build_potential

    return LinearizedPotential(build_potential(**model_kwargs))
