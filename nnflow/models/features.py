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

Symmetric subsets: a diagonal phase map z_i → ω^{r_i} z_i multiplies M_pq by ω^{(α_p − α_q)·r}.
Keeping only the entries invariant under a manifold's phase symmetries (``phases``) gives an
invariant potential by construction; each entry is computed alone (pairs p, q gathered), so
the cost is that of the kept entries, not of the C(N+k, k)² matrix.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from nnflow.geometry.hermitian import linear_components
from nnflow.geometry.polynomial import monomial_tree
from nnflow.models.jets import Jet


class ProjectiveFeatures:
    """x(z) = real coordinates of m m^†/|m|² for degree-k monomials m (see module doc).

    With ``phases`` only the entries M_pq that are invariant under the diagonal phase maps
    z_i → ω^{r_i} z_i (ω = e^{2πi/phase_order}, one row r of ``phases`` each) are kept:
    M_pq picks up ω^{(α_p − α_q)·r}, so the kept pairs are those with (α_p − α_q)·r ≡ 0 for
    every r. The diagonal is always kept, and any function of the kept entries is invariant.
    For the Fermat quintic at k = 5 they are the 126 |z^α|²/|z|^{10} and the z_i^5 z̄_j^5/|z|^{10}
    (i ≠ j: 20 real features). Their products generate every (Z_5)^5-invariant polynomial in z, z̄
    (an invariant monomial factors into |z_i|² and z_i^5 z̄_j^5, and
    x_i = |z_i|²/|z|² = Σ_α α_i M_αα / k), so a network on them can be any invariant potential.

    Args:
        n_coords: N + 1.
        degree: k ≥ 1 (k = 1: the entries of z z̄ᵀ/|z|²).
        phases: optional (G, N+1) integer tensor of phase exponents r (see above).
        phase_order: the order of ω (required with ``phases``).
        standardize: return (x − μ)/s with μ, s the mean and standard deviation of each
            feature under the Fubini–Study measure of P^N, in closed form (``fs_moments``). The
            kept entries of a high degree differ in scale by orders of magnitude (z_i^5 z̄_j^5/|z|^{10}
            is ~10× smaller than a diagonal entry), which a network initialized for O(1)
            inputs would barely see. An affine map of x: jets scale by 1/s.
    Attributes:
        dim: number of real features: C(N+k, k)² without phases, m + 2·(kept pairs p < q) with.
    """

    def __init__(
        self,
        n_coords: int,
        degree: int = 1,
        phases: torch.Tensor | None = None,
        phase_order: int | None = None,
        standardize: bool = False,
    ):
        if not isinstance(degree, int) or isinstance(degree, bool) or degree < 1:
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
        iu = torch.triu_indices(m, m, offset=1)
        if phases is not None:
            iu = iu[:, _invariant_pairs(exps, iu, phases, phase_order)]
        self.phases = None if phases is None else torch.as_tensor(phases, dtype=torch.long).clone()
        self.phase_order = phase_order
        self._iu = iu
        self.dim = m + 2 * iu.shape[1]
        # entries E_pq computed per feature: the diagonal, then (p, q) and (q, p) of each kept pair
        self._rows = torch.cat([torch.arange(m), iu[0], iu[1]])
        self._cols = torch.cat([torch.arange(m), iu[1], iu[0]])
        self.standardize = bool(standardize)
        self._shift, self._scale = None, None
        if standardize:
            mean, std = self.fs_moments()
            self._shift, self._scale = mean, 1 / std
        self._cache: dict = {}

    def _on(self, ref: torch.Tensor) -> SimpleNamespace:
        """The index and weight tables on ref's device, in its real dtype (cached)."""
        key = (ref.device, ref.dtype)
        if key not in self._cache:
            real = ref.real.dtype if ref.is_complex() else ref.dtype
            dev = ref.device
            self._cache[key] = SimpleNamespace(
                parents=[None] + [p.to(dev) for p in self._parents[1:]],
                variables=[None] + [v.to(dev) for v in self._variables[1:]],
                weights=self._weights.to(device=dev, dtype=real),
                exponents=self._exponents.to(dev),
                rows=self._rows.to(dev),
                cols=self._cols.to(dev),
                shift=None if self._shift is None else self._shift.to(device=dev, dtype=real),
                scale=None if self._scale is None else self._scale.to(device=dev, dtype=real),
            )
        return self._cache[key]

    def fs_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of each feature for z uniform on S^{2N+1} (the FS measure).

        With E|z^γ|² = N! γ!/(N + |γ|)! on the unit sphere of C^{N+1} and M_pq = w_p w_q z^{α_p} z̄^{α_q}:
        E M_pp = w_p² N! α_p!/(N+k)!, E M_pp² = w_p⁴ N! (2α_p)!/(N+2k)!, and for p ≠ q the phase
        averages out: E x = 0, E x² = E|M_pq|² = w_p² w_q² N! (α_p+α_q)!/(N+2k)! for both √2 Re
        and √2 Im. Returns two (dim,) float64 tensors.
        """
        N = self.n_coords - 1

        def moment(gamma: torch.Tensor) -> torch.Tensor:  # E|z^γ|², γ (..., N+1)
            lg = torch.lgamma(gamma.double() + 1).sum(-1)
            return torch.exp(math.lgamma(N + 1) + lg - math.lgamma(N + 1 + int(gamma[0].sum())))

        w2 = self._weights.square()
        a = self._exponents
        mean_diag = w2 * moment(a)
        var_diag = w2.square() * moment(2 * a) - mean_diag.square()
        p, q = self._iu
        second = w2[p] * w2[q] * moment(a[p] + a[q]) if p.numel() else torch.zeros(0, dtype=torch.float64)
        mean = torch.cat([mean_diag, torch.zeros(2 * len(p), dtype=torch.float64)])
        var = torch.cat([var_diag, second, second])
        return mean, var.clamp(min=0).sqrt()

    def monomials(self, z: torch.Tensor) -> torch.Tensor:
        """Weighted degree-k monomials m(z): (..., N+1) → (..., m)."""
        t = self._on(z)
        parents, variables, weights = t.parents, t.variables, t.weights
        zt = z.movedim(-1, 0)
        out = torch.ones_like(zt[:1])
        for k in range(1, self.degree + 1):
            out = out[parents[k]] * zt[variables[k]]
        return out.movedim(0, -1) * weights

    def monomial_jacobian(self, z: torch.Tensor) -> torch.Tensor:
        """∂m_p/∂z_i: (..., N+1) → (..., m, N+1), exact (m_p·α_i/z_i written without division)."""
        if self.degree == 1:
            eye = torch.eye(self.n_coords, dtype=z.dtype, device=z.device)
            return eye.expand(*z.shape[:-1], -1, -1) * self._on(z).weights[:, None]
        weights, exps = self._on(z).weights, self._on(z).exponents
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

    def _to_real(self, E: torch.Tensor) -> torch.Tensor:
        """Real coordinates from the entries E (..., m + 2U) at (rows, cols) → (..., dim).

        The diagonal M_pp, then x_pq = (M_pq + M_qp)/√2 and y_pq = (M_pq − M_qp)/(√2 i) for
        each kept pair p < q: for Hermitian M these are √2 Re M_pq and √2 Im M_pq (orthonormal
        coordinates); for the non-Hermitian derivative matrices the same complex-linear map is
        applied, which is what differentiating x gives.
        """
        m, U = self.n_monomials, self._iu.shape[1]
        return linear_components(E[..., :m], E[..., m : m + U], E[..., m + U :])

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Real features x(z): (..., N+1) complex → (..., dim) real (|x| = 1 unless phases or standardize)."""
        t = self._on(z)
        m = self.monomials(z)
        S = m.real.square().sum(-1) + m.imag.square().sum(-1)
        E = m[..., t.rows] * m[..., t.cols].conj() / S[..., None]
        x = self._to_real(E).real
        return x if t.scale is None else (x - t.shift) * t.scale

    def jet(self, z: torch.Tensor, jac: torch.Tensor) -> Jet:
        """Features and their ∂_a, ∂_a∂̄_b along the chart directions J_a.

        Args:
            z: (B, N+1) points on X; jac: (B, n, N+1) chart Jacobian.
        Returns:
            Jet with value (B, dim), d (B, n, dim), dd (B, n, n, dim).
        """
        t = self._on(z)
        rows, cols = t.rows, t.cols
        m = self.monomials(z)  # (B, m)
        V = jac @ self.monomial_jacobian(z).transpose(-1, -2)  # (B, n, m): ∂_a m
        S = (m.abs().square()).sum(-1)  # (B,)
        proj = (V @ m.conj()[..., None]) / S[:, None, None]  # (B, n, 1): m^†V_a / S
        W = V - proj * m[:, None, :]  # (B, n, m)
        mr, mc = m[:, rows], m[:, cols].conj()  # (B, L)
        Wr, Wc = W[..., rows], W[..., cols].conj()  # (B, n, L)
        E = mr * mc / S[:, None]
        dE = Wr * mc[:, None] / S[:, None, None]
        gram = W @ W.conj().transpose(-1, -2)  # (B, a, b) = W_b^† W_a
        ddE = (Wr[:, :, None] * Wc[:, None, :] - E[:, None, None] * gram[..., None]) / S[:, None, None, None]
        jet = Jet(self._to_real(E).real, self._to_real(dE), self._to_real(ddE))
        if t.scale is None:
            return jet
        return Jet((jet.value - t.shift) * t.scale, jet.d * t.scale, jet.dd * t.scale)


def _invariant_pairs(exps: torch.Tensor, iu: torch.Tensor, phases, phase_order) -> torch.Tensor:
    """Mask over the pairs iu (2, P): (α_p − α_q)·r ≡ 0 mod phase_order for every row r."""
    if not isinstance(phase_order, int) or isinstance(phase_order, bool) or phase_order < 1:
        raise ValueError(f"phase_order must be a positive integer with phases; got {phase_order!r}")
    r = torch.as_tensor(phases, dtype=torch.long)
    if r.ndim != 2 or r.shape[1] != exps.shape[1]:
        raise ValueError(f"phases must have shape (G, {exps.shape[1]}); got {tuple(r.shape)}")
    diff = exps[iu[0]] - exps[iu[1]]  # (P, N+1)
    keep = torch.ones(diff.shape[0], dtype=torch.bool)
    for chunk in r.split(256):  # (P, G) charges at once would be ~0.4 GB for the quintic at k = 5
        keep &= ((diff @ chunk.T) % phase_order == 0).all(-1)
    return keep
