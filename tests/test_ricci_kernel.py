"""Frozen-kernel, finite-network and linearized metric flows on T^n (generalized Ricci flow)."""

import math

import pytest
import torch
from torch.func import jacrev

from nnflow.torus.geometry import FourierMetric, TorusGrid, metric_jets
from nnflow.torus.kernel_flow import (
    fitted_rate,
    gaussian_multiplier,
    kernel_flow,
    kernel_multiplier,
    mode_metric,
    mode_time,
    net_flow,
    net_kernel,
    net_kernel_fourier,
    net_learning_rate,
    perelman_field,
    perelman_functional,
    predicted_rate,
    sigma_b_for_width,
    width_for_sigma_b,
)
from nnflow.torus.networks import ProductCosNet, ProductGaussNet, TorusMetricNet, periodic_features
from nnflow.torus.reference import metric_distance, mode_amplitude, ricci_flow

from .helpers import one_thread_only  # noqa: F401  (autouse: these solvers run best on one thread)

TWO_PI = 2 * math.pi



# ---------------------------------------------------------------------- networks and kernels
@pytest.mark.parametrize("kind", ["cosnet", "gaussnet"])
def test_product_network_values_and_jets_agree_with_module_forward(kind):
    # The factorized tensor-grid evaluation vs the module's forward (per point), and the closed-form
    # jets vs torch.func jacfwd through the module forward.
    n = 2
    metric0 = FourierMetric.random(n, 1, 0.3, seed=1)
    net = TorusMetricNet(n, metric0, kind, width=64, sigma_b=3.0, seed=4)
    params = {k: v + 0.05 * torch.randn_like(v) for k, v in net.params0.items()}
    grid = TorusGrid(n, 8)
    values = net.grid_components(params, *grid.axes)
    torch.testing.assert_close(values, net.components(params, grid.points), atol=1e-13, rtol=1e-12)
    f, df, ddf = net.grid_component_jets(params, *grid.axes)
    g, dg, ddg = metric_jets(net.metric_fn(params), grid.flat_points)
    basis = net.basis
    f0, df0, ddf0 = net.grid_component_jets(net.params0, *grid.axes)
    assembled = [
        metric0(grid.points) + torch.einsum("...c,cij->...ij", f - f0, basis),
        torch.einsum("...cm,cij->...ijm", df - df0, basis),
        torch.einsum("...cml,cij->...ijml", ddf - ddf0, basis),
    ]
    _, dmetric0, ddmetric0 = metric_jets(metric0, grid.flat_points)
    assembled[1] = assembled[1] + dmetric0.reshape(assembled[1].shape)
    assembled[2] = assembled[2] + ddmetric0.reshape(assembled[2].shape)
    for a, b in zip(assembled, (g, dg, ddg)):
        torch.testing.assert_close(a.reshape(b.shape), b, atol=1e-10, rtol=1e-10)


def test_product_nets_put_the_input_sum_inside_the_activation():
    torch.manual_seed(0)
    cos = ProductCosNet(3, width=5, sigma_b=2.0)
    x = torch.randn(4, 3, dtype=torch.float64)
    a, b, c = cos.a.double() * cos.scales[0], cos.b.double() * cos.scales[1], cos.c.double()
    torch.testing.assert_close(cos.double()(x), (a * torch.cos(x @ b.T + c)).sum(-1))
    gauss = ProductGaussNet(3, width=5, sigma_b=2.0, sigma_c=0.5).double()
    sa, sb, sc = gauss.scales
    expected = (
        gauss.a * sa * torch.exp(x @ (gauss.b * sb).T + gauss.c * sc - 0.25 - 4.0 * (x * x).sum(-1, keepdim=True) / 3)
    ).sum(-1)
    torch.testing.assert_close(gauss(x), expected)
    with pytest.raises(NotImplementedError):
        cos.jet(None)


