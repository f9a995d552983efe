"""Empirical (finite-width) tangent kernels of a KahlerPotential, by torch.func (pure torch).

With K = K_FS + α[f_θ − f_θ0](x(z)) and g = ∂∂̄K pulled back to X, over the network
parameters θ (the "centered" θ0 buffers are not parameters):

    potential NTK   Θ(x, x')           = Σ_I ∂K(x)/∂θ_I ∂K(x')/∂θ_I                (B1, B2)
    Kähler NTK      Θ_{kl̄}(x, x')       = Σ_I ∂K(x)/∂θ_I ∂g_{kl̄}(x')/∂θ_I           (B1, B2, n²)
    metric-NTK      Θ_{ij̄kl̄}(x, x')     = Σ_I ∂g_{ij̄}(x)/∂θ_I ∂g_{kl̄}(x')/∂θ_I      (B1, B2, n², n²)

with every metric index pair in the real components r(g) of geometry/hermitian.py (so Θ_st is real
and Σ_I ∂r_s ∂r'_t). Points: a PointSet or (z, jac) (points.py); points2=None means points1.
Parameters: ``params`` maps the model's parameter names ("network.weights.0", ...) to tensors;
None means the model's current parameters; ``initial_params(model)`` gives θ0.

Implementations (``IMPLEMENTATIONS``), all equal to float64 round-off:

    "jacobian"    per-point Jacobians ∂r/∂θ by vmap(jacrev), contracted block by block;
    "ntk_vp"      NTK-vector products: the Jacobian rows of x' (vmapped vjp's) pushed through
                  the network at x by forward-mode jvp, so the Jacobian of x is never stored;
    "structured"  MLP only: per-layer Gram matrices of jets (structured.py), no Jacobian;
    "auto"        "structured" for an MLP, "jacobian" otherwise.

``chunk_size`` bounds peak memory: kernels are built in blocks of chunk_size × chunk_size
points (jacobian: two chunk_size·m·P Jacobians; structured: chunk_size·R·width jets per layer;
ntk_vp: chunk_size tangents × chunk_size points of forward-mode activations at a time). For
points2=None the kernel is symmetric and only the upper blocks are computed.

Speed (bench/README.md): "structured" is the fastest (≥ 5× a naive vmap(jacrev) contraction at
width 2048) and uses the least memory; "ntk_vp" is the slowest (every tangent is pushed through
the jets elementwise). "structured" issues many mid-sized operations: on a CPU shared with other
busy processes, give torch only the free cores (torch.set_num_threads) — with oversubscribed
threads every parallel operation waits for a descheduled thread.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, jacrev, jvp, vmap

from nnflow.geometry.hermitian import hermitian_to_real
from nnflow.kernels.derivatives import check_orders
from nnflow.kernels.points import Side, as_points, assemble, check_chunk_size, feature_side
from nnflow.kernels.structured import mlp_layer_jets, structured_block
from nnflow.models.jets import Jet, functional_jet

IMPLEMENTATIONS = ("auto", "jacobian", "ntk_vp", "structured")
KERNEL_ORDERS = {"potential": (0, 0), "kahler": (0, 2), "metric": (2, 2)}
_PREFIX = "network."


# ---------------------------------------------------------------------- parameters
def model_params(model) -> dict[str, torch.Tensor]:
    """The model's current parameters by name, detached."""
    return {name: p.detach() for name, p in model.named_parameters()}


def initial_params(model) -> dict[str, torch.Tensor]:
    """θ0 of a model built with init "centered" (its buffers), by parameter name."""
    if getattr(model, "init", None) != "centered":
        raise ValueError(
            f"initial parameters are stored only for init='centered'; got init={getattr(model, 'init', None)!r} "
            "(keep a copy of model_params(model) at initialization instead)"
        )
    return {_PREFIX + name: t for name, t in model.theta0().items()}


