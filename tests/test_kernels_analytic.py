"""Infinite-width kernels: their building blocks and their derivative routes.

Independent references: autograd for activation derivatives and Taylor series, Price
quadrature for the closed-form dual activations, the generic autodiff route and finite
differences of the potential kernel for the fast Faà di Bruno / coordinate-sum paths.
(Monte Carlo agreement with finite networks: test_kernels_mc.py.)
"""

import math

import pytest
import torch
from torch.func import jacfwd, vmap

from nnflow.kernels import analytic_kernel, metric_ntk, taylor
from nnflow.kernels.activations import NAMES, derivatives
from nnflow.kernels.analytic import CosNetKernel, GaussianKernel, GaussNetKernel, MLPKernel
from nnflow.kernels.duals import CLOSED_FORMS, direct_price_quadrature, dual_derivatives
from nnflow.kernels.testing import assert_close_matrices, finite_difference_kernel
from nnflow.models import build_potential
from nnflow.models.networks import ACTIVATIONS

KERNELS = {
    "mlp_erf": lambda: MLPKernel(depth=2, activation="erf", sigma_w=1.5, sigma_b=0.3),
    "mlp_gelu": lambda: MLPKernel(depth=2, activation="gelu", sigma_w=2.0, sigma_b=0.2),
    "mlp_sin": lambda: MLPKernel(depth=1, activation="sin", sigma_w=1.2),
    "mlp_gaussian": lambda: MLPKernel(depth=2, activation="gaussian", sigma_w=2.0),
    "mlp_tanh_deg2": lambda: MLPKernel(depth=2, activation="tanh", sigma_w=2.0, feature_degree=2),
    "cosnet": lambda: CosNetKernel(sigma_a=1.3, sigma_b=3.0),
    "gaussnet": lambda: GaussNetKernel(sigma_a=0.8, sigma_b=2.0, sigma_c=0.7),
    "gaussian": lambda: GaussianKernel(lengthscale=0.6, output_scale=1.3),
}


@pytest.mark.parametrize("name", NAMES)
def test_activation_derivatives_match_autograd(name):
    u = torch.linspace(-3.1, 2.7, 13, dtype=torch.float64)
    ours = derivatives(name, u, 5)
    f = lambda t: derivatives(name, t, 0)[0]  # noqa: E731
    for k in range(6):
        if name == "relu" and k >= 2:
            assert (ours[k] == 0).all()
            continue
        assert_close_matrices(ours[k], vmap(f)(u))
        f = jacfwd(f)
    net = ACTIVATIONS[name](u)  # the networks' own σ, σ', σ''
    for k in range(3):
        assert_close_matrices(ours[k], net[k])


def test_taylor_composition_matches_autograd():
    t0 = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)
    inner = taylor.affine(taylor.mul(taylor.variable(t0, 4), taylor.variable(t0, 4)), 0.5, 0.2)  # 0.5t² + 0.2
    outer = [torch.sin(inner[0]), torch.cos(inner[0]), -torch.sin(inner[0]), -torch.cos(inner[0]), torch.sin(inner[0])]
    ours = taylor.derivatives(taylor.compose(outer, inner))
    f = lambda t: torch.sin(0.5 * t * t + 0.2)  # noqa: E731
    for k in range(5):
        assert_close_matrices(ours[k], vmap(f)(t0))
        f = jacfwd(f)


@pytest.mark.parametrize("activation", CLOSED_FORMS[1:])  # relu: V'' is a delta function
@pytest.mark.parametrize("q", [0.05, 0.8, 3.0])
def test_closed_form_duals_match_price_quadrature(activation, q):
    c = torch.linspace(-q, q, 9, dtype=torch.float64)
    closed = dual_derivatives(activation, c, q, 5)
    quad = dual_derivatives(activation, c, q, 5, quadrature=True)
    for k in range(6):
        assert_close_matrices(quad[k], closed[k], what="quadrature")


