"""Bi-jets (geometry/bijets.py, models/bijets.py): the exact curvature route through features and
MLPs, and of Fubini–Study, against nested autodiff of the potential; identities of the truncated
algebra."""

from __future__ import annotations

import pytest
import torch
from torch.func import vmap

from nnflow.geometry import bijets, sample_points
from nnflow.geometry.charts import embedding_hessian
from nnflow.geometry.curvature import _metric_derivatives, curvature
from nnflow.geometry.hypersurface import make_hypersurface
from nnflow.models.potential import build_potential, phase_options

NAMES = ("g", "dz", "dzbar", "ddbar")


def _potential(surface, init, activation, symmetry, degree, depth=2, width=24, seed=5):
    pot = build_potential("mlp", surface.n_coords, feature_degree=degree, init=init, width=width, depth=depth,
                          activation=activation, input_scale=0.3, seed=seed, feature_symmetry=symmetry,
                          **phase_options(surface, symmetry)).double()
    if init == "centered":  # move θ away from θ0, else the network part of K cancels
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in pot.network.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return pot


def _both(pot, surface, n_points=6, seed=3):
    pts = sample_points(surface, n_points, seed=seed)
    hess = embedding_hessian(surface, pts.z, pts.jac, pts.elim)
    with torch.no_grad():
        ref = vmap(lambda z0, j, h: _metric_derivatives(pot.potential, z0, j, h))(pts.z, pts.jac, hess)
    return ref, pot.metric_derivatives(pts.z, pts.jac, hess, block=4)


@pytest.mark.parametrize(
    "manifold, init, activation, symmetry, degree",
    [
        ("fermat_quintic", "centered", "gelu", "phases", 5),  # the quintic_mlp model
        ("fermat_quintic", "random", "tanh", "none", 1),
        ("fermat_quartic", "random", "erf", "phases", 4),
        ("fermat_quartic", "centered", "softplus", "none", 2),
        ("fermat_cubic", "random", "sin", "none", 3),
    ],
)
def test_exact_route_agrees_with_nested_autodiff(manifold, init, activation, symmetry, degree):
    surface = make_hypersurface(manifold)
    ref, new = _both(_potential(surface, init, activation, symmetry, degree), surface)
    for r, x, name in zip(ref, new, NAMES):
        assert r.shape == x.shape, name
        assert float((r - x).abs().max() / r.abs().max()) < 1e-9, name


def test_linearized_potential_exact_route_agrees_with_nested_autodiff():
    from nnflow.flows.linearized import LinearizedPotential

    surface = make_hypersurface("fermat_quintic")
    lin = LinearizedPotential(_potential(surface, "centered", "gelu", "phases", 5)).double()
    torch.manual_seed(1)
    with torch.no_grad():  # θ away from θ0: the tangent part is what is tested
        for p in lin.theta:
            p.add_(0.2 * torch.randn_like(p))
    assert lin.has_exact_curvature
    ref, new = _both(lin, surface, n_points=4)
    for r, x, name in zip(ref, new, NAMES):
        assert float((r - x).abs().max() / r.abs().max()) < 1e-9, name


def test_curvature_through_either_route_is_the_same():
    surface = make_hypersurface("fermat_quintic")
    pot = _potential(surface, "centered", "gelu", "phases", 5)
    pts = sample_points(surface, 10, seed=4)
    slow = curvature(pts, pot.potential, chunk_size=4)
    fast = curvature(pts, pot.potential, chunk_size=4, derivatives=pot.metric_derivatives)
    for key in slow:
        assert torch.allclose(fast[key], slow[key], rtol=1e-9, atol=0), key


@pytest.mark.parametrize("manifold, t", [("fermat_quintic", 1.0), ("fermat_quartic", 2.5), ("fermat_cubic", 1.0)])
def test_fubini_study_exact_route_agrees_with_nested_autodiff(manifold, t):
    from nnflow.geometry.fubini_study import fs_potential

    surface = make_hypersurface(manifold)
    pts = sample_points(surface, 8, seed=2)
    hess = embedding_hessian(surface, pts.z, pts.jac, pts.elim)
    ref = vmap(lambda z0, j, h: _metric_derivatives(lambda z: fs_potential(z, t), z0, j, h))(pts.z, pts.jac, hess)
    for r, x, name in zip(ref, bijets.fs_derivatives(pts.z, pts.jac, hess, t), NAMES):
        assert float((r - x).abs().max() / r.abs().max()) < 1e-10, name


def test_truncated_algebra_identities():
    n = 3
    torch.manual_seed(0)
    t = bijets.tables(n)
    assert t.A == 10 and len(t.full[0]) == 28**2
    # a random real function's bi-jet: Hermitian coefficient matrix c_{βα} = conj(c_{αβ})
    c = torch.randn(4, t.A, t.A, 2, dtype=torch.float64)
    c = torch.complex(c[..., 0], c[..., 1])
    c = (c + c.conj().transpose(1, 2)) / 2
    c[:, 0, 0] = 2.0 + torch.rand(4)  # positive value
    f = c.reshape(4, t.A * t.A, 1)
    one = bijets.real_bijet(torch.ones(4, 1, dtype=torch.float64), n)
    assert torch.allclose(bijets.mul(f, bijets.reciprocal_bijet(f, n), n), one, atol=1e-12)
    # log(f²) = 2 log f; exp∘log = id (compose with exp's derivatives, all e^{f0})
    assert torch.allclose(bijets.log_bijet(bijets.mul(f, f, n), n), 2 * bijets.log_bijet(f, n), atol=1e-12)
    lg = bijets.log_bijet(f, n)
    e = torch.exp(bijets.constant(lg).real)
    assert torch.allclose(bijets.compose(lg, [e] * 5, n), f, atol=1e-12)
    # the product is commutative and the merged square equals mul(f, f)
    g = f.flip(0)
    assert torch.allclose(bijets.mul(f, g, n), bijets.mul(g, f, n), atol=1e-12)
    d = f.clone()
    d[:, 0] = 0
    assert torch.allclose(bijets._square(d, n, 1), bijets.mul(d, d, n), atol=1e-12)


def test_exact_route_needs_an_mlp():
    surface = make_hypersurface("fermat_cubic")
    pot = build_potential("cosnet", surface.n_coords, feature_degree=1, width=8, seed=0).double()
    assert not pot.has_exact_curvature
    pts = sample_points(surface, 2, seed=0)
    with pytest.raises(ValueError, match="need an MLP potential; got CosNet"):
        pot.metric_derivatives(pts.z, pts.jac, embedding_hessian(surface, pts.z, pts.jac, pts.elim))


def test_fubini_study_measures_take_the_exact_route_by_default():
    from nnflow.geometry.measures import measure_fubini_study

    pts = sample_points(make_hypersurface("fermat_quintic"), 40, seed=6)
    fast = measure_fubini_study(pts, curvature_points=40)
    slow = measure_fubini_study(pts, curvature_points=40, derivatives=None)
    for key in ("euler", "euler_err", "ricci", "ricci_err"):
        assert fast[key] == pytest.approx(slow[key], rel=1e-9), key