def _network_params(model, params) -> dict[str, torch.Tensor]:
    names = [name for name, _ in model.network.named_parameters()]
    if params is None:
        return {name: p.detach() for name, p in model.network.named_parameters()}
    out = {}
    for key, value in params.items():
        name = key[len(_PREFIX) :] if key.startswith(_PREFIX) else key
        if name not in names:
            raise ValueError(f"unknown parameter {key!r}; the model has {[_PREFIX + n for n in names]}")
        out[name] = value
    missing = [_PREFIX + n for n in names if n not in out]
    if missing:
        raise ValueError(f"params is missing {missing}")
    return out


def _check_dtype(model, params: dict, z: torch.Tensor) -> None:
    real = z.real.dtype
    for name, p in params.items():
        if p.dtype != real:
            raise ValueError(
                f"parameter {name!r} is {p.dtype} but the points are {z.dtype}; "
                f"use model.to({real}) or points of the matching precision"
            )


# ---------------------------------------------------------------------- per-point functions
def _point_function(model, order: int):
    """f(net_params, *data) → (m,) real for one point; data from ``_point_data``."""
    alpha = model.output_scale
    network = model.network
    if order == 0:

        def f(p, x):
            return alpha * functional_call(network, p, (x[None],))

        return f

    def f(p, value, d, dd):
        jet = Jet(value[None], torch.view_as_complex(d)[None], torch.view_as_complex(dd)[None])
        out = functional_jet(network, p, jet)
        return alpha * hermitian_to_real(out.dd[0, :, :, 0])

    return f


def _point_data(side: Side) -> tuple:
    if side.order == 0:
        return (side.value,)
    return (side.value, torch.view_as_real(side.jet.d), torch.view_as_real(side.jet.dd))


def _subset(data: tuple, index) -> tuple:
    return tuple(t[index] for t in data)


def _jacobian(f, params, data) -> dict[str, torch.Tensor]:
    """{name: (B, m, *shape)} per-point Jacobians."""
    in_dims = (None,) + (0,) * len(data)
    return vmap(jacrev(f), in_dims=in_dims)(params, *data)


# ---------------------------------------------------------------------- public: Jacobians
def potential_jacobian(model, points, params=None) -> dict[str, torch.Tensor]:
    """∂K(x)/∂θ: {parameter name: (B, *shape)} (names as in model.named_parameters())."""
    J = _side_jacobian(model, points, params, 0)
    return {name: t[:, 0] for name, t in J.items()}


def metric_jacobian(model, points, params=None, flat: bool = False):
    """∂r(g(x))/∂θ: {name: (B, n², *shape)}, or one (B, n², P) tensor if flat (names' order)."""
    J = _side_jacobian(model, points, params, 2)
    if not flat:
        return J
    B, m = next(iter(J.values())).shape[:2]
    return torch.cat([t.reshape(B, m, -1) for t in J.values()], -1)


def _side_jacobian(model, points, params, order):
    p = _network_params(model, params)
    side = feature_side(model.features, as_points(points, need_jac=order > 0), order)
    _check_dtype(model, p, side.value)
    J = _jacobian(_point_function(model, order), p, _point_data(side))
    return {_PREFIX + name: t for name, t in J.items()}


def metric_jvp(model, points, tangents: dict, params=None) -> torch.Tensor:
    """J(x)·v = d/dε r(g_{θ+εv}(x)) at ε = 0: (B, n²) real (the linearized model's increment).

    Args:
        tangents: {parameter name: tensor shaped like the parameter}.
    """
    return _side_jvp(model, points, tangents, params, 2)


def potential_jvp(model, points, tangents: dict, params=None) -> torch.Tensor:
    """J(x)·v for the potential K: (B,) real."""
    return _side_jvp(model, points, tangents, params, 0)[:, 0]


def _side_jvp(model, points, tangents, params, order):
    p = _network_params(model, params)
    v = _network_params(model, tangents)
    side = feature_side(model.features, as_points(points, need_jac=order > 0), order)
    f = _point_function(model, order)
    data = _point_data(side)
    batch = vmap(f, in_dims=(None,) + (0,) * len(data))
    return jvp(lambda q: batch(q, *data), (p,), (v,))[1]