def test_interpolated_quadrature_matches_direct():
    c = torch.rand(200, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1.5 - 0.5
    c = torch.cat([c, torch.tensor([1.0])])  # the diagonal c = q
    for activation in ("tanh", "softplus"):
        interp = dual_derivatives(activation, c, 1.0, 5)
        direct = direct_price_quadrature(activation, c, 1.0, 5)
        for k in range(6):
            assert_close_matrices(interp[k], direct[k], what="quadrature")


def test_relu_dual_is_the_arc_cosine_kernel():
    q = 2.0
    c = torch.tensor([-2.0, -0.5, 0.0, 1.0, 2.0], dtype=torch.float64)
    V, dV = dual_derivatives("relu", c, q, 1)
    theta = torch.acos(c / q)
    assert_close_matrices(V, q / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)))
    assert_close_matrices(dV, (math.pi - theta) / (2 * math.pi))
    assert V[2] == pytest.approx(q / (2 * math.pi)) and V[-1] == pytest.approx(q / 2)
    with pytest.raises(ValueError, match="order 2"):
        dual_derivatives("relu", c, q, 2)


CLOSED = [name for name in KERNELS if name not in ("mlp_gelu", "mlp_tanh_deg2")]  # autodiff through
# Price quadrature works off the diagonal but is slow; those kernels are checked by finite differences


@pytest.mark.parametrize("kind", ["ntk", "nngp"])
@pytest.mark.parametrize("name", CLOSED)
def test_fast_paths_match_autodiff_of_the_potential_kernel(name, kind, point_cache):
    kernel = KERNELS[name]()
    p1 = point_cache("fermat_quintic", 2)
    p2 = point_cache("fermat_quintic", 2, seed=4)
    for orders in [(0, 0), (0, 2), (2, 2)]:
        fast = kernel.kernel(p1, p2, orders, kind)
        assert_close_matrices(fast, kernel.autodiff(p1, p2, orders, kind))


@pytest.mark.parametrize("name", ["mlp_gelu", "mlp_tanh_deg2", "cosnet", "gaussnet"])
def test_metric_kernel_matches_finite_differences(name, point_cache):
    kernel = KERNELS[name]()
    p1 = point_cache("fermat_quartic", 2)
    p2 = point_cache("fermat_quartic", 2, seed=3)

    def potential(a, b):
        return kernel.potential((a, None), (b, None))

    assert_close_matrices(kernel.metric(p1, p2), finite_difference_kernel(potential, p1, p2), what="finite_difference")


def test_quadrature_route_matches_closed_form_kernels(point_cache):
    pts = point_cache("fermat_quintic", 4)
    for activation in ("erf", "sin", "gaussian"):
        closed = MLPKernel(depth=2, activation=activation, sigma_w=1.7)
        quad = MLPKernel(depth=2, activation=activation, sigma_w=1.7, quadrature=True)
        assert_close_matrices(quad.metric(pts), closed.metric(pts), what="quadrature")


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernels_are_symmetric_psd_and_projectively_invariant(name, point_cache):
    kernel = KERNELS[name]()
    pts = point_cache("fermat_quintic", 5)
    K = kernel.metric(pts, chunk_size=2)
    assert_close_matrices(K, K.permute(1, 0, 3, 2))
    M = K.permute(0, 2, 1, 3).reshape(45, 45)
    ev = torch.linalg.eigvalsh(M)
    assert ev.min() > -1e-10 * ev.max()
    lam = torch.tensor(2.0 + 0.5j, dtype=torch.complex128)
    assert_close_matrices(kernel.metric((lam * pts.z, lam * pts.jac)), K)
    assert_close_matrices(kernel.potential(pts), kernel.potential((lam * pts.z, None)))


def test_relu_potential_kernel_works_and_derivatives_raise(point_cache):
    pts = point_cache("fermat_quintic", 3)
    kernel = MLPKernel(depth=2, activation="relu")
    K = kernel.potential(pts)
    assert torch.isfinite(K).all() and K.shape == (3, 3)
    assert torch.isfinite(kernel.potential(pts, kind="nngp")).all()
    for method, what in ((kernel.kahler, "Kähler"), (kernel.metric, "metric")):
        for kind in ("ntk", "nngp"):
            with pytest.raises(ValueError, match=f"not smooth at x = x'.*{what}"):
                method(pts, kind=kind)


