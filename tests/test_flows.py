import math

import pytest
import torch

from nnflow.flows.frozen import FlowDivergedError, FrozenKernelFlow, metric_kernel_from_options
from nnflow.flows.linearized import LinearizedPotential
from nnflow.flows.losses import class_kappa, monge_ampere_loss
from nnflow.geometry.measures import fs_det, sigma_measure
from nnflow.kernels import hermitian_to_real, initial_params, metric_ntk
from nnflow.models import build_potential

NET = dict(network="mlp", width=12, depth=2, activation="tanh", output_scale=1.0)


def empirical_kernel_of(model):
    theta0 = initial_params(model)
    return lambda z1, j1, z2, j2: metric_ntk(model, (z1, j1), (z2, j2), params=theta0)


def squared_distance_flow(points, target_r, kernel, **kwargs):
    def loss(g):
        return 0.5 * (hermitian_to_real(g) - target_r).square().sum()

    return FrozenKernelFlow(kernel, points, loss_fn=loss, **kwargs)


@pytest.fixture(scope="module")
def k3_problem(point_cache):
    ps = point_cache("fermat_quartic", 24, seed=5)
    model = build_potential(n_coords=4, seed=0, **NET)
    kernel = empirical_kernel_of(model)
    flow0 = FrozenKernelFlow(kernel, ps)
    gen = torch.Generator().manual_seed(1)
    target = flow0.r0_train + 0.02 * torch.randn(flow0.r0_train.shape, generator=gen)
    return ps, kernel, flow0.r0_train, target


def closed_form(K, r0, target, t):
    # r_t = r* + exp(−Θt)(r0 − r*), Θ as an (N·m)² matrix in (point, component) order
    evals, evecs = torch.linalg.eigh(K)
    prop = evecs @ torch.diag(torch.exp(-evals * t)) @ evecs.T
    return target + (prop @ (r0 - target).reshape(-1)).reshape(r0.shape)


def test_squared_loss_flow_matches_closed_form(k3_problem):
    ps, kernel, r0, target = k3_problem
    flow = squared_distance_flow(ps, target, kernel)
    t_end = 0.5
    flow.integrate(t_end, rtol=1e-10, atol=1e-12)
    exact = closed_form(flow.matrix, r0, target, t_end)
    err = (flow.real_metric_train() - exact).norm() / (r0 - exact).norm()
    assert err < 1e-7, err
    # explicit Euler converges to it at first order: halving dt halves the error
    errors = []
    for steps in (50, 100):
        euler = squared_distance_flow(ps, target, kernel)
        for _ in range(steps):
            euler.step(t_end / steps)
        errors.append((euler.real_metric_train() - exact).norm().item())
    assert 1.8 < errors[0] / errors[1] < 2.2


