"""Complete intersections: topology, sampling with exact weights, charts, curvature (issue 19)."""

import math

import pytest
import torch

from nnflow.geometry import fermat_quintic, sample_points
from nnflow.geometry.cicy import (
    CompleteIntersection,
    bicubic,
    cicy_from_config,
    cubic_cubic,
    multihomogeneous_monomials,
    random_cicy,
    tetraquadric,
)
from nnflow.geometry.cicy_points import CICYPointSet, cicy_fs_potential
from nnflow.geometry.cicy_sampling import codimension_choices, sample_cicy
from nnflow.geometry.curvature import curvature
from nnflow.geometry.hypersurface import expected_euler_characteristic
from nnflow.geometry.measures import euler_characteristic, volume

PRESETS = {"bicubic": bicubic, "tetraquadric": tetraquadric, "cubic_cubic": cubic_cubic}
# χ of the three CICYs as listed in the CICY classification (Candelas et al. 1988)
KNOWN_EULER = {"bicubic": -162, "tetraquadric": -128, "cubic_cubic": -144}


@pytest.fixture(scope="module")
def samples():
    return {name: sample_cicy(make(), 15000, seed=3) for name, make in PRESETS.items()}


def test_topology_from_configuration():
    for name, make in PRESETS.items():
        assert make().euler_characteristic() == KNOWN_EULER[name]
    # the hypersurface formula (an independent implementation) for one-factor CICYs
    for n in (2, 3, 4):
        assert random_cicy([n], [[n + 1]]).euler_characteristic() == expected_euler_characteristic(n + 1)
    b = bicubic()
    assert b.intersection_numbers() == {(1, 2): 3, (2, 1): 3}  # a point in one P², a line in the other: 3
    assert b.volume([1.0, 1.0]) == 18.0 and b.volume([2.0, 1.0]) == 3 * 3 * 4 + 3 * 3 * 2
    assert tetraquadric().volume(1.0) == 6 * 4 * 2 and cubic_cubic().volume(2.0) == 9 * 8


@pytest.mark.parametrize("name", list(PRESETS))
def test_points_solve_every_equation(name, samples):
    ps = samples[name]
    x = ps.surface
    assert len(ps) == 15000 and ps.z.dtype == torch.complex128
    assert (x(ps.z).abs() / x.scale(ps.z)).max() < 1e-12
    assert torch.allclose(ps.z.gather(-1, ps.patch), torch.ones_like(ps.patch, dtype=ps.z.dtype))
    for i, block in enumerate(x.blocks(ps.z)):
        assert (block.abs() <= 1 + 1e-12).all()
        assert ((ps.patch[:, i] >= x.offsets[i]) & (ps.patch[:, i] < x.offsets[i + 1])).all()
    assert (ps.weights > 0).all() and torch.isfinite(ps.weights).all()


def test_sampling_is_deterministic_and_vectorized():
    x = bicubic()
    a, b, c = sample_cicy(x, 500, seed=1), sample_cicy(x, 500, seed=1), sample_cicy(x, 500, seed=2)
    assert torch.equal(a.z, b.z) and not torch.allclose(a.z, c.z)
    # chunking the planes differently changes nothing
    d = sample_cicy(x, 500, seed=1, chunk_planes=7)
    assert torch.allclose(a.z, d.z, atol=1e-12)


@pytest.mark.parametrize("name,t", [("bicubic", [2.0, 1.0]), ("bicubic", [1.0, 3.0]),
                                    ("tetraquadric", [1.0, 2.0, 1.0, 3.0])])
def test_volume_equals_intersection_polynomial(name, t, samples):
    """Vol(t) = Vol_FS(1)·mean(w det g_t/|Ω|²) tests the sampling density: only points drawn from the
    FS volume form of t = 1 give ∫(Σ t_i J_i)^n at every t."""
    ps = samples[name]
    value, se = volume(ps, ps.fs_det(t))
    assert abs(value - ps.surface.volume(t)) < 4 * se, (value, se, ps.surface.volume(t))
    assert se < 0.01 * value


