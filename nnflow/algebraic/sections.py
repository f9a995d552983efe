"""Holomorphic sections of O(k) on a hypersurface X = {p = 0} ⊂ P^N, as monomials modulo p.

H^0(X, O(k)) = C[z]_k / (p)_k for a hypersurface (restriction from P^N is onto, with kernel
p·C[z]_{k−d}). A single polynomial is a Gröbner basis of its own ideal, so with a monomial
order the classes of the monomials *not divisible by the leading monomial* LM(p) are a basis
(normal forms). We take LM(p) = the lexicographically largest monomial of p (z_0^5 on the
Fermat quintic). The dimension is the Hilbert polynomial of X,

    N_k = C(N+k, N) − C(N+k−d, N)      (d = deg p; C(m, N) = 0 for m < N),

which ``section_basis`` checks. Monomials are eigenvectors of the diagonal phase symmetries
z_i → ω^{r_i} z_i (ω = e^{2πi/d}): z^a picks up ω^{r·a}. Its character a ↦ (r·a mod d)_r over
the group (``Hypersurface.phase_symmetries()``) is its *charge sector*; a metric invariant
under the group (the Ricci-flat one, hence the balanced ones) has a block-diagonal H over the
sectors, s^†Hs = Σ_b s_b^† H_b s_b. The basis is ordered so that the sectors are contiguous and
grouped by size: group g is a slice of the basis holding ``n_blocks`` blocks of ``size``
sections each, so block matrices are batched tensors (n_blocks, size, size) per group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations_with_replacement

import torch

from nnflow.geometry.hypersurface import Hypersurface

SYMMETRIES = ("none", "phases")


def hilbert_dimension(n_coords: int, degree: int, k: int) -> int:
    """N_k = C(N+k, N) − C(N+k−d, N): dim H^0(X, O(k)) of a degree-d hypersurface in P^N."""
    N = n_coords - 1
    below = math.comb(N + k - degree, N) if N + k - degree >= N else 0
    return math.comb(N + k, N) - below


def monomials(n_coords: int, k: int) -> torch.Tensor:
    """All degree-k exponent vectors in n_coords variables, lexicographically descending.

    Returns:
        (C(N+k, N), n_coords) long.
    """
    rows = []
    for combo in combinations_with_replacement(range(n_coords), k):
        row = [0] * n_coords
        for i in combo:
            row[i] += 1
        rows.append(row)
    rows.sort(reverse=True)
    return torch.tensor(rows, dtype=torch.long).view(-1, n_coords)


def multinomial(exponents: torch.Tensor) -> torch.Tensor:
    """k!/Π a_i! per exponent row: Σ_a multinomial(a)|z^a|² = |z|^{2k}. (M, V) long → (M,) float64."""
    k = int(exponents[0].sum()) if len(exponents) else 0
    return torch.tensor(
        [math.factorial(k) / math.prod(math.factorial(a) for a in row) for row in exponents.tolist()],
        dtype=torch.float64,
    )


def leading_monomial(surface: Hypersurface) -> torch.Tensor:
    """The lexicographically largest monomial of p: (N+1,) long."""
    return torch.tensor(max(surface.exponents.tolist()), dtype=torch.long)


def charge_sectors(exponents: torch.Tensor, phases: torch.Tensor, order: int) -> torch.Tensor:
    """Sector label of each monomial: equal labels ⇔ equal characters (r·a mod order)_r.

    Args:
        exponents: (M, V) long; phases: (G, V) long phase exponents r; order: d.
    Returns:
        (M,) long labels 0, 1, … in order of first appearance.
    """
    charges = (exponents @ phases.T.to(torch.long)) % int(order)  # (M, G)
    _, inverse = torch.unique(charges, dim=0, return_inverse=True)
    first: dict[int, int] = {}
    return torch.tensor([first.setdefault(v, len(first)) for v in inverse.tolist()], dtype=torch.long)


@dataclass(frozen=True)
class Group:
    """``n_blocks`` sectors of ``size`` sections each, at basis[start : start + n_blocks·size]."""

    start: int
    n_blocks: int
    size: int

    @property
    def stop(self) -> int:
        return self.start + self.n_blocks * self.size


class SectionBasis:
    """A monomial basis of sections, ordered by sector, with values and derivatives at points.

    Args:
        exponents: (N_k, N+1) long, all rows of degree k, ordered so that each group's sectors
            are contiguous (``build`` does this).
        groups: the blocks of the block-diagonal H, as consecutive ``Group`` slices.
        degree_k: k.
    """

    def __init__(self, exponents: torch.Tensor, groups: list[Group], degree_k: int):
        self.exponents = exponents
        self.groups = list(groups)
        self.k = int(degree_k)
        self.n_coords = exponents.shape[1]
        if self.groups[-1].stop != len(exponents) or self.groups[0].start != 0:
            raise ValueError("groups must tile the basis")
        # flat index into a ((N+1)·(k+1), ...) power table: row i·(k+1) + j holds z_i^j
        self._index = torch.arange(self.n_coords) * (self.k + 1) + exponents  # (N_k, N+1)
        self._cache: dict = {}

    @classmethod
    def build(cls, exponents: torch.Tensor, labels: torch.Tensor | None, degree_k: int) -> SectionBasis:
        """Order monomials by sector (sectors grouped by size, then first appearance)."""
        if labels is None:
            return cls(exponents, [Group(0, 1, len(exponents))], degree_k)
        members: dict[int, list[int]] = {}
        for i, label in enumerate(labels.tolist()):
            members.setdefault(label, []).append(i)
        by_size: dict[int, list[list[int]]] = {}
        for rows in members.values():
            by_size.setdefault(len(rows), []).append(rows)
        order, groups, start = [], [], 0
        for size in sorted(by_size):
            blocks = by_size[size]
            groups.append(Group(start, len(blocks), size))
            order += [i for rows in blocks for i in rows]
            start += len(blocks) * size
        return cls(exponents[torch.tensor(order, dtype=torch.long)], groups, degree_k)

    def __len__(self) -> int:
        return self.exponents.shape[0]

    @property
    def n_parameters(self) -> int:
        """Real parameters of a Hermitian block-diagonal H: Σ_blocks size²."""
        return sum(g.n_blocks * g.size**2 for g in self.groups)

    @property
    def block_sizes(self) -> list[int]:
        return [g.size for g in self.groups for _ in range(g.n_blocks)]

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(..., N_k) → per group (..., n_blocks, size) (views; vmap/autograd-friendly)."""
        return [x[..., g.start : g.stop].unflatten(-1, (g.n_blocks, g.size)) for g in self.groups]

    def _indices(self, device) -> torch.Tensor:
        if device not in self._cache:
            self._cache[device] = self._index.to(device)
        return self._cache[device]

    def _tables(self, z: torch.Tensor):
        """z_i^j and j·z_i^{j−1} for j = 0..k as ((N+1)(k+1), ...) tables (exact products)."""
        zt = z.movedim(-1, 0)  # (N+1, ...)
        powers = [torch.ones_like(zt)]
        for _ in range(self.k):
            powers.append(powers[-1] * zt)
        value = torch.stack(powers, 1)  # (N+1, k+1, ...)
        deriv = torch.stack([torch.zeros_like(zt)] + [j * powers[j - 1] for j in range(1, self.k + 1)], 1)
        return value.flatten(0, 1), deriv.flatten(0, 1)

    def values(self, z: torch.Tensor) -> torch.Tensor:
        """s_α(z) = z^{a_α}: (..., N+1) complex → (..., N_k)."""
        index = self._indices(z.device)
        table, _ = self._tables(z)
        out = table[index[:, 0]]
        for i in range(1, self.n_coords):
            out = out * table[index[:, i]]
        return out.movedim(0, -1)

    def jet(self, z: torch.Tensor, jac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Values and tangent derivatives on X.

        ∂_i s_α = a_αi z_i^{a_αi − 1} Π_{j≠i} z_j^{a_αj} (exact), D_a s = Σ_i J_ai ∂_i s.

        Args:
            z: (B, N+1) complex points; jac: (B, n, N+1) the embedding Jacobian J_ai = ∂z_i/∂x_a.
        Returns:
            s: (B, N_k); ds: (B, n, N_k).
        """
        index = self._indices(z.device)
        table, dtable = self._tables(z)
        factors = [table[index[:, i]] for i in range(self.n_coords)]  # (N_k, B) each
        prefix = [torch.ones_like(factors[0])]
        for f in factors[:-1]:
            prefix.append(prefix[-1] * f)
        suffix = [torch.ones_like(factors[0])]
        for f in reversed(factors[1:]):
            suffix.append(suffix[-1] * f)
        suffix = suffix[::-1]
        s = prefix[-1] * factors[-1]
        grad = torch.stack([prefix[i] * dtable[index[:, i]] * suffix[i] for i in range(self.n_coords)], -1)
        ds = torch.einsum("mbi,bai->bam", grad, jac)  # (B, n, N_k)
        return s.T, ds

    def to_dict(self) -> dict:
        return {
            "k": self.k,
            "exponents": self.exponents.tolist(),
            "groups": [[g.start, g.n_blocks, g.size] for g in self.groups],
        }

    @classmethod
    def from_dict(cls, d: dict) -> SectionBasis:
        return cls(torch.tensor(d["exponents"], dtype=torch.long), [Group(*g) for g in d["groups"]], d["k"])

    def __repr__(self) -> str:
        return (
            f"SectionBasis(k={self.k}, N_k={len(self)}, blocks={len(self.block_sizes)}, "
            f"max block {max(self.block_sizes)})"
        )


def section_basis(
    surface: Hypersurface,
    k: int,
    symmetry: str = "none",
    phases: torch.Tensor | None = None,
    phase_order: int | None = None,
) -> SectionBasis:
    """The basis of H^0(X, O(k)): degree-k monomials not divisible by LM(p).

    Args:
        surface: X.
        k: degree, ≥ 1.
        symmetry: "none" (one block: a general Hermitian H) or "phases" (block-diagonal over
            the charge sectors of ``phases``, default ``surface.phase_symmetries()`` of order deg p).
    On a complete intersection (a CompleteIntersection): ``cicy_section_basis``, the sections
    of O(k, …, k).

    Raises:
        ValueError: for k < 1 or an unknown symmetry.
        RuntimeError: if the count differs from the Hilbert polynomial (a construction bug).
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k={k!r} must be an integer ≥ 1")
    if symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry={symmetry!r}; choose from {SYMMETRIES}")
    from nnflow.geometry.cicy import CompleteIntersection  # it imports the hypersurface module, as this one

    if isinstance(surface, CompleteIntersection):
        return cicy_section_basis(surface, k, symmetry, phases, phase_order)
    e = monomials(surface.n_coords, k)
    lead = leading_monomial(surface)
    e = e[~(e >= lead).all(1)]
    expected = hilbert_dimension(surface.n_coords, surface.degree, k)
    if len(e) != expected:
        raise RuntimeError(f"{len(e)} sections of O({k}) on {surface.name}, Hilbert polynomial says {expected}")
    return _sectored_basis(surface, e, k, symmetry, phases, phase_order)


def projective_basis(n_coords: int, k: int) -> SectionBasis:
    """All degree-k monomials (sections of O(k) on P^N), in one block."""
    return SectionBasis.build(monomials(n_coords, k), None, k)


def cicy_section_basis(x, k: int, symmetry: str = "none", phases=None, phase_order: int | None = None) -> SectionBasis:
    """The basis of H^0(X, O(k, …, k)) on a CICY X ⊂ P^{n_1} × … × P^{n_m}: monomials of multidegree
    (k, …, k) modulo the ideal (p_1, …, p_K).

    The Koszul complex and the Künneth cohomology of line bundles on products make restriction
    from the ambient space onto for k ≥ 1 (every twist O(k − q_j) has k − q_ij ≥ −n_i, so no
    H^{n_i} term), with kernel Σ_j p_j·C[z]_{k−q_j}. One equation (K = 1): {p} is a Gröbner
    basis of its ideal, so the monomials not divisible by LM(p) (the lexicographically largest
    monomial) are a basis, N_k = Π_i C(n_i + k, k) − Π_i C(n_i + k − q_i, n_i). K ≥ 2: only
    degrees where the kernel is zero (k < q_ij in some factor for every j: all monomials; higher
    k needs a Gröbner basis of several polynomials, not implemented). The sections of multidegree
    (k, …, k) make K_H = (t/(kπ)) log s^†Hs a potential in the class t·Σ_i J_i, the run's scalar t.

    Raises:
        NotImplementedError: K ≥ 2 at a degree where the equations cut the ambient sections.
        RuntimeError: if the count differs from N_k (a construction bug).
    """
    from nnflow.geometry.cicy import multihomogeneous_monomials

    degrees = [k] * x.n_factors
    e = multihomogeneous_monomials(x.factors, degrees)
    q = x.configuration  # (m, K)
    cut = [j for j in range(x.n_equations) if bool((k - q[:, j] >= 0).all())]  # p_j·(degree k − q_j) ≠ 0
    if x.n_equations > 1 and cut:
        raise NotImplementedError(
            f"sections of O({k}) on {x.name} (configuration {q.tolist()}): the equations {cut} cut the ambient "
            f"sections at this degree, which needs a Gröbner basis of {x.n_equations} polynomials; use k < "
            f"{min(int(q[:, j].max()) for j in cut)}"
        )
    expected = len(e)
    if cut:  # K = 1
        lead = torch.tensor(max(x.exponents[0].tolist()), dtype=torch.long)
        e = e[~(e >= lead).all(1)]
        expected -= math.prod(math.comb(n + k - int(d), n) for n, d in zip(x.factors, q[:, 0].tolist()))
    if len(e) != expected:
        raise RuntimeError(f"{len(e)} sections of O({k}) on {x.name}, the Koszul count says {expected}")
    return _sectored_basis(x, e, k, symmetry, phases, phase_order)


def _sectored_basis(surface, e: torch.Tensor, k: int, symmetry: str, phases, phase_order) -> SectionBasis:
    """The SectionBasis of the monomials ``e``: one block, or with symmetry "phases" the charge sectors of
    ``phases`` (default: the manifold's own, of order deg p on a hypersurface, lcm(configuration) on a CICY)."""
    if symmetry != "phases":
        return SectionBasis.build(e, None, k)
    order = getattr(surface, "phase_order", surface.degree)
    if phases is None:
        phases, phase_order = surface.phase_symmetries(), order
    return SectionBasis.build(e, charge_sectors(e, phases, phase_order or order), k)
