"""Empirical tangent kernels: every implementation against independent references.

References: a naive vmap(jacrev) Jacobian contraction through ``model.metric`` (the model's own
forward, not the kernels' per-point functions), finite differences of the potential kernel
along the charts, and finite differences of the metric in parameter space.
"""

import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from nnflow.geometry.hermitian import hermitian_to_real
from nnflow.kernels import (
    empirical_kernel,
    empirical_metric_ntk,
    empirical_ntk_fn,
    kahler_ntk,
    metric_ntk,
)
from nnflow.kernels.empirical import (  # the per-point Jacobians and JVPs, and the parameter helpers
    initial_params,
    metric_jacobian,
    metric_jvp,
    model_params,
    potential_jacobian,
    potential_jvp,
    potential_ntk,
)
from nnflow.kernels.testing import assert_close_matrices, finite_difference_kernel
from nnflow.models import build_potential

ORDERS = {"potential": (0, 0), "kahler": (0, 2), "metric": (2, 2)}
NETWORKS = {
    "mlp_gelu": ("mlp", dict(depth=2, activation="gelu")),
    "mlp_tanh_standard": ("mlp", dict(depth=1, activation="tanh", parameterization="standard", sigma_b=0.5)),
    "mlp_sin_deg2": ("mlp", dict(depth=2, activation="sin", feature_degree=2)),
    "cosnet": ("cosnet", dict(sigma_b=3.0)),
    "gaussnet": ("gaussnet", dict(sigma_b=2.0)),
}


def make_model(name, width=12, seed=0, n_coords=5, **extra):
    network, kw = NETWORKS[name]
    return build_potential(network, n_coords=n_coords, width=width, seed=seed, **{**kw, **extra})


def naive_metric_ntk(model, points):
    """vmap(jacrev) of r(model.metric(z, jac)) per point, contracted with one einsum."""
    params = model_params(model)

    def g(p, zr, jr):
        z, jac = torch.view_as_complex(zr), torch.view_as_complex(jr)
        return hermitian_to_real(functional_call(model, p, (z[None], jac[None]))[0])

    J = vmap(jacrev(g), (None, 0, 0))(params, torch.view_as_real(points.z), torch.view_as_real(points.jac))
    return sum(torch.einsum("xsp,ytp->xyst", t.flatten(2), t.flatten(2)) for t in J.values())


def implementations(name):
    return ["jacobian", "ntk_vp", "structured"] if name.startswith("mlp") else ["jacobian", "ntk_vp"]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_implementations_agree_with_naive_reference(name, point_cache):
    pts = point_cache("fermat_quintic", 6)
    model = make_model(name)
    ref = naive_metric_ntk(model, pts)
    for impl in implementations(name):
        assert_close_matrices(metric_ntk(model, pts, implementation=impl), ref)
        assert_close_matrices(metric_ntk(model, pts, implementation=impl, chunk_size=4), ref)


@pytest.mark.parametrize("kernel", list(ORDERS))
@pytest.mark.parametrize("name", ["mlp_gelu", "cosnet"])
def test_implementations_agree_on_every_kernel(name, kernel, point_cache):
    p1 = point_cache("fermat_quartic", 5)
    p2 = point_cache("fermat_quartic", 4, seed=1)
    model = make_model(name, n_coords=4)
    orders = ORDERS[kernel]
    ref = empirical_kernel(model, p1, p2, orders, implementation="jacobian")
    n = p1.jac.shape[1]
    expected_shape = {"potential": (5, 4), "kahler": (5, 4, n * n), "metric": (5, 4, n * n, n * n)}[kernel]
    assert ref.shape == expected_shape
    for impl in implementations(name):
        for chunk in (None, 3):
            assert_close_matrices(empirical_kernel(model, p1, p2, orders, implementation=impl, chunk_size=chunk), ref)


def test_same_points_is_symmetric_and_psd(point_cache):
    pts = point_cache("fermat_cubic", 7)
    model = make_model("mlp_gelu", n_coords=3)
    K = metric_ntk(model, pts, chunk_size=3)
    assert_close_matrices(K, K.permute(1, 0, 3, 2))
    assert_close_matrices(K, metric_ntk(model, pts, pts))
    M = K.permute(0, 2, 1, 3).reshape(7, 7)  # n = 1 on the cubic curve
    assert torch.linalg.eigvalsh(M).min() > -1e-12 * torch.linalg.eigvalsh(M).max()