@pytest.mark.parametrize("kind,sigma_b", [("cosnet", 2.0), ("gaussnet", 1.0)])
def test_empirical_ntk_approaches_the_analytic_kernel(kind, sigma_b):
    # Monte Carlo: the empirical NTK of one component network at width N, averaged over 4 seeds,
    # approaches Θ̄(θ − θ') with relative error ∝ N^{-1/2}.
    n = 2
    theta = torch.rand(4, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    analytic = net_kernel(kind, theta[:, None] - theta[None], sigma_b)

    def error(width):
        total = 0.0
        for seed in range(4):
            net = TorusMetricNet(n, FourierMetric.random(n, 1, 0.1), kind, width=width, sigma_b=sigma_b, seed=seed)
            jac = jacrev(lambda p, net=net: net.components(p, theta)[:, 0])(net.params0)  # component 0
            emp = sum(torch.einsum("p...,q...->pq", j[:, 0], j[:, 0]) for j in jac.values())
            total += (torch.linalg.matrix_norm(emp - analytic) / torch.linalg.matrix_norm(analytic)).item() / 4
        return total

    small, large = error(1000), error(16000)
    assert large < 0.5 * small  # √16 = 4 expected; 2 leaves room for Monte Carlo noise
    assert large < 6.0 / math.sqrt(16000)


@pytest.mark.parametrize("kind", ["cosnet", "gaussnet"])
@pytest.mark.parametrize("n", [2, 3])
def test_net_kernel_fourier_closed_form_matches_grid_dft(kind, n):
    sigma = 0.08
    grid = TorusGrid(n, 24)  # aliasing I_{24−k}(κ)/I_0(κ) < 1e-12 at κ = σ_b²/2n ≤ 4
    mult = kernel_multiplier(grid, kind, sigma)
    ks = [[1] + [0] * (n - 1), [2, 1] + [0] * (n - 2), [3] * n if n == 2 else [1, 2, 1]]
    closed = net_kernel_fourier(kind, ks, sigma_b_for_width(n, sigma))
    on_grid = torch.stack([mult[tuple(v % grid.size for v in k)] for k in ks])
    torch.testing.assert_close(on_grid, closed, atol=1e-10, rtol=0)  # aliasing: I_{M−k}(κ) ≈ 0
    assert mult.flatten()[0].item() == 1.0
    assert width_for_sigma_b(n, sigma_b_for_width(n, sigma)) == pytest.approx(sigma)


def test_kernel_widths_agree_for_small_sigma():
    # All three kernels have width σ: multipliers agree at low k to O(σ⁴k⁴).
    grid = TorusGrid(2, 32)
    sigma = 0.03
    g = gaussian_multiplier(grid, sigma)
    for kind in ("cosnet", "gaussnet"):
        m = kernel_multiplier(grid, kind, sigma)
        assert abs(m[1, 0] - g[1, 0]).item() < 1e-4
        assert abs(m[2, 1] - g[2, 1]).item() < 2e-3


# ---------------------------------------------------------------------- Perelman's functional
def test_perelman_field_is_twice_the_metric_gradient_of_F():
    # δF = −∫ δg_ij (Ric + ∇²φ)^{ij} dm with dm = dⁿθ fixed; autograd of the grid F gives the
    # Euclidean gradient G; lowering both indices, V = −2(Ric + ∇²φ) = 2 g G g / cell.
    grid = TorusGrid(2, 24)
    g = grid.evaluate(FourierMetric.random(2, 1, 0.3, seed=8)).requires_grad_(True)
    F = perelman_functional(grid, g)
    (G,) = torch.autograd.grad(F, g)
    G = 0.5 * (G + G.transpose(-1, -2)) / grid.cell
    gd = g.detach()
    from_autograd = 2 * gd @ G @ gd
    V = perelman_field(*grid.jets(gd))
    assert V.abs().max() > 1.0
    torch.testing.assert_close(from_autograd, V, atol=1e-8 * V.abs().max().item(), rtol=0)


# ---------------------------------------------------------------------- the linear prediction
@pytest.mark.parametrize("kernel", ["gauss", "cosnet", "gaussnet"])
@pytest.mark.parametrize("field", ["hamilton", "perelman"])
@pytest.mark.parametrize("k", [[1, 0], [2, 1], [3, 0]])
def test_mode_rate_is_ricci_rate_times_kernel_multiplier(kernel, field, k):
    # Exact for the linearized flow: rate = K̂(k) λ(k); measured with ε = 1e-5 (error O(ε)).
    grid = TorusGrid(2, 16)
    sigma = 0.06
    mult = kernel_multiplier(grid, kernel, sigma)
    khat = mult[k[0] % 16, k[1] % 16].item()
    if kernel == "gauss":
        assert khat == pytest.approx(math.exp(-2 * math.pi**2 * sigma**2 * (k[0] ** 2 + k[1] ** 2)))
    rates, local, dirs = predicted_rate(k, khat, field)
    for c in range(len(rates)):
        if abs(local[c]) < 1e-9 * abs(local).max():  # gauge directions: rate 0 for every kernel
            continue
        t_end = mode_time(rates[c].item())
        g0 = grid.evaluate(mode_metric(k, dirs[c], 1e-5))
        flow = kernel_flow(grid, g0, mult, field, t_end, 5, rtol=1e-12, atol=1e-14)
        amps = mode_amplitude(grid, flow.metrics - torch.eye(2, dtype=torch.float64), k, dirs[c])
        assert fitted_rate(flow.times, amps) == pytest.approx(rates[c].item(), rel=1e-4)


def test_wide_network_mode_rate_approaches_the_prediction():
    # A finite cos-net's empirical NTK is not stationary: its mode rate deviates from K̂λ by
    # O(N^{-1/2}); the deviation shrinks with the width.
    grid = TorusGrid(2, 12)
    k, sigma = [1, 1], 0.1
    khat = kernel_multiplier(grid, "cosnet", sigma)[1, 1].item()
    rates, local, dirs = predicted_rate(k, khat, "hamilton")
    metric = mode_metric(k, dirs[0], 1e-4)
    devs = []
    for width in (64, 4096):
        net = TorusMetricNet(2, metric, "cosnet", width, sigma_b_for_width(2, sigma), seed=3)
        flow = net_flow(grid, net, "hamilton", mode_time(rates[0].item()), 4)
        amps = mode_amplitude(grid, flow.metrics - torch.eye(2, dtype=torch.float64), k, dirs[0])
        devs.append(abs(fitted_rate(flow.times, amps) / rates[0].item() - 1))
    assert devs[1] < 0.5 * devs[0]
    assert devs[1] < 0.1


# ---------------------------------------------------------------------- σ → 0
def test_kernel_flow_error_vanishes_like_sigma_squared():
    # ‖g_σ(T) − g_Ricci(T)‖ ≈ C σ² (the multiplier is 1 − 2π²σ²|k|² + …); fitted exponent ≈ 2.
    grid = TorusGrid(2, 16)
    g0 = grid.evaluate(FourierMetric.random(2, 1, 0.3, seed=0))
    T = 0.01
    ref = ricci_flow(grid, g0, T, 2)
    sigmas = [0.08, 0.04, 0.02]
    errs = [
        metric_distance(
            grid, kernel_flow(grid, g0, gaussian_multiplier(grid, s), "hamilton", T, 2).metrics[-1], ref.metrics[-1]
        )
        for s in sigmas
    ]
    slopes = [math.log(errs[i] / errs[i + 1]) / math.log(2) for i in range(2)]
    assert errs[0] > errs[1] > errs[2]
    assert slopes == pytest.approx([2.0, 2.0], abs=0.1)
    # σ = 0 is the reference itself (up to the FFT round trip of the unit multiplier)
    local = kernel_flow(grid, g0, gaussian_multiplier(grid, 0.0), "hamilton", T, 2)
    torch.testing.assert_close(local.metrics, ref.metrics, atol=1e-10, rtol=0)


def test_finite_networks_approach_the_kernel_flow_with_width():
    # Same σ: |g_N(T) − g_∞(T)| decreases like N^{-1/2} (fit over three widths).
    grid = TorusGrid(2, 12)
    metric0 = FourierMetric.random(2, 1, 0.3, seed=0)
    g0 = grid.evaluate(metric0)
    sigma, T = 0.12, 0.01
    kern = kernel_flow(grid, g0, kernel_multiplier(grid, "cosnet", sigma), "hamilton", T, 2)
    widths, errs = [64, 512, 4096], []
    for width in widths:
        net = TorusMetricNet(2, metric0, "cosnet", width, sigma_b_for_width(2, sigma), seed=1)
        flow = net_flow(grid, net, "hamilton", T, 2)
        errs.append(metric_distance(grid, flow.metrics[-1], kern.metrics[-1]))
    slope = (math.log(errs[-1]) - math.log(errs[0])) / (math.log(widths[-1]) - math.log(widths[0]))
    assert -0.8 < slope < -0.3


def test_linearized_model_is_the_lazy_limit_of_the_network():
    # Finite net and linearized model differ by O(1/α) (α: output scale; η ∝ 1/α²).
    grid = TorusGrid(2, 10)
    metric0 = FourierMetric.random(2, 1, 0.3, seed=0)
    gaps = []
    for alpha in (1.0, 4.0):
        net = TorusMetricNet(2, metric0, "cosnet", 128, 3.0, alpha=alpha, seed=2)
        fin = net_flow(grid, net, "hamilton", 0.01, 2)
        lin = net_flow(grid, net, "hamilton", 0.01, 2, linearized=True)
        gaps.append(metric_distance(grid, fin.metrics[-1], lin.metrics[-1]))
        assert fin.extra["eta"] == pytest.approx(net_learning_rate(grid, net))
    assert gaps[1] == pytest.approx(gaps[0] / 4, rel=0.2)


# ---------------------------------------------------------------------- boundaries
def test_kernel_and_flow_arguments_are_checked():
    grid = TorusGrid(2, 8)
    g0 = torch.eye(2, dtype=torch.float64).expand(grid.shape + (2, 2)).clone()
    with pytest.raises(ValueError, match="unknown kernel"):
        kernel_multiplier(grid, "laplace", 0.1)
    with pytest.raises(ValueError, match="sigma"):
        sigma_b_for_width(2, 0.0)
    with pytest.raises(ValueError, match="unknown field"):
        kernel_flow(grid, g0, torch.ones(grid.shape), "yamabe", 0.1)
    with pytest.raises(ValueError, match="multiplier shape"):
        kernel_flow(grid, g0, torch.ones(4, 4), "hamilton", 0.1)
    net = TorusMetricNet(2, FourierMetric.random(2), "cosnet", 8, 1.0, parameterization="standard")
    with pytest.raises(ValueError, match="parameterization"):
        net_flow(grid, net, "hamilton", 0.01)
    with pytest.raises(ValueError, match="unknown torus network"):
        TorusMetricNet(2, FourierMetric.random(2), "mlp")
    features = periodic_features(torch.tensor([[0.25, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(features, torch.tensor([[0.0, -1.0, 1.0, 0.0]], dtype=torch.float64), atol=1e-15, rtol=0)


def test_network_initialization_does_not_depend_on_the_default_dtype():
    metric = FourierMetric.random(2)
    a = TorusMetricNet(2, metric, "cosnet", 16, 2.0, seed=5).params0
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        b = TorusMetricNet(2, metric, "cosnet", 16, 2.0, seed=5).params0
    finally:
        torch.set_default_dtype(old)
    for key in a:
        assert b[key].dtype == torch.float64
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)


def test_perelman_flow_breaks_down_at_small_sigma():
    # The fixed-measure F-gradient is backward-parabolic in the longitudinal gauge direction;
    # the kernel caps the growth rate at max_q |q|²K̂(q) = 2/(eσ²), so it survives wide kernels only.
    grid = TorusGrid(2, 16)
    g0 = grid.evaluate(FourierMetric.random(2, 1, 0.3, seed=0))
    wide = kernel_flow(grid, g0, gaussian_multiplier(grid, 0.1), "perelman", 0.02, 3, on_failure="stop")
    assert wide.failure is None
    narrow = kernel_flow(
        grid, g0, gaussian_multiplier(grid, 0.0), "perelman", 0.02, 3, on_failure="stop", max_steps=3000
    )
    assert narrow.failure is not None and narrow.times[-1] < 0.02
