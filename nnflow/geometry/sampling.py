"""Points on X by intersecting it with random lines.

A line z(t) = a + t·b with a, b i.i.d. standard complex Gaussian in C^{N+1} is a U(N+1)-
invariant random line in P^N; its d = deg p intersection points with X are distributed by
the Fubini–Study volume form restricted to X (Shiffman–Zelditch). All lines are solved at
once: the coefficients of q(t) = p(a + t b) come from an FFT of q at the (d+1)-th roots of
unity, the roots from batched companion-matrix eigenvalues, and Newton steps on p itself
polish them to round-off.

Before any line is drawn the surface is checked for singular points on the whole of P^N
(nnflow.geometry.singularity): a line misses the singular points with probability one, so
without the check a singular X would sample and measure "fine" and give meaningless numbers.
"""

from __future__ import annotations

import math

import torch

from nnflow.geometry.hypersurface import Hypersurface
from nnflow.geometry.pointset import PointSet

NEWTON_STEPS = 3
RESIDUAL_TOLERANCE = 1e-10


def random_lines(n_lines: int, n_coords: int, seed: int, dtype=torch.complex128):
    """a, b ~ CN(0, I): two (n_lines, n_coords) complex tensors from a CPU generator.

    Drawn on the CPU so that a seed gives the same points on every device, line by line so
    that a larger sample extends a smaller one with the same seed.
    """
    g = torch.Generator().manual_seed(int(seed))
    ab = torch.randn(n_lines, 2, n_coords, 2, generator=g, dtype=torch.float64) / math.sqrt(2)
    ab = torch.view_as_complex(ab).to(dtype)
    return ab[:, 0], ab[:, 1]


def line_roots(surface: Hypersurface, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All d roots t of p(a + t b) for each line: (L, N+1), (L, N+1) → (L, d) complex."""
    d = surface.degree
    nodes = torch.exp(2j * math.pi * torch.arange(d + 1, device=a.device) / (d + 1)).to(a.dtype)
    values = surface(a[:, None, :] + nodes[None, :, None] * b[:, None, :])  # (L, d+1)
    coeffs = torch.fft.fft(values, dim=-1) / (d + 1)  # q(t) = Σ_k coeffs[k] t^k
    coeffs[:, 0] = surface(a)  # exact ends: q(0) = p(a), leading coefficient p(b)
    coeffs[:, d] = surface(b)
    monic = coeffs[:, :d] / coeffs[:, d : d + 1]
    companion = torch.zeros(a.shape[0], d, d, dtype=a.dtype, device=a.device)
    companion[:, 1:, :-1] = torch.eye(d - 1, dtype=a.dtype, device=a.device)
    companion[:, :, -1] = -monic
    # on the CPU: CUDA's general eigensolver (MAGMA) works one matrix at a time, and 10^5 points
    # took over 40 s on an H100 (bench/README.md); LAPACK does the tiny d×d batch in milliseconds
    t = torch.linalg.eigvals(companion.cpu()).to(a.device)
    for _ in range(NEWTON_STEPS):
        z = a[:, None, :] + t[..., None] * b[:, None, :]
        dq = (surface.gradient(z) * b[:, None, :]).sum(-1)
        t = t - surface(z) / dq
    return t


def sample_points(
    surface: Hypersurface,
    n_points: int,
    seed: int = 0,
    device: str | torch.device | None = None,
    chunk_lines: int = 512,
    check_smooth: bool = True,
) -> PointSet:
    """Sample ``n_points`` points of X, FS-distributed, with integration data.

    Args:
        surface: the hypersurface.
        n_points: number of points (> 0); ceil(n_points/d) lines are drawn.
        seed: the same seed gives the same points on any device.
        device: where to compute (default CPU); the result lives there, complex128.
        chunk_lines: lines solved at once (bounds memory for many-monomial polynomials).
        check_smooth: first prove X smooth on all of P^N (``surface.check_smooth()``: a formula
            for the Fermat/Dwork form, else a homotopy search, ~1 s for a dense quintic; memoized
            on the surface, so later calls are free) and warn when it is nearly singular. False
            skips the check, e.g. to study a singular member on purpose.

    Returns:
        A PointSet whose ``meta`` records the seed and sampler.

    Raises:
        SingularManifoldError (a ValueError): X has a singular point (with check_smooth).
        ValueError: if n_points <= 0, or X is singular at a sampled point.
        RuntimeError: if a root fails to converge (|p(z)| above tolerance).
    """
    if not isinstance(n_points, int) or isinstance(n_points, bool) or n_points <= 0:
        raise ValueError(f"n_points must be a positive integer; got {n_points!r}")
    if check_smooth:
        surface.check_smooth()
    n_lines = -(-n_points // surface.degree)
    a, b = random_lines(n_lines, surface.n_coords, seed)
    chunks, worst = [], 0.0
    # Chunks of ~10^3 lines keep every intermediate in cache: on a CPU this is several
    # times faster than one pass over 10^5 points.
    for start in range(0, n_lines, chunk_lines):
        aa = a[start : start + chunk_lines].to(device)
        bb = b[start : start + chunk_lines].to(device)
        t = line_roots(surface, aa, bb)
        z = (aa[:, None, :] + t[..., None] * bb[:, None, :]).reshape(-1, surface.n_coords)
        z = z[: n_points - start * surface.degree]
        worst = max(worst, (surface(z).abs() / surface.scale(z)).max().item())
        chunks.append(PointSet.from_points(surface, z))
    if not worst < RESIDUAL_TOLERANCE:
        raise RuntimeError(
            f"root finding did not converge on {surface.name!r}: max |p(z)|/scale = {worst:.2e}"
            " (a singular or nearly singular polynomial?)"
        )
    points = PointSet.cat(chunks)
    points.meta = {"seed": int(seed), "sampler": "random_lines", "max_residual": worst}
    return points
