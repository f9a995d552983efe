"""Projective-invariant feature maps and their derivative jets along X.

For z ∈ C^{N+1} and a degree k ≥ 1, let m(z) be the vector of degree-k monomials with
multinomial weights √(k!/α!) (so ⟨m(z), m(z')⟩ = ⟨z, z'⟩^k) and

    M(z) = m m^† / |m|²          (Hermitian, rank one, invariant under z → λz).

The real features are the orthonormal coordinates of M:
    x = (M_pp, √2 Re M_pq, √2 Im M_pq  for p < q),     |x| = 1,
    x·x' = tr(M M') = |⟨z, z'⟩|^{2k} / (|z|^{2k} |z'|^{2k}).
Any function of x is a global function on P^N, so K = K_FS + φ(x) is a global Kähler potential
and no patch or transition loss is needed.

Jets: along holomorphic directions v_a = J_a (rows of the chart Jacobian) the map is
differentiated in closed form. With V_a = ∂_a m, S = |m|², W_a = V_a − m (m^†V_a)/S:

    ∂_a M = W_a m^† / S,     ∂_a ∂̄_b M = (W_a W_b^† − M ⟨W_b, W_a⟩) / S,

where ⟨W_b, W_a⟩ = W_b^† W_a. Only first derivatives of the embedding enter (∂_a∂̄_b of a
function of a holomorphic map), so the jets are exact for the pulled-back metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nnflow.geometry.polynomial import monomial_tree


@dataclass
class Jet:
    """A real function's value and Wirtinger derivatives at B points, for D components.

    value: (B, D) real; d: (B, n, D) complex, ∂_a f; dd: (B, n, n, D) complex, ∂_a ∂̄_b f
    (Hermitian in a, b since f is real).
    """

    value: torch.Tensor
    d: torch.Tensor
    dd: torch.Tensor


class ProjectiveFeatures:
    """x(z) = real coordinates of m m^†/|m|² for degree-k monomials m (see module doc).

    Args:
        n_coords: N + 1.
        degree: k ≥ 1 (k = 1: the entries of z z̄ᵀ/|z|²).
    Attributes:
        dim: number of real features, C(N+k, k)².
    """

    def __init__(self, n_coords: int, degree: int = 1):
        if not isinstance(degree, int) or degree < 1:
            raise ValueError(f"feature degree must be a positive integer; got {degree!r}")
        self.n_coords = n_coords
        self.degree = degree
        levels, self._parents, self._variables = monomial_tree(n_coords, degree)
        exps = torch.tensor(levels[degree], dtype=torch.long)
        self._weights = torch.tensor(
            [math.sqrt(math.factorial(degree) / math.prod(math.factorial(e) for e in row)) for row in exps.tolist()],
            dtype=torch.float64,
        )
        self._exponents = exps
        m = len(levels[degree])
        self.n_monomials = m
        self.dim = m * m
        iu = torch.triu_indices(m, m, offset=1)
        self._iu = iu
        self._cache: dict = {}

    def _on(self, ref: torch.Tensor):
        key = (ref.device, ref.dtype)
        if key not in self._cache:
            real = ref.real.dtype if ref.is_complex() else ref.dtype
            self._cache[key] = (
                [None] + [p.to(ref.device) for p in self._parents[1:]],
                [None] + [v.to(ref.device) for v in self._variables[1:]],
                self._weights.to(device=ref.device, dtype=real),
                self._exponents.to(ref.device),
                self._iu.to(ref.device),
            )
        return self._cache[key]

    def monomials(self, z: torch.Tensor) -> torch.Tensor:
        """Weighted degree-k monomials m(z): (..., N+1) → (..., m)."""
        parents, variables, weights, _, _ = self._on(z)
        zt = z.movedim(-1, 0)
        out = torch.ones_like(zt[:1])
        for k in range(1, self.degree + 1):
            out = out[parents[k]] * zt[variables[k]]
        return out.movedim(0, -1) * weights

    def monomial_jacobian(self, z: torch.Tensor) -> torch.Tensor:
        """∂m_p/∂z_i: (..., N+1) → (..., m, N+1), exact (m_p·α_i/z_i written without division)."""
        if self.degree == 1:
            eye = torch.eye(self.n_coords, dtype=z.dtype, device=z.device)
            return eye.expand(*z.shape[:-1], -1, -1) * self._on(z)[2][:, None]
        _, _, weights, exps, _ = self._on(z)
        # derivative of z^α along z_i: α_i z^{α−e_i}; evaluate z^{α−e_i} by integer powers
        powers = [torch.ones_like(z)]
        for _ in range(self.degree):
            powers.append(powers[-1] * z)
        table = torch.stack(powers, -1)  # (..., N+1, k+1)
        cols = []
        for i in range(self.n_coords):
            e = exps.clone()
            has = e[:, i] > 0
            e[:, i] = (e[:, i] - 1).clamp(min=0)
            term = torch.ones(*z.shape[:-1], len(e), dtype=z.dtype, device=z.device)
            for j in range(self.n_coords):
                term = term * table[..., j, :].index_select(-1, e[:, j])
            cols.append(term * (exps[:, i] * has).to(z.dtype))
        return torch.stack(cols, -1) * weights[:, None]

    def _to_real(self, M: torch.Tensor) -> torch.Tensor:
        """Orthonormal real coordinates of (..., m, m) matrices → (..., m²).

        For Hermitian M this is (M_pp, √2 Re M_pq, √2 Im M_pq); for the non-Hermitian
        derivative matrices the same complex-linear map is applied (x_pq = (M_pq + M_qp)/√2,
        y_pq = (M_pq − M_qp)/(√2 i)), which is what differentiating x gives.
        """
        iu = self._on(M)[4]
        diag = M.diagonal(dim1=-2, dim2=-1)
        upper = M[..., iu[0], iu[1]]
        lower = M[..., iu[1], iu[0]]
        re = (upper + lower) / math.sqrt(2)
        im = (upper - lower) / (math.sqrt(2) * 1j)
        out = torch.cat([diag, re, im], -1)
        return out

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Real features x(z): (..., N+1) complex → (..., dim) real, |x| = 1."""
        m = self.monomials(z)
        S = m.real.square().sum(-1) + m.imag.square().sum(-1)
        M = m[..., :, None] * m.conj()[..., None, :] / S[..., None, None]
        return self._to_real(M).real

    def jet(self, z: torch.Tensor, jac: torch.Tensor) -> Jet:
        """Features and their ∂_a, ∂_a∂̄_b along the chart directions J_a.

        Args:
            z: (B, N+1) points on X; jac: (B, n, N+1) chart Jacobian.
        Returns:
            Jet with value (B, dim), d (B, n, dim), dd (B, n, n, dim).
        """
        m = self.monomials(z)  # (B, m)
        V = jac @ self.monomial_jacobian(z).transpose(-1, -2)  # (B, n, m): ∂_a m
        S = (m.abs().square()).sum(-1)  # (B,)
        proj = (V @ m.conj()[..., None]) / S[:, None, None]  # (B, n, 1): m^†V_a / S
        W = V - proj * m[:, None, :]  # (B, n, m)
        M = m[:, :, None] * m.conj()[:, None, :] / S[:, None, None]
        dM = W[..., :, None] * m.conj()[:, None, None, :] / S[:, None, None, None]
        gram = W.conj() @ W.transpose(-1, -2)  # (B, b, a) = W_b^† W_a
        ddM = (
            W[:, :, None, :, None] * W.conj()[:, None, :, None, :]
            - M[:, None, None] * gram.transpose(-1, -2)[..., None, None]
        ) / S[:, None, None, None, None]
        return Jet(self._to_real(M).real, self._to_real(dM), self._to_real(ddM))
