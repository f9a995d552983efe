"""Projective-invariant features on a product P^{n_1} × … × P^{n_m} (for CICYs).

With per-factor degrees k = (k_1, …, k_m) the monomials are products over the factors,
m(z) = m_1(z^(1)) ⊗ … ⊗ m_m(z^(m)), each m_i the weighted degree-k_i monomials of factor i
(weights √(k_i!/α!), so ⟨m(z), m(z')⟩ = Π_i ⟨z^(i), z'^(i)⟩^{k_i}), and

    M(z) = m m^†/|m|² = M_1 ⊗ … ⊗ M_m,

invariant under z^(i) → λ_i z^(i) for every factor separately: any function of its real
coordinates x is a global function on the product, K = K_FS + φ(x) a global potential. Everything
downstream of the monomials (real coordinates, jets, standardization) is ProjectiveFeatures', since
those formulas only use m(z) and ∂m/∂z; the FS moments factor over the factors:
E|z^γ|² = Π_i n_i! γ_i!/(n_i + |γ_i|)! for z^(i) uniform on the unit sphere of each C^{n_i+1}.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nnflow.geometry.cicy import multihomogeneous_monomials
from nnflow.models.features import ProjectiveFeatures, _invariant_pairs


class ProductProjectiveFeatures(ProjectiveFeatures):
    """x(z) = real coordinates of m m^†/|m|² for the product monomials of multidegree k (module doc).

    Args:
        factors: (n_1, …, n_m).
        degrees: (k_1, …, k_m), each ≥ 1 (an int: the same for every factor).
        standardize: (x − μ)/s under the product FS measure (closed form, ``fs_moments``).
        phases, phase_order: keep only the entries invariant under the diagonal phase maps
            z_j → ω^{r_j} z_j (ω = e^{2πi/phase_order}, one row r of ``phases`` (G, n_coords) each;
            ``CompleteIntersection.phase_symmetries``), as ProjectiveFeatures does on one P^N.
    Attributes:
        dim: (Π_i C(n_i + k_i, k_i))² real features without phases, m + 2·(kept pairs p < q) with.
    """

    def __init__(self, factors: Sequence[int], degrees: int | Sequence[int] = 1, standardize: bool = False,
                 phases: torch.Tensor | None = None, phase_order: int | None = None):
        factors = [int(n) for n in factors]
        if isinstance(degrees, int) and not isinstance(degrees, bool):
            degrees = [degrees] * len(factors)
        degrees = [int(k) for k in degrees]
        if len(degrees) != len(factors) or min(degrees) < 1:
            raise ValueError(f"need one feature degree >= 1 per factor ({len(factors)}); got {degrees}")
        self.factors, self.degrees = factors, degrees
        self.offsets = [sum(n + 1 for n in factors[:i]) for i in range(len(factors) + 1)]
        self.n_coords = self.offsets[-1]
        self.degree = sum(degrees)
        exps = multihomogeneous_monomials(factors, degrees)
        self._exponents = exps
        self._weights = torch.tensor(
            [math.sqrt(math.prod(math.factorial(k) for k in degrees) / math.prod(math.factorial(e) for e in row))
             for row in exps.tolist()], dtype=torch.float64)
        self._parents, self._variables = [None], [None]  # the tree of ProjectiveFeatures is not used
        m = len(exps)
        self.n_monomials = m
        iu = torch.triu_indices(m, m, offset=1)
        if phases is not None:
            iu = iu[:, _invariant_pairs(exps, iu, phases, phase_order)]
        self._iu = iu
        self.phases = None if phases is None else torch.as_tensor(phases, dtype=torch.long).clone()
        self.phase_order = None if phases is None else phase_order
        self.dim = m + 2 * self._iu.shape[1]
        self._rows = torch.cat([torch.arange(m), self._iu[0], self._iu[1]])
        self._cols = torch.cat([torch.arange(m), self._iu[1], self._iu[0]])
        self.standardize = bool(standardize)
        self._shift, self._scale = None, None
        self._cache: dict = {}
        if standardize:
            mean, std = self.fs_moments()
            self._shift, self._scale = mean, 1 / std

    def _power_table(self, z: torch.Tensor) -> torch.Tensor:
        powers = [torch.ones_like(z)]
        for _ in range(max(self.degrees)):
            powers.append(powers[-1] * z)
        return torch.stack(powers, -1)  # (..., n_coords, kmax+1)

    def _product(self, table: torch.Tensor, exps: torch.Tensor) -> torch.Tensor:
        """Π_j table[..., j, exps[:, j]]: → (..., M)."""
        out = table[..., 0, :].index_select(-1, exps[:, 0])
        for j in range(1, self.n_coords):
            out = out * table[..., j, :].index_select(-1, exps[:, j])
        return out

    def monomials(self, z: torch.Tensor) -> torch.Tensor:
        """Weighted product monomials m(z): (..., n_coords) → (..., m)."""
        t = self._on(z)
        return self._product(self._power_table(z), t.exponents) * t.weights

    def monomial_jacobian(self, z: torch.Tensor) -> torch.Tensor:
        """∂m_p/∂z_i = w_p α_{p,i} z^{α_p − e_i}: (..., n_coords) → (..., m, n_coords), no division."""
        t = self._on(z)
        table = self._power_table(z)
        cols = []
        for i in range(self.n_coords):
            e = t.exponents.clone()
            e[:, i] = (e[:, i] - 1).clamp(min=0)
            cols.append(self._product(table, e) * t.exponents[:, i].to(z.dtype))
        return torch.stack(cols, -1) * t.weights[:, None]

    def fs_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of each feature under the product FS measure (two (dim,) float64)."""

        def moment(gamma: torch.Tensor) -> torch.Tensor:  # E|z^γ|², γ (..., n_coords)
            out = torch.zeros(gamma.shape[:-1], dtype=torch.float64)
            for i, n in enumerate(self.factors):
                g = gamma[..., self.offsets[i]:self.offsets[i + 1]].double()
                out = out + math.lgamma(n + 1) + torch.lgamma(g + 1).sum(-1) - torch.lgamma(n + 1 + g.sum(-1))
            return torch.exp(out)

        w2 = self._weights.square()
        a = self._exponents
        mean_diag = w2 * moment(a)
        var_diag = w2.square() * moment(2 * a) - mean_diag.square()
        p, q = self._iu
        second = w2[p] * w2[q] * moment(a[p] + a[q])
        mean = torch.cat([mean_diag, torch.zeros(2 * len(p), dtype=torch.float64)])
        var = torch.cat([var_diag, second, second])
        return mean, var.clamp(min=0).sqrt()


def product_feature_count(factors: Sequence[int], degrees: Sequence[int]) -> int:
    """(Π_i C(n_i + k_i, k_i))²: the width of the feature map, before building it."""
    m = math.prod(math.comb(n + k, k) for n, k in zip(factors, degrees))
    return m * m