@pytest.mark.parametrize("name", ["mlp_gelu", "mlp_sin_deg2", "cosnet", "gaussnet"])
def test_metric_and_kahler_ntk_are_derivatives_of_the_potential_ntk(name, point_cache):
    p1 = point_cache("fermat_quintic", 2)
    p2 = point_cache("fermat_quintic", 2, seed=2)
    model = make_model(name, width=24)

    def potential(a, b):
        return potential_ntk(model, (a, None), (b, None))

    assert_close_matrices(metric_ntk(model, p1, p2), finite_difference_kernel(potential, p1, p2, (2, 2)),
                          what="finite_difference")
    assert_close_matrices(kahler_ntk(model, p1, p2), finite_difference_kernel(potential, p1, p2, (0, 2)),
                          what="finite_difference")


def test_kernels_are_projectively_invariant(point_cache):
    """z → λz, J → λJ (the same points and charts of P^N) leaves every kernel unchanged."""
    pts = point_cache("fermat_quintic", 4)
    lam = torch.tensor(0.3 - 1.7j, dtype=torch.complex128)
    scaled = (lam * pts.z, lam * pts.jac)
    for name in ("mlp_gelu", "gaussnet"):
        model = make_model(name)
        assert_close_matrices(metric_ntk(model, scaled), metric_ntk(model, pts))
        assert_close_matrices(potential_ntk(model, scaled), potential_ntk(model, pts))


def test_metric_jacobian_and_jvp_match_parameter_finite_differences(point_cache):
    pts = point_cache("fermat_quintic", 3)
    model = make_model("mlp_gelu")
    params = model_params(model)
    g = torch.Generator().manual_seed(5)
    v = {k: torch.randn(p.shape, generator=g, dtype=p.dtype) for k, p in params.items()}
    eps = 1e-5

    def metric_at(p):
        return hermitian_to_real(functional_call(model, p, (pts.z, pts.jac)))

    plus = metric_at({k: params[k] + eps * v[k] for k in params})
    minus = metric_at({k: params[k] - eps * v[k] for k in params})
    fd = (plus - minus) / (2 * eps)
    jvp = metric_jvp(model, pts, v)
    assert_close_matrices(jvp, fd, what="finite_difference")
    J = metric_jacobian(model, pts)
    assert set(J) == set(params) and J["network.weights.0"].shape == (3, 9, *params["network.weights.0"].shape)
    flat = metric_jacobian(model, pts, flat=True)
    vflat = torch.cat([v[k].reshape(-1) for k in J])
    assert_close_matrices(flat @ vflat, jvp)
    # the kernel is the Jacobian contracted with itself
    assert_close_matrices(torch.einsum("xsp,ytp->xyst", flat, flat), metric_ntk(model, pts))
    pj = potential_jacobian(model, pts)
    pflat = torch.cat([pj[k].reshape(3, -1) for k in J], -1)
    assert_close_matrices(pflat @ vflat, potential_jvp(model, pts, v))


def test_kernel_at_initialization(point_cache):
    pts = point_cache("fermat_quintic", 3)
    model = make_model("mlp_gelu")
    fresh = metric_ntk(model, pts)
    theta0 = initial_params(model)
    with torch.no_grad():  # move the parameters: the kernel moves, the kernel at θ0 does not
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    moved = metric_ntk(model, pts)
    assert (moved - fresh).norm() > 1e-3 * fresh.norm()
    assert_close_matrices(empirical_metric_ntk(model, pts, at="init"), fresh)
    assert_close_matrices(metric_ntk(model, pts, params=theta0), fresh)
    assert_close_matrices(empirical_ntk_fn(model, "metric")(pts, params=theta0), fresh)
    assert_close_matrices(metric_ntk(model, pts, params=model_params(model)), moved)


def test_output_scale_multiplies_by_alpha_squared(point_cache):
    pts = point_cache("fermat_quintic", 3)
    K1 = metric_ntk(make_model("mlp_gelu"), pts)
    K3 = metric_ntk(make_model("mlp_gelu", output_scale=3.0), pts)
    assert_close_matrices(K3, 9.0 * K1)


def test_errors_at_the_boundary(point_cache):
    pts = point_cache("fermat_quintic", 3)
    model = make_model("cosnet")
    with pytest.raises(ValueError, match="structured"):
        metric_ntk(model, pts, implementation="structured")
    with pytest.raises(ValueError, match="banana"):
        metric_ntk(model, pts, implementation="banana")
    with pytest.raises(ValueError, match="chunk_size"):
        metric_ntk(model, pts, chunk_size=0)
    with pytest.raises(ValueError, match="network.zz"):
        metric_ntk(model, pts, params={"network.zz": torch.zeros(1)})
    with pytest.raises(ValueError, match="jac"):
        metric_ntk(model, (pts.z, None))
    with pytest.raises(ValueError, match="float32"):
        metric_ntk(make_model("mlp_gelu").float(), pts)
    with pytest.raises(ValueError, match="centered"):
        initial_params(make_model("mlp_gelu", init="random"))
    with pytest.raises(ValueError, match="kernel"):
        empirical_ntk_fn(model, "hessian")
