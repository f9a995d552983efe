"""Optimized Bergman metrics: K_H = (t/(kπ)) log s^†Hs with H trained on the Monge–Ampère loss.

The family of balanced.py with H a trainable Hermitian positive matrix, block diagonal over
the basis' sectors and parameterized as H = L L^† (L ∈ C^{size×size} per block, stored as
real and imaginary parts so that ``Module.to(float32)`` keeps them complex; H is positive
definite whenever L is invertible, and the overall scale of L is a flat direction, since
K_{cH} = K_H + const). Started from the balanced H of the same k (L = its Cholesky factor),
training on the Monge–Ampère energy Σ w |1 − η/κ|^p is the energy-functional route of
Headrick & Nassar (arXiv:0908.2635): it reaches a lower σ than the balanced metric, which
minimizes a different functional.

``build_bergman`` is the factory behind ``model=bergman`` in nnflow-train.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nnflow.algebraic.balanced import (
    BalancedMetric,
    balanced_metric,
    bergman_metric,
    bergman_potential,
)
from nnflow.algebraic.sections import SYMMETRIES, SectionBasis, section_basis
from nnflow.geometry.cicy import CompleteIntersection, manifold_from_config
from nnflow.geometry.cicy_sampling import sample_manifold
from nnflow.geometry.hypersurface import Hypersurface


class BergmanPotential(nn.Module):
    """K = (t/(kπ)) log s^† L L^† s on X, L trainable.

    Args:
        basis: sections of O(k) with their block structure.
        blocks: the starting H per group, (n_blocks, size, size) complex Hermitian positive.
        kahler_t: Kähler class t.
    """

    def __init__(self, basis: SectionBasis, blocks: list[torch.Tensor], kahler_t: float = 1.0):
        super().__init__()
        if not kahler_t > 0:
            raise ValueError(f"kahler_t={kahler_t!r} must be positive")
        if [tuple(b.shape) for b in blocks] != [(g.n_blocks, g.size, g.size) for g in basis.groups]:
            raise ValueError("H blocks do not match the basis' groups")
        self.basis, self.kahler_t = basis, float(kahler_t)
        # scale H to unit mean eigenvalue: the parameters are then O(1) whatever k is
        scale = len(basis) / sum(b.diagonal(dim1=-2, dim2=-1).sum().real for b in blocks)
        chol = [torch.linalg.cholesky(scale * b.to(torch.complex128)) for b in blocks]
        self.l_real = nn.ParameterList([nn.Parameter(c.real.clone()) for c in chol])
        self.l_imag = nn.ParameterList([nn.Parameter(c.imag.clone()) for c in chol])

    @property
    def k(self) -> int:
        return self.basis.k

    def hermitian_blocks(self) -> list[torch.Tensor]:
        """H = L L^† per group: (n_blocks, size, size) complex."""
        out = []
        for re, im in zip(self.l_real, self.l_imag):
            L = torch.complex(re, im)
            out.append(L @ L.conj().transpose(-1, -2))
        return out

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """K(z): (..., N+1) complex → (...) real (vmap-compatible, for curvature)."""
        return bergman_potential(self.basis, self.hermitian_blocks(), z, self.kahler_t)

    def metric(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """Pulled-back metric: (B, N+1), (B, n, N+1) complex → (B, n, n) complex."""
        return bergman_metric(self.basis, self.hermitian_blocks(), z, jac, self.kahler_t)

    def forward(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        return self.metric(z, jac)

    def as_balanced(self) -> BalancedMetric:
        """A detached BalancedMetric of the current H (to save, or measure like a balanced one)."""
        with torch.no_grad():
            return BalancedMetric(self.basis, [b.detach().clone() for b in self.hermitian_blocks()], self.kahler_t)


def _surface(manifold) -> Hypersurface | CompleteIntersection:
    if isinstance(manifold, (Hypersurface, CompleteIntersection)):
        return manifold
    if not isinstance(manifold, Mapping) or "name" not in manifold:
        raise ValueError(f"model.manifold must be a manifold config with a name (e.g. ${{manifold}}); got {manifold!r}")
    return manifold_from_config(dict(manifold))  # a hypersurface or a complete intersection


def build_bergman(
    n_coords: int,
    k: int = 3,
    manifold: Mapping | Hypersurface | None = None,
    kahler_t: float = 1.0,
    seed: int | None = None,
    feature_symmetry: str = "phases",
    phases: torch.Tensor | None = None,
    phase_order: int | None = None,
    h_file: str | None = None,
    n_points: int = 100_000,
    points_seed: int = 0,
    tolerance: float = 1e-10,
    max_iterations: int = 100,
    factors: list[int] | None = None,
) -> BergmanPotential:
    """The ``model=bergman`` factory: a BergmanPotential started from the balanced H.

    Args:
        n_coords: N + 1 (checked against the manifold).
        k: degree of the sections.
        manifold: the manifold config (conf/model/bergman.yaml passes ``${manifold}``).
        seed: unused (the start is deterministic); accepted because nnflow-train passes it.
        feature_symmetry: "phases" (H block diagonal over the phase-symmetry sectors; ``phases``
            and ``phase_order`` as nnflow-train passes them, else the manifold's) or "none".
        h_file: a balanced.pt written by nnflow-donaldson: start from its H (same manifold and k).
        n_points, points_seed: otherwise the balanced H is computed on
            ``sample_manifold(manifold, n_points, points_seed)``, the training split of nnflow-train
            when these are ``${data.n_train}`` and ``${data.seed}``.
        tolerance, max_iterations: of the balanced iteration.
        factors: the ambient factors nnflow-train passes on a complete intersection (checked
            against the manifold's; the sections are then those of O(k, …, k)).
    Raises:
        ValueError: naming the bad option.
    """
    if manifold is None:
        raise ValueError("model.manifold is required (conf/model/bergman.yaml sets it to ${manifold})")
    if feature_symmetry not in SYMMETRIES:
        raise ValueError(f"model.feature_symmetry={feature_symmetry!r}; choose from {SYMMETRIES}")
    surface = _surface(manifold)
    if surface.n_coords != n_coords:
        raise ValueError(f"model.manifold has {surface.n_coords} coordinates, the run {n_coords}")
    if factors is not None and list(factors) != list(getattr(surface, "factors", [])):
        raise ValueError(f"model.manifold lies in factors {getattr(surface, 'factors', None)}, the run {factors}")
    if h_file:
        balanced, saved = BalancedMetric.load(h_file)
        if saved is not None and saved != surface.to_dict():
            raise ValueError(f"model.h_file={h_file!r} was computed on {saved['name']}, not {surface.name}")
        if balanced.k != k:
            raise ValueError(f"model.h_file={h_file!r} has k={balanced.k}, model.k={k}")
        return BergmanPotential(balanced.basis, balanced.blocks, kahler_t)
    if feature_symmetry == "none":
        phases = None
    basis = section_basis(surface, k, feature_symmetry, phases, phase_order)
    if not isinstance(n_points, int) or n_points < 1:
        raise ValueError(f"model.n_points={n_points!r} must be a positive integer")
    points = sample_manifold(surface, n_points, seed=int(points_seed))
    balanced = balanced_metric(basis, points, tolerance=tolerance, max_iterations=max_iterations, kahler_t=kahler_t)
    return BergmanPotential(basis, balanced.blocks, kahler_t)

