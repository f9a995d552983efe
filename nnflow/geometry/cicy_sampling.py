"""Points on a CICY X ⊂ P^{n_1} × … × P^{n_m}, FS-distributed, by intersecting with random planes.

The measure. A U(n+1)-invariant random linear subspace L ⊂ P^n of codimension c (the span of
n − c + 1 i.i.d. CN(0, I) vectors) meets a complex submanifold in points whose expected counting
measure is ω_FS^c restricted to it (Crofton's formula, ω_FS normalized to ∫_line ω = 1; the
same fact as Shiffman–Zelditch for random lines). Choosing one such plane per factor, of
codimensions c = (c_1, …, c_m) with Σ c_i = n = dim X, the planes are independent, so the
points of X ∩ (L_1 × … × L_m) have expected counting measure ∧_i ω_i^{c_i}|_X, of total mass the
intersection number d_c = ∫_X Π J_i^{c_i} (the number of points of each intersection). Drawing the
codimension vector c with probability

    π_c = (n!/Π c_i!) d_c / Vol_FS(1),     Vol_FS(1) = ∫_X (Σ_i J_i)^n = Σ_c (n!/Π c_i!) d_c,

makes the expected counting measure per point Σ_c π_c ∧ω_i^{c_i}/d_c = (Σ_i ω_i)^n / Vol_FS(1): the
points are distributed by the FS volume form of t = (1, …, 1), and w = |Ω|²/det g_FS,X(1)
(cicy_points.py) are their exact integration weights. (One fixed c would give the density
∧ω_i^{c_i}, not proportional to det g_FS: e.g. the bicubic's c = (1, 2) alone misses half of
(ω_1 + ω_2)^3 = 3ω_1²ω_2 + 3ω_1ω_2².)

The solve. In factor i the plane is z^(i)(u) = a_0 + Σ_{j ≤ n_i − c_i} u_j a_j, which leaves
Σ_i (n_i − c_i) = K unknowns u for the K equations p_k(z(u)) = 0, all d_c solutions wanted:
- K = 1: q(u) = p(z(u)) has degree d_c; its coefficients come from an FFT of q at roots of
  unity and its roots from batched companion-matrix eigenvalues (as for hypersurfaces);
- K = 2: the hidden-variable resultant. With u = (u_1, u_2), the 2-D FFT of p_k on a grid of
  roots of unity gives the coefficients of p_k; the Sylvester matrix of p_1, p_2 in u_2 (entries
  polynomials in u_1) has a determinant R(u_1) of degree d_c (Bernstein–Kushnirenko for generic
  planes) whose roots are the u_1 of the solutions, found as above from R at d_c + 1 roots of
  unity; each u_2 is the root of p_1(u_1, ·) at which |p_2| is least;
then Newton steps on the full K × K system polish every solution to round-off. Every plane of a
batch is solved at once; there is no per-point Python loop. K ≥ 3 is not implemented (a clear
error): every preset has K ≤ 2.
"""

from __future__ import annotations

import math

import torch

from nnflow.geometry.cicy import CompleteIntersection
from nnflow.geometry.cicy_points import CICYPointSet

NEWTON_STEPS = 4
RESIDUAL_TOLERANCE = 1e-10