# ---------------------------------------------------------------------- public: kernels
def empirical_kernel(
    model,
    points1,
    points2=None,
    orders=(2, 2),
    params=None,
    implementation: str = "auto",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The empirical kernel with o1, o2 ∈ {0, 2} derivatives per side (module doc).

    Returns (B1, B2[, n²][, n²]) real, dtype of the points' real part.
    """
    o1, o2 = check_orders(orders)
    check_chunk_size(chunk_size)
    impl = _resolve(model, implementation)
    p = _network_params(model, params)
    same = points2 is None
    pts1 = as_points(points1, need_jac=o1 > 0)
    pts2 = pts1 if same else as_points(points2, need_jac=o2 > 0)
    _check_dtype(model, p, pts1[0])
    s1 = feature_side(model.features, pts1, o1)
    s2 = s1 if (same and o1 == o2) else feature_side(model.features, pts2, o2)
    symmetric = same and o1 == o2
    n = max(s1.n, s2.n)
    trailing = tuple(n * n for o in (o1, o2) if o)
    if impl == "structured":
        block = _structured_blocks(model, p, s1, s2, (o1, o2), n)
    elif impl == "jacobian":
        block = _jacobian_blocks(model, p, s1, s2, (o1, o2), symmetric)
    else:
        block = _ntk_vp_blocks(model, p, s1, s2, (o1, o2), chunk_size)
    return assemble(len(s1), len(s2), trailing, chunk_size, symmetric, block, s1.value)


def potential_ntk(model, points1, points2=None, params=None, implementation="auto", chunk_size=None):
    """Θ(x, x') = Σ_I ∂K(x)/∂θ_I ∂K(x')/∂θ_I: (B1, B2)."""
    return empirical_kernel(model, points1, points2, (0, 0), params, implementation, chunk_size)


def kahler_ntk(model, points1, points2=None, params=None, implementation="auto", chunk_size=None):
    """Θ_{kl̄}(x, x') = Σ_I ∂K(x)/∂θ_I ∂r_{kl̄}(x')/∂θ_I: (B1, B2, n²)."""
    return empirical_kernel(model, points1, points2, (0, 2), params, implementation, chunk_size)


def metric_ntk(model, points1, points2=None, params=None, implementation="auto", chunk_size=None):
    """Θ_{ij̄kl̄}(x, x') = Σ_I ∂r_{ij̄}(x)/∂θ_I ∂r_{kl̄}(x')/∂θ_I: (B1, B2, n², n²)."""
    return empirical_kernel(model, points1, points2, (2, 2), params, implementation, chunk_size)


def empirical_ntk_fn(model, kernel: str = "metric", implementation: str = "auto", chunk_size: int | None = None):
    """A kernel function fn(points1, points2=None, params=None) (neural-tangents style).

    kernel: "potential", "kahler" or "metric". E.g. the metric-NTK at initialization:
    ``empirical_ntk_fn(model)(points, params=initial_params(model))``.
    """
    if kernel not in KERNEL_ORDERS:
        raise ValueError(f"unknown kernel {kernel!r}; choose from {sorted(KERNEL_ORDERS)}")
    _resolve(model, implementation)
    check_chunk_size(chunk_size)
    orders = KERNEL_ORDERS[kernel]

    def fn(points1, points2=None, params=None):
        return empirical_kernel(model, points1, points2, orders, params, implementation, chunk_size)

    return fn


def empirical_metric_ntk(model, points1, points2=None, at: str = "current", **kwargs):
    """The metric-NTK at the current parameters or at initialization (at="init", θ0)."""
    if at not in ("current", "init"):
        raise ValueError(f"at must be 'current' or 'init'; got {at!r}")
    params = initial_params(model) if at == "init" else kwargs.pop("params", None)
    return metric_ntk(model, points1, points2, params=params, **kwargs)


# ---------------------------------------------------------------------- implementations
def _resolve(model, implementation: str) -> str:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {implementation!r}; choose from {IMPLEMENTATIONS}")
    is_mlp = type(model.network).__name__ == "MLP"
    if implementation == "auto":
        return "structured" if is_mlp else "jacobian"
    if implementation == "structured" and not is_mlp:
        raise ValueError(
            f"implementation 'structured' exists for the MLP only; got {type(model.network).__name__} "
            "(use 'jacobian' or 'ntk_vp')"
        )
    return implementation


class _LastCache:
    """Keeps the most recent (key → value) so a row block is computed once per row."""

    def __init__(self, compute):
        self.compute, self.key, self.value = compute, None, None

    def __call__(self, sl: slice):
        key = (sl.start, sl.stop)
        if key != self.key:
            self.key, self.value = None, None  # free before computing the next one
            self.value, self.key = self.compute(sl), key
        return self.value


def _flat(J: dict) -> list[torch.Tensor]:
    return [t.reshape(t.shape[0] * t.shape[1], -1) for t in J.values()]


def _jacobian_blocks(model, p, s1: Side, s2: Side, orders, symmetric: bool):
    f1, f2 = _point_function(model, orders[0]), _point_function(model, orders[1])
    d1, d2 = _point_data(s1), _point_data(s2)
    rows = _LastCache(lambda sl: _flat(_jacobian(f1, p, _subset(d1, sl))))

    def block(i: slice, j: slice):
        J1 = rows(i)
        J2 = J1 if (symmetric and i == j) else _flat(_jacobian(f2, p, _subset(d2, j)))
        c1, c2 = i.stop - i.start, j.stop - j.start
        K = sum(a @ b.T for a, b in zip(J1, J2))  # (c1·m1, c2·m2)
        K = K.reshape(c1, -1, c2, K.shape[1] // c2).permute(0, 2, 1, 3)
        return _squeeze(K, orders)

    return block


def _ntk_vp_blocks(model, p, s1: Side, s2: Side, orders, chunk_size):
    f1, f2 = _point_function(model, orders[0]), _point_function(model, orders[1])
    d1, d2 = _point_data(s1), _point_data(s2)

    def block(i: slice, j: slice):
        J2 = _jacobian(f2, p, _subset(d2, j))  # rows of J(x'): vjp's of the basis cotangents
        c2, m2 = next(iter(J2.values())).shape[:2]
        tangents = {k: t.reshape(c2 * m2, *t.shape[2:]) for k, t in J2.items()}
        data = _subset(d1, i)
        batch = vmap(f1, in_dims=(None,) + (0,) * len(data))

        def push(v):  # J(x) v for all x in the row block, forward mode
            return jvp(lambda q: batch(q, *data), (p,), (v,))[1]

        out = vmap(push, chunk_size=chunk_size)(tangents)  # (c2·m2, c1, m1)
        K = out.reshape(c2, m2, *out.shape[1:]).permute(2, 0, 3, 1)
        return _squeeze(K, orders)

    return block


def _structured_blocks(model, p, s1: Side, s2: Side, orders, n: int):
    net = model.network
    alpha2 = model.output_scale**2
    jets1 = _LastCache(lambda sl: mlp_layer_jets(net, p, s1.rows[sl], s1.n))

    def block(i: slice, j: slice):
        L1 = jets1(i)
        L2 = L1 if (s1 is s2 and i == j) else mlp_layer_jets(net, p, s2.rows[j], s2.n)
        return alpha2 * _squeeze(structured_block(L1, L2, n, orders), orders)

    return block


def _squeeze(K: torch.Tensor, orders) -> torch.Tensor:
    """(c1, c2, m1, m2) → drop the component axes of order-0 sides."""
    if orders[1] == 0:
        K = K[..., 0]
    if orders[0] == 0:
        K = K[:, :, 0]
    return K
