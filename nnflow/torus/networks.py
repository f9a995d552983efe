"""Networks for metrics on the torus T^n = R^n/Z^n: periodic inputs, one network per component.

Inputs are the periodic features p(θ) = (cos 2πθ_1, …, cos 2πθ_n, sin 2πθ_1, …, sin 2πθ_n)
∈ R^{2n} (d = 2n, |p|² = n), so every network is a smooth function on T^n.

The seed talk's cos-net and gauss-net (``nnflow.models.networks``) sum over the inputs
*outside* the activation, φ = Σ_i a_i Σ_j cos(b_ij x_j + c_i): a sum of one-feature functions,
whose kernel is a *sum* over features of one-dimensional Gaussians. On T^n (n ≥ 2) such a
network cannot represent a general metric component (only sums of functions of one
coordinate), and its σ_b → ∞ kernel concentrates on hyperplanes, not at a point. A local
metric-NTK needs the *product* Gaussian exp(−σ_b²|x − x'|²/2d), which the same networks give
with the sum inside (random Fourier features):

    product cos-net:   φ(x) = Σ_i a_i cos(Σ_j b_ij x_j + c_i)
    product gauss-net: φ(x) = Σ_i a_i exp(Σ_j b_ij x_j + c_i − σ_c² − σ_b²|x|²/d)

with the parent classes' parameters, initialization and NTK/standard parameterization
(a ~ N(0, σ_a²/N) resp. N(0, σ_a²/2N), b ~ N(0, σ_b²/d), c ~ U[−π, π] resp. N(0, σ_c²)).
Their infinite-width tangent kernels (NTK parameterization; ``nnflow.torus.kernel_flow``
states them on the periodic features) are

    cos:   Θ̄(x, x') = σ_a²/2 · e^{−σ_b²|x−x'|²/2d} · (2 + σ_b² x·x'/d)
    gauss: Θ̄(x, x') = σ_a²/2 · e^{−σ_b²|x−x'|²/2d} · (1 + σ_c² + σ_b² x·x'/d).

On p(θ), |p − p'|² = 2Σ_l(1 − cos 2πΔ_l) and p·p' = Σ_l cos 2πΔ_l (Δ = θ − θ'), so both are
stationary on T^n, with width σ_θ = √d/(2πσ_b) in θ.
"""

from __future__ import annotations

import copy
import math

import torch
from torch.func import functional_call, jvp, stack_module_state, vmap

from nnflow.models.networks import CosNet, GaussNet
from nnflow.torus.geometry import MetricFn


def periodic_features(theta: torch.Tensor) -> torch.Tensor:
    """p(θ) = (cos 2πθ, sin 2πθ): (..., n) → (..., 2n)."""
    x = 2 * math.pi * theta
    return torch.cat([torch.cos(x), torch.sin(x)], -1)


class ProductCosNet(CosNet):
    """φ(x) = Σ_i a_i cos(Σ_j b_ij x_j + c_i): CosNet with the input sum inside the cosine.

    Same constructor, parameters and parameterizations as ``CosNet``; NNGP kernel
    σ_a²/2·exp(−σ_b²|x−x'|²/2d). Jets (``jet``) are not provided: derivatives go through
    torch.func.
    """

    def _phase(self, x):
        u = x @ (self.b * self.scales[1]).T + self.c  # (..., N)
        return u[..., None]  # (..., N, 1): CosNet.forward sums a_i cos(u_i) over this one column

    def jet(self, jet):
        raise NotImplementedError("ProductCosNet has no packed jets; differentiate with torch.func")


class ProductGaussNet(GaussNet):
    """φ(x) = Σ_i a_i exp(Σ_j b_ij x_j + c_i − σ_c² − σ_b²|x|²/d): GaussNet with the sum inside.

    Same constructor and parameters as ``GaussNet``; NNGP kernel σ_a²/2·exp(−σ_b²|x−x'|²/2d).
    """

    def _terms(self, x):
        b, c = self.b * self.scales[1], self.c * self.scales[2]
        damp = self.sigma_c**2 + self.sigma_b**2 * (x * x).sum(-1, keepdim=True) / self.in_dim  # (..., 1)
        return torch.exp(x @ b.T + c - damp)[..., None], b  # (..., N, 1)

    def jet(self, jet):
        raise NotImplementedError("ProductGaussNet has no packed jets; differentiate with torch.func")