def test_dense_and_matrix_free_agree(k3_problem):
    ps, kernel, _, _ = k3_problem
    kappa = class_kappa(ps)
    dense = FrozenKernelFlow(kernel, ps, kappa=kappa, dense=True, block_size=7)
    free = FrozenKernelFlow(kernel, ps, kappa=kappa, dense=False, block_size=5)
    for _ in range(5):
        assert dense.step(0.3) == pytest.approx(free.step(0.3), rel=1e-12)
    torch.testing.assert_close(dense.coefficients, free.coefficients, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(dense.metric(ps.z[:6], ps.jac[:6]), free.metric(ps.z[:6], ps.jac[:6]))


@pytest.mark.parametrize("name,power", [("fermat_cubic", 2.0), ("fermat_quartic", 1.0)])
def test_frozen_flow_equals_linearized_gradient_descent(name, power, point_cache):
    # GD on g_lin: θ ← θ − η Jᵀ∇L, so g ← g − η J Jᵀ ∇L = g − η Θ0 ∇L: the Euler flow exactly.
    ps = point_cache(name, 40, seed=2)
    base = build_potential(n_coords=ps.surface.n_coords, seed=3, **NET)
    kappa = class_kappa(ps)
    flow = FrozenKernelFlow(empirical_kernel_of(base), ps, kappa=kappa, power=power)
    linear = LinearizedPotential(base)
    opt = torch.optim.SGD(linear.parameters(), lr=0.2)
    for _ in range(15):
        opt.zero_grad()
        det = torch.linalg.det(linear.metric(ps.z, ps.jac)).real
        loss = monge_ampere_loss(det, ps.omega2, ps.weights, kappa, power)
        loss.backward()
        opt.step()
        assert flow.step(0.2) == pytest.approx(loss.item(), rel=1e-9)
    with torch.no_grad():
        g_lin = linear.metric(ps.z, ps.jac)
    g_flow = flow.metric(ps.z, ps.jac)
    assert (g_lin - g_flow).abs().max() / g_flow.abs().max() < 1e-6
    assert not torch.allclose(g_flow, flow.start(ps.z, ps.jac))  # it did move


def test_linearized_starts_at_base_and_keeps_base_frozen(point_cache):
    ps = point_cache("fermat_quintic", 10)
    base = build_potential(
        n_coords=5, seed=1, init="random", output_scale=0.2, **{k: v for k, v in NET.items() if k != "output_scale"}
    )
    g0 = base.metric(ps.z, ps.jac).detach()
    linear = LinearizedPotential(base)
    torch.testing.assert_close(linear.metric(ps.z, ps.jac), g0)
    assert sum(p.numel() for p in linear.parameters() if p.requires_grad) == sum(p.numel() for p in linear.theta)
    with torch.no_grad():
        for p in linear.theta:
            p.add_(0.01)
    # linear in θ − θ0: doubling the displacement doubles the change
    d1 = linear.metric(ps.z, ps.jac) - g0
    with torch.no_grad():
        for p in linear.theta:
            p.add_(0.01)
    d2 = linear.metric(ps.z, ps.jac) - g0
    torch.testing.assert_close(d2, 2 * d1)


def test_cubic_flow_lowers_sigma_well_below_fs(point_cache):
    train = point_cache("fermat_cubic", 300, seed=7)
    test = point_cache("fermat_cubic", 2000, seed=8)
    # a cos-net's (Gaussian) kernel at σ_b = 4: narrow enough to resolve the flat metric
    model = build_potential(network="cosnet", width=64, sigma_b=4.0, n_coords=3, seed=0)
    flow = FrozenKernelFlow(empirical_kernel_of(model), train, kappa=class_kappa(train))
    flow.integrate(10.0)
    sigma_fs = sigma_measure(test, fs_det(test))[0]
    det = torch.linalg.det(flow.metric(test.z, test.jac)).real
    sigma = sigma_measure(test, det)[0]
    assert sigma < 0.1 * sigma_fs, (sigma, sigma_fs)


def test_divergence_is_reported_and_state_kept(k3_problem):
    ps, kernel, _, _ = k3_problem
    flow = FrozenKernelFlow(kernel, ps, kappa=class_kappa(ps))
    flow.step(0.1)
    good = flow.coefficients.clone()
    with pytest.raises(FlowDivergedError, match="not positive definite|NaN"):
        for _ in range(50):
            flow.step(1e4)
            good = flow.coefficients.clone()
    torch.testing.assert_close(flow.coefficients, good)  # the last good state is kept
    assert math.isfinite(flow.real_metric_train().sum().item())


def test_bad_kernel_kind():
    with pytest.raises(ValueError, match="unknown kernel kind"):
        metric_kernel_from_options("magic", n_coords=5, network="mlp")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_flow_matches_cpu(k3_problem):
    ps, kernel, _, _ = k3_problem
    cpu = FrozenKernelFlow(kernel, ps, kappa=class_kappa(ps))
    gpu = FrozenKernelFlow(kernel, ps, kappa=class_kappa(ps)).cuda()
    for _ in range(3):
        cpu.step(0.2)
        gpu.step(0.2)
    torch.testing.assert_close(gpu.coefficients.cpu(), cpu.coefficients, rtol=1e-9, atol=1e-12)


def test_symmetric_dense_assembly_equals_row_blocks(k3_problem):
    """All rows (upper blocks mirrored) against two row shards assembled column by column."""
    from nnflow.flows.frozen import assemble_dense

    ps, kernel, _, _ = k3_problem
    full = assemble_dense(kernel, ps.z, ps.jac, block=5)
    halves = torch.cat([assemble_dense(kernel, ps.z, ps.jac, block=5, rows=r) for r in (slice(0, 11), slice(11, 24))])
    torch.testing.assert_close(full, halves, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(full, full.T, rtol=1e-12, atol=1e-14)


def test_cached_cross_kernel_gives_the_same_metric(k3_problem, point_cache):
    """Held-out metric through the cached Θ(x, train) equals the uncached blockwise product."""
    ps, kernel, _, _ = k3_problem
    held_out = point_cache("fermat_quartic", 9, seed=6)
    flows = [FrozenKernelFlow(kernel, ps, block_size=4, cache_mb=mb) for mb in (0, 64)]
    for flow in flows:
        for _ in range(3):
            flow.step(0.2)
            g = flow.metric(held_out.z, held_out.jac)  # second and third calls hit the cache
    assert len(flows[0]._cross) == 0 and len(flows[1]._cross) == 1
    torch.testing.assert_close(
        flows[1].metric(held_out.z, held_out.jac), flows[0].metric(held_out.z, held_out.jac), rtol=1e-12, atol=1e-14
    )
    assert g.shape == (9, 2, 2)
