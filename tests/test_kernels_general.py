"""Analytic kernels on general features (|x| ≠ 1): the (x·x', |x|², |x'|²) route.

Independent references: the |x| = 1 fast path on the full degree-k map (the general route must
reproduce it to round-off), torch.func autodiff of the scalar kernel on the phase-invariant
standardized features, the closed-form duals against Gauss–Hermite quadrature, and the
Nyström route against the dense flow. (Monte Carlo against finite networks: the slow test in
test_kernels_mc.py.)
"""

import pytest
import torch

from nnflow.flows.frozen import FrozenKernelFlow, build_frozen_flow, metric_kernel_from_options
from nnflow.flows.losses import class_kappa
from nnflow.geometry.measures import fs_det, sigma_measure
from nnflow.kernels import analytic_kernel, hermitian_to_real
from nnflow.kernels import multiseries as ms
from nnflow.kernels.analytic import GaussianKernel, MLPKernel
from nnflow.kernels.dual_series import dual_series
from nnflow.kernels.gp import MetricKernel, encode_points
from nnflow.kernels.testing import assert_close_matrices
from nnflow.models import build_potential
from nnflow.models.potential import phase_options

QUINTIC_MLP = dict(network="mlp", depth=3, activation="gelu", sigma_w=1.0, sigma_b=0.1, feature_degree=5,
                   feature_symmetry="phases", input_scale=0.1)


@pytest.fixture(scope="module")
def quintic(point_cache):
    from nnflow.geometry.hypersurface import make_hypersurface

    surface = make_hypersurface("fermat_quintic")
    return surface, phase_options(surface, "phases")


@pytest.mark.parametrize("activation", ["erf", "sin", "gaussian", "gelu"])
def test_general_route_is_the_fast_path_on_the_full_map(activation, point_cache):
    p1, p2 = point_cache("fermat_quintic", 3), point_cache("fermat_quintic", 2, seed=4)
    fast = MLPKernel(depth=2, activation=activation, sigma_w=1.5, sigma_b=0.3, feature_degree=2)
    general = MLPKernel(depth=2, activation=activation, sigma_w=1.5, sigma_b=0.3, feature_degree=2, general=True)
    for kind in ("ntk", "nngp"):
        for orders in [(0, 0), (0, 2), (2, 2)]:
            assert_close_matrices(general.kernel(p1, p2, orders, kind), fast.kernel(p1, p2, orders, kind), rtol=1e-12)


def test_general_gaussian_kernel_is_the_fast_path_on_the_full_map(point_cache):
    p1, p2 = point_cache("fermat_quintic", 3), point_cache("fermat_quintic", 2, seed=4)
    fast, general = GaussianKernel(0.7), GaussianKernel(0.7, general=True)
    assert_close_matrices(general.metric(p1, p2), fast.metric(p1, p2), rtol=1e-12)


@pytest.mark.parametrize("activation", ["erf", "sin", "gaussian"])
@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_phase_feature_kernels_match_autodiff(activation, kind, point_cache, quintic):
    _, sym = quintic
    p1, p2 = point_cache("fermat_quintic", 2), point_cache("fermat_quintic", 2, seed=4)
    kernel = MLPKernel(depth=2, activation=activation, sigma_w=1.5, sigma_b=0.3, feature_degree=5, input_scale=0.3,
                       feature_symmetry="phases", **sym)
    for orders in [(0, 0), (0, 2), (2, 2)]:
        assert_close_matrices(kernel.kernel(p1, p2, orders, kind), kernel.autodiff(p1, p2, orders, kind), rtol=1e-10)
    rbf = GaussianKernel(2.0, feature_degree=5, feature_symmetry="phases", **sym)
    assert_close_matrices(rbf.metric(p1, p2), rbf.autodiff(p1, p2), rtol=1e-10)


@pytest.mark.parametrize("activation", ["erf", "sin", "cos", "gaussian"])
def test_gauss_hermite_duals_match_closed_forms(activation):
    """Every partial ∂_c^a ∂_{q1}^b ∂_{q2}^e of V and V_c (a + b + e ≤ 4), off and on the diagonal."""
    gen = torch.Generator().manual_seed(0)
    T = ms.Truncation(4, 2, 2)
    q1 = torch.rand(5, 1, generator=gen, dtype=torch.float64) + 0.3
    q2 = torch.rand(1, 4, generator=gen, dtype=torch.float64) + 0.3
    c = (2 * torch.rand(5, 4, generator=gen, dtype=torch.float64) - 1) * (q1 * q2).sqrt() * 0.95
    args = (ms.variable(c, 0, T), ms.variable(q1, 1, T), ms.variable(q2, 2, T))
    closed, closed_c = dual_series(activation, *args, T)
    quad, quad_c = dual_series(activation, *args, T, quadrature=True)
    assert set(closed) == set(quad) == set(T.keys())
    for key in closed:
        assert_close_matrices(quad[key], closed[key], rtol=1e-11)
        assert_close_matrices(quad_c[key], closed_c[key], rtol=1e-11)
    q = ms.variable(q1, 1, T)  # the diagonal c = q1 = q2 (correlation 1)
    diag = dual_series(activation, q, q, q, T, slope=False)[0]
    diag_quad = dual_series(activation, q, q, q, T, slope=False, quadrature=True)[0]
    for key in diag:
        assert_close_matrices(diag_quad[key], diag[key], rtol=1e-11)


