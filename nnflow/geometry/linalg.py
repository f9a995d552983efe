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


# Packed Hermitian matrices: h = A + iB stored as one real vector of length n², the entries
# A_ab for a ≤ b (row-major upper triangle) then B_ab for a < b. This is the layout of the
# second-derivative rows of a packed jet (models/networks.py), so a metric can be assembled and
# its determinant taken in real arithmetic (what torch.compile fuses best).
def _triu(n: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    ia, ib = torch.triu_indices(n, n, device=device)
    ja, jb = torch.triu_indices(n, n, offset=1, device=device)
    return ia, ib, ja, jb


def pack_hermitian(g: torch.Tensor) -> torch.Tensor:
    """(..., n, n) complex Hermitian → (..., n²) real (A_ab for a ≤ b, then B_ab for a < b)."""
    n = g.shape[-1]
    ia, ib, ja, jb = _triu(n, g.device)
    return torch.cat([g.real[..., ia, ib], g.imag[..., ja, jb]], -1)


def unpack_hermitian(P: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of pack_hermitian: (..., n²) real → (..., n, n) complex Hermitian."""
    if P.shape[-1] != n * n:
        raise ValueError(f"a packed {n}×{n} Hermitian matrix has {n * n} entries; got {P.shape[-1]}")
    ia, ib, ja, jb = _triu(n, P.device)
    m = ia.shape[0]
    A = P.new_zeros(*P.shape[:-1], n, n)
    A[..., ia, ib] = P[..., :m]
    A[..., ib, ia] = P[..., :m]
    B = P.new_zeros(*P.shape[:-1], n, n)
    B[..., ja, jb] = P[..., m:]
    B[..., jb, ja] = -P[..., m:]
    return torch.complex(A, B)


def packed_hermitian_det(P: torch.Tensor, n: int) -> torch.Tensor:
    """det h of packed Hermitian matrices: (..., n²) real → (...) real.

    n ≤ 3 in closed form, real arithmetic only; with h_01 = x + iy, h_02 = u + iv,
    h_12 = p + iq and diagonal a_0, a_1, a_2 (n = 3):
        det h = a_0 a_1 a_2 + 2 Re(h_01 h_12 h̄_02) − a_0|h_12|² − a_1|h_02|² − a_2|h_01|².
    Larger n unpacks and uses hermitian_det.
    """
    if P.shape[-1] != n * n:
        raise ValueError(f"a packed {n}×{n} Hermitian matrix has {n * n} entries; got {P.shape[-1]}")
    p = P.unbind(-1)
    if n == 1:
        return p[0]
    if n == 2:  # A00, A01, A11, B01
        return p[0] * p[2] - p[1] * p[1] - p[3] * p[3]
    if n == 3:  # A00, A01, A02, A11, A12, A22, B01, B02, B12
        a0, x, u, a1, pr, a2, y, v, q = p
        re_cycle = (x * pr - y * q) * u + (x * q + y * pr) * v
        return a0 * a1 * a2 + 2 * re_cycle - a0 * (pr * pr + q * q) - a1 * (u * u + v * v) - a2 * (x * x + y * y)
    return hermitian_det(unpack_hermitian(P, n))
