"""The Fubini–Study potential and metric, and pullbacks to X.

Normalization, used everywhere in nnflow:

    K_FS = (t/π) log |z|²,     g_{kl̄} = ∂_k ∂̄_l K,     ω = (i/2) g_{kl̄} dz^k ∧ dz̄^l.

With (i/2) dz∧dz̄ = dx∧dy a line has ∫ω = t, and ∫_X ω^n = deg(X)·t^n (the volume form is
ω^n = n!·det g·d^{2n}x).
"""

from __future__ import annotations

import math

import torch


def fs_potential(z: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    """K_FS(z) = (t/π) log|z|²: (..., N+1) complex → (...) real."""
    return (t / math.pi) * torch.log(z.real.square().sum(-1) + z.imag.square().sum(-1))


def fs_metric(z: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    """Ambient FS metric g_{kl̄} = (t/π)(δ_kl/|z|² − z̄_k z_l/|z|⁴): (..., N+1) → (..., N+1, N+1)."""
    s = z.abs().square().sum(-1)[..., None, None]
    eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
    outer = z.conj()[..., :, None] * z[..., None, :]
    return (t / math.pi) * (eye / s - outer / s**2)


def pullback(J: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g_X = J g J^†: (..., n, N+1), (..., N+1, N+1) → (..., n, n) Hermitian."""
    return J @ g @ J.conj().transpose(-1, -2)
