"""Charts, Ω and integration weights on a complete intersection X ⊂ P^{n_1} × … × P^{n_m}.

Chart convention (the CICY form of design.md §2): in each factor the largest |z^(i)_j| is set to 1
(m patch coordinates); of the others, the K coordinates E whose K × K minor P_E of the Jacobian
P_kj = ∂p_k/∂z_j has the largest |det| are eliminated (solved for from p = 0); the remaining
n = Σ n_i − K coordinates, in increasing order, are the local coordinates x_a.

    J_{a j} = ∂z_j/∂x_a = δ_{j, j_a} − [P_E^{-1} P_{·, j_a}]_l δ_{j, E_l},
    Ω = dx_1 ∧ … ∧ dx_n / det P_E      (Poincaré residue of Π dp_k),  |Ω|² = 1/|det P_E|²,
    g_FS(t) = ⊕_i (t_i/π) ∂∂̄ log|z^(i)|²,     w = |Ω|² / det(J g_FS(1) J^†).

With points drawn from the FS volume form of t = (1, …, 1) (cicy_sampling.py), sample means of
w·f are integrals against |Ω|² d^{2n}x: ∫_X f |Ω|² d^{2n}x ≈ (Vol_FS(1)/n!) mean(w f), exactly as
for PointSet, so the measures of nnflow.geometry.measures apply unchanged.
"""

from __future__ import annotations

from itertools import combinations

import torch

from nnflow.geometry.cicy import CompleteIntersection
from nnflow.geometry.fubini_study import fs_metric, fs_potential, pullback
from nnflow.geometry.pointset import PointSet

# smallest singular value of the row-normalized Jacobian below this: singular to working precision
SINGULAR_TOLERANCE = 1e-7


def normalize_factors(x: CompleteIntersection, z: torch.Tensor):
    """Set the largest coordinate of each factor to 1: (B, n_coords) → (z, patch (B, m) long)."""
    blocks, patch = [], []
    for i, b in enumerate(x.blocks(z)):
        p = b.abs().argmax(-1)
        blocks.append(b / b.gather(-1, p[:, None]))
        patch.append(p + x.offsets[i])
    return torch.cat(blocks, -1), torch.stack(patch, -1)


def choose_chart(x: CompleteIntersection, z: torch.Tensor):
    """Normalized points, patch (B, m), eliminated coordinates (B, K), Jacobian P (B, K, n_coords).

    Raises:
        ValueError: X is singular at a point (the K × (non-patch) Jacobian, rows scaled by
            deg_k·scale_k/|z|, has a singular value below SINGULAR_TOLERANCE): the message gives
            the point and how many points are affected.
    """
    z, patch = normalize_factors(x, z)
    P = x.jacobian(z)  # (B, K, n_coords)
    free = torch.ones_like(P[:, 0].real, dtype=torch.bool).scatter(-1, patch, False)
    row_scale = x.configuration.sum(0).to(z.real.dtype) * x.scale(z) / z.norm(dim=-1, keepdim=True)
    normed = (P * free[:, None, :]) / row_scale[..., None]
    smallest = torch.linalg.svdvals(normed)[:, -1]
    bad = ~(smallest > SINGULAR_TOLERANCE)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{x.name!r} is singular at a sampled point: the normalized Jacobian's smallest singular value is "
            f"{smallest[i].item():.2e} at z = {[complex(round(v.real, 4), round(v.imag, 4)) for v in z[i].tolist()]} "
            f"({int(bad.sum())} of {len(z)} points); choose smooth polynomials (e.g. generic coefficients)"
        )
    subsets = torch.tensor(list(combinations(range(x.n_coords), x.n_equations)), device=z.device)  # (S, K)
    minors = P[:, :, subsets].permute(0, 2, 1, 3)  # (B, S, K, K)
    size = torch.linalg.det(minors).abs()
    uses_patch = (subsets[None, :, :, None] == patch[:, None, None, :]).any(-1).any(-1)  # (B, S)
    size = size.masked_fill(uses_patch, -1.0)
    elim = subsets[size.argmax(-1)]  # (B, K)
    return z, patch, elim, P


def local_indices(patch: torch.Tensor, elim: torch.Tensor, n_coords: int) -> torch.Tensor:
    """The n local coordinates, increasing: (B, m), (B, K) → (B, n) long."""
    keep = torch.ones(patch.shape[0], n_coords, dtype=torch.bool, device=patch.device)
    keep.scatter_(-1, patch, False)
    keep.scatter_(-1, elim, False)
    idx = torch.arange(n_coords, device=patch.device).expand(patch.shape[0], -1)
    return idx[keep].view(patch.shape[0], n_coords - patch.shape[1] - elim.shape[1])


def embedding_jacobian(P: torch.Tensor, patch: torch.Tensor, elim: torch.Tensor) -> torch.Tensor:
    """J_{aj} = ∂z_j/∂x_a (module doc): (B, K, n_coords), (B, m), (B, K) → (B, n, n_coords)."""
    B, K, n_coords = P.shape
    loc = local_indices(patch, elim, n_coords)
    n = loc.shape[1]
    J = torch.zeros(B, n, n_coords, dtype=P.dtype, device=P.device)
    J.scatter_(-1, loc[..., None], 1.0)
    PE = P.gather(-1, elim[:, None, :].expand(-1, K, -1))  # (B, K, K)
    Ploc = P.gather(-1, loc[:, None, :].expand(-1, K, -1))  # (B, K, n)
    dz_elim = -torch.linalg.solve(PE, Ploc).transpose(-1, -2)  # (B, n, K): ∂z_{E_l}/∂x_a
    J.scatter_(-1, elim[:, None, :].expand(-1, n, -1), dz_elim)
    return J


