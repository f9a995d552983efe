"""Scalar networks φ(x) on real feature vectors x ∈ R^d, with second-order jets.

Every network maps (B, d) → (B,) and propagates a ``Jet`` (value, ∂_a, ∂_a∂̄_b) exactly, layer
by layer, so the metric ∂∂̄φ costs a few matrix products per layer instead of an input
Hessian per point. Parameterizations:

- ``ntk``: parameters are N(0, 1); a layer computes u = (σ_w/√fan_in)·W h + σ_b·b. The
  infinite-width limit of its tangent kernel is deterministic (Jacot et al.).
- ``standard``: W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²); u = W h + b. Same function at
  initialization, different training dynamics.
- ``mup`` (MLP only): the maximal-update parameterization (Yang & Hu 2021, Tensor Programs V,
  table 3), stored like ``standard`` (u = W h + b, the scales in the parameters) with a base
  width N0 (``base_width``, default MUP_BASE_WIDTH) and width multiplier m = N/N0. Per layer,
  the initial standard deviation and the learning-rate factor that multiplies the optimizer's
  lr η (``MLP.lr_scales``, applied as optimizer param groups by ``lr_groups``):

      parameter                  init std         Adam lr    SGD lr
      input weights W_0 (N × d)  σ_w·s/√d         η          η·m
      hidden weights (N × N)     σ_w/√N           η/m        η
      output weights (1 × N)     σ_w·√N0/N        η/m        η/m
      hidden biases (N)          σ_b              η          η·m
      output bias (1)            σ_b              η          η

  (variances 1/fan_in, 1/fan_in and 1/fan_in² up to the N0 factors, which make a width-N0 network
  exactly the ``standard`` one). Every layer's pre-activations then change by O(1) per step at
  every width, and a learning rate tuned at width N0 transfers to other widths; its
  infinite-width limit learns features (no frozen kernel; nnflow.kernels has none for it).

Cos-net and gauss-net follow the seed talk (Halverson & Ruehle):
    cos-net:   φ(x) = Σ_i a_i Σ_j cos(b_ij x_j + c_i),
               a ~ N(0, σ_a²/N), b ~ N(0, σ_b²/d), c ~ U[−π, π];
    gauss-net: φ(x) = Σ_i a_i Σ_j exp(b_ij x_j + c_i) / sqrt(exp[2(σ_c² + σ_b² x_j²/d)]),
               a ~ N(0, σ_a²/2N), b ~ N(0, σ_b²/d), c ~ N(0, σ_c²).
Both have the Gaussian NNGP kernel σ_a²/2·[Σ_j e^{−σ_b²(x_j−x'_j)²/2d} + Σ_{j≠k} e^{−σ_b²(x_j²+x'_k²)/2d}].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nnflow.models.jets import Jet, activation_packed, linear_packed, pack_jet, unpack_jet

SQRT2PI = math.sqrt(2 * math.pi)


def _gelu(u):
    pdf = torch.exp(-0.5 * u * u) / SQRT2PI
    cdf = 0.5 * (1 + torch.erf(u / math.sqrt(2)))
    return u * cdf, cdf + u * pdf, pdf * (2 - u * u)


def _tanh(u):
    t = torch.tanh(u)
    s = 1 - t * t
    return t, s, -2 * t * s


def _erf(u):
    e = torch.exp(-u * u) * (2 / math.sqrt(math.pi))
    return torch.erf(u), e, -2 * u * e


def _softplus(u):
    s = torch.sigmoid(u)
    return nn.functional.softplus(u), s, s * (1 - s)


def _relu(u):
    step = (u > 0).to(u.dtype)
    return u * step, step, torch.zeros_like(u)


def _sin(u):
    s, c = torch.sin(u), torch.cos(u)
    return s, c, -s


def _cos(u):
    s, c = torch.sin(u), torch.cos(u)
    return c, -s, -c


def _gaussian(u):
    e = torch.exp(-0.5 * u * u)
    return e, -u * e, (u * u - 1) * e


ACTIVATIONS = {
    "gelu": _gelu,
    "tanh": _tanh,
    "erf": _erf,
    "softplus": _softplus,
    "relu": _relu,
    "sin": _sin,
    "cos": _cos,
    "gaussian": _gaussian,
}
PARAMETERIZATIONS = ("ntk", "standard", "mup")
# μP's base width N0: a width-N0 μP network is the standard one, and its learning rate is η.
MUP_BASE_WIDTH = 64
# Optimizer families with a μP learning-rate table (MLP.lr_scales).
MUP_OPTIMIZERS = ("adam", "sgd")


def _check(name: str, value, positive: bool = True, integer: bool = False) -> None:
    if integer and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be positive; got {value!r}")


def _check_parameterization(parameterization: str, allowed: tuple[str, ...] = PARAMETERIZATIONS) -> None:
    if parameterization not in allowed:
        raise ValueError(f"unknown parameterization {parameterization!r}; choose from {allowed}")


# The dtype every network draws its initial parameters in, whatever the default dtype: one seed
# gives one θ0 in every precision and every app (a float64 model's θ0 is the float32 model's,
# cast exactly; torch's float32 and float64 samplers give different numbers from one seed).
# float32, because nnflow-train has always built its models under torch's float32 default and
# cast them (``model.to(dtype)``): every training run, float64 included, keeps its θ0 bit for bit.
PARAMETER_DRAW_DTYPE = torch.float32


def _parameter(draw: torch.Tensor) -> nn.Parameter:
    """A parameter from a draw (PARAMETER_DRAW_DTYPE, scaled in that dtype), cast to the default dtype."""
    return nn.Parameter(draw.to(torch.get_default_dtype()))


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=PARAMETER_DRAW_DTYPE)


def _rand(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, dtype=PARAMETER_DRAW_DTYPE)


def _separable_jet(jet: Jet, f0, f1, f2) -> Jet:
    """Jet of Σ_j F_j(x_j) given F_j(x_j), F_j', F_j'' (each (B, d)): one output."""
    d = (jet.d * f1[:, None, :]).sum(-1, keepdim=True)
    outer = (jet.d[:, :, None, :] * jet.d.conj()[:, None, :, :] * f2[:, None, None, :]).sum(-1)
    dd = outer + (jet.dd * f1[:, None, None, :]).sum(-1)
    return Jet(f0.sum(-1, keepdim=True), d, dd[..., None])


