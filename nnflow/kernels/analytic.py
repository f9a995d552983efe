"""Infinite-width NNGP and NTK kernels of nnflow's networks, composed with the feature map.

The kernels are those of K = K_FS + α[f_θ − f_θ0](x(z)) (models/potential.py) with the
networks exactly as defined in models/networks.py in the NTK parameterization, on the finite
model's own features: the full degree-k map (|x| = 1, x·x' = |⟨z, z'⟩|^{2k}/(|z|^{2k}|z'|^{2k}),
the formulas below) or the phase-invariant standardized features (feature_symmetry "phases",
|x| varying: the general route ``MLPKernel.general_series`` in (x·x', |x|², |x'|²)). Each is a
kernel on P^N. Output scale α
multiplies every kernel by α²; init "zero_last" (last layer zero) has NTK = NNGP at
initialization.

MLP (depth L hidden layers, d features, input scale s — the network sees s·x; layer
u = σ_w/√fan_in·W h + σ_b·b, output layer the same without activation), with
V(c) = E[σ(u)σ(v)] at Var = q, Cov = c (duals.py):

    c_1 = σ_w² s² u/d + σ_b²,              q_1 = σ_w² s²/d + σ_b²,      Θ_1 = c_1,
    c_{l+1} = σ_w² V(c_l) + σ_b²,          q_{l+1} = σ_w² V(q_l) + σ_b²,
    Θ_{l+1} = c_{l+1} + σ_w² V'(c_l) Θ_l,  NNGP = c_{L+1},  NTK = Θ_{L+1},

all functions of u = x·x' alone. Derivatives in u to fourth order are carried exactly by
truncated Taylor series (taylor.py), with V^(k) = E[σ^(k)σ^(k)] (Price), and the Kähler and
metric kernels follow by Faà di Bruno over the feature jets (derivatives.py).

cos-net φ = Σ_i a_i Σ_j cos(b_ij x_j + c_i) and gauss-net (a, b, c as in networks.py), with
β = σ_b²/d, g(t) = e^{−βt²/2}:

    NNGP = σ_a²/2 [Σ_j g(x_j − x'_j) + Σ_{j≠k} g(x_j) g(x'_k)]   (both nets)
    NTK  = λ·NNGP + (σ_a² β/2) Σ_j x_j x'_j g(x_j − x'_j),   λ = 2 (cos-net), 1 + σ_c² (gauss-net)

(the a- and c-gradients give the NNGP terms, the b-gradients the last sum). Their derivative
kernels use the coordinate-sum route.

(One file of ~440 lines: the four kernels share the AnalyticKernel base — points, orders, the
feature composition — and ``analytic_kernel`` maps a model config onto them; the formulas live
in duals.py, taylor.py and derivatives.py.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from nnflow.kernels import multiseries as ms
from nnflow.kernels import taylor
from nnflow.kernels.activations import NAMES
from nnflow.kernels.derivatives import (
    autodiff_kernel,
    check_orders,
    coordinate_jets,
    diagonal_sum,
    faa_di_bruno,
    faa_di_bruno_general,
    hermite_gaussian,
    separable_sum,
    slot_gram,
    slot_self_gram,
)
from nnflow.kernels.dual_series import dual_series
from nnflow.kernels.duals import dual_derivatives, max_derivative
from nnflow.kernels.points import Side, as_points, assemble, feature_side
from nnflow.models.features import ProjectiveFeatures
from nnflow.models.potential import FEATURE_SYMMETRIES, potential_features

KINDS = ("ntk", "nngp")
ANALYTIC_INITS = ("centered", "random", "zero_last")


def _positive(name: str, value, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}; got {value!r}")
    return float(value)


class AnalyticKernel:
    """Base class: a potential kernel on P^N and its Kähler and metric derivatives.

    Shapes match the empirical kernels (empirical.py): potential (B1, B2), Kähler
    (B1, B2, n²) (the second argument's metric component), metric (B1, B2, n², n²), in the
    real components of geometry/hermitian.py. ``points2=None`` means the same points.

    Args:
        feature_degree: k of the features.
        output_scale: α (kernels scale by α²).
        init: "centered" or "random" (same kernels), or "zero_last" (NTK = NNGP).
        feature_symmetry: "none" (all degree-k entries, |x| = 1) or "phases" (the entries
            invariant under ``phases``, standardized: models.potential.potential_features, the
            finite model's own features).
        phases, phase_order: the manifold's phase symmetries (Hypersurface.phase_symmetries()
            and its degree), needed with feature_symmetry "phases".
        general: use the general (x·x', |x|², |x'|²) route even on unit features (for checks).
        factors: (n_1, …, n_m) on a complete intersection: the product features of
            ``models.product_features`` (standardized, so the general route), feature_degree an
            int or one degree per factor.
    """

    smooth_order: float = math.inf  # derivatives of the potential kernel available at x = x'

    def __init__(
        self,
        feature_degree: int = 1,
        output_scale: float = 1.0,
        init: str = "centered",
        feature_symmetry: str = "none",
        phases=None,
        phase_order: int | None = None,
        general: bool = False,
        factors=None,
    ):
        per_factor = factors is not None and isinstance(feature_degree, (list, tuple))
        degrees = list(feature_degree) if per_factor else [feature_degree]
        if any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in degrees):
            raise ValueError(f"feature_degree must be a positive integer; got {feature_degree!r}")
        if init not in ANALYTIC_INITS:
            raise ValueError(f"unknown init {init!r}; choose from {ANALYTIC_INITS}")
        if feature_symmetry not in FEATURE_SYMMETRIES:
            raise ValueError(f"unknown feature_symmetry {feature_symmetry!r}; choose from {FEATURE_SYMMETRIES}")
        if feature_symmetry == "phases" and (phases is None or phase_order is None):
            raise ValueError(
                "feature_symmetry='phases' needs the manifold's phase symmetries: pass phases and phase_order "
                "(Hypersurface.phase_symmetries() and the polynomial's degree; nnflow-train passes them)"
            )
        self.feature_degree = feature_degree
        self.output_scale = float(output_scale)
        self.init = init
        self.feature_symmetry = feature_symmetry
        self.phases = None if feature_symmetry == "none" else torch.as_tensor(phases, dtype=torch.long)
        self.phase_order = None if feature_symmetry == "none" else int(phase_order)
        self.factors = None if factors is None else [int(n) for n in factors]
        # |x| = 1 only on the full map of one P^N (product features are standardized)
        self.general = bool(general) or feature_symmetry != "none" or factors is not None
        self._features: dict[int, ProjectiveFeatures] = {}

    # ------------------------------------------------------------------ public API
    def potential(self, points1, points2=None, kind: str = "ntk", chunk_size: int | None = None):
        """Θ(x, x') (or the NNGP): (B1, B2) real."""
        return self.kernel(points1, points2, (0, 0), kind, chunk_size)

    def kahler(self, points1, points2=None, kind: str = "ntk", chunk_size: int | None = None):
        """∂'_k∂̄'_l Θ(x, x') pulled back: (B1, B2, n²) real."""
        return self.kernel(points1, points2, (0, 2), kind, chunk_size)

    def metric(self, points1, points2=None, kind: str = "ntk", chunk_size: int | None = None):
        """∂_i∂̄_j∂'_k∂̄'_l Θ(x, x') pulled back: (B1, B2, n², n²) real."""
        return self.kernel(points1, points2, (2, 2), kind, chunk_size)

    def kernel(self, points1, points2=None, orders=(2, 2), kind: str = "ntk", chunk_size: int | None = None):
        """The kernel with o1, o2 ∈ {0, 2} derivatives on each side, blocks of chunk_size rows."""
        o1, o2 = check_orders(orders)
        kind = self._check_kind(kind)
        self.check_smooth(o1 + o2, kind)
        same = points2 is None
        p1 = as_points(points1, need_jac=o1 > 0)
        p2 = p1 if same else as_points(points2, need_jac=o2 > 0)
        features = self._feature_map(p1[0].shape[-1])
        s1 = feature_side(features, p1, o1)
        s2 = s1 if (same and o1 == o2) else feature_side(features, p2, o2)
        n = max(s1.n, s2.n)
        trailing = tuple(n * n for o in (o1, o2) if o)
        scale = self.output_scale**2

        def block(i, j):
            return scale * self._block(s1.subset(i), s2.subset(j), (o1, o2), kind)

        return assemble(len(s1), len(s2), trailing, chunk_size, same and o1 == o2, block, s1.value)

    def pair(self, z1: torch.Tensor, z2: torch.Tensor, kind: str = "ntk") -> torch.Tensor:
        """The potential kernel of one pair of points (N+1,), (N+1,) → (), torch.func-friendly."""
        features = self._feature_map(z1.shape[-1])
        x1, x2 = features(z1[None]), features(z2[None])
        return self.output_scale**2 * self._potential_features(x1, x2, self._check_kind(kind))[0]

    def autodiff(self, points1, points2=None, orders=(2, 2), kind: str = "ntk"):
        """The same kernel by the generic route (torch.func through ``pair``); slow, for checks.

        For quadrature activations it is exact only off the diagonal (x ≠ x'): it differentiates
        the quadrature rule itself, whose Cholesky factor √(1 − ρ²) is singular at ρ = 1.
        """
        o1, o2 = check_orders(orders)
        kind = self._check_kind(kind)
        self.check_smooth(o1 + o2, kind)
        z1, j1 = as_points(points1, need_jac=o1 > 0)
        z2, j2 = (z1, j1) if points2 is None else as_points(points2, need_jac=o2 > 0)
        return autodiff_kernel(lambda a, b: self.pair(a, b, kind), z1, j1, z2, j2, (o1, o2))

    # ------------------------------------------------------------------ helpers
    def _feature_map(self, n_coords: int) -> ProjectiveFeatures:
        if n_coords not in self._features:
            if self.phases is not None and self.phases.shape[-1] != n_coords:
                raise ValueError(f"phases act on {self.phases.shape[-1]} coordinates; the points have {n_coords}")
            self._features[n_coords] = potential_features(
                n_coords, self.feature_degree, self.phases, self.phase_order, self.factors
            )
        return self._features[n_coords]

    def _check_kind(self, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown kernel kind {kind!r}; choose from {KINDS}")
        return "nngp" if self.init == "zero_last" else kind

    def check_smooth(self, order: int, kind: str = "ntk") -> None:
        """ValueError if the kernel has no finite derivatives of total ``order`` at x = x'."""
        kind = self._check_kind(kind)
        need = order + (1 if kind == "ntk" else 0)
        if need > self.smooth_order:
            what = {2: "Kähler", 4: "metric"}.get(order, f"order-{order}")
            raise ValueError(
                f"{self!r}: the {kind.upper()} is not smooth at x = x' (its dual activation has "
                f"finite derivatives only to order {self.smooth_order}, {need} needed), so its {what} "
                f"kernel ({order} derivatives of the potential kernel) is infinite on the diagonal; "
                "use a smooth activation (gelu, erf, tanh, softplus, sin, cos, gaussian)"
            )

    def _block(self, s1: Side, s2: Side, orders, kind: str) -> torch.Tensor:
        raise NotImplementedError

    def _potential_features(self, x1: torch.Tensor, x2: torch.Tensor, kind: str) -> torch.Tensor:
        raise NotImplementedError


class MLPKernel(AnalyticKernel):
    """Infinite-width kernels of the MLP (module doc), functions of u = x·x'.

    .. math::
        \\Theta^{(o_1,o_2)}_{ab,cd} = \\alpha^2 \\sum_{\\pi} F^{(|\\pi|)}(u) \\prod_{B \\in \\pi} \\partial^B u

    Args:
        depth: hidden layers L ≥ 1.
        activation: one of activations.NAMES (closed forms for relu, erf, sin, cos, gaussian;
            Price quadrature otherwise).
        sigma_w, sigma_b: the layers' scales.
        input_scale: s, the network computes φ(s·x) (models.networks.MLP).
        quadrature: force quadrature also where a closed form exists (for checks): Price on
            unit features, Gauss–Hermite on the general route (dual_series.py).
        features: feature_symmetry, phases, phase_order, general (AnalyticKernel).

    On features with |x| ≠ 1 (feature_symmetry "phases") the layer variances differ per point
    and the recursion runs on (c, q(x), q(x')) (``general_series``); on the full degree-k map it
    reduces to the recursion in u alone (``series``, the fast path), which it must reproduce.
    """

    def __init__(
        self,
        depth: int = 2,
        activation: str = "gelu",
        sigma_w: float = 1.0,
        sigma_b: float = 0.1,
        feature_degree: int = 1,
        output_scale: float = 1.0,
        init: str = "centered",
        input_scale: float = 1.0,
        quadrature: bool = False,
        **features,
    ):
        super().__init__(feature_degree, output_scale, init, **features)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"depth must be a positive integer; got {depth!r}")
        if activation not in NAMES:
            raise ValueError(f"unknown activation {activation!r}; choose from {NAMES}")
        self.depth, self.activation = depth, activation
        self.sigma_w = _positive("sigma_w", sigma_w)
        self.sigma_b = _positive("sigma_b", sigma_b, allow_zero=True)
        self.input_scale = _positive("input_scale", input_scale)
        self.quadrature = bool(quadrature)
        self.smooth_order = max_derivative(activation)

    def __repr__(self) -> str:
        return (
            f"MLPKernel(depth={self.depth}, activation={self.activation!r}, sigma_w={self.sigma_w}, "
            f"sigma_b={self.sigma_b}, input_scale={self.input_scale}, feature_degree={self.feature_degree}, "
            f"output_scale={self.output_scale})"
        )

    def series(self, u: torch.Tensor, order: int, kind: str = "ntk", d: int | None = None) -> list[torch.Tensor]:
        """[F(u), F'(u), ..., F^(order)(u)] without α²; d = feature dimension."""
        if d is None:
            raise ValueError("the feature dimension d is needed")
        sw2, sb2 = self.sigma_w**2, self.sigma_b**2
        first = sw2 * self.input_scale**2 / d
        c = taylor.affine(taylor.variable(u, order), first, sb2)
        theta = c
        q = first + sb2
        extra = 1 if kind == "ntk" else 0
        for _ in range(self.depth):
            V = dual_derivatives(self.activation, c[0], q, order + extra, self.quadrature)
            new_c = taylor.affine(taylor.compose(V[: order + 1], c), sw2, sb2)
            if kind == "ntk":
                theta = taylor.add(new_c, taylor.affine(taylor.mul(taylor.compose(V[1:], c), theta), sw2))
            q_tensor = torch.tensor([q], dtype=u.dtype, device=u.device)
            qV = dual_derivatives(self.activation, q_tensor, q, 0, self.quadrature)
            q = sw2 * float(qV[0][0]) + sb2
            c = new_c
        return taylor.derivatives(theta if kind == "ntk" else c)

    def general_series(self, u, v, w, orders, kind: str = "ntk", d: int | None = None) -> dict:
        """{(i, j, k): ∂_u^i ∂_v^j ∂_w^k F} of the NTK (or NNGP) without α², for the derivative orders.

        With first = σ_w² s²/d, per-point variances q(x) and the dual V(c, q1, q2) of dual_series.py:

            c_1 = first·u + σ_b²,   q_1(x) = first·|x|² + σ_b²,   Θ_1 = c_1,
            c_{l+1} = σ_w² V(c_l, q_l(x), q_l(x')) + σ_b²,   q_{l+1}(x) = σ_w² V(q_l, q_l, q_l) + σ_b²,
            Θ_{l+1} = c_{l+1} + σ_w² V_c(c_l, q_l(x), q_l(x')) Θ_l,

        u (B1, B2) = x·x', v (B1, 1) = |x|², w (1, B2) = |x'|² (or all (B,) for pairs), each
        carried as a trivariate series (multiseries.py) truncated to the orders (o1, o2).
        """
        if d is None:
            raise ValueError("the feature dimension d is needed")
        o1, o2 = orders
        T = ms.Truncation(o1 + o2, o1, o2)
        sw2, sb2 = self.sigma_w**2, self.sigma_b**2
        first = sw2 * self.input_scale**2 / d
        ntk = kind == "ntk"
        c = ms.affine(ms.variable(u, 0, T), first, sb2)
        q1 = ms.affine(ms.variable(v, 1, T), first, sb2)
        q2 = ms.affine(ms.variable(w, 2, T), first, sb2)
        theta = c
        for _ in range(self.depth):
            V, Vc = dual_series(self.activation, c, q1, q2, T, slope=ntk, quadrature=self.quadrature)
            new_c = ms.affine(V, sw2, sb2)
            if ntk:
                theta = ms.add(new_c, ms.affine(ms.mul(Vc, theta, T), sw2))
            q1, q2 = (ms.affine(self._diagonal_dual(q, T), sw2, sb2) for q in (q1, q2))
            c = new_c
        return ms.partial_derivatives(theta if ntk else c)

    def _diagonal_dual(self, q: ms.Series, T: ms.Truncation) -> ms.Series:
        """V(q, q, q) = E[σ(u)²] at Var u = q (the next layer's variance), as a series."""
        return dual_series(self.activation, q, q, q, T, slope=False, quadrature=self.quadrature)[0]

    def _block(self, s1: Side, s2: Side, orders, kind: str) -> torch.Tensor:
        x, y = s1.value, s2.value
        u = x @ y.T
        n = max(s1.n, s2.n)
        if self.general:
            v, w = x.square().sum(-1)[:, None], y.square().sum(-1)[None, :]
            F = self.general_series(u, v, w, orders, kind, x.shape[-1])
            if orders == (0, 0):
                return F[ms.ZERO]
            G1 = slot_self_gram(s1.rows, s1.n) if orders[0] else None
            G2 = slot_self_gram(s2.rows, s2.n) if orders[1] else None
            return faa_di_bruno_general(F, slot_gram(s1.rows, s2.rows, s1.n, s2.n), G1, G2, n, orders)
        F = self.series(u, sum(orders), kind, x.shape[-1])
        if orders == (0, 0):
            return F[0]
        return faa_di_bruno(F, slot_gram(s1.rows, s2.rows, s1.n, s2.n), n, orders)

    def _potential_features(self, x1, x2, kind):
        u = (x1 * x2).sum(-1)
        if self.general:
            v, w = x1.square().sum(-1), x2.square().sum(-1)
            return self.general_series(u, v, w, (0, 0), kind, x1.shape[-1])[ms.ZERO]
        return self.series(u, 0, kind, x1.shape[-1])[0]


class _GaussianSumKernel(AnalyticKernel):
    """Shared cos-net / gauss-net kernels (module doc); subclasses set ``ntk_factor`` λ."""

    def __init__(
        self,
        sigma_a: float = 1.0,
        sigma_b: float = 1.0,
        feature_degree: int = 1,
        output_scale: float = 1.0,
        init: str = "centered",
        **features,
    ):
        super().__init__(feature_degree, output_scale, init, **features)
        self.sigma_a = _positive("sigma_a", sigma_a)
        self.sigma_b = _positive("sigma_b", sigma_b)

    ntk_factor = 2.0

    def _block(self, s1: Side, s2: Side, orders, kind: str) -> torch.Tensor:
        o1, o2 = orders
        x, y = s1.value, s2.value
        d = x.shape[-1]
        beta = self.sigma_b**2 / d
        E1 = coordinate_jets(x, *(s1.jet.d, s1.jet.dd) if o1 else (None, None), o1)
        E2 = coordinate_jets(y, *(s2.jet.d, s2.jet.dd) if o2 else (None, None), o2)
        tau = x[:, None, :] - y[None, :, :]
        g = hermite_gaussian(tau, beta, 4)  # g^(m)(x_j − y_j), m ≤ 4
        fx, fy = hermite_gaussian(x, beta, 2), hermite_gaussian(y, beta, 2)

        def G(p, q):  # ∂_s^p ∂_t^q g(s − t)
            return (-1) ** q * g[p + q]

        def FF(p, q):  # ∂_s^p ∂_t^q f(s) f(t)
            return fx[p][:, None, :] * fy[q][None, :, :]

        def XG(p, q):  # ∂_s^p ∂_t^q [s t g(s − t)]
            out = 0
            for i in range(min(p, 1) + 1):
                for k in range(min(q, 1) + 1):
                    s_part = x[:, None, :] if i == 0 else 1.0
                    t_part = y[None, :, :] if k == 0 else 1.0
                    out = out + math.comb(p, i) * math.comb(q, k) * s_part * t_part * G(p - i, q - k)
            return out

        F1 = {p: fx[p] for p in E1}
        F2 = {q: fy[q] for q in E2}
        nngp = diagonal_sum(G, E1, E2) + separable_sum(F1, F2, E1, E2) - diagonal_sum(FF, E1, E2)
        out = 0.5 * self.sigma_a**2 * nngp
        if kind == "ntk":
            out = self.ntk_factor * out + 0.5 * self.sigma_a**2 * beta * diagonal_sum(XG, E1, E2)
        if o2 == 0:
            out = out[..., 0]
        return out[:, :, 0] if o1 == 0 else out

    def _potential_features(self, x, y, kind):
        d = x.shape[-1]
        beta = self.sigma_b**2 / d
        g = torch.exp(-0.5 * beta * (x - y) ** 2)
        fx, fy = torch.exp(-0.5 * beta * x * x), torch.exp(-0.5 * beta * y * y)
        nngp = 0.5 * self.sigma_a**2 * (g.sum(-1) + fx.sum(-1) * fy.sum(-1) - (fx * fy).sum(-1))
        if kind == "nngp":
            return nngp
        return self.ntk_factor * nngp + 0.5 * self.sigma_a**2 * beta * (x * y * g).sum(-1)


class CosNetKernel(_GaussianSumKernel):
    """Infinite-width kernels of the cos-net (module doc): NTK = 2·NNGP + (σ_a²β/2) Σ_j x_j x'_j g."""

    ntk_factor = 2.0

    def __repr__(self) -> str:
        return f"CosNetKernel(sigma_a={self.sigma_a}, sigma_b={self.sigma_b}, feature_degree={self.feature_degree})"


class GaussNetKernel(_GaussianSumKernel):
    """Infinite-width kernels of the gauss-net (module doc): NTK = (1 + σ_c²)·NNGP + (σ_a²β/2) Σ_j x_j x'_j g."""

    def __init__(
        self,
        sigma_a: float = 1.0,
        sigma_b: float = 1.0,
        sigma_c: float = 0.5,
        feature_degree: int = 1,
        output_scale: float = 1.0,
        init: str = "centered",
        **features,
    ):
        super().__init__(sigma_a, sigma_b, feature_degree, output_scale, init, **features)
        self.sigma_c = _positive("sigma_c", sigma_c, allow_zero=True)
        self.ntk_factor = 1.0 + self.sigma_c**2

    def __repr__(self) -> str:
        return (
            f"GaussNetKernel(sigma_a={self.sigma_a}, sigma_b={self.sigma_b}, sigma_c={self.sigma_c}, "
            f"feature_degree={self.feature_degree})"
        )


class GaussianKernel(AnalyticKernel):
    """The Gaussian (RBF) kernel on the features, a frozen kernel with no network behind it.

    .. math::
        \\Theta(x, x') = \alpha^2 \\exp(-|x - x'|^2 / (2\\ell^2)) = \alpha^2 \\exp(-(1 - u)/\\ell^2),
        \\qquad u = x\\cdot x' = |\\langle z, z'\rangle|^{2k}/(|z|^{2k}|z'|^{2k}),

    since |x| = 1. It is the NNGP of an infinitely wide random-Fourier-feature network
    Σ_i a_i cos(b_i·x + c_i) with b ~ N(0, I/ℓ²) (up to σ_a²/2), the seed talk's "Gaussian
    kernel". As a function of u alone it takes the same Faà di Bruno fast path as the MLP
    kernels, with F^(k)(u) = ℓ^{−2k} F(u). NNGP and NTK are the same kernel here. On general
    features (feature_symmetry "phases") it is F(u, v, w) = exp((2u − v − w)/(2ℓ²)), the same
    exp(−|x − x'|²/(2ℓ²)), on the general route of the MLP kernels.

    Args:
        lengthscale: ℓ > 0 in feature space (features have |x − x'| ≤ √2).
    """

    def __init__(
        self,
        lengthscale: float = 0.5,
        feature_degree: int = 1,
        output_scale: float = 1.0,
        init: str = "centered",
        **features,
    ):
        super().__init__(feature_degree, output_scale, init, **features)
        self.lengthscale = _positive("lengthscale", lengthscale)

    def __repr__(self) -> str:
        return f"GaussianKernel(lengthscale={self.lengthscale}, feature_degree={self.feature_degree})"

    def series(self, u: torch.Tensor, order: int) -> list[torch.Tensor]:
        """[F(u), …, F^(order)(u)] without α²."""
        inv = 1.0 / self.lengthscale**2
        F = torch.exp((u - 1) * inv)
        return [F * inv**k for k in range(order + 1)]

    def general_series(self, u, v, w, orders) -> dict:
        """{(i, j, k): ∂_u^i ∂_v^j ∂_w^k F} of F = exp((2u − v − w)/(2ℓ²)) without α²."""
        inv = 1.0 / self.lengthscale**2
        F = torch.exp((2 * u - v - w) * (0.5 * inv))
        keys = ms.Truncation(sum(orders), orders[0], orders[1]).keys()
        return {(i, j, k): F * inv**i * (-0.5 * inv) ** (j + k) for i, j, k in keys}

    def _block(self, s1: Side, s2: Side, orders, kind: str) -> torch.Tensor:
        x, y = s1.value, s2.value
        n = max(s1.n, s2.n)
        if self.general:
            F = self.general_series(x @ y.T, x.square().sum(-1)[:, None], y.square().sum(-1)[None, :], orders)
            if orders == (0, 0):
                return F[ms.ZERO]
            G1 = slot_self_gram(s1.rows, s1.n) if orders[0] else None
            G2 = slot_self_gram(s2.rows, s2.n) if orders[1] else None
            return faa_di_bruno_general(F, slot_gram(s1.rows, s2.rows, s1.n, s2.n), G1, G2, n, orders)
        F = self.series(x @ y.T, sum(orders))
        if orders == (0, 0):
            return F[0]
        return faa_di_bruno(F, slot_gram(s1.rows, s2.rows, s1.n, s2.n), n, orders)

    def _potential_features(self, x1, x2, kind):
        if self.general:
            return self.general_series((x1 * x2).sum(-1), x1.square().sum(-1), x2.square().sum(-1), (0, 0))[ms.ZERO]
        return self.series((x1 * x2).sum(-1), 0)[0]


KERNELS = {"mlp": MLPKernel, "cosnet": CosNetKernel, "gaussnet": GaussNetKernel, "gaussian": GaussianKernel}
_OPTIONS = {
    "mlp": ("depth", "activation", "sigma_w", "sigma_b", "input_scale"),
    "cosnet": ("sigma_a", "sigma_b"),
    "gaussnet": ("sigma_a", "sigma_b", "sigma_c"),
    "gaussian": ("lengthscale",),
}
_IGNORED = {"_target_", "network", "width", "parameterization", "seed", "n_coords", "kahler_t", "max_features"}
_FEATURE_OPTIONS = ("feature_degree", "feature_symmetry", "phases", "phase_order", "output_scale", "init", "general",
                    "factors")


def analytic_kernel(model, **overrides) -> AnalyticKernel:
    """The infinite-width kernel of a KahlerPotential or of a model config (conf/model/*.yaml).

    Args:
        model: a KahlerPotential, or a mapping with ``network`` ("mlp", "cosnet", "gaussnet",
            or "gaussian": the RBF kernel on the features, lengthscale ℓ, no network)
            and the width-independent options (depth, activation, sigma_w, sigma_b, sigma_a,
            sigma_c, feature_degree, output_scale, init) and the feature options
            (feature_symmetry; with "phases" also phases and phase_order, the manifold's phase
            symmetries, which nnflow-train passes); width and _target_ are ignored.
        overrides: extra constructor options (e.g. quadrature=True).
    Raises:
        ValueError: for parameterization "standard" (the kernels are derived for "ntk"),
            an unknown network, or an unknown option.
    """
    cfg = _config_of(model)
    network = cfg.pop("network", "mlp")
    if network not in KERNELS:
        raise ValueError(f"unknown network {network!r}; choose from {sorted(KERNELS)}")
    param = cfg.get("parameterization", "ntk")
    if param != "ntk":
        raise ValueError(f"analytic kernels are derived for parameterization 'ntk'; got {param!r}")
    if cfg.get("feature_symmetry", "none") == "none":  # phases without the symmetry are not used
        cfg.pop("phases", None)
        cfg.pop("phase_order", None)
    known = set(_OPTIONS[network]) | set(_FEATURE_OPTIONS)
    options = {}
    for key, value in cfg.items():
        if key in known:
            options[key] = value
        elif key not in _IGNORED:
            raise ValueError(f"unknown option {key!r} for the {network} kernel; expected {sorted(known)}")
    options.update(overrides)
    return KERNELS[network](**options)


def _config_of(model) -> dict:
    if hasattr(model, "network") and hasattr(model, "features"):  # a KahlerPotential
        net = model.network
        name = {"MLP": "mlp", "CosNet": "cosnet", "GaussNet": "gaussnet"}.get(type(net).__name__)
        if name is None:
            raise ValueError(f"no analytic kernel for network {type(net).__name__}")
        cfg = {key: getattr(net, key) for key in _OPTIONS[name] if hasattr(net, key)}
        cfg.update(
            network=name,
            parameterization=net.parameterization,
            feature_degree=model.features.degree if model.factors is None else list(model.features.degrees),
            feature_symmetry="none" if model.features.phases is None else "phases",
            output_scale=model.output_scale,
            init=model.init,
        )
        if model.features.phases is not None:
            cfg.update(phases=model.features.phases, phase_order=model.features.phase_order)
        if model.factors is not None:
            cfg["factors"] = model.factors
        return cfg
    if not isinstance(model, Mapping):  # a DictConfig is a Mapping too
        raise TypeError(f"expected a KahlerPotential or a config mapping; got {type(model).__name__}")
    return {key: model[key] for key in model}
