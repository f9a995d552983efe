"""Curvature of metrics on T^n: closed forms, identities, and the autodiff and spectral routes agreeing."""

import math

import pytest
import torch
from torch.func import jacfwd

from nnflow.torus.geometry import (
    FourierMetric,
    TorusGrid,
    christoffel,
    curvature_invariants,
    grid_curvature,
    metric_jets,
    ricci,
    ricci_autodiff,
    scalar_curvature,
    tensor_grid_jets,
    volume_density,
)

TWO_PI = 2 * math.pi


@pytest.fixture(autouse=True)
def _one_thread():  # small tensors: one thread is much faster on a shared CPU
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _points(n, count=40, seed=0):
    return torch.rand(count, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _diffeo(n, eps=0.08):
    """ψ(θ) = θ + ε (sin 2πθ_{i+1} + ½ cos 2π(θ_i + θ_{i+2}))_i: a diffeomorphism of T^n isotopic to 1."""

    def psi(theta):
        rolled1 = torch.roll(theta, -1, -1)
        rolled2 = torch.roll(theta, -2, -1)
        return theta + eps * (torch.sin(TWO_PI * rolled1) + 0.5 * torch.cos(TWO_PI * (theta + rolled2)))

    return psi


def _pullback(psi, metric):
    """θ ↦ Dψ(θ)ᵀ g(ψ(θ)) Dψ(θ) for one point (use under vmap / jacfwd)."""

    def pulled(theta):
        J = jacfwd(psi)(theta)
        return J.T @ metric(psi(theta)) @ J

    return pulled


def _conformal(n):
    """u(θ) = Σ_l a_l cos 2π(θ_l + l/7) + b sin 2π(θ_0 + θ_1), with ∂u and ∂∂u in closed form."""
    a = torch.tensor([0.3, -0.2, 0.15][:n], dtype=torch.float64)
    b = 0.1
    shift = torch.arange(n, dtype=torch.float64) / 7
    e01 = torch.zeros(n, dtype=torch.float64)
    e01[:2] = 1.0

    def u(theta):
        return (a * torch.cos(TWO_PI * (theta + shift))).sum(-1) + b * torch.sin(TWO_PI * theta[..., :2].sum(-1))

    def du(theta):
        return -TWO_PI * a * torch.sin(TWO_PI * (theta + shift)) + TWO_PI * b * torch.cos(
            TWO_PI * theta[..., :2].sum(-1)
        )[..., None] * e01

    def ddu(theta):
        diag = torch.diag_embed(-(TWO_PI**2) * a * torch.cos(TWO_PI * (theta + shift)))
        cross = -(TWO_PI**2) * b * torch.sin(TWO_PI * theta[..., :2].sum(-1))[..., None, None] * torch.outer(e01, e01)
        return diag + cross

    def metric(theta):
        return torch.exp(2 * u(theta))[..., None, None] * torch.eye(n, dtype=theta.dtype)

    return u, du, ddu, metric


# ---------------------------------------------------------------------- flat metrics
@pytest.mark.parametrize("n", [2, 3])
def test_constant_metric_is_flat(n):
    A = torch.randn(n, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    g_const = A @ A.T + n * torch.eye(n, dtype=torch.float64)

    def metric(theta):
        return g_const.expand(theta.shape[:-1] + (n, n))

    g, dg, ddg = metric_jets(metric, _points(n))
    assert christoffel(g, dg).abs().max() == 0
    assert ricci(g, dg, ddg).abs().max() == 0


@pytest.mark.parametrize("n", [2, 3])
def test_pullback_of_flat_metric_has_zero_curvature(n):
    # g = Dψᵀ Dψ is the flat metric in other coordinates: Ric = 0 although g is far from constant.
    metric = _pullback(_diffeo(n), lambda x: torch.eye(n, dtype=x.dtype))
    theta = _points(n)
    g, dg, ddg = metric_jets(metric, theta)
    assert dg.abs().max() > 0.5  # the coordinates really are curvilinear
    torch.testing.assert_close(ricci(g, dg, ddg), torch.zeros(len(theta), n, n), atol=1e-11, rtol=0)
    torch.testing.assert_close(ricci_autodiff(metric, theta), torch.zeros(len(theta), n, n), atol=1e-11, rtol=0)
    # on a grid: g is a trigonometric polynomial, so its spectral derivatives are exact
    grid = TorusGrid(n, 12 if n == 3 else 16)
    g_grid = torch.func.vmap(metric)(grid.flat_points).reshape(grid.shape + (n, n))
    torch.testing.assert_close(
        grid_curvature(grid, g_grid)["ricci"], torch.zeros(grid.shape + (n, n)), atol=1e-9, rtol=0
    )


# ---------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("n", [2, 3])
def test_conformally_flat_ricci_closed_form(n):
    # g = e^{2u}δ: Ric = −(n−2)(∂∂u − du⊗du) − (Δu + (n−2)|du|²)δ, R = −e^{−2u}(2(n−1)Δu + (n−2)(n−1)|du|²).
    u, du, ddu, metric = _conformal(n)
    theta = _points(n)
    d, dd = du(theta), ddu(theta)
    lap = torch.diagonal(dd, dim1=-2, dim2=-1).sum(-1)
    grad2 = d.square().sum(-1)
    eye = torch.eye(n, dtype=torch.float64)
    expected = -(n - 2) * (dd - d[:, :, None] * d[:, None, :]) - (lap + (n - 2) * grad2)[:, None, None] * eye
    expected_R = -torch.exp(-2 * u(theta)) * (2 * (n - 1) * lap + (n - 2) * (n - 1) * grad2)
    g, dg, ddg = metric_jets(metric, theta)
    ric = ricci(g, dg, ddg)
    torch.testing.assert_close(ric, expected, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ricci_autodiff(metric, theta), expected, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(scalar_curvature(g, ric), expected_R, atol=1e-10, rtol=1e-10)


def _warped(n):
    """g = dx² + f(x)² dy² (+ h(x)² dz²), f = 1.3 + 0.4 sin 2πx, h = 1.1 + 0.3 cos 2πx."""
    fs = [
        (
            lambda x: 1.3 + 0.4 * torch.sin(TWO_PI * x),
            lambda x: 0.4 * TWO_PI * torch.cos(TWO_PI * x),
            lambda x: -0.4 * TWO_PI**2 * torch.sin(TWO_PI * x),
        ),
        (
            lambda x: 1.1 + 0.3 * torch.cos(TWO_PI * x),
            lambda x: -0.3 * TWO_PI * torch.sin(TWO_PI * x),
            lambda x: -0.3 * TWO_PI**2 * torch.cos(TWO_PI * x),
        ),
    ][: n - 1]

    def metric(theta):
        x = theta[..., 0]
        diag = torch.stack([torch.ones_like(x)] + [f(x) ** 2 for f, _, _ in fs], -1)
        return torch.diag_embed(diag)

    return fs, metric


@pytest.mark.parametrize("n", [2, 3])
def test_warped_product_christoffel_and_ricci(n):
    # g = dx² + Σ_a f_a(x)² dy_a²: Γ^x_aa = −f_a f_a', Γ^a_xa = f_a'/f_a;
    # Ric_xx = −Σ_a f_a''/f_a, Ric_aa = −f_a (f_a'' + f_a' Σ_{b≠a} f_b'/f_b), off-diagonal 0.
    fs, metric = _warped(n)
    theta = _points(n)
    x = theta[:, 0]
    g, dg, ddg = metric_jets(metric, theta)
    gamma = christoffel(g, dg)
    ric = ricci(g, dg, ddg)
    expected = torch.zeros(len(theta), n, n, dtype=torch.float64)
    expected[:, 0, 0] = -sum(f2(x) / f(x) for f, _, f2 in fs)
    for a, (f, f1, f2) in enumerate(fs, start=1):
        torch.testing.assert_close(gamma[:, 0, a, a], -f(x) * f1(x))
        torch.testing.assert_close(gamma[:, a, 0, a], f1(x) / f(x))
        others = sum(fb1(x) / fb(x) for b, (fb, fb1, _) in enumerate(fs, start=1) if b != a)
        expected[:, a, a] = -f(x) * (f2(x) + f1(x) * others)
    torch.testing.assert_close(ric, expected, atol=1e-10, rtol=1e-10)
    if n == 2:  # Gaussian curvature K = −f''/f, R = 2K
        f, _, f2 = fs[0]
        torch.testing.assert_close(scalar_curvature(g, ric), -2 * f2(x) / f(x))


# ---------------------------------------------------------------------- identities and routes
@pytest.mark.parametrize("n,size", [(2, 32), (3, 12)])
def test_autodiff_and_spectral_routes_agree(n, size):
    metric = FourierMetric.random(n, max_mode=1, amplitude=0.4, seed=3)
    grid = TorusGrid(n, size)
    g = grid.evaluate(metric)
    # the metric is a trigonometric polynomial of degree 1: its grid jets are exact
    for a, b in zip(tensor_grid_jets(grid.from_axes(metric), grid.axes), grid.jets(g)):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=0)
    ric_grid = grid_curvature(grid, g)["ricci"].reshape(-1, n, n)
    ric_ad = ricci_autodiff(metric, grid.flat_points)
    g_, dg, ddg = metric_jets(metric, grid.flat_points)
    torch.testing.assert_close(ric_grid, ric_ad, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ricci(g_, dg, ddg), ric_ad, atol=1e-10, rtol=1e-10)


def test_two_dimensional_ricci_is_half_scalar_times_metric_and_gauss_bonnet():
    grid = TorusGrid(2, 32)
    g = grid.evaluate(FourierMetric.random(2, max_mode=2, amplitude=0.5, seed=5))
    curv = grid_curvature(grid, g)
    torch.testing.assert_close(curv["ricci"], 0.5 * curv["scalar"][..., None, None] * g, atol=1e-11, rtol=0)
    total = grid.integrate(curv["scalar"] * volume_density(g))  # ∫R dA = 4πχ(T²) = 0
    assert curv["scalar"].abs().max() > 1.0
    assert abs(total.item()) < 1e-10


def test_contracted_bianchi_identity_in_three_dimensions():
    # ∇^i R_ij = ½ ∂_j R for any metric (an identity the Ricci formula must satisfy).
    grid = TorusGrid(3, 16)
    g = grid.evaluate(FourierMetric.random(3, max_mode=1, amplitude=0.3, seed=7))
    curv = grid_curvature(grid, g)
    ric, gamma, R = curv["ricci"], curv["gamma"], curv["scalar"]
    dric = grid.gradient(ric)  # [..., i, j, k] = ∂_k R_ij
    cov = dric - torch.einsum("...lki,...lj->...ijk", gamma, ric) - torch.einsum("...lkj,...il->...ijk", gamma, ric)
    div = torch.einsum("...ik,...ijk->...j", torch.linalg.inv(g), cov)
    half_dR = 0.5 * grid.gradient(R)
    assert half_dR.abs().max() > 1.0
    torch.testing.assert_close(div, half_dR, atol=1e-7 * half_dR.abs().max().item(), rtol=0)


@pytest.mark.parametrize("n,size", [(2, 32), (3, 16)])
def test_curvature_invariants_are_diffeomorphism_invariant(n, size):
    metric = FourierMetric.random(n, max_mode=1, amplitude=0.3, seed=11)
    pulled = _pullback(_diffeo(n, eps=0.05), metric)
    grid = TorusGrid(n, size)
    g0 = grid.evaluate(metric)
    g1 = torch.func.vmap(pulled)(grid.flat_points).reshape(grid.shape + (n, n))
    assert (g1 - g0).abs().max() > 0.1  # really a different tensor field
    a, b = curvature_invariants(grid, g0), curvature_invariants(grid, g1)
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-6), key


# ---------------------------------------------------------------------- boundaries
@pytest.mark.parametrize("n,size", [(0, 16), (2, 3), (2.0, 16), (True, 16)])
def test_bad_grid_is_a_value_error(n, size):
    with pytest.raises(ValueError, match="must be"):
        TorusGrid(n, size)


def test_fourier_metric_checks():
    with pytest.raises(ValueError, match="amplitude"):
        FourierMetric.random(2, amplitude=1.2)
    with pytest.raises(ValueError, match="symmetric"):
        FourierMetric([[1, 0]], [[[0, 1], [0, 0]]], [[[0, 0], [0, 0]]])
    # amplitude < 1 guarantees positive definiteness everywhere
    g = TorusGrid(2, 32).evaluate(FourierMetric.random(2, max_mode=2, amplitude=0.99, seed=1))
    assert torch.linalg.eigvalsh(g).min() > 0


def test_volume_density_rejects_indefinite_metric():
    g = torch.eye(2, dtype=torch.float64).repeat(4, 1, 1)
    g[2] = torch.tensor([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="not positive definite at 1 of 4"):
        volume_density(g)
