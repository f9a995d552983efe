"""Reference Ricci flow on T^n: exact solutions, an independent solver, linear rates, invariants."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from nnflow.torus.geometry import FourierMetric, TorusGrid, volume_density
from nnflow.torus.kernel_flow import perelman_field
from nnflow.torus.reference import (
    conformal_flow_2d,
    hamilton_field,
    integrate,
    linear_modes,
    linear_operator,
    metric_distance,
    mode_amplitude,
    ricci_flow,
)

from .helpers import one_thread_only  # noqa: F401  (autouse: these solvers run best on one thread)

TWO_PI = 2 * math.pi



# ---------------------------------------------------------------------- the integrator
def test_integrator_on_problems_with_exact_solutions():
    times = torch.linspace(0, 2, 6)
    sol = integrate(
        lambda y: -y * torch.tensor([1.0, 3.0]), torch.ones(2, dtype=torch.float64), times, rtol=1e-10, atol=1e-12
    )
    exact = torch.stack([torch.exp(-times), torch.exp(-3 * times)], -1)
    torch.testing.assert_close(sol.states, exact, atol=1e-9, rtol=0)
    # harmonic oscillator: y = (cos t, −sin t); and y' = y² from 1/2: y = 1/(2 − t)
    osc = integrate(
        lambda y: torch.stack([y[1], -y[0]]),
        torch.tensor([1.0, 0.0], dtype=torch.float64),
        times,
        rtol=1e-10,
        atol=1e-12,
    )
    torch.testing.assert_close(osc.states, torch.stack([torch.cos(times), -torch.sin(times)], -1), atol=1e-8, rtol=0)
    riccati = integrate(
        lambda y: y * y, torch.tensor([0.5], dtype=torch.float64), torch.linspace(0, 1.5, 4), rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(riccati.states[:, 0], 1 / (2 - torch.linspace(0, 1.5, 4)), rtol=1e-8, atol=0)


def test_integrator_reports_blow_up():
    # y' = y² from y(0) = 1 blows up at t = 1.
    with pytest.raises(RuntimeError, match="underflowed|max_steps"):
        integrate(lambda y: y * y, torch.ones(1, dtype=torch.float64), [0.0, 0.5, 2.0])
    sol = integrate(lambda y: y * y, torch.ones(1, dtype=torch.float64), [0.0, 0.5, 2.0], on_failure="stop")
    assert sol.failure is not None and len(sol.states) == 2  # t = 0 and t = 0.5 were reached
    assert sol.states[1, 0].item() == pytest.approx(2.0, rel=1e-6)
    with pytest.raises(ValueError, match="increasing"):
        integrate(lambda y: y, torch.ones(1), [0.0, 0.0])


# ---------------------------------------------------------------------- exact reductions
def _log_diffusion_1d(u0: np.ndarray, t_end: float, n_frames: int) -> np.ndarray:
    """∂_t u = e^{−2u} u'' on the circle: numpy FFT derivatives + scipy Radau (independent code)."""
    m = len(u0)
    k = np.fft.fftfreq(m, d=1.0 / m)
    mult = -((TWO_PI * k) ** 2)

    def rhs(_t, u):
        return np.exp(-2 * u) * np.fft.ifft(mult * np.fft.fft(u)).real

    sol = solve_ivp(rhs, (0, t_end), u0, method="Radau", t_eval=np.linspace(0, t_end, n_frames), rtol=1e-11, atol=1e-13)
    assert sol.success
    return sol.y.T


def test_conformal_ricci_flow_matches_independent_one_dimensional_solver():
    # g = e^{2u}δ with u = u(θ_1): Ricci flow is ∂_t u = e^{−2u}∂₁²u; solve it with numpy/scipy on the
    # circle and compare with the 2-d tensor solver ∂_t g = −2Ric(g) (and the conformal solver).
    size, T = 32, 0.02
    grid = TorusGrid(2, size)
    x = np.arange(size) / size
    u0 = 0.3 * np.cos(TWO_PI * x) + 0.1 * np.sin(2 * TWO_PI * x)
    u_ref = _log_diffusion_1d(u0, T, 3)
    u0_grid = torch.as_tensor(u0)[:, None].expand(size, size)
    g0 = torch.exp(2 * u0_grid)[..., None, None] * torch.eye(2, dtype=torch.float64)
    tensor = ricci_flow(grid, g0, T, 3)
    conformal = conformal_flow_2d(grid, g0, T, 3)
    for flow in (tensor, conformal):
        g = flow.metrics[-1]
        u = 0.5 * torch.log(g[..., 0, 0])
        torch.testing.assert_close(u, torch.as_tensor(u_ref[-1])[:, None].expand(size, size), atol=1e-8, rtol=0)
        torch.testing.assert_close(g[..., 0, 1], torch.zeros(size, size), atol=1e-9, rtol=0)  # stays conformal
        torch.testing.assert_close(g[..., 1, 1], g[..., 0, 0], atol=1e-9, rtol=0)
    assert np.abs(u_ref[-1] - u0).max() > 0.05  # the flow moved the metric


def test_tensor_and_conformal_solvers_agree_for_a_general_metric():
    grid = TorusGrid(2, 24)
    g0 = grid.evaluate(FourierMetric.random(2, max_mode=1, amplitude=0.4, seed=2))
    tensor = ricci_flow(grid, g0, 0.02, 3)
    conformal = conformal_flow_2d(grid, g0, 0.02, 3)
    change = metric_distance(grid, tensor.metrics[-1], g0)
    assert change > 0.03
    assert metric_distance(grid, tensor.metrics[-1], conformal.metrics[-1]) < 1e-7 * change


def test_area_is_conserved_and_metric_flattens_in_two_dimensions():
    # dA/dt = −∫R dA = −4πχ(T²) = 0, and the metric becomes flat (R → 0) as t grows.
    grid = TorusGrid(2, 16)
    g0 = grid.evaluate(FourierMetric.random(2, max_mode=1, amplitude=0.4, seed=4))
    flow = conformal_flow_2d(grid, g0, 0.2, 3)
    areas = [grid.integrate(volume_density(g)).item() for g in flow.metrics]
    assert areas == pytest.approx([areas[0]] * 3, rel=1e-9)
    from nnflow.torus.geometry import grid_curvature

    R = [grid_curvature(grid, g)["scalar"].abs().max().item() for g in flow.metrics]
    assert R[0] > 1 and R[-1] < 1e-2 * R[0]  # |k| = 1 modes decay like e^{−4π² t}


def test_product_with_a_circle_evolves_like_the_surface():
    # T³ = T² × S¹ with g = g₂(x, y) + dz²: the 3-d flow is the 2-d flow times a flat circle.
    grid3, grid2 = TorusGrid(3, 12), TorusGrid(2, 12)
    metric2 = FourierMetric.random(2, max_mode=1, amplitude=0.3, seed=6)
    g2 = grid2.evaluate(metric2)
    g3 = torch.zeros(grid3.shape + (3, 3), dtype=torch.float64)
    g3[..., :2, :2] = g2[:, :, None]
    g3[..., 2, 2] = 1.0
    flow3 = ricci_flow(grid3, g3, 0.01, 2, rtol=1e-10, atol=1e-12)
    flow2 = ricci_flow(grid2, g2, 0.01, 2, rtol=1e-10, atol=1e-12)
    out = flow3.metrics[-1]
    for z in range(12):
        torch.testing.assert_close(out[:, :, z, :2, :2], flow2.metrics[-1], atol=1e-8, rtol=0)
    torch.testing.assert_close(out[..., 2, 2], torch.ones(grid3.shape, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(
        out[..., :2, 2], torch.zeros(grid3.shape + (2,), dtype=torch.float64), atol=1e-10, rtol=0
    )


# ---------------------------------------------------------------------- linearization
@pytest.mark.parametrize("field,fn", [("hamilton", hamilton_field), ("perelman", perelman_field)])
@pytest.mark.parametrize("n,k", [(2, [1, 0]), (2, [2, -1]), (3, [1, 1, 0]), (3, [1, -2, 1])])
def test_linear_operator_is_the_derivative_of_the_field(field, fn, n, k):
    # V(δ + ε h cos(2πk·θ)) = ε L(q)h cos(2πk·θ) + O(ε²) for any symmetric h.
    grid = TorusGrid(n, 8)
    h = torch.randn(n, n, generator=torch.Generator().manual_seed(len(k)), dtype=torch.float64)
    h = h + h.T
    eps = 1e-6
    phase = torch.cos(TWO_PI * grid.points @ torch.tensor(k, dtype=torch.float64))
    g = torch.eye(n, dtype=torch.float64) + eps * phase[..., None, None] * h
    V = fn(*grid.jets(g)) / eps
    expected = phase[..., None, None] * linear_operator(TWO_PI * torch.tensor(k, dtype=torch.float64), h, field)
    torch.testing.assert_close(V, expected, atol=1e-4 * expected.abs().max().item(), rtol=0)


@pytest.mark.parametrize("n", [2, 3])
def test_linear_spectrum(n):
    k = [1, 2, 0][:n]
    q2 = TWO_PI**2 * sum(v * v for v in k)
    rates, dirs = linear_modes(k, "hamilton")
    expected = sorted([-q2] * (n * (n - 1) // 2) + [0.0] * n)
    torch.testing.assert_close(rates, torch.tensor(expected, dtype=torch.float64), atol=1e-9 * q2, rtol=0)
    prates, pdirs = linear_modes(k, "perelman")
    assert prates[-1].item() == pytest.approx(q2)  # the longitudinal gauge mode grows
    q = torch.tensor(k, dtype=torch.float64)
    qq = torch.outer(q, q) / q.square().sum()
    assert abs((pdirs[-1] * qq).sum().item()) == pytest.approx(1.0)
    if n == 2:  # the decaying Hamilton mode is conformal: E ∝ δ
        torch.testing.assert_close(dirs[0].abs(), torch.eye(2, dtype=torch.float64) / math.sqrt(2))


@pytest.mark.parametrize("n,k", [(2, [1, 0]), (2, [1, 1]), (3, [1, 0, 1])])
def test_small_modes_decay_at_linear_rates(n, k):
    # A non-gauge mode decays like e^{−|2πk|²t}; a gauge mode (a Lie derivative of δ) does not move.
    grid = TorusGrid(n, 12 if n == 3 else 16)
    rates, dirs = linear_modes(k, "hamilton")
    eps = 1e-5
    eye = torch.eye(n, dtype=torch.float64)
    for c in (0, len(rates) - 1):  # the first decays, the last is gauge (rate 0)
        g0 = grid.evaluate(FourierMetric(torch.tensor([k]), eps * dirs[c][None], torch.zeros(1, n, n)))
        t_end = 1.0 / TWO_PI**2
        flow = ricci_flow(grid, g0, t_end, 3, rtol=1e-12, atol=1e-14)  # |g| ≈ 1 ≫ ε: tight tolerance
        amps = mode_amplitude(grid, flow.metrics - eye, k, dirs[c])
        expected = eps * torch.exp(rates[c] * flow.times)
        torch.testing.assert_close(amps, expected, rtol=1e-4, atol=0)


# ---------------------------------------------------------------------- boundaries
def test_reference_rejects_bad_input():
    grid = TorusGrid(2, 8)
    g = torch.eye(2, dtype=torch.float64).expand(grid.shape + (2, 2)).clone()
    with pytest.raises(ValueError, match="t_end"):
        ricci_flow(grid, g, -1.0)
    with pytest.raises(ValueError, match="n_frames"):
        ricci_flow(grid, g, 0.1, n_frames=1)
    bad = g.clone()
    bad[0, 0] = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    with pytest.raises(ValueError, match="not positive definite"):
        ricci_flow(grid, bad, 0.1)
    with pytest.raises(ValueError, match="n = 2"):
        conformal_flow_2d(TorusGrid(3, 8), torch.eye(3).expand((8, 8, 8, 3, 3)).clone(), 0.1)
    with pytest.raises(ValueError, match="unknown field"):
        linear_modes([1, 0], "yamabe")


def test_integrator_stops_on_max_steps_and_on_a_failed_check():
    # torchdiffeq counts steps per output time; integrate bounds the total (accepted + rejected)
    rhs = lambda y: -50.0 * y  # noqa: E731
    with pytest.raises(RuntimeError, match="max_steps=5 steps"):
        integrate(rhs, torch.ones(3, dtype=torch.float64), [0.0, 0.5, 1.0], rtol=1e-10, atol=1e-12, max_steps=5)
    sol = integrate(rhs, torch.ones(3, dtype=torch.float64), torch.linspace(0, 0.1, 5), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sol.states[:, 0], torch.exp(-50.0 * torch.linspace(0, 0.1, 5)), rtol=1e-8, atol=0)
    assert sol.n_steps > 0 and sol.n_rhs >= 6 * sol.n_steps and sol.failure is None
    # a check failing once y < 0.5 (t = log 2 / 50 ≈ 0.0139): frames before it are kept
    check = lambda y: "below one half" if y.max() < 0.5 else None  # noqa: E731
    stopped = integrate(
        rhs, torch.ones(3, dtype=torch.float64), torch.linspace(0, 0.1, 11), check=check, on_failure="stop"
    )
    assert stopped.failure.startswith("below one half at t=") and len(stopped.states) == 2  # t = 0, 0.01
    assert float(stopped.failure.split("t=")[1]) == pytest.approx(math.log(2) / 50, abs=0.005)
