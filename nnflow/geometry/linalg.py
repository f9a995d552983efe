"""Determinants of batches of small Hermitian matrices (the metrics of n ≤ 3 folds).

``hermitian_det`` writes det g out for n ≤ 3 (cofactor expansion: elementwise, batched,
differentiable, and faster than an LU per 3×3 matrix) and uses ``slogdet`` above that.
It also sidesteps a torch (2.13) bug: the backward of ``torch.linalg.det`` on complex64 input
fails when float64 is the default dtype (its LU is built in complex128).
"""

from __future__ import annotations

import torch


def hermitian_det(g: torch.Tensor) -> torch.Tensor:
    """Re det g: (..., n, n) Hermitian (complex or real) → (...) real."""
    n = g.shape[-1]
    if g.shape[-2] != n:
        raise ValueError(f"expected square matrices (..., n, n); got shape {tuple(g.shape)}")
    if n == 1:
        det = g[..., 0, 0]
    elif n == 2:
        det = g[..., 0, 0] * g[..., 1, 1] - g[..., 0, 1] * g[..., 1, 0]
    elif n == 3:
        det = (
            g[..., 0, 0] * (g[..., 1, 1] * g[..., 2, 2] - g[..., 1, 2] * g[..., 2, 1])
            - g[..., 0, 1] * (g[..., 1, 0] * g[..., 2, 2] - g[..., 1, 2] * g[..., 2, 0])
            + g[..., 0, 2] * (g[..., 1, 0] * g[..., 2, 1] - g[..., 1, 1] * g[..., 2, 0])
        )
    else:
        sign, logabs = torch.linalg.slogdet(g)
        det = sign * torch.exp(logabs)
    return det.real if det.is_complex() else det


def hermitian_positive(g: torch.Tensor) -> torch.Tensor:
    """Whether each Hermitian g is positive definite: (..., n, n) → (...) bool.

    Sylvester's criterion for n ≤ 3 (leading principal minors g_00, the 2×2 and the full
    determinant all > 0: elementwise, no eigensolver, which on a GPU is a slow batched call);
    a Cholesky attempt above that.
    """
    n = g.shape[-1]
    if n > 3:
        return torch.linalg.cholesky_ex(g)[1] == 0
    g00 = g[..., 0, 0].real
    ok = g00 > 0
    if n >= 2:
        ok = ok & ((g00 * g[..., 1, 1].real - g[..., 0, 1].abs().square()) > 0)
    if n == 3:
        ok = ok & (hermitian_det(g) > 0)
    return ok