# ---------------------------------------------------------------------- networks
class MLP(nn.Module):
    """Fully connected scalar network with ``depth`` hidden layers of ``width`` units.

    Args:
        in_dim: d, number of input features.
        width: hidden units per layer (> 0).
        depth: hidden layers (≥ 1).
        activation: one of ACTIVATIONS.
        parameterization: "ntk", "standard" or "mup" (module doc: μP's table).
        sigma_w, sigma_b: weight and bias scales.
        input_scale: s, the network computes φ(s·x) (pre-activations of the first layer have
            variance σ_w² s² |x|²/d + σ_b²; features have |x| = 1, so s = √d makes them O(1)).
        base_width: N0 of "mup" (None: MUP_BASE_WIDTH); refused with the other parameterizations.
    Parameters (drawn in PARAMETER_DRAW_DTYPE, then cast to the default dtype, ``_parameter``):
        weights[l] (fan_out, fan_in), biases[l] (fan_out,), l = 0 .. depth.
    Attributes:
        w_scales, b_scales: per layer, the fixed factors ω_l, β_l of u = ω_l W_l h + β_l b_l
            (σ_w/√fan_in and σ_b for "ntk", the input scale folded into ω_0; 1 for "standard"
            and "mup").
    """

    def __init__(
        self,
        in_dim: int,
        width: int = 64,
        depth: int = 2,
        activation: str = "gelu",
        parameterization: str = "ntk",
        sigma_w: float = 1.0,
        sigma_b: float = 0.1,
        input_scale: float = 1.0,
        base_width: int | None = None,
    ):
        super().__init__()
        _check("width", width, integer=True)
        _check("depth", depth, integer=True)
        _check("input_scale", input_scale)
        _check("sigma_w", sigma_w)
        _check("sigma_b", sigma_b, positive=False)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        _check_parameterization(parameterization)
        if base_width is not None and parameterization != "mup":
            raise ValueError(f"base_width applies to parameterization 'mup' only; got {parameterization!r}")
        base_width = MUP_BASE_WIDTH if base_width is None else base_width
        _check("base_width", base_width, integer=True)
        self.base_width = base_width if parameterization == "mup" else None
        self.in_dim, self.width, self.depth = in_dim, width, depth
        self.activation, self.parameterization = activation, parameterization
        self.sigma_w, self.sigma_b = float(sigma_w), float(sigma_b)
        self.input_scale = float(input_scale)
        sizes = [in_dim] + [width] * depth + [1]
        weights, biases = [], []
        self.w_scales, self.b_scales = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w, b = _randn(fan_out, fan_in), _randn(fan_out)  # this order: the seed's draw sequence
            if parameterization == "ntk":
                self.w_scales.append(self.sigma_w / math.sqrt(fan_in))
                self.b_scales.append(self.sigma_b)
            else:
                w, b = w * (self.sigma_w / math.sqrt(fan_in)), b * self.sigma_b
                self.w_scales.append(1.0)
                self.b_scales.append(1.0)
            weights.append(w)
            biases.append(b)
        # The network sees input_scale·x: unit-norm features have components ~1/√d, so
        # input_scale ~ √d puts the first pre-activations at O(1) (folded into layer 0).
        if parameterization == "ntk":
            self.w_scales[0] *= self.input_scale
        else:
            weights[0] = weights[0] * self.input_scale
        if parameterization == "mup":  # output std σ_w·√N0/N instead of σ_w/√N (variance ∝ 1/fan_in²)
            weights[-1] = weights[-1] * math.sqrt(base_width / width)
        self.weights = nn.ParameterList([_parameter(w) for w in weights])
        self.biases = nn.ParameterList([_parameter(b) for b in biases])

    @torch.no_grad()
    def zero_output_(self) -> None:
        """Zero the output layer (φ ≡ 0; only that layer gets gradient at first)."""
        self.weights[-1].zero_()
        self.biases[-1].zero_()

    def lr_scales(self, optimizer: str = "adam") -> dict[str, float]:
        """Learning-rate factors by parameter name ("weights.0", "biases.2", …) for ``optimizer``
        ("adam" or "sgd", MUP_OPTIMIZERS): μP's table (module doc); {} (every factor 1) for "ntk"
        and "standard". ValueError for μP with another optimizer family (no table)."""
        if self.parameterization != "mup":
            return {}
        if optimizer not in MUP_OPTIMIZERS:
            raise ValueError(f"parameterization 'mup' has learning-rate tables for {MUP_OPTIMIZERS}; got {optimizer!r}")
        m = self.width / self.base_width
        adam = optimizer == "adam"
        scales = {}
        for layer in range(self.depth + 1):
            if layer == 0:
                w_scale = 1.0 if adam else m
            elif layer < self.depth:
                w_scale = 1 / m if adam else 1.0
            else:
                w_scale = 1 / m
            scales[f"weights.{layer}"] = w_scale
            scales[f"biases.{layer}"] = 1.0 if adam or layer == self.depth else m
        return scales

    def preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """u_l = ω_l W_l h_{l−1} + β_l b_l for l = 0 .. depth: (..., d) → depth + 1 tensors (..., fan_out);
        the last is φ(x)[..., None]."""
        act = ACTIVATIONS[self.activation]
        h, us = x, []
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = nn.functional.linear(h, w * self.w_scales[layer], b * self.b_scales[layer])
            us.append(h)
            if layer < self.depth:
                h = act(h)[0]
        return us

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x): (..., d) → (...)."""
        return self.preactivations(x)[-1].squeeze(-1)

    def jet(self, jet: Jet) -> Jet:
        """Propagate a feature jet (B, n, d) to the output jet (B, n, 1)."""
        n = jet.d.shape[1]
        return unpack_jet(self.jet_packed(pack_jet(jet), n), n)

    def jet_packed(self, T: torch.Tensor, n: int) -> torch.Tensor:
        """The jet on packed real tensors (models/jets.py): (B, 1 + 2n + n², d) → (B, 1 + 2n + n², 1).

        All real and free of data-dependent shapes, so torch.compile can fuse a layer's
        elementwise work into a few kernels (training's ``compile`` option).
        """
        act = ACTIVATIONS[self.activation]
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            T = linear_packed(T, w * self.w_scales[layer], b * self.b_scales[layer])
            if layer < self.depth:
                T = activation_packed(T, n, act)
        return T


class _SeparableNet(nn.Module):
    """Shared part of cos-net and gauss-net: φ(x) = Σ_i a_i Σ_j F(b_ij x_j + c_i, x_j).

    Holds the checks, a (N,), b (N, d), c (N,) drawn in PARAMETER_DRAW_DTYPE (``_parameter``) and their
    scales: in the "ntk" parameterization parameters are N(0, 1)-like draws times fixed
    scales; in "standard" the scales are folded into the parameters.
    """

    def __init__(self, in_dim: int, width: int, sigma_a: float, sigma_b: float, parameterization: str):
        super().__init__()
        _check("width", width, integer=True)
        _check("sigma_a", sigma_a)
        _check("sigma_b", sigma_b)
        _check_parameterization(parameterization, ("ntk", "standard"))
        self.in_dim, self.width, self.parameterization = in_dim, width, parameterization
        self.sigma_a, self.sigma_b = float(sigma_a), float(sigma_b)

    def _init_parameters(self, a, b, c, scales: tuple[float, float, float]) -> None:
        """a, b, c: draws; scales (a, b, c) applied in "standard", kept aside in "ntk"."""
        ntk = self.parameterization == "ntk"
        self.a = _parameter(a * (1.0 if ntk else scales[0]))
        self.b = _parameter(b * (1.0 if ntk else scales[1]))
        self.c = _parameter(c * (1.0 if ntk else scales[2]))
        self._scales = scales if ntk else (1.0, 1.0, 1.0)

    @property
    def scales(self) -> tuple[float, float, float]:
        """The NTK-parameterization factors (s_a, s_b, s_c) applied in forward ((1, 1, 1) in "standard")."""
        return self._scales

    @torch.no_grad()
    def zero_output_(self) -> None:
        """Zero the output weights a (φ ≡ 0)."""
        self.a.zero_()


class CosNet(_SeparableNet):
    """φ(x) = Σ_i a_i Σ_j cos(b_ij x_j + c_i) with N = ``width`` terms (see module doc).

    Parameters: a (N,), b (N, d), c (N,) ~ U[−π, π] (never rescaled).
    """

    def __init__(self, in_dim: int, width: int = 256, sigma_a: float = 1.0, sigma_b: float = 1.0,
                 parameterization: str = "ntk"):
        super().__init__(in_dim, width, sigma_a, sigma_b, parameterization)
        a_scale, b_scale = sigma_a / math.sqrt(width), sigma_b / math.sqrt(in_dim)
        a, b = _randn(width), _randn(width, in_dim)
        c = (_rand(width) * 2 - 1) * math.pi
        self._init_parameters(a, b, c, (a_scale, b_scale, 1.0))  # c's scale 1: c ~ U[−π, π] as drawn

    def _phase(self, x):
        return (self.b * self._scales[1]) * x[..., None, :] + self.c[:, None]  # (..., N, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a * self._scales[0]
        return torch.einsum("i,...ij->...", a, torch.cos(self._phase(x)))

    def jet(self, jet: Jet) -> Jet:
        a, b = self.a * self._scales[0], self.b * self._scales[1]
        u = self._phase(jet.value)
        cos, sin = torch.cos(u), torch.sin(u)
        f0 = torch.einsum("i,bij->bj", a, cos)
        f1 = -torch.einsum("i,ij,bij->bj", a, b, sin)
        f2 = -torch.einsum("i,ij,bij->bj", a, b * b, cos)
        return _separable_jet(jet, f0, f1, f2)


class GaussNet(_SeparableNet):
    """φ(x) = Σ_i a_i Σ_j exp(b_ij x_j + c_i − σ_c² − σ_b² x_j²/d) (see module doc).

    Parameters: a (N,), b (N, d), c (N,).
    """

    def __init__(self, in_dim: int, width: int = 256, sigma_a: float = 1.0, sigma_b: float = 1.0,
                 sigma_c: float = 0.5, parameterization: str = "ntk"):
        super().__init__(in_dim, width, sigma_a, sigma_b, parameterization)
        _check("sigma_c", sigma_c, positive=False)
        self.sigma_c = float(sigma_c)
        scales = (sigma_a / math.sqrt(2 * width), sigma_b / math.sqrt(in_dim), sigma_c)
        self._init_parameters(_randn(width), _randn(width, in_dim), _randn(width), scales)

    def _terms(self, x):
        b, c = self.b * self._scales[1], self.c * self._scales[2]
        damp = self.sigma_c**2 + self.sigma_b**2 * x * x / self.in_dim  # (..., d)
        return torch.exp(b * x[..., None, :] + c[:, None] - damp[..., None, :]), b  # (..., N, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, _ = self._terms(x)
        return torch.einsum("i,...ij->...", self.a * self._scales[0], e)

    def jet(self, jet: Jet) -> Jet:
        a = self.a * self._scales[0]
        x = jet.value
        e, b = self._terms(x)
        slope = b - (2 * self.sigma_b**2 / self.in_dim) * x[:, None, :]  # (B, N, d)
        f0 = torch.einsum("i,bij->bj", a, e)
        f1 = torch.einsum("i,bij->bj", a, slope * e)
        f2 = torch.einsum("i,bij->bj", a, (slope * slope - 2 * self.sigma_b**2 / self.in_dim) * e)
        return _separable_jet(jet, f0, f1, f2)


NETWORKS = {"mlp": MLP, "cosnet": CosNet, "gaussnet": GaussNet}


def lr_factors(model: nn.Module, optimizer: str = "adam") -> dict[str, float]:
    """Learning-rate factors by full parameter name (``model.named_parameters()``): those that
    the submodules with ``lr_scales(optimizer)`` set (an MLP; a LinearizedPotential, which maps
    its θ to its base's); parameters not named have factor 1."""
    factors = {}
    for prefix, module in model.named_modules():
        if hasattr(module, "lr_scales"):
            for name, scale in module.lr_scales(optimizer).items():
                factors[f"{prefix}.{name}" if prefix else name] = float(scale)
    return factors


def lr_groups(model: nn.Module, optimizer: str = "adam") -> list[dict]:
    """The trainable parameters of ``model`` as optimizer param groups, one per distinct
    learning-rate factor (``lr_factors``), in the order of first appearance:
    [{"params": [Parameter, …], "lr_scale": float}, …]. A caller sets each group's lr to
    lr·lr_scale (nnflow.training.modules.build_optimizer)."""
    factors = lr_factors(model, optimizer)
    groups: dict[float, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(factors.get(name, 1.0), []).append(p)
    return [{"params": params, "lr_scale": scale} for scale, params in groups.items()]


def build_network(kind: str, in_dim: int, **kwargs) -> nn.Module:
    """A network by name ("mlp", "cosnet", "gaussnet"); kwargs go to its constructor."""
    if kind not in NETWORKS:
        raise ValueError(f"unknown network {kind!r}; choose from {sorted(NETWORKS)}")
    return NETWORKS[kind](in_dim, **kwargs)
