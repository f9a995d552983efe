"""Donaldson's balanced metrics: the T-operator, its fixed-point iteration, and the metric of H.

A Hermitian positive H on the sections s = (s_α) of O(k) gives the algebraic Kähler potential

    K_H = (t/(kπ)) log S,     S = s^† H s = Σ_αβ s̄_α H_αβ s_β,

in nnflow's convention K_FS = (t/π) log|z|² (H = the multinomial weights on all monomials gives
S = |z|^{2k}, K_H = K_FS). Its metric on X, from the exact derivatives of the monomials pulled
back by the embedding Jacobian (D_a s = Σ_i J_ai ∂_i s):

    g_ab̄ = ∂_a∂̄_b K_H = (t/(kπ)) [ (D_b s)^† H (D_a s) / S − v_a v̄_b / S² ],   v_a = s^† H D_a s.

Donaldson's T-operator on a point sample with weights w (points FS-distributed, w ∝ |Ω|²/det g_FS,
so Σ w f / Σ w → ∫ f dμ_Ω / Vol):

    T(H)_αβ = (N_k / Vol) ∫_X s_α s̄_β / S dμ_Ω ≈ N_k Σ_p w_p s_α s̄_β / S_p / Σ_p w_p,

so that tr(H T(H)) = N_k for every H. A balanced H is a fixed point T(H) = H^{-1}; the iteration
H ← T(H)^{-1} converges to it (Donaldson 2005); H is fixed up to scale, so each iterate is
scaled to tr H = N_k. All matrices are block diagonal over the basis' sectors (sections.py):
a list of (n_blocks, size, size) complex tensors, one per group.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import torch

from nnflow.algebraic.sections import SectionBasis
from nnflow.geometry.linalg import hermitian_det
from nnflow.geometry.measures import check_metric, measure_metric, sigma_measure, volume
from nnflow.geometry.pointset import PointSet

Blocks = list[torch.Tensor]  # per group: (n_blocks, size, size) complex Hermitian

MAX_CONDITION = 1e12  # cond(H) beyond this: the fit has lost ~4 of float64's 16 digits
POINTS_PER_PARAMETER = 10  # below this many points per real parameter of H, warn
CACHE_BYTES = 2 * 2**30  # the T-operator caches per-point terms up to this size
# Gram features when the blocks average at most this size (weighted: n_parameters ≤ 4·N_k). On the
# quintic (1 thread, on a shared CPU: indicative only) they were ~20× faster than the complex route
# at k = 6 with the phase blocks (mean size 1.3) and ~2× slower unreduced (one block of N_k = 35),
# where BLAS matrix products win.
FEATURE_BLOCK_SIZE = 4
FORMAT_VERSION = 1


# ---------------------------------------------------------------------- block algebra
def identity_blocks(basis: SectionBasis, dtype=torch.complex128, device=None) -> Blocks:
    return [torch.eye(g.size, dtype=dtype, device=device).expand(g.n_blocks, -1, -1).clone() for g in basis.groups]


def dense(blocks: Blocks) -> torch.Tensor:
    """The full (N_k, N_k) block-diagonal matrix."""
    return torch.block_diag(*[b for group in blocks for b in group])


def row_apply(basis: SectionBasis, blocks: Blocks, y: torch.Tensor) -> torch.Tensor:
    """y H for row vectors y: (..., N_k) → (..., N_k), blockwise."""
    parts = [torch.einsum("...bi,bij->...bj", x, h).flatten(-2) for x, h in zip(basis.split(y), blocks)]
    return torch.cat(parts, -1)


def hermitian_norm(basis: SectionBasis, blocks: Blocks, s: torch.Tensor) -> torch.Tensor:
    """S = s^† H s: (..., N_k) complex → (...) real."""
    return (row_apply(basis, blocks, s.conj()) * s).sum(-1).real


def trace(blocks: Blocks) -> torch.Tensor:
    return sum(b.diagonal(dim1=-2, dim2=-1).sum().real for b in blocks)


def frobenius(blocks: Blocks) -> torch.Tensor:
    return torch.sqrt(sum(b.abs().square().sum() for b in blocks))


def condition_number(blocks: Blocks) -> float:
    """max/min eigenvalue over all blocks (inf if one is not positive)."""
    eig = torch.cat([torch.linalg.eigvalsh(b).flatten() for b in blocks])
    return math.inf if not eig.min() > 0 else (eig.max() / eig.min()).item()


def inverse(blocks: Blocks, what: str = "H") -> Blocks:
    """Blockwise inverse of Hermitian positive matrices by Cholesky.

    Raises:
        ValueError: if a block is not positive definite (or has NaNs).
    """
    out = []
    for b in blocks:
        if not torch.isfinite(b).all():
            raise ValueError(f"{what} has NaN or inf entries")
        chol, info = torch.linalg.cholesky_ex(b)
        if (info != 0).any():
            raise ValueError(f"{what} is not positive definite in {int((info != 0).sum())} of its blocks")
        out.append(torch.cholesky_inverse(chol))
    return out


# ---------------------------------------------------------------------- the metric of H
def bergman_potential(basis: SectionBasis, blocks: Blocks, z: torch.Tensor, kahler_t: float = 1.0) -> torch.Tensor:
    """K_H(z) = (t/(kπ)) log s^†Hs: (..., N+1) complex → (...) real (vmap-compatible)."""
    return (kahler_t / (basis.k * math.pi)) * torch.log(hermitian_norm(basis, blocks, basis.values(z)))


def bergman_metric(
    basis: SectionBasis, blocks: Blocks, z: torch.Tensor, jac: torch.Tensor, kahler_t: float = 1.0
) -> torch.Tensor:
    """g_ab̄ = ∂_a∂̄_b K_H on X in closed form (module docstring): (B, N+1), (B, n, N+1) → (B, n, n)."""
    s, ds = basis.jet(z, jac)  # (B, N_k), (B, n, N_k)
    q = row_apply(basis, blocks, s.conj())  # s^† H
    S = (q * s).sum(-1).real  # (B,)
    v = (q[:, None, :] * ds).sum(-1)  # (B, n): s^† H D_a s
    e = row_apply(basis, blocks, ds.conj())  # (B, n, N_k): (D_b s)^† H
    a = torch.einsum("pak,pbk->pab", ds, e)  # (D_b s)^† H D_a s at [a, b]
    S = S[:, None, None]
    g = a / S - v[:, :, None] * v.conj()[:, None, :] / S**2
    return (kahler_t / (basis.k * math.pi)) * g


# ---------------------------------------------------------------------- T-operator
def gram_features(basis: SectionBasis, s: torch.Tensor) -> torch.Tensor:
    """Real features f_p of the outer products u = s̄ s^T per block, linear in everything T needs.

    S_p = f_p · pack(H) and T(H) ∝ unpack(Σ_p c_p f_p): the iteration is then two real
    matrix-vector products per step. Per group, f = [u_ii (nb·m), Re u_ij, Im u_ij (nb·m(m−1)/2 each,
    i < j)], u_ij = s̄_i s_j.

    Args:
        s: (P, N_k) complex section values.
    Returns:
        (P, basis.n_parameters) real.
    """
    parts = []
    for g, x in zip(basis.groups, basis.split(s)):
        i, j = torch.triu_indices(g.size, g.size, 1, device=s.device)
        u = x.conj()[..., i] * x[..., j]  # (P, nb, m(m−1)/2)
        parts += [(x.real.square() + x.imag.square()).flatten(1), u.real.flatten(1), u.imag.flatten(1)]
    return torch.cat(parts, 1)


def pack(basis: SectionBasis, blocks: Blocks) -> torch.Tensor:
    """h with S = f·h for f = gram_features: [H_ii, 2 Re H_ij, −2 Im H_ij] per group (real)."""
    parts = []
    for g, h in zip(basis.groups, blocks):
        i, j = torch.triu_indices(g.size, g.size, 1, device=h.device)
        upper = h[:, i, j]
        parts += [h.diagonal(dim1=-2, dim2=-1).real.flatten(), 2 * upper.real.flatten(), -2 * upper.imag.flatten()]
    return torch.cat(parts)


def unpack(basis: SectionBasis, t: torch.Tensor) -> Blocks:
    """Hermitian blocks T from t = Σ_p c_p f_p: T_ii = t_diag, T_ij = t_re − i t_im (i < j)."""
    out, offset = [], 0
    for g in basis.groups:
        i, j = torch.triu_indices(g.size, g.size, 1, device=t.device)
        q = len(i) * g.n_blocks
        diag = t[offset : offset + g.n_blocks * g.size].view(g.n_blocks, g.size)
        offset += g.n_blocks * g.size
        upper = torch.complex(t[offset : offset + q], -t[offset + q : offset + 2 * q]).view(g.n_blocks, -1)
        offset += 2 * q
        block = torch.diag_embed(diag.to(upper.dtype))
        block[:, i, j] = upper
        block[:, j, i] = upper.conj()
        out.append(block)
    return out


class TOperator:
    """T(H) on a fixed point sample (module docstring).

    Three routes: for small blocks (the phase-reduced bases) the Gram features of every point
    (``gram_features``: T is then two real matrix-vector products; Σ size² reals per point), else
    the section values of every point (N_k complex per point; large blocks then go through BLAS
    matrix products), else, when neither fits in ``cache_bytes``, values recomputed per chunk.

    Args:
        basis: the sections; points: the sample (weights used); chunk_size: points per pass.
        cache_bytes: the most memory a cache may take.
    """

    def __init__(self, basis: SectionBasis, points: PointSet, chunk_size: int = 16384, cache_bytes: int = CACHE_BYTES):
        self.basis, self.points, self.chunk_size = basis, points, int(chunk_size)
        self.weights = points.weights
        self._features = self._values = None
        n = len(points)
        small_blocks = basis.n_parameters <= FEATURE_BLOCK_SIZE * len(basis)
        if small_blocks and n * basis.n_parameters * 8 <= cache_bytes:
            self._features = torch.empty(n, basis.n_parameters, dtype=points.weights.dtype, device=points.device)
            for sl in self._slices():
                self._features[sl] = gram_features(basis, basis.values(points.z[sl]))
        elif n * len(basis) * 16 <= cache_bytes:
            self._values = [basis.values(points.z[sl]) for sl in self._slices()]

    @property
    def route(self) -> str:
        return "features" if self._features is not None else "values" if self._values is not None else "chunks"

    def _slices(self):
        return [slice(i, i + self.chunk_size) for i in range(0, len(self.points), self.chunk_size)]

    def __call__(self, blocks: Blocks) -> Blocks:
        w, scale = self.weights, len(self.basis) / self.weights.sum()
        if self._features is not None:
            c = w / (self._features @ pack(self.basis, blocks))
            return unpack(self.basis, scale * (c @ self._features))
        out = [torch.zeros_like(b) for b in blocks]
        for i, sl in enumerate(self._slices()):
            s = self._values[i] if self._values is not None else self.basis.values(self.points.z[sl])
            c = (w[sl] / hermitian_norm(self.basis, blocks, s)).to(s.dtype)
            for acc, x in zip(out, self.basis.split(s)):
                acc += torch.einsum("pbi,pbj->bij", x * c[:, None, None], x.conj())
        return [scale * t for t in out]


class BalancedMetric:
    """The Kähler metric of a block-diagonal H on sections of O(k) (balanced or not).

    Attributes:
        basis: SectionBasis; blocks: H per group; kahler_t: t; info: how H was found.
    """

    def __init__(self, basis: SectionBasis, blocks: Blocks, kahler_t: float = 1.0, info: dict | None = None):
        self.basis, self.blocks, self.kahler_t = basis, list(blocks), float(kahler_t)
        self.info = dict(info or {})

    @property
    def k(self) -> int:
        return self.basis.k

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """K_H: (..., N+1) → (...) real."""
        return bergman_potential(self.basis, self.blocks, z, self.kahler_t)

    def metric(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """Pulled-back metric: (B, N+1), (B, n, N+1) → (B, n, n) complex."""
        return bergman_metric(self.basis, self.blocks, z, jac, self.kahler_t)

    def det_g(self, points: PointSet, chunk_size: int = 8192) -> torch.Tensor:
        """det g on every point: (B,) real."""
        parts = [
            hermitian_det(self.metric(points.z[i : i + chunk_size], points.jac[i : i + chunk_size]))
            for i in range(0, len(points), chunk_size)
        ]
        return torch.cat(parts)

    def measure(self, points: PointSet, curvature_points: int = 0, chunk_size: int = 4096) -> dict:
        """σ, volume (and with curvature_points > 0 the Euler characteristic and Ricci) on points."""
        if curvature_points:
            return measure_metric(
                points, lambda p: self.det_g(p, chunk_size), self.potential,
                curvature_points=curvature_points, chunk_size=min(chunk_size, 256),
            )
        det_g = self.det_g(points, chunk_size)
        check_metric(det_g, "the Bergman metric")
        sigma, sigma_err = sigma_measure(points, det_g)
        vol, vol_err = volume(points, det_g)
        return {"sigma": sigma, "sigma_err": sigma_err, "volume": vol, "volume_err": vol_err, "n_points": len(points)}

    def save(self, path: str | Path, surface=None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({
            "format_version": FORMAT_VERSION, "basis": self.basis.to_dict(), "kahler_t": self.kahler_t,
            "blocks": [b.cpu() for b in self.blocks], "info": self.info,
            "surface": surface.to_dict() if surface is not None else None,
        }, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> tuple[BalancedMetric, dict | None]:
        """(metric, the surface's dict or None) from ``save``'s file."""
        try:
            d = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:  # truncated, corrupt or foreign: torch's message alone names no file
            raise ValueError(
                f"{path} is not a readable balanced metric ({type(err).__name__}: {str(err)[:200]}); "
                "write it again with nnflow-donaldson (save_h=true)"
            ) from err
        if not isinstance(d, dict) or d.get("format_version") != FORMAT_VERSION:
            version = d.get("format_version") if isinstance(d, dict) else None
            raise ValueError(f"{path}: unsupported balanced-metric format {version!r} (not from nnflow-donaldson?)")
        return cls(SectionBasis.from_dict(d["basis"]), d["blocks"], d["kahler_t"], d["info"]), d["surface"]


def check_sample_size(basis: SectionBasis, n_points: int, points_per_parameter: float = POINTS_PER_PARAMETER) -> None:
    """T is a sum of n_points rank-1 terms: it estimates Σ size² parameters, so need n_points ≫ that.

    Raises ValueError below one point per parameter (T would be singular); warns below
    ``points_per_parameter``.
    """
    need = basis.n_parameters
    if n_points < need:
        raise ValueError(
            f"n_points={n_points} is too small for k={basis.k}: H has {need} real parameters "
            f"(N_k={len(basis)}; blocks {max(basis.block_sizes)} at most) and T needs ≫ {need} points"
        )
    if n_points < points_per_parameter * need:
        warnings.warn(
            f"n_points={n_points} < {points_per_parameter}×{need} (the parameters of H at k={basis.k}): "
            "T(H) is a noisy estimate; σ will be biased",
            stacklevel=3,
        )


def balanced_metric(
    basis: SectionBasis,
    points: PointSet,
    tolerance: float = 1e-10,
    max_iterations: int = 100,
    kahler_t: float = 1.0,
    chunk_size: int = 16384,
    initial: Blocks | None = None,
    max_condition: float = MAX_CONDITION,
    cache_bytes: int = CACHE_BYTES,
) -> BalancedMetric:
    """Iterate H ← T(H)^{-1} (scaled to tr H = N_k) until ‖ΔH‖_F/‖H‖_F < tolerance.

    Args:
        basis: the sections (its groups fix the block structure of H).
        points: the sample T integrates over (weights used).
        initial: starting H (default: identity).
        cache_bytes: memory the T-operator may keep per-point terms in (TOperator).
    Returns:
        BalancedMetric whose ``info`` has iterations, converged, relative_change (per
        iteration), condition and seconds.
    Raises:
        ValueError: too few points, T(H) or H not positive definite, cond(H) > max_condition, NaNs.
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance={tolerance!r} must be positive")
    if not isinstance(max_iterations, int) or max_iterations < 1:
        raise ValueError(f"max_iterations={max_iterations!r} must be a positive integer")
    check_sample_size(basis, len(points))
    start = time.perf_counter()
    T = TOperator(basis, points, chunk_size, cache_bytes)
    H = initial if initial is not None else identity_blocks(basis, points.z.dtype, points.device)
    n_k, history, converged = len(basis), [], False
    for _ in range(max_iterations):
        new = inverse(T(H), "T(H)")
        scale = n_k / trace(new)
        new = [scale * b for b in new]
        change = (frobenius([a - b for a, b in zip(new, H)]) / frobenius(new)).item()
        H = new
        history.append(change)
        if not math.isfinite(change):
            raise ValueError("the balanced iteration produced NaNs")
        if change < tolerance:
            converged = True
            break
    cond = condition_number(H)
    if not cond < max_condition:
        raise ValueError(f"the balanced H is ill-conditioned: cond(H) = {cond:.3e} > {max_condition:.0e}")
    if not converged:
        warnings.warn(
            f"balanced iteration at k={basis.k} did not reach tolerance {tolerance:g} in {max_iterations} "
            f"iterations (last relative change {history[-1]:.2e})",
            stacklevel=2,
        )
    info = {
        "k": basis.k, "n_k": n_k, "n_parameters": basis.n_parameters, "n_blocks": len(basis.block_sizes),
        "iterations": len(history), "converged": converged, "relative_change": history,
        "condition": cond, "n_points": len(points), "route": T.route, "seconds": time.perf_counter() - start,
    }
    return BalancedMetric(basis, H, kahler_t, info)