def test_one_plane_type_alone_gives_the_wrong_volume(monkeypatch):
    """The mixture over plane types matters: the bicubic's type c = (1, 2) alone is biased (the check can fail)."""
    import nnflow.geometry.cicy_sampling as sampling

    real = sampling.codimension_choices

    def only_first(x):
        types, probs, counts = real(x)
        return types[:1], torch.ones(1, dtype=torch.float64), counts[:1]

    monkeypatch.setattr(sampling, "codimension_choices", only_first)
    ps = sample_cicy(bicubic(), 15000, seed=3)
    value, se = volume(ps, ps.fs_det([2.0, 1.0]))
    assert abs(value - 54.0) > 10 * se


def test_codimension_probabilities():
    types, probs, counts = codimension_choices(tetraquadric())
    assert len(types) == 4 and torch.allclose(probs, torch.full((4,), 0.25, dtype=torch.float64))
    assert (counts == 2).all() and (types.sum(1) == 3).all()


def test_factor_rescaling_invariance():
    x = bicubic()
    ps = sample_cicy(x, 400, seed=4)
    lam = [torch.complex(torch.tensor(0.3), torch.tensor(-1.7)), torch.complex(torch.tensor(2.5), torch.tensor(0.4))]
    scaled = torch.cat([block * lam[i].to(torch.complex128) for i, block in enumerate(x.blocks(ps.z))], -1)
    # p is multihomogeneous: p(λ z) = Π λ_i^{q_i} p(z) (checked away from X, on random z)
    z = torch.randn(50, x.n_coords, dtype=torch.complex128)
    zl = torch.cat([block * lam[i].to(torch.complex128) for i, block in enumerate(x.blocks(z))], -1)
    assert torch.allclose(x(zl), x(z) * (lam[0] ** 3 * lam[1] ** 3).to(torch.complex128), rtol=1e-12)
    again = CICYPointSet.from_points(x, scaled)
    assert torch.allclose(again.z, ps.z, atol=1e-13)
    assert torch.allclose(again.weights, ps.weights, rtol=1e-10)
    assert torch.allclose(again.omega2, ps.omega2, rtol=1e-10)


@pytest.mark.parametrize("name", list(PRESETS))
def test_chart_jacobian_and_hessian_by_finite_differences(name, samples):
    """z + εJ_a stays on X to O(ε²), z + εJ_a + ½ε²H_aa to O(ε³)."""
    ps = samples[name].subset(slice(0, 200))
    x = ps.surface
    H = ps.embedding_hessian()
    for eps in (1e-3, 1e-4):
        first = x(ps.z[:, None] + eps * ps.jac).abs().amax()
        diagonal = H.diagonal(dim1=1, dim2=2).transpose(1, 2)  # H_aa: (B, n, n_coords)
        second = x(ps.z[:, None] + eps * ps.jac + 0.5 * eps**2 * diagonal).abs().amax()
        assert second < 1e-2 * first
    # the ratio of the errors at two steps shows the orders (ε² and ε³)
    d1 = [x(ps.z[:, None] + e * ps.jac).abs().amax() for e in (1e-3, 1e-4)]
    assert 50 < d1[0] / d1[1] < 200


def test_one_factor_cicy_matches_the_hypersurface_code():
    """The Fermat quintic as a CICY: the same weights, |Ω|² and Chern density as the hypersurface path."""
    surface = fermat_quintic()
    x = CompleteIntersection([4], [(surface.exponents, surface.coefficients)])
    ps = sample_points(surface, 300, seed=0)
    cps = CICYPointSet.from_points(x, ps.z)
    assert torch.equal(cps.patch[:, 0], ps.patch) and torch.equal(cps.elim[:, 0], ps.elim)
    assert torch.allclose(cps.weights, ps.weights, rtol=1e-11)
    assert torch.allclose(cps.omega2, ps.omega2, rtol=1e-11)
    assert torch.allclose(cps.embedding_hessian(), ps.embedding_hessian(), rtol=1e-10, atol=1e-12)
    from nnflow.geometry.fubini_study import fs_potential

    a = curvature(ps.subset(slice(0, 50)), fs_potential)["chern_density"]
    b = curvature(cps.subset(slice(0, 50)), cicy_fs_potential(x))["chern_density"]
    assert torch.allclose(a, b, rtol=1e-9)