def embedding_hessian(x: CompleteIntersection, z: torch.Tensor, jac: torch.Tensor, elim: torch.Tensor) -> torch.Tensor:
    """H_{caj} = ∂²z_j/∂x_c∂x_a: only the eliminated columns are non-zero.

    From ∂_c∂_a p_k(z(x)) = 0: ∂_c∂_a z_E = −P_E^{-1} (J_c · ∂²p_k · J_a)_k.
    Returns (B, n, n, n_coords) complex, symmetric in (c, a).
    """
    P = x.jacobian(z)
    K = P.shape[1]
    PE = P.gather(-1, elim[:, None, :].expand(-1, K, -1))  # (B, K, K)
    second = torch.einsum("bci,bkij,baj->bkca", jac, x.hessian(z), jac)  # (B, K, n, n)
    n = jac.shape[1]
    rhs = -second.reshape(z.shape[0], K, n * n)
    dd = torch.linalg.solve(PE, rhs).reshape(z.shape[0], K, n, n).permute(0, 2, 3, 1)  # (B, n, n, K)
    H = torch.zeros(z.shape[0], n, n, z.shape[-1], dtype=z.dtype, device=z.device)
    H.scatter_(-1, elim[:, None, None, :].expand(-1, n, n, -1), dd)
    return H


def cicy_fs_metric(x: CompleteIntersection, z: torch.Tensor, t=1.0) -> torch.Tensor:
    """Ambient g_FS(t) = ⊕_i (t_i/π)(δ/|z^(i)|² − z̄z/|z^(i)|⁴): (..., n_coords) → (..., n_coords, n_coords)."""
    t = x.kahler_moduli(t)
    g = torch.zeros(*z.shape, z.shape[-1], dtype=z.dtype, device=z.device)
    for i, block in enumerate(x.blocks(z)):
        a, b = x.offsets[i], x.offsets[i + 1]
        g[..., a:b, a:b] = fs_metric(block, t[i])
    return g


def cicy_fs_potential(x: CompleteIntersection, t=1.0):
    """K_FS(t) = Σ_i (t_i/π) log|z^(i)|² as a function of one point (n_coords,) → () (vmap-safe)."""
    t = x.kahler_moduli(t)
    offsets = x.offsets

    def potential(z: torch.Tensor) -> torch.Tensor:
        return sum(fs_potential(z[..., offsets[i]:offsets[i + 1]], t[i]) for i in range(len(t)))

    return potential


class CICYPointSet(PointSet):
    """Points on a CICY with integration data: PointSet's fields, methods and file format.

    Attributes (B = len(self)):
        surface: the CompleteIntersection.
        z: (B, n_coords) complex, each factor normalized so that its patch coordinate is 1.
        weights: (B,) real, w = |Ω|²/det g_FS,X(t = 1).
        omega2: (B,) real, |Ω|² = 1/|det P_E|².
        patch: (B, m) long; elim: (B, K) long; jac: (B, n, n_coords) complex.
        meta: provenance (seed, sampler).
    """

    KIND = "cicy"

    @staticmethod
    def surface_from_dict(d: dict) -> CompleteIntersection:
        return CompleteIntersection.from_dict(d)

    @classmethod
    def from_points(cls, x: CompleteIntersection, z: torch.Tensor, meta: dict | None = None) -> CICYPointSet:
        """Charts, Jacobians, |Ω|² and weights for points on X in any scaling of each factor."""
        if z.ndim != 2 or z.shape[-1] != x.n_coords:
            raise ValueError(f"points must have shape (B, {x.n_coords}); got {tuple(z.shape)}")
        z, patch, elim, P = choose_chart(x, z)
        jac = embedding_jacobian(P, patch, elim)
        PE = P.gather(-1, elim[:, None, :].expand(-1, x.n_equations, -1))
        omega2 = torch.linalg.det(PE).abs().pow(-2)
        det_fs = torch.linalg.det(pullback(jac, cicy_fs_metric(x, z))).real
        return cls(x, z, omega2 / det_fs, omega2, patch, elim, jac, dict(meta or {}))

    def fs_volume(self, t=1.0) -> float:
        """∫_X ω_FS(t)^n from the intersection numbers (t: one value per factor, or a scalar)."""
        return self.surface.volume(t)

    def fs_det(self, t=1.0) -> torch.Tensor:
        """det of the pulled-back g_FS(t) = ⊕ t_i g_FS,i at every point: (B,) real."""
        return torch.linalg.det(pullback(self.jac, cicy_fs_metric(self.surface, self.z, t))).real

    def fs_potential(self, t=1.0):
        return cicy_fs_potential(self.surface, t)

    def embedding_hessian(self, index=slice(None)) -> torch.Tensor:
        """∂²z/∂x∂x of the chart embedding for the points ``index``: (b, n, n, n_coords)."""
        return embedding_hessian(self.surface, self.z[index], self.jac[index], self.elim[index])
