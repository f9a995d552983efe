import math

import pytest
import torch

from nnflow.geometry import (
    Hypersurface,
    PointSet,
    embedding_jacobian,
    fs_metric,
    make_hypersurface,
    pullback,
    sample_points,
)
from nnflow.geometry.charts import embedding_hessian
from nnflow.geometry.curvature import quadratic_embedding

from .conftest import MANIFOLDS


@pytest.mark.parametrize("name", MANIFOLDS)
def test_points_lie_on_x(name, point_cache):
    ps = point_cache(name, 3000)
    rel = ps.surface(ps.z).abs() / ps.surface.scale(ps.z)
    assert rel.max() < 1e-12
    assert len(ps) == 3000
    # patch coordinate is 1 and the largest
    assert torch.allclose(ps.z.gather(-1, ps.patch[:, None]), torch.ones(len(ps), 1, dtype=ps.z.dtype))
    assert (ps.z.abs() <= 1 + 1e-12).all()
    assert (ps.patch != ps.elim).all()


@pytest.mark.parametrize("name", MANIFOLDS)
def test_jacobian_rows_are_tangent_and_pullback_is_hermitian_positive(name, point_cache):
    ps = point_cache(name, 2000)
    grad = ps.surface.gradient(ps.z)
    tangency = (ps.jac @ grad[..., None]).abs().squeeze(-1)
    assert tangency.max() < 1e-10 * grad.abs().max()
    g = pullback(ps.jac, fs_metric(ps.z))
    torch.testing.assert_close(g, g.mH, rtol=0, atol=1e-14)
    assert torch.linalg.eigvalsh(g).min() > 0
    assert (ps.weights > 0).all() and torch.isfinite(ps.weights).all()


@pytest.mark.parametrize("name", ["fermat_quintic", "random_quintic", "fermat_cubic"])
def test_quadratic_chart_expansion_stays_on_x(name, point_cache):
    # p(z0 + xJ + ½xxH) = O(|x|³): halving x divides the residual by ~8.
    ps = point_cache(name, 50)
    H = embedding_hessian(ps.surface, ps.z, ps.jac, ps.elim)
    n = ps.dim
    direction = torch.randn(len(ps), 2 * n, generator=torch.Generator().manual_seed(0))
    res = []
    for eps in (1e-2, 5e-3):
        z = torch.stack(
            [quadratic_embedding(eps * d, z0, j, h) for d, z0, j, h in zip(direction, ps.z, ps.jac, H)]
        )
        res.append(ps.surface(z).abs())
    ratio = (res[0] / res[1]).median()
    assert 7.0 < ratio < 9.0


def test_invariant_under_rescaling(point_cache):
    ps = point_cache("random_quintic", 500)
    lam = torch.complex(torch.randn(len(ps), 1), torch.randn(len(ps), 1))
    again = PointSet.from_points(ps.surface, lam * ps.z)
    torch.testing.assert_close(again.z, ps.z, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(again.weights, ps.weights, rtol=1e-10, atol=0)
    torch.testing.assert_close(again.omega2, ps.omega2, rtol=1e-10, atol=0)
    assert torch.equal(again.patch, ps.patch) and torch.equal(again.elim, ps.elim)


def test_seed_determinism_and_difference():
    s = make_hypersurface("fermat_quartic")
    a = sample_points(s, 300, seed=5)
    b = sample_points(s, 300, seed=5)
    c = sample_points(s, 300, seed=6)
    assert torch.equal(a.z, b.z) and torch.equal(a.weights, b.weights)
    assert not torch.allclose(a.z[:5], c.z[:5])
    # a prefix of a longer sample is the shorter sample
    d = sample_points(s, 1000, seed=5)
    torch.testing.assert_close(d.z[:300], a.z)


def test_save_load_roundtrip(tmp_path):
    s = make_hypersurface("dwork_quintic", psi=0.3)
    ps = sample_points(s, 200, seed=2)
    path = ps.save(tmp_path / "pts" / "set.pt")
    back = PointSet.load(path)
    for k in ("z", "weights", "omega2", "patch", "elim", "jac"):
        assert torch.equal(getattr(back, k), getattr(ps, k))
    assert back.meta["seed"] == 2 and back.surface.name == "dwork_quintic"
    torch.testing.assert_close(back.surface.coefficients, s.coefficients)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_bad_n_points(bad):
    with pytest.raises(ValueError, match="n_points must be a positive integer"):
        sample_points(make_hypersurface("fermat_cubic"), bad)


def test_singular_polynomial_raises():
    # p = z0² (z1³ + z2³ + z3³ + z4³ + z0³): every line meets {z0 = 0} in a double root,
    # where ∇p = 0.
    e = [[5, 0, 0, 0, 0], [2, 3, 0, 0, 0], [2, 0, 3, 0, 0], [2, 0, 0, 3, 0], [2, 0, 0, 0, 3]]
    s = Hypersurface(e, [1, 1, 1, 1, 1], name="doubled")
    with pytest.raises((ValueError, RuntimeError), match="singular"):
        sample_points(s, 100)


def test_omega_integral_on_cubic_matches_closed_form(point_cache):
    # ∫|Ω|² d²x on x³+y³+1=0 with Ω = dx/(3y²): (1/3)∫_C|1+x³|^{-4/3} d²x
    # = (π/9) γ(1/3)³, γ(s) = Γ(s)/Γ(1−s) (complex beta integral). This checks the sampling
    # measure and the weights against an independent fact.
    ps = point_cache("fermat_cubic", 40000, seed=1)
    w = ps.weights
    estimate = ps.integral_factor() * w.mean().item()
    err = ps.integral_factor() * w.std().item() / math.sqrt(len(w))
    exact = math.pi / 9 * (math.gamma(1 / 3) / math.gamma(2 / 3)) ** 3
    assert abs(estimate - exact) < 4 * err, (estimate, exact, err)
    assert err / exact < 0.01


def test_jacobian_formula_against_implicit_derivative(point_cache):
    # Move along local coordinate a, re-solve p=0 for the eliminated one by Newton,
    # and compare the finite difference with J.
    ps = point_cache("random_quintic", 20)
    J = embedding_jacobian(ps.surface.gradient(ps.z), ps.patch, ps.elim)
    torch.testing.assert_close(J, ps.jac)
    i = 0
    z0, j, row = ps.z[i].clone(), ps.elim[i], ps.jac[i, 0]
    k = int((row.abs() == 1).nonzero()[0])
    eps = 1e-6
    z = z0.clone()
    z[k] += eps
    for _ in range(20):
        z[j] -= ps.surface(z[None])[0] / ps.surface.gradient(z[None])[0, j]
    fd = (z - z0) / eps
    torch.testing.assert_close(fd, row, rtol=1e-4, atol=1e-4)


def test_float32_option_matches_float64(point_cache):
    ps = point_cache("fermat_quintic", 2000)
    from nnflow.geometry.measures import fs_det, sigma_measure

    s64 = sigma_measure(ps, fs_det(ps))[0]
    p32 = ps.to(dtype=torch.complex64)
    assert p32.z.dtype == torch.complex64 and p32.weights.dtype == torch.float32
    s32 = sigma_measure(p32, fs_det(p32))[0]
    assert abs(s32 - s64) < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sampling_matches_cpu():
    s = make_hypersurface("fermat_quintic")
    a = sample_points(s, 1000, seed=3)
    b = sample_points(s, 1000, seed=3, device="cuda")
    # roots may come out in another order per line; compare sorted weights
    torch.testing.assert_close(b.weights.cpu().sort().values, a.weights.sort().values, rtol=1e-8, atol=0)
