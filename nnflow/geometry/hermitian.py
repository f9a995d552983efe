"""The one real parameterization of Hermitian n×n metrics (linear algebra on metrics, pure torch).

Used by every metric kernel (nnflow.kernels), the frozen flows and training's packed route
(models/potential.py ``packed_metric``, ``real_hermitian_det``). Orthonormal coordinates (the
same map the features use, models/features.py, and the packed jets, models/jets.py):

    r = (g_aa for a;  √2 Re g_ab for a < b;  √2 Im g_ab for a < b)  ∈ R^{n²},
    Σ_s r_s² = ‖g‖_F²,     g = Σ_s r_s E_s,

with the Hermitian basis E_aa = e_aa, E^Re_ab = (e_ab + e_ba)/√2, E^Im_ab = i(e_ab − e_ba)/√2
(a < b, pairs in ``torch.triu_indices`` order). On Hermitian matrices the map equals the
complex-linear map r_s = Σ_ab P_{s,ab} g_ab with P = conj(E) (``component_matrix``). The linear
form is what kernels need: a metric kernel Θ_{ij̄kl̄} = Σ_I ∂g_{ij̄}/∂θ_I ∂g'_{kl̄}/∂θ_I (no
conjugation) becomes Θ_st = Σ P_{s,ij} P_{t,kl} Θ_{ij̄kl̄} = Σ_I ∂r_s/∂θ_I ∂r'_t/∂θ_I, which is real.
"""

from __future__ import annotations

import math

import torch

from nnflow.geometry.linalg import hermitian_det


def strict_upper_pairs(n: int, device=None) -> torch.Tensor:
    """The pairs a < b of the off-diagonal components, in their order: (2, n(n−1)/2) long."""
    return torch.triu_indices(n, n, offset=1, device=device)


def hermitian_to_real(g: torch.Tensor) -> torch.Tensor:
    """Orthonormal real coordinates of Hermitian matrices: (..., n, n) complex → (..., n²) real.

    Only the diagonal's real part and the upper triangle are read (g is assumed Hermitian).
    """
    if g.shape[-1] != g.shape[-2]:
        raise ValueError(f"expected square matrices (..., n, n); got shape {tuple(g.shape)}")
    n = g.shape[-1]
    iu = strict_upper_pairs(n, g.device)
    diag = g.diagonal(dim1=-2, dim2=-1)
    upper = g[..., iu[0], iu[1]]
    if not g.is_complex():
        return torch.cat([diag, math.sqrt(2) * upper, torch.zeros_like(upper)], -1)
    return torch.cat([diag.real, math.sqrt(2) * upper.real, math.sqrt(2) * upper.imag], -1)


def linear_components(diag: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """The component map written on entries, complex-linearly: (..., n), (..., U), (..., U) → (..., n + 2U).

    (g_aa; (g_ab + g_ba)/√2; (g_ab − g_ba)/(√2 i)) for the U pairs a < b given as ``upper`` = g_ab
    and ``lower`` = g_ba. For Hermitian g this is (g_aa; √2 Re g_ab; √2 Im g_ab), the components of
    ``hermitian_to_real``; on a derivative of a Hermitian matrix (not Hermitian itself) it is the
    same linear map P (``component_matrix``), which is what differentiating the components gives.
    The features use it on their kept pairs (models/features.py).
    """
    re = (upper + lower) / math.sqrt(2)
    im = (upper - lower) / (math.sqrt(2) * 1j)
    return torch.cat([diag, re, im], -1)


def real_to_hermitian(r: torch.Tensor) -> torch.Tensor:
    """Inverse of ``hermitian_to_real``: (..., n²) real → (..., n, n) complex Hermitian."""
    n = math.isqrt(r.shape[-1])
    if n * n != r.shape[-1]:
        raise ValueError(f"the last dimension must be a square n²; got {r.shape[-1]}")
    iu = strict_upper_pairs(n, r.device)
    m = iu.shape[1]
    complex_dtype = torch.complex128 if r.dtype == torch.float64 else torch.complex64
    g = torch.zeros(*r.shape[:-1], n, n, dtype=complex_dtype, device=r.device)
    idx = torch.arange(n, device=r.device)
    g[..., idx, idx] = r[..., :n].to(complex_dtype)
    upper = torch.complex(r[..., n : n + m], r[..., n + m :]) / math.sqrt(2)
    g[..., iu[0], iu[1]] = upper
    g[..., iu[1], iu[0]] = upper.conj()
    return g


def component_matrix(n: int, dtype=torch.complex128, device=None) -> torch.Tensor:
    """P (n², n·n) complex: r_s = Σ_{(a,b)} P[s, a·n + b] g_ab for Hermitian g (module doc)."""
    iu = strict_upper_pairs(n)
    m = iu.shape[1]
    P = torch.zeros(n * n, n * n, dtype=dtype)
    for a in range(n):
        P[a, a * n + a] = 1
    for k, (a, b) in enumerate(iu.T.tolist()):
        P[n + k, a * n + b] = P[n + k, b * n + a] = 1 / math.sqrt(2)
        P[n + m + k, a * n + b] = -1j / math.sqrt(2)
        P[n + m + k, b * n + a] = 1j / math.sqrt(2)
    return P.to(device)


def hermitian_basis(n: int, dtype=torch.complex128, device=None) -> torch.Tensor:
    """E (n², n, n) complex Hermitian: g = Σ_s r_s E_s and r_s = Re tr(E_s g)."""
    return component_matrix(n, dtype, device).conj().reshape(n * n, n, n)


def component_labels(n: int) -> list[str]:
    """Names of the n² real components, e.g. ['g00', 'g11', 'Re g01', 'Im g01'] for n = 2."""
    iu = strict_upper_pairs(n).T.tolist()
    return (
        [f"g{a}{a}" for a in range(n)]
        + [f"Re g{a}{b}" for a, b in iu]
        + [f"Im g{a}{b}" for a, b in iu]
    )


def real_hermitian_det(r: torch.Tensor) -> torch.Tensor:
    """det g of the Hermitian matrices with components r: (..., n²) real → (...) real.

    Real arithmetic only (what torch.compile fuses best; training's packed route). For n = 3,
    with diagonal a_a and g_01 = x + iy, g_02 = u + iv, g_12 = p + iq:
        det g = a_0 a_1 a_2 + 2 Re(g_01 g_12 ḡ_02) − a_0|g_12|² − a_1|g_02|² − a_2|g_01|².
    n > 3 goes through ``real_to_hermitian`` and an LU.
    """
    n = math.isqrt(r.shape[-1])
    if n * n != r.shape[-1]:
        raise ValueError(f"the last dimension must be a square n²; got {r.shape[-1]}")
    if n > 3:
        return hermitian_det(real_to_hermitian(r))
    c = r.unbind(-1)
    diag = c[:n]
    re = [v / math.sqrt(2) for v in c[n : n + n * (n - 1) // 2]]
    im = [v / math.sqrt(2) for v in c[n + n * (n - 1) // 2 :]]
    if n == 1:
        return diag[0]
    if n == 2:
        return diag[0] * diag[1] - re[0] * re[0] - im[0] * im[0]
    (a0, a1, a2), (x, u, p), (y, v, q) = diag, re, im  # pairs (0,1), (0,2), (1,2)
    re_cycle = (x * p - y * q) * u + (x * q + y * p) * v
    return a0 * a1 * a2 + 2 * re_cycle - a0 * (p * p + q * q) - a1 * (u * u + v * v) - a2 * (x * x + y * y)