def codimension_choices(x: CompleteIntersection) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The plane types c with d_c > 0, their probabilities π_c and point counts d_c.

    Returns (C, m) long, (C,) float64 summing to 1, (C,) long.
    """
    numbers = x.intersection_numbers()
    types = sorted(numbers)
    n = x.dim
    mass = torch.tensor([math.factorial(n) / math.prod(math.factorial(v) for v in c) * numbers[c] for c in types],
                        dtype=torch.float64)
    return torch.tensor(types, dtype=torch.long), mass / mass.sum(), torch.tensor([numbers[c] for c in types])


def random_planes(x: CompleteIntersection, c: tuple[int, ...], n_planes: int, generator: torch.Generator):
    """Base points and directions of n_planes random planes of type c.

    Returns base (L, n_coords) and directions (L, K, n_coords) complex128: z(u) = base + u·directions,
    direction j living in the block of the factor whose plane it spans.
    """
    def gaussian(*shape):
        return torch.view_as_complex(torch.randn(*shape, 2, generator=generator, dtype=torch.float64)) / math.sqrt(2)

    base = gaussian(n_planes, x.n_coords)
    directions = torch.zeros(n_planes, x.n_equations, x.n_coords, dtype=torch.complex128)
    row = 0
    for i, (n_i, c_i) in enumerate(zip(x.factors, c)):
        a, b = x.offsets[i], x.offsets[i + 1]
        for _ in range(n_i - c_i):
            directions[:, row, a:b] = gaussian(n_planes, n_i + 1)
            row += 1
    return base, directions


def _companion_roots(coeffs: torch.Tensor) -> torch.Tensor:
    """Roots of Σ_k coeffs[..., k] t^k (degree D = last index, leading coefficient non-zero): (..., D)."""
    D = coeffs.shape[-1] - 1
    monic = coeffs[..., :D] / coeffs[..., D:]
    companion = torch.zeros(*coeffs.shape[:-1], D, D, dtype=coeffs.dtype)
    if D > 1:
        companion[..., 1:, :-1] = torch.eye(D - 1, dtype=coeffs.dtype)
    companion[..., :, -1] = -monic
    return torch.linalg.eigvals(companion)


def _roots_of_unity(count: int) -> torch.Tensor:
    return torch.exp(2j * math.pi * torch.arange(count, dtype=torch.float64) / count)


def solve_planes(x: CompleteIntersection, base: torch.Tensor, directions: torch.Tensor, count: int) -> torch.Tensor:
    """All ``count`` = d_c solutions u of p(base + u·directions) = 0 per plane: → (L, count, K)."""
    K = x.n_equations
    L = base.shape[0]

    def values(u):  # u (L, ..., K) → p (L, ..., K)
        z = base.view(L, *[1] * (u.ndim - 2), -1) + torch.einsum("l...k,lkj->l...j", u, directions)
        return x(z)

    if K == 1:
        nodes = _roots_of_unity(count + 1)
        q = values(nodes.view(1, -1, 1).expand(L, -1, 1))[..., 0]  # (L, count+1)
        coeffs = torch.fft.fft(q, dim=-1) / (count + 1)  # q(u) = Σ_k coeffs[k] u^k, degree d_c
        u = _companion_roots(coeffs)[..., None]
    elif K == 2:
        u = _resultant_solve(values, L, x.degree, count)
    else:
        raise NotImplementedError(
            f"sampling a complete intersection of {K} equations is not implemented (K ≤ 2: the bicubic, "
            "tetraquadric and X_{3,3} presets); the configuration was " + str(x.configuration.tolist())
        )
    for _ in range(NEWTON_STEPS):
        z = base[:, None, :] + torch.einsum("lsk,lkj->lsj", u, directions)
        jac = x.jacobian(z) @ directions[:, None].transpose(-1, -2)  # (L, s, K, K): ∂p_k/∂u_l
        u = u - torch.linalg.solve(jac, x(z)[..., None])[..., 0]
    return u


def _resultant_solve(values, L: int, degree: int, count: int) -> torch.Tensor:
    """Solutions (L, count, 2) of two polynomial equations in (u_1, u_2) by the hidden-variable resultant."""
    size = degree + 1  # total degree ≤ degree: a size^2 grid of roots of unity gives every coefficient exactly
    nodes = _roots_of_unity(size)
    grid = torch.stack(torch.meshgrid(nodes, nodes, indexing="ij"), -1)  # (size, size, 2)
    p = values(grid.expand(L, size, size, 2))  # (L, size, size, 2)
    F = torch.fft.fft2(p, dim=(1, 2)) / size**2  # F[l, α, β, k]: coefficient of u_1^α u_2^β in p_k
    F = F.permute(0, 3, 1, 2)  # (L, 2, α, β)
    if _degree_in_last(F[:, 0]) < _degree_in_last(F[:, 1]):  # root-find u_2 on the equation of higher degree
        F = F.flip(1)
    m1, m2 = _degree_in_last(F[:, 0]), _degree_in_last(F[:, 1])  # degrees in u_2
    r_nodes = _roots_of_unity(count + 1)
    powers = r_nodes[:, None] ** torch.arange(size, dtype=torch.float64)  # (count+1, α)
    # coefficients in u_2 of p_k at u_1 = node: (L, count+1, 2, β)
    at_nodes = torch.einsum("ra,lkab->lrkb", powers.to(F.dtype), F)
    syl = _sylvester(at_nodes[:, :, 0, : m1 + 1], at_nodes[:, :, 1, : m2 + 1])  # (L, count+1, m1+m2, m1+m2)
    R = torch.linalg.det(syl)
    coeffs = torch.fft.fft(R, dim=-1) / (count + 1)
    u1 = _companion_roots(coeffs)  # (L, count)
    # u_2: the root of p_1(u_1, ·) where |p_2| is least
    pw = u1[..., None] ** torch.arange(size, dtype=torch.float64).to(u1.dtype)  # (L, count, α)
    c1 = torch.einsum("lsa,lab->lsb", pw, F[:, 0])[..., : m1 + 1]  # (L, count, β)
    cand = _companion_roots(c1)  # (L, count, m1)
    both = torch.stack([u1[..., None].expand_as(cand), cand], -1)  # (L, count, m1, 2)
    p2 = torch.linalg.vector_norm(values(both), dim=-1)  # p_1 ≈ 0 there: the size of the other
    pick = p2.argmin(-1)
    return both.gather(2, pick[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]


def _degree_in_last(F: torch.Tensor) -> int:
    """Largest power along the last dim with a non-negligible coefficient in any plane (generic planes:
    the true degree; FFT round-off is ~1e-16 of the largest)."""
    size = F.abs().flatten(0, -2).amax(0)
    return int((size > 1e-9 * size.max()).nonzero().max())


def _sylvester(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Sylvester matrix of f (..., m1+1) and g (..., m2+1) (coefficients low to high): (..., m1+m2, m1+m2)."""
    m1, m2 = f.shape[-1] - 1, g.shape[-1] - 1
    S = torch.zeros(*f.shape[:-1], m1 + m2, m1 + m2, dtype=f.dtype)
    for r in range(m2):
        S[..., r, r : r + m1 + 1] = f
    for r in range(m1):
        S[..., m2 + r, r : r + m2 + 1] = g
    return S


