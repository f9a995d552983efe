"""Test support for kernels: one tolerance table per dtype, one matrix comparison, and
finite-difference derivative kernels (pure torch; used by tests/test_kernels_*.py).

    TOLERANCES[dtype][what]          relative Frobenius tolerances
    assert_close_matrices(a, e)      ‖a − e‖_F/‖e‖_F ≤ rtol (neural-tangents style)
    finite_difference_kernel(...)    ∂^{o1}∂'^{o2} of a potential kernel by central differences
"""

from __future__ import annotations

import torch

from nnflow.kernels.derivatives import check_orders, to_real
from nnflow.kernels.points import as_points

TOLERANCES = {
    torch.float64: {
        "roundoff": 1e-12,  # the same quantity computed by different exact routes
        "finite_difference": 1e-5,  # twice Richardson-extrapolated central differences (h⁶ + ε/h⁴)
        "quadrature": 1e-10,  # Price quadrature vs closed form
    },
    torch.float32: {"roundoff": 1e-5, "finite_difference": 1e-2, "quadrature": 1e-5},
}


def assert_close_matrices(actual: torch.Tensor, expected: torch.Tensor, rtol: float | None = None,
                          what: str = "roundoff") -> float:
    """Assert ‖actual − expected‖_F ≤ rtol·‖expected‖_F; returns the relative error.

    rtol defaults to TOLERANCES[real dtype of expected][what].
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}")
    if rtol is None:
        real = expected.real.dtype if expected.is_complex() else expected.dtype
        rtol = TOLERANCES[real][what]
    actual, expected = actual.detach().to(expected.device), expected.detach()
    norm = torch.linalg.vector_norm(expected)
    err = (
        float(torch.linalg.vector_norm(actual - expected) / norm)
        if norm > 0
        else float(torch.linalg.vector_norm(actual))
    )
    if not err <= rtol:
        raise AssertionError(f"relative Frobenius error {err:.3e} exceeds {rtol:.1e} ({what})")
    return err


def _stencil(n: int, order: int, h: float, dtype):
    """Offsets ξ (Q, 2n) and weights (Q, (2n)²) of the real Hessian by central differences.

    H_ij ≈ Σ_{s,t=±1} s t f(ξ + h(s e_i + t e_j)) / 4h²  (step 2h on the diagonal).
    """
    if order == 0:
        return torch.zeros(1, 2 * n, dtype=dtype), torch.ones(1, 1, dtype=dtype)
    m = 2 * n
    eye = torch.eye(m, dtype=dtype)
    offsets, weights = [], []
    for i in range(m):
        for j in range(m):
            for s in (1, -1):
                for t in (1, -1):
                    offsets.append(h * (s * eye[i] + t * eye[j]))
                    w = torch.zeros(m * m, dtype=dtype)
                    w[i * m + j] = s * t / (4 * h * h)
                    weights.append(w)
    return torch.stack(offsets), torch.stack(weights)


def _perturbed(z, jac, xi):
    """z + x·J for every point and offset: (B, N+1), (B, n, N+1), (Q, 2n) → (B·Q, N+1)."""
    if jac is None:
        return z
    n = jac.shape[1]
    x = torch.complex(xi[:, :n], xi[:, n:]).to(z.dtype)  # (Q, n)
    return (z[:, None, :] + torch.einsum("qa,bak->bqk", x, jac)).reshape(-1, z.shape[-1])


def _fd(potential_fn, z1, j1, z2, j2, orders, h):
    from nnflow.geometry.curvature import wirtinger_hessian

    o1, o2 = orders
    n = (j1 if o1 else j2).shape[1] if (o1 or o2) else 0
    real = z1.real.dtype
    xi1, w1 = _stencil(n, o1, h, real)
    xi2, w2 = _stencil(n, o2, h, real)
    K = potential_fn(_perturbed(z1, j1 if o1 else None, xi1), _perturbed(z2, j2 if o2 else None, xi2))
    K = K.reshape(z1.shape[0], len(xi1), z2.shape[0], len(xi2))
    D = torch.einsum("xpyq,pa,qb->xyab", K, w1.to(K.device), w2.to(K.device))
    B1, B2 = D.shape[:2]
    if o1:
        D = D.reshape(B1, B2, 2 * n, 2 * n, -1).movedim(-1, 2)  # (B1, B2, side2, 2n, 2n)
        D = wirtinger_hessian(D).reshape(B1, B2, -1, n * n).movedim(2, 3)  # (B1, B2, n², side2)
    if o2:
        D = D.reshape(B1, B2, -1, 2 * n, 2 * n)
        D = wirtinger_hessian(D).reshape(B1, B2, -1, n * n)
    D = D.reshape(B1, B2, n * n if o1 else 1, n * n if o2 else 1)
    return to_real(D.to(torch.complex128 if real == torch.float64 else torch.complex64), n, orders)


def finite_difference_kernel(potential_fn, points1, points2=None, orders=(2, 2), h: float = 0.1) -> torch.Tensor:
    """∂^{o1}∂'^{o2} of a potential kernel by central differences along the charts.

    Args:
        potential_fn: (z1 (P1, N+1), z2 (P2, N+1)) → (P1, P2) real potential kernel; it is
            evaluated at points z + x·J off X (the pulled-back ∂∂̄ needs only the first-order
            embedding) — e.g. ``lambda a, b: potential_ntk(model, (a, None), (b, None))``.
        h: largest step; central differences at h, h/2, h/4 are Richardson-extrapolated
            twice (error O(h⁶)), so steps stay large enough for round-off (ε|k|/h⁴) to be small.
    Returns:
        (B1, B2[, n²][, n²]) real components, like the kernels.
    """
    o1, o2 = check_orders(orders)
    z1, j1 = as_points(points1, need_jac=o1 > 0)
    z2, j2 = (z1, j1) if points2 is None else as_points(points2, need_jac=o2 > 0)
    d = [_fd(potential_fn, z1, j1, z2, j2, (o1, o2), h / 2**k) for k in range(3)]
    r = [(4 * d[k + 1] - d[k]) / 3 for k in range(2)]  # O(h⁴)
    return (16 * r[1] - r[0]) / 15  # O(h⁶)