@pytest.mark.parametrize("name", list(PRESETS))
def test_euler_characteristic_from_fs_curvature(name, samples):
    ps = samples[name]
    out = curvature(ps, cicy_fs_potential(ps.surface))
    assert torch.allclose(out["det_g"], ps.fs_det(), rtol=1e-10)
    chi, se = euler_characteristic(ps, out["chern_density"])
    assert abs(chi - KNOWN_EULER[name]) < 3 * se, (chi, se)
    assert se < 0.25 * abs(KNOWN_EULER[name])


# ---------------------------------------------------------------------- bad input
def test_not_calabi_yau_is_refused():
    with pytest.raises(ValueError, match="not Calabi–Yau.*row sums \\[4, 3\\]"):
        random_cicy([2, 2], [[4], [3]])
    with pytest.raises(ValueError, match="not Calabi–Yau"):
        random_cicy([5], [[3, 2]])


def test_mismatched_and_malformed_polynomials_are_refused():
    e = multihomogeneous_monomials([2, 2], [3, 3])
    with pytest.raises(ValueError, match="one coefficient per monomial"):
        CompleteIntersection([2, 2], [(e, [1.0] * (len(e) - 1))])
    with pytest.raises(ValueError, match="shape"):
        CompleteIntersection([2, 2], [(e[:, :5], [1.0] * len(e))])
    bad = e.clone()
    bad[0, 0] += 1  # one monomial of degree 4 in the first P²
    with pytest.raises(ValueError, match="not homogeneous in factor 0"):
        CompleteIntersection([2, 2], [(bad, [1.0] * len(e))])
    with pytest.raises(ValueError, match="all coefficients are zero"):
        CompleteIntersection([2, 2], [(e, [0.0] * len(e))])
    with pytest.raises(ValueError, match="unknown CICY"):
        cicy_from_config({"name": "bicubik"})
    with pytest.raises(ValueError, match="manifold=random_cicy"):
        cicy_from_config({"name": "random_cicy", "factors": [2, 2], "configuration": [[3], [2]]})


def test_singular_configuration_is_refused_at_sampling():
    """p = l² for a multilinear l: every point of X is singular."""
    e1 = multihomogeneous_monomials([1, 1, 1, 1], [1, 1, 1, 1])
    g = torch.Generator().manual_seed(0)
    c1 = torch.randn(len(e1), generator=g, dtype=torch.float64)
    exps, coefs = {}, {}
    for i in range(len(e1)):
        for j in range(len(e1)):
            key = tuple((e1[i] + e1[j]).tolist())
            coefs[key] = coefs.get(key, 0.0) + float(c1[i] * c1[j])
            exps[key] = key
    x = CompleteIntersection([1, 1, 1, 1], [(list(exps.values()), list(coefs.values()))], name="square")
    with pytest.raises(ValueError, match="singular at a sampled point"):
        sample_cicy(x, 100, seed=0)


def test_three_equations_are_refused_clearly():
    x = random_cicy([2, 2, 2], [[3, 0, 0], [0, 3, 0], [0, 0, 3]])
    assert x.dim == 3 and x.euler_characteristic() == 0  # a product of three elliptic curves
    with pytest.raises(NotImplementedError, match="3 equations"):
        sample_cicy(x, 10)


def test_kahler_moduli_validation():
    with pytest.raises(ValueError, match="one Kähler parameter per factor"):
        bicubic().volume([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="positive"):
        bicubic().volume([1.0, -1.0])
    assert math.isclose(bicubic().volume(2.0), 18.0 * 8)
