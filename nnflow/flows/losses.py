"""Losses on metrics of X, with the normalization fixed by the Kähler class.

A Ricci-flat metric in the class t has ω^n = κ·n!·|Ω|² d^{2n}x with κ fixed by the class:
∫ω^n = deg·t^n and ∫|Ω|² d^{2n}x = (Vol_FS/n!)·E[w] give

    κ_t = t^n / E[w]                       (E over the FS-distributed points, w = |Ω|²/det g_FS).

The Monge–Ampère loss of a metric g with η = det g/(κ_t |Ω|²) is the weighted mean

    L_p = Σ w |1 − η|^p / Σ w,       p = 2 (smooth, "ma2") or p = 1 (σ-like, "ma1").

Its functional derivative (per point, for the metric flows) is
∂ℓ/∂g_{ab̄} = p·|1 − η|^{p−1}·sign(η − 1)·η·(g^{-1})_{ba} · w/Σw (∂ det g/∂g_{ab̄} = det g·g^{b̄a}).
"""

from __future__ import annotations

import torch

from nnflow.distributed import world
from nnflow.geometry.pointset import PointSet

LOSSES = {"ma2": 2.0, "ma1": 1.0}


def class_kappa(points: PointSet, t: float = 1.0) -> float:
    """κ_t = t^n / mean(w): the det g/|Ω|² of the Ricci-flat metric in class t."""
    return t**points.dim / points.weights.mean().item()


def monge_ampere_loss(
    det_g: torch.Tensor,
    omega2: torch.Tensor,
    weights: torch.Tensor,
    kappa: float,
    power: float = 2.0,
    total_weight: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Σ w |1 − det g/(κ|Ω|²)|^p / W: (B,), (B,), (B,) → () real.

    W = Σ w of this batch by default; data-parallel training passes the global batch's Σ w
    (so that the ranks' losses add up to the global weighted mean).
    """
    eta = det_g / (kappa * omega2)
    total = weights.sum() if total_weight is None else total_weight
    return (weights * (1 - eta).abs().pow(power)).sum() / total


def descent_direction(
    r: torch.Tensor, omega2: torch.Tensor, weights: torch.Tensor, kappa: float, power: float = 2.0
) -> torch.Tensor:
    """y = −∂L_p/∂r: the direction in which the Monge–Ampère loss falls fastest, at points with
    metric components r ((B, n²) real, ``geometry.hermitian.hermitian_to_real``) → (B, n²).

    By autograd through det g = ``real_hermitian_det`` (the closed form of the module doc in
    these coordinates). A kernel flow dr/dt = Θ·y lowers L at the rate yᵀΘy
    (``kernels.diagnostics.target_alignment``).
    """
    from nnflow.geometry.hermitian import real_hermitian_det

    with torch.enable_grad():
        r = r.detach().requires_grad_(True)
        loss = monge_ampere_loss(real_hermitian_det(r), omega2, weights, kappa, power)
        (grad,) = torch.autograd.grad(loss, r)
    return -grad


def loss_power(kind: str) -> float:
    """p of a loss name ("ma2" or "ma1")."""
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; choose from {sorted(LOSSES)}")
    return LOSSES[kind]


def data_parallel_loss(
    det_g: torch.Tensor, omega2: torch.Tensor, weights: torch.Tensor, kappa: float, power: float = 2.0
) -> torch.Tensor:
    """The Monge–Ampère loss of a rank's shard, normalized over the global batch.

    Data parallelism averages gradients over R ranks, so each rank returns
    R·Σ_shard wℓ / Σ_global w; the average is the gradient of the global weighted mean,
    whatever the shards' weights. Without a process group it is monge_ampere_loss.
    """
    rank, size = world()
    if size == 1:
        return monge_ampere_loss(det_g, omega2, weights, kappa, power)
    total = weights.sum().detach().clone()
    torch.distributed.all_reduce(total)
    return size * monge_ampere_loss(det_g, omega2, weights, kappa, power, total_weight=total)
