"""Curvature of a Kähler metric g = ∂∂̄K on X, by automatic differentiation (torch.func).

For each point, K is composed with the chart embedding x ↦ z(x) ∈ X (local coordinates
x ∈ C^n) and differentiated in the 2n real coordinates ξ = (Re x, Im x). The embedding is
replaced by its quadratic Taylor polynomial z0 + x·J + ½ x x·H, which is exact for what is
computed here: g_{ab̄} = J_a G J_b^† at x and its derivatives ∂_c g and ∂_c∂̄_d g at x = 0
involve derivatives of z(x) of order ≤ 2 only (z is holomorphic, so every ∂ or ∂̄ falls
either on a derivative of K or once on J_a or J_b^†). This keeps the 4-fold nested
autodiff over a tiny graph instead of the polynomial p.

Conventions: ∂_a = ½(∂/∂ξ_a − i ∂/∂ξ_{n+a}), ∂̄_a = ½(∂/∂ξ_a + i ∂/∂ξ_{n+a});
g_{ab̄} = ∂_a ∂̄_b K; curvature 2-form matrix Θ_{ab̄} = −∂̄_b(∂_a G · G^{-1}) (G_{ce} = g_{cē});
Ricci form R_{ab̄} = tr Θ_{ab̄} = −∂_a∂̄_b log det g; scalar R = g^{ab̄}R_{ab̄} (the Riemannian
scalar curvature of g(dx²+dy²) is 4R); top Chern form c_n = (C/π^n) d^{2n}x with
C = Σ_{σ,α,β ∈ S_n} sgn σ sgn α sgn β Π_k Θ_{α(k)β(k)}[σ(k), k], so ∫_X c_n = χ(X).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch.func import jacfwd, jacrev, vmap

from nnflow.geometry.pointset import PointSet

Potential = Callable[[torch.Tensor], torch.Tensor]  # (N+1,) complex → () real

def quadratic_embedding(xi: torch.Tensor, z0: torch.Tensor, jac: torch.Tensor, hess: torch.Tensor):
    """z(ξ) = z0 + x·J + ½ x x·H, x = ξ[:n] + iξ[n:], for one point (use under vmap).

    Args:
        xi: (2n,) real local coordinates, 0 at z0.
        z0: (N+1,) complex base point; jac: (n, N+1); hess: (n, n, N+1).
    """
    n = jac.shape[0]
    x = torch.complex(xi[:n], xi[n:])
    return z0 + x @ jac + 0.5 * torch.einsum("c,a,cak->k", x, x, hess)


def wirtinger_hessian(real_hessian: torch.Tensor) -> torch.Tensor:
    """∂_a∂̄_b from a real Hessian over ξ = (Re x, Im x): (..., 2n, 2n) → (..., n, n) complex.

    ∂_a∂̄_b = ¼[∂²/∂ξ_a∂ξ_b + ∂²/∂ξ_{n+a}∂ξ_{n+b} + i(∂²/∂ξ_a∂ξ_{n+b} − ∂²/∂ξ_{n+a}∂ξ_b)].
    """
    n = real_hessian.shape[-1] // 2
    xx = real_hessian[..., :n, :n]
    yy = real_hessian[..., n:, n:]
    xy = real_hessian[..., :n, n:]
    yx = real_hessian[..., n:, :n]
    if real_hessian.is_complex():  # a complex-valued function's Hessian (derivatives of g)
        return 0.25 * ((xx + yy) + 1j * (xy - yx))
    return 0.25 * torch.complex(xx + yy, xy - yx)


def _metric_derivatives(potential: Potential, z0, jac, hess):
    """(g, ∂_c g, ∂̄_d g, ∂_c∂̄_d g) at one point; derivative indices last."""
    n = jac.shape[0]

    def metric(xi):
        def k_of_xi(xi_):
            return potential(quadratic_embedding(xi_, z0, jac, hess))

        return torch.view_as_real(wirtinger_hessian(jacfwd(jacrev(k_of_xi))(xi)))

    def first(xi):
        d = jacfwd(metric)(xi)
        return d, d

    def second(xi):
        h, d = jacfwd(first, has_aux=True)(xi)
        return h, (d, metric(xi))

    xi = torch.zeros(2 * n, dtype=z0.real.dtype, device=z0.device)
    h, (d, g) = second(xi)  # (n, n, 2, 2n, 2n), (n, n, 2, 2n), (n, n, 2)
    g = torch.view_as_complex(g)
    d = torch.complex(d[:, :, 0], d[:, :, 1])  # (n, n, 2n)
    h = torch.complex(h[:, :, 0], h[:, :, 1])  # (n, n, 2n, 2n)
    dz = 0.5 * (d[..., :n] - 1j * d[..., n:])
    dzbar = 0.5 * (d[..., :n] + 1j * d[..., n:])
    return g, dz, dzbar, wirtinger_hessian(h)


def curvature_form(g, dz, dzbar, ddbar):
    """Θ_{ab̄} = −(∂_a∂̄_b G)G^{-1} + ∂_aG G^{-1} ∂̄_bG G^{-1}: → (..., a, b, n, n)."""
    ginv = torch.linalg.inv(g)
    da = dz.movedim(-1, -3)  # (..., a, n, n)
    db = dzbar.movedim(-1, -3)  # (..., b, n, n)
    dd = ddbar.movedim(-2, -4).movedim(-1, -3)  # (..., a, b, n, n)
    ginv_ = ginv[..., None, None, :, :]
    term2 = da[..., :, None, :, :] @ ginv_ @ db[..., None, :, :, :] @ ginv_
    return -dd @ ginv_ + term2


def _signed_permutations(n: int):
    perms = list(itertools.permutations(range(n)))
    sign = []
    for p in perms:
        s, seen = 1, list(p)
        for i in range(n):  # sign via counting inversions
            for j in range(i + 1, n):
                if seen[i] > seen[j]:
                    s = -s
        sign.append(s)
    return torch.tensor(perms, dtype=torch.long), torch.tensor(sign)


def top_chern_density(theta: torch.Tensor) -> torch.Tensor:
    """C with c_n = (C/π^n) d^{2n}x, from Θ of shape (..., n, n, n, n) = [a, b, row, col]."""
    n = theta.shape[-1]
    perms, sign = _signed_permutations(n)
    perms, sign = perms.to(theta.device), sign.to(theta.device)
    P = perms.shape[0]
    s = perms[:, None, None, :].expand(P, P, P, n)  # σ
    a = perms[None, :, None, :].expand(P, P, P, n)  # α
    b = perms[None, None, :, :].expand(P, P, P, n)  # β
    col = torch.arange(n, device=theta.device).expand(P, P, P, n)
    flat = ((a * n + b) * n + s) * n + col  # index into (a, b, row, col)
    factors = theta.flatten(-4)[..., flat.reshape(-1)].reshape(*theta.shape[:-4], P**3, n)
    signs = (sign[:, None, None] * sign[None, :, None] * sign[None, None, :]).reshape(-1)
    return (factors.prod(-1) * signs.to(theta.dtype)).sum(-1)


Derivatives = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple]  # (z, jac, hess) → (g, ∂g, ∂̄g, ∂∂̄g)


@torch.no_grad()
def curvature(
    points: PointSet, potential: Potential, chunk_size: int = 1024, derivatives: Derivatives | None = None
) -> dict[str, torch.Tensor]:
    """Per-point metric and curvature of g = ∂∂̄K on X, ``chunk_size`` points at a time.

    Values only: no autograd graph to the potential's parameters is recorded (the derivatives in
    the chart coordinates are torch.func transforms, which ignore the outer no_grad), so the
    memory is that of one chunk whether or not the parameters require grad — with the graph,
    every chunk's 4-fold nested derivatives were kept alive by the outputs (13.8 GB for 256
    quintic points of a trained MLP).

    Args:
        points: PointSet or CICYPointSet (B points; its ``embedding_hessian`` gives the chart's ∂∂z).
        potential: K, a function of one point (N+1,) complex → () real, vmap-compatible: the
            route of nested autodiff in the chart coordinates (any potential).
        derivatives: optional exact route instead, (z, jac, hess) of a chunk → (g, ∂_c g, ∂̄_d g,
            ∂_c∂̄_d g) with shapes (B, n, n), (B, n, n, n), (B, n, n, n), (B, n, n, n, n), derivative
            indices last (``KahlerPotential.metric_derivatives``: bi-jets through an MLP).
    Returns:
        dict of (B,) real tensors, no grad: ``det_g`` (det of the pulled-back metric),
        ``ricci_scalar`` (R = g^{ab̄}R_{ab̄}), ``chern_density`` (C, c_n = C/π^n d^{2n}x).
    """
    if derivatives is None:
        derivatives = vmap(lambda z0, j, h: _metric_derivatives(potential, z0, j, h))
    out: dict[str, list] = {"det_g": [], "ricci_scalar": [], "chern_density": []}
    for start in range(0, len(points), chunk_size):
        sl = slice(start, start + chunk_size)
        z, jac = points.z[sl], points.jac[sl]
        hess = points.embedding_hessian(sl)
        g, dz, dzbar, ddbar = derivatives(z, jac, hess)
        theta = curvature_form(g, dz, dzbar, ddbar)
        ricci = theta.diagonal(dim1=-2, dim2=-1).sum(-1)  # (.., a, b)
        out["det_g"].append(torch.linalg.det(g).real)
        out["ricci_scalar"].append((torch.linalg.inv(g) @ ricci).diagonal(dim1=-2, dim2=-1).sum(-1).real)
        out["chern_density"].append(top_chern_density(theta).real)
    return {k: torch.cat(v) for k, v in out.items()}


def chern_normalization(n: int) -> float:
    """1/π^n: c_n = C/π^n d^{2n}x."""
    return math.pi ** (-n)