def test_hermite_route_kernel_matches_closed_form_on_phase_features(point_cache, quintic):
    _, sym = quintic
    pts = point_cache("fermat_quintic", 3)
    opts = dict(depth=2, activation="erf", sigma_w=1.2, input_scale=0.5, feature_degree=5, feature_symmetry="phases")
    opts |= sym
    assert_close_matrices(MLPKernel(quadrature=True, **opts).metric(pts), MLPKernel(**opts).metric(pts), rtol=1e-10)


def test_quintic_mlp_metric_gram_is_psd_on_200_points(point_cache, quintic):
    _, sym = quintic
    pts = point_cache("fermat_quintic", 200, seed=7)
    kernel = analytic_kernel(QUINTIC_MLP | sym)
    K = kernel.metric(pts, chunk_size=100)
    assert_close_matrices(K, K.permute(1, 0, 3, 2))
    evals = torch.linalg.eigvalsh(K.permute(0, 2, 1, 3).reshape(200 * 9, 200 * 9))
    assert evals[0] >= -1e-10 * evals[-1], (evals[0], evals[-1])


def test_factory_takes_feature_options_from_config_and_model(point_cache, quintic):
    _, sym = quintic
    pts = point_cache("fermat_quintic", 3)
    with pytest.raises(ValueError, match="phase symmetries"):
        analytic_kernel(QUINTIC_MLP)
    from_config = analytic_kernel(QUINTIC_MLP | sym)
    assert from_config.general and from_config._feature_map(5).dim == 146
    model = build_potential(n_coords=5, width=8, seed=0, **(QUINTIC_MLP | sym))
    assert_close_matrices(analytic_kernel(model).metric(pts), from_config.metric(pts), rtol=1e-13)
    full = analytic_kernel(QUINTIC_MLP | {"feature_symmetry": "none"})  # the same options, all 126² features
    assert not full.general and full._feature_map(5).dim == 126**2


def test_gpytorch_metric_kernel_wraps_the_phase_feature_kernel(point_cache, quintic):
    _, sym = quintic
    pts = point_cache("fermat_quintic", 3)
    kernel = analytic_kernel(QUINTIC_MLP | sym)
    gp = MetricKernel(kernel, n_coords=5, dim=3)
    x = encode_points(pts)
    dense = kernel.metric(pts).permute(0, 2, 1, 3).reshape(27, 27)
    assert_close_matrices(gp(x, x).to_dense(), dense)


def _mse_flow(points, kernel_fn, target, **kwargs):
    def loss(g):
        return 0.5 * (hermitian_to_real(g) - target).square().sum()

    return FrozenKernelFlow(kernel_fn, points, loss_fn=loss, **kwargs)


def test_phase_ntk_flow_with_mse_matches_kernel_regression(point_cache, quintic):
    """r_t = r* + exp(−Θt)(r_0 − r*) for the squared distance to a target metric r*."""
    surface, sym = quintic
    pts = point_cache("fermat_quintic", 12, seed=5)
    fn = metric_kernel_from_options("analytic", 5, **(QUINTIC_MLP | sym))
    flow = _mse_flow(pts, fn, torch.zeros(1))
    gen = torch.Generator().manual_seed(1)
    target = flow.r0_train + 0.02 * torch.randn(flow.r0_train.shape, generator=gen, dtype=torch.float64)
    flow = _mse_flow(pts, fn, target)
    t_end = 20.0 / float(torch.linalg.eigvalsh(flow.matrix)[-1])
    flow.integrate(t_end, rtol=1e-10, atol=1e-12)
    evals, evecs = torch.linalg.eigh(flow.matrix)
    prop = evecs @ torch.diag(torch.exp(-evals * t_end)) @ evecs.T
    exact = target + (prop @ (flow.r0_train - target).reshape(-1)).reshape(target.shape)
    err = (flow.real_metric_train() - exact).norm() / (flow.r0_train - exact).norm()
    assert err < 1e-7, err


@pytest.mark.parametrize("kernel_kind", ["ntk", "nngp"])
def test_phase_frozen_flow_lowers_sigma_test_below_fs(kernel_kind, point_cache, quintic):
    surface, sym = quintic
    train, test = point_cache("fermat_quintic", 150, seed=11), point_cache("fermat_quintic", 300, seed=12)
    kappa = class_kappa(train, 1.0)
    flow = build_frozen_flow(train, kappa, kernel_kind=kernel_kind, **(QUINTIC_MLP | sym))
    sigma_fs = sigma_measure(test, fs_det(test))[0]
    for _ in range(40):
        flow.step(2.0 if kernel_kind == "ntk" else 8.0)
    det = torch.linalg.det(flow.metric(test.z, test.jac)).real
    sigma = sigma_measure(test, det)[0]
    assert sigma < 0.5 * sigma_fs, (sigma, sigma_fs)


def test_nystrom_on_all_points_is_the_dense_flow(point_cache, quintic):
    surface, sym = quintic
    train, test = point_cache("fermat_quintic", 40, seed=11), point_cache("fermat_quintic", 20, seed=12)
    kappa = class_kappa(train, 1.0)
    dense = build_frozen_flow(train, kappa, **(QUINTIC_MLP | sym))
    full = build_frozen_flow(train, kappa, low_rank=40, **(QUINTIC_MLP | sym))
    assert_close_matrices(full.factor @ full.factor.T, dense.matrix, rtol=1e-8)
    for flow in (dense, full):
        for _ in range(5):
            flow.step(2.0)
    assert_close_matrices(full.metric(test.z, test.jac), dense.metric(test.z, test.jac), rtol=1e-8)
    with pytest.raises(ValueError, match="low_rank"):
        build_frozen_flow(train, kappa, low_rank=41, **(QUINTIC_MLP | sym))