def sample_cicy(
    x: CompleteIntersection,
    n_points: int,
    seed: int = 0,
    chunk_planes: int = 512,
) -> CICYPointSet:
    """``n_points`` FS-distributed points of X (t = 1) with their integration weights (module doc).

    Args:
        x: the complete intersection.
        n_points: number of points (> 0).
        seed: the same seed gives the same points.
        chunk_planes: planes solved at once (bounds memory).

    Returns:
        CICYPointSet, complex128 on the CPU, ``meta`` recording seed, sampler and worst residual.

    Raises:
        ValueError: n_points ≤ 0, or X singular at a sampled point.
        NotImplementedError: K ≥ 3 equations.
        RuntimeError: a root did not converge (max |p_k(z)|/scale_k above RESIDUAL_TOLERANCE).
    """
    if not isinstance(n_points, int) or isinstance(n_points, bool) or n_points <= 0:
        raise ValueError(f"n_points must be a positive integer; got {n_points!r}")
    if x.n_equations > 2:
        raise NotImplementedError(f"sampling {x.n_equations} equations is not implemented (K ≤ 2)")
    types, probs, counts = codimension_choices(x)
    g = torch.Generator().manual_seed(int(seed))
    # plane types in draw order, enough for n_points (each plane gives counts[type] points)
    n_planes = -(-n_points // int(counts.min()))
    kinds = torch.multinomial(probs, n_planes, replacement=True, generator=g)
    ends = counts[kinds].cumsum(0)
    n_planes = int((ends < n_points).sum()) + 1
    kinds = kinds[:n_planes]
    parts, owner = [], []
    worst = 0.0
    for kind in range(len(types)):
        which = (kinds == kind).nonzero()[:, 0]
        c, count = tuple(types[kind].tolist()), int(counts[kind])
        bases, all_directions = random_planes(x, c, len(which), g)  # drawn at once: chunking changes nothing
        for start in range(0, len(which), chunk_planes):
            idx = which[start : start + chunk_planes]
            base, directions = bases[start : start + chunk_planes], all_directions[start : start + chunk_planes]
            u = solve_planes(x, base, directions, count)
            pts = base[:, None, :] + torch.einsum("lsk,lkj->lsj", u, directions)  # (l, count, n_coords)
            worst = max(worst, (x(pts).abs() / x.scale(pts)).max().item())
            parts.append(pts.reshape(-1, x.n_coords))
            owner.append(idx.repeat_interleave(count))
    order = torch.sort(torch.cat(owner), stable=True).indices  # back to draw order, then cut at n_points
    if not worst < RESIDUAL_TOLERANCE:
        raise RuntimeError(f"root finding did not converge on {x.name!r}: max |p(z)|/scale = {worst:.2e} "
                           "(a singular or nearly singular configuration?)")
    z = torch.cat(parts)[order][:n_points]
    return CICYPointSet.from_points(x, z, meta={"seed": int(seed), "sampler": "random_planes", "max_residual": worst})


def sample_manifold(surface, n_points: int, seed: int = 0, device=None):
    """Points with exact weights on either kind of manifold: ``sample_cicy`` on a
    CompleteIntersection (a CICYPointSet), ``sample_points`` on a Hypersurface (a PointSet)."""
    if isinstance(surface, CompleteIntersection):
        points = sample_cicy(surface, int(n_points), seed=int(seed))
        return points if device is None else points.to(device)
    from nnflow.geometry.sampling import sample_points

    return sample_points(surface, int(n_points), seed=int(seed), device=device)