def test_factory_from_config_and_from_model(point_cache):
    pts = point_cache("fermat_quintic", 3)
    cfg = {"_target_": "nnflow.models.build_potential", "network": "mlp", "width": 64, "depth": 2,
           "activation": "erf", "parameterization": "ntk", "sigma_w": 1.3, "sigma_b": 0.2,
           "feature_degree": 1, "init": "centered", "output_scale": 0.5}
    from_cfg = analytic_kernel(cfg)
    model = build_potential(n_coords=5, seed=0, **{k: v for k, v in cfg.items() if k != "_target_"})
    from_model = analytic_kernel(model)
    assert_close_matrices(from_model.metric(pts), from_cfg.metric(pts))
    direct = MLPKernel(depth=2, activation="erf", sigma_w=1.3, sigma_b=0.2)
    assert_close_matrices(from_cfg.metric(pts), 0.25 * direct.metric(pts))
    assert isinstance(analytic_kernel({"network": "cosnet", "sigma_b": 2.0}), CosNetKernel)
    assert analytic_kernel({"network": "gaussnet", "sigma_c": 0.1}).ntk_factor == pytest.approx(1.01)
    with pytest.raises(ValueError, match="standard"):
        analytic_kernel({**cfg, "parameterization": "standard"})
    with pytest.raises(ValueError, match="sigma_q"):
        analytic_kernel({**cfg, "sigma_q": 1.0})
    with pytest.raises(ValueError, match="banana"):
        analytic_kernel({"network": "banana"})
    with pytest.raises(ValueError, match="depth"):
        analytic_kernel({**cfg, "depth": 0})
    with pytest.raises(ValueError, match="kind"):
        from_cfg.potential(pts, kind="ntk2")


def test_zero_last_ntk_is_the_nngp(point_cache):
    pts = point_cache("fermat_quintic", 3)
    for network in ("mlp", "cosnet"):
        cfg = {"network": network}
        nngp = analytic_kernel(cfg).metric(pts, kind="nngp")
        assert_close_matrices(analytic_kernel({**cfg, "init": "zero_last"}).metric(pts), nngp)


def test_zero_last_empirical_ntk_is_the_last_layer_feature_gram(point_cache):
    """With the last layer zero only its gradients survive: the empirical metric-NTK is the
    Gram matrix of the hidden units' metric jets, ω² Σ_o r(∂∂̄h_o)(x) r(∂∂̄h_o)(x') — whose
    infinite-width mean is the NNGP (test_zero_last_ntk_is_the_nngp)."""
    from nnflow.geometry.hermitian import hermitian_to_real

    pts = point_cache("fermat_quintic", 3)
    model = build_potential("mlp", n_coords=5, width=16, depth=1, seed=0, init="zero_last")
    net = model.network
    jet = model.features.jet(pts.z, pts.jac)
    W, b = net.weights[0] * net.w_scales[0], net.biases[0] * net.b_scales[0]
    Wc = W.T.to(jet.d.dtype)
    u, du, ddu = jet.value @ W.T + b, jet.d @ Wc, jet.dd @ Wc
    _, s1, s2 = ACTIVATIONS[net.activation](u)
    dd = s2[:, None, None, :] * du[:, :, None, :] * du.conj()[:, None, :, :] + s1[:, None, None, :] * ddu
    r = hermitian_to_real(dd.permute(0, 3, 1, 2)) * net.w_scales[1]  # (B, width, n²)
    assert_close_matrices(metric_ntk(model, pts), torch.einsum("xos,yot->xyst", r, r))


def test_gaussian_kernel_is_the_rbf_of_the_features(point_cache):
    """Potential kernel = α² exp(−|x − x'|²/(2ℓ²)) computed from the features directly."""
    from nnflow.models.features import ProjectiveFeatures

    pts = point_cache("fermat_quintic", 7)
    x = ProjectiveFeatures(5, 1)(pts.z)
    expected = 1.3**2 * torch.exp(-(torch.cdist(x, x) ** 2) / (2 * 0.6**2))
    assert_close_matrices(KERNELS["gaussian"]().potential(pts.z), expected)