PRODUCT_NETWORKS = {"cosnet": ProductCosNet, "gaussnet": ProductGaussNet}


def upper_indices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns (i ≤ j) of the C = n(n+1)/2 independent components of a symmetric n×n."""
    return torch.triu_indices(n, n)


def symmetric_basis(n: int) -> torch.Tensor:
    """E (C, n, n): E_c = e_i e_jᵀ + e_j e_iᵀ for i < j and e_i e_iᵀ for i = j (c over ``upper_indices``).

    A symmetric matrix is Σ_c h_c E_c with h_c = h_ij (i ≤ j).
    """
    rows, cols = upper_indices(n)
    E = torch.zeros(len(rows), n, n, dtype=torch.float64)
    E[torch.arange(len(rows)), rows, cols] = 1.0
    E[torch.arange(len(rows)), cols, rows] = 1.0
    return E


class TorusMetricNet:
    """g_ij(θ) = g0_ij(θ) + α [f_c(p(θ); w_c) − f_c(p(θ); w_c⁰)], one network f_c per component.

    c runs over the C = n(n+1)/2 entries i ≤ j (g_ji = g_ij); the networks share nothing (a
    non-mixing metric-NTK: Θ_{ij,kl}(θ, θ') = 0 unless {i,j} = {k,l}). At w = w⁰ the metric is
    exactly g0 ("centered" start). Parameters are stacked over components (``stack_module_state``)
    and everything is functional in them, for torch.func.

    Args:
        n: torus dimension. g0: callable θ (..., n) → (..., n, n), the initial metric.
        kind: "cosnet" | "gaussnet" (product forms above). width: N hidden units per network.
        sigma_b, sigma_a, sigma_c: as in ``CosNet``/``GaussNet`` (σ_c only for gauss-net).
        parameterization: "ntk" | "standard". alpha: output scale α. seed: initialization.
    Attributes:
        params0: dict of stacked initial parameters, each (C, ...). dim: d = 2n.
    """

    def __init__(
        self,
        n: int,
        g0: MetricFn,
        kind: str = "cosnet",
        width: int = 256,
        sigma_b: float = 1.0,
        sigma_a: float = 1.0,
        sigma_c: float = 0.5,
        parameterization: str = "ntk",
        alpha: float = 1.0,
        seed: int = 0,
    ):
        if kind not in PRODUCT_NETWORKS:
            raise ValueError(f"unknown torus network {kind!r}; choose from {sorted(PRODUCT_NETWORKS)}")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive; got {alpha!r}")
        self.n, self.g0, self.kind, self.width, self.alpha = n, g0, kind, width, float(alpha)
        self.parameterization = parameterization
        self.sigma_a, self.sigma_b, self.sigma_c = float(sigma_a), float(sigma_b), float(sigma_c)
        self.dim = 2 * n
        self.rows, self.cols = upper_indices(n)
        self.basis = symmetric_basis(n)
        kwargs = dict(width=width, sigma_a=sigma_a, sigma_b=sigma_b, parameterization=parameterization)
        if kind == "gaussnet":
            kwargs["sigma_c"] = sigma_c
        gen_state, dtype = torch.random.get_rng_state(), torch.get_default_dtype()
        torch.manual_seed(seed)
        torch.set_default_dtype(torch.float64)  # float64 parameters whatever the caller's default dtype
        try:
            nets = [PRODUCT_NETWORKS[kind](self.dim, **kwargs) for _ in range(len(self.rows))]
        finally:
            torch.random.set_rng_state(gen_state)
            torch.set_default_dtype(dtype)
        params, _ = stack_module_state(nets)
        self.params0 = {k: v.detach().clone() for k, v in params.items()}
        self._base = copy.deepcopy(nets[0]).to("meta")

    @property
    def n_components(self) -> int:
        return len(self.rows)

    def n_parameters(self) -> int:
        return sum(v.numel() for v in self.params0.values())

    def components(self, params: dict, theta: torch.Tensor) -> torch.Tensor:
        """f_c(p(θ); w_c) for all components: θ (..., n) → (..., C)."""
        x = periodic_features(theta)

        def one(p):
            return functional_call(self._base, p, (x,))

        return vmap(one, out_dims=-1)(params)

    def _assemble(self, theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return self.g0(theta) + self.alpha * torch.einsum("...c,cij->...ij", delta, self.basis.to(delta))

    def metric(self, params: dict, theta: torch.Tensor) -> torch.Tensor:
        """g(θ; w): θ (..., n) → (..., n, n) (the finite network)."""
        return self._assemble(theta, self.components(params, theta) - self.components(self.params0, theta))

    def linearized_metric(self, dparams: dict, theta: torch.Tensor) -> torch.Tensor:
        """g_lin(θ; w⁰ + δw) = g0(θ) + α ⟨∇_w f(p(θ); w⁰), δw⟩ (the linearized model)."""
        _, tangent = jvp(lambda p: self.components(p, theta), (self.params0,), (dparams,))
        return self._assemble(theta, tangent)

    # ------------------------------------------------------------------ tensor-grid evaluation
    def grid_components(self, params: dict, *axes: torch.Tensor) -> torch.Tensor:
        """f_c on the tensor grid θ = axes[0] × … × axes[n−1]: (M_1, …, M_n, C); same values as
        ``components`` (a test checks it) at O(n M N + M^n N) cost instead of O(M^n N d).

        On p(θ) the pre-activation separates over coordinates,
        Σ_j b_ij p_j(θ) = Σ_l β_il(θ_l), β_il(t) = s_b (b_i,l cos 2πt + b_i,n+l sin 2πt), so
            cos-net:   f = Re Σ_i s_a a_i e^{i c_i} Π_l e^{i β_il(θ_l)}
            gauss-net: f = Σ_i s_a a_i e^{s_c c_i − σ_c²} Π_l e^{β_il(θ_l) − σ_b²/2n}   (|p|² = n)
        and the sum over i is one einsum over per-axis factors (M_l, N).
        """
        factors, weight = self._factors(params, axes)
        out = self._contract(weight, factors)
        return out.real if self.kind == "cosnet" else out

    def _scales(self) -> tuple[float, float, float]:
        return self._base.scales

    def _factor_fn(self, params: dict, l: int):
        """t (M,) ↦ the axis-l factor, real: (2, M, C, N) = (cos β_l, sin β_l) for cos-net (the
        complex factor e^{iβ_l}), or (1, M, C, N) = e^{β_l(t) − σ_b²/2n} for gauss-net."""
        n = self.n
        s_b = self._scales()[1]
        b_cos, b_sin = params["b"][..., l] * s_b, params["b"][..., n + l] * s_b  # (C, N)

        def factor(t):
            x = 2 * math.pi * t[:, None, None]
            beta = b_cos * torch.cos(x) + b_sin * torch.sin(x)
            if self.kind == "cosnet":
                return torch.stack([torch.cos(beta), torch.sin(beta)])
            return torch.exp(beta - self.sigma_b**2 / (2 * n))[None]

        return factor

    def _as_factor(self, real: torch.Tensor) -> torch.Tensor:
        return torch.complex(real[0], real[1]) if self.kind == "cosnet" else real[0]

    def _weight(self, params: dict) -> torch.Tensor:
        s_a, _, s_c = self._scales()
        a, c = params["a"] * s_a, params["c"] * s_c
        if self.kind == "cosnet":
            return a * torch.exp(1j * c)
        return a * torch.exp(c - self.sigma_c**2)

    def _factors(self, params: dict, axes):
        n = self.n
        if len(axes) != n:
            raise ValueError(f"expected {n} axis vectors; got {len(axes)}")
        return [self._as_factor(self._factor_fn(params, l)(t)) for l, t in enumerate(axes)], self._weight(params)

    def _contract(self, weight, factors):
        letters = "pqrstuvw"[: len(factors)]
        spec = "ci," + ",".join(f"{x}ci" for x in letters) + f"->{letters}c"
        return torch.einsum(spec, weight, *factors)

    def grid_component_jets(self, params: dict, *axes: torch.Tensor):
        """(f, ∂f, ∂∂f) of the components on the tensor grid: (M..., C), (M..., C, n), (M..., C, n, n).

        Each axis factor depends on one coordinate: with β_l(t), β_l' = 2π s_b(−b_l sin 2πt +
        b_{n+l} cos 2πt), β_l'' = −(2π)²(β_l at c = 0), the factor's derivatives are
        (e^{iβ})' = iβ' e^{iβ}, (e^{iβ})'' = (iβ'' − β'²) e^{iβ} (gauss: (β' , β'' + β'²)·e^β).
        ∂_l f and ∂_l∂_m f are then one contraction each, with factor l (and m) replaced by
        its derivative. Tests check these jets against ``torch.func`` (``tensor_grid_jets`` of
        ``grid_components`` and per-point ``metric_jets`` of the module forward).
        """
        n = self.n
        if len(axes) != n:
            raise ValueError(f"expected {n} axis vectors; got {len(axes)}")
        weight = self._weight(params)
        s_b = self._scales()[1]
        F0, F1, F2 = [], [], []
        for l, t in enumerate(axes):
            b_cos, b_sin = params["b"][..., l] * s_b, params["b"][..., n + l] * s_b  # (C, N)
            x = 2 * math.pi * t[:, None, None]
            cx, sx = torch.cos(x), torch.sin(x)
            beta = b_cos * cx + b_sin * sx
            beta1 = 2 * math.pi * (b_sin * cx - b_cos * sx)
            beta2 = -(2 * math.pi) ** 2 * beta
            if self.kind == "cosnet":
                z = torch.complex(torch.cos(beta), torch.sin(beta))
                F0.append(z)
                F1.append(1j * beta1 * z)
                F2.append((1j * beta2 - beta1 * beta1) * z)
            else:
                e = torch.exp(beta - self.sigma_b**2 / (2 * n))
                F0.append(e)
                F1.append(beta1 * e)
                F2.append((beta2 + beta1 * beta1) * e)

        def contract(replace: dict):
            out = self._contract(weight, [replace.get(l, F0[l]) for l in range(n)])
            return out.real if self.kind == "cosnet" else out

        f = contract({})
        d = torch.stack([contract({m: F1[m]}) for m in range(n)], -1)
        dd = torch.empty(d.shape + (n,), dtype=d.dtype, device=d.device)
        for m in range(n):
            for l in range(m, n):
                v = contract({m: F2[m]}) if l == m else contract({m: F1[m], l: F1[l]})
                dd[..., m, l] = v
                dd[..., l, m] = v
        return f, d, dd

    def _assemble_grid(self, axes, delta: torch.Tensor) -> torch.Tensor:
        theta = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)
        return self.g0(theta) + self.alpha * torch.einsum("...c,cij->...ij", delta, self.basis.to(delta))

    def grid_metric(self, params: dict, *axes: torch.Tensor) -> torch.Tensor:
        """g on the tensor grid: (M_1, …, M_n, n, n) (the finite network)."""
        return self._assemble_grid(
            axes, self.grid_components(params, *axes) - self.grid_components(self.params0, *axes)
        )

    def grid_linearized_metric(self, dparams: dict, *axes: torch.Tensor) -> torch.Tensor:
        """g_lin on the tensor grid: g0 + α ⟨∇_w f(w⁰), δw⟩ (the linearized model)."""
        _, tangent = jvp(lambda p: self.grid_components(p, *axes), (self.params0,), (dparams,))
        return self._assemble_grid(axes, tangent)

    def metric_fn(self, params: dict, linearized: bool = False) -> MetricFn:
        """θ ↦ g(θ) for fixed parameters (or parameter offsets δw when linearized)."""
        if linearized:
            return lambda theta: self.linearized_metric(params, theta)
        return lambda theta: self.metric(params, theta)
