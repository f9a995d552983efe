"""Phase-invariant features: the symmetry group, the kept entries, their moments and jets."""

import math

import pytest
import torch

from nnflow.geometry import PointSet, fs_metric, make_hypersurface, pullback
from nnflow.kernels.analytic import analytic_kernel
from nnflow.models import ProjectiveFeatures, build_potential

from .helpers import feature_jet_by_autodiff


def _phase(r: torch.Tensor, d: int) -> torch.Tensor:
    return torch.polar(torch.ones(r.shape, dtype=torch.float64), 2 * math.pi * r.double() / d)


@pytest.mark.parametrize(
    "name,count",
    [("fermat_quintic", 5**5), ("dwork_quintic", 5**4), ("fermat_cubic", 3**3), ("fermat_quartic", 4**4)],
)
def test_phase_symmetries_map_p_to_a_multiple_of_itself(name, count):
    # Fermat: every r ∈ Z_d^{N+1}; Dwork: Π z_i needs Σ r_i ≡ 0 (mod 5), a fifth of them
    surface = make_hypersurface(name)
    d = surface.degree
    r = surface.phase_symmetries()
    assert r.shape == (count, surface.n_coords)
    z = torch.complex(torch.randn(7, surface.n_coords), torch.randn(7, surface.n_coords))
    p = surface(z)
    pick = r[torch.randperm(len(r))[:20]]
    for row in pick:
        ratio = surface(_phase(row, d) * z) / p
        torch.testing.assert_close(ratio, ratio[:1].expand(7))
        assert abs(abs(ratio[0]) - 1) < 1e-12
    if name == "dwork_quintic":  # a phase on one coordinate alone is not a symmetry of Π z_i
        assert not (r == torch.tensor([1, 0, 0, 0, 0])).all(-1).any()
        ratio = surface(_phase(torch.tensor([1, 0, 0, 0, 0]), d) * z) / p
        assert (ratio - ratio[0]).abs().max() > 1e-3


def test_fermat_invariant_entries_are_the_diagonal_and_the_pure_powers():
    # (α_p − α_q) ∈ 5Z^5 with |α| = 5: equal, or (5e_i, 5e_j)
    surface = make_hypersurface("fermat_quintic")
    f = ProjectiveFeatures(5, 5, surface.phase_symmetries(), 5)
    assert f.n_monomials == math.comb(9, 5)
    assert f.dim == f.n_monomials + 2 * math.comb(5, 2)
    exps = f._exponents
    for p, q in f._iu.T.tolist():
        assert sorted(exps[p].tolist()) == [0, 0, 0, 0, 5] and sorted(exps[q].tolist()) == [0, 0, 0, 0, 5]
    # below the degree only the diagonal |z_i|²/|z|² survives
    assert ProjectiveFeatures(5, 1, surface.phase_symmetries(), 5).dim == 5


@pytest.mark.parametrize("name", ["fermat_quintic", "dwork_quintic", "fermat_cubic"])
def test_features_are_invariant_under_the_phases_and_rescaling(name):
    surface = make_hypersurface(name)
    d = surface.degree
    r = surface.phase_symmetries()
    f = ProjectiveFeatures(surface.n_coords, d, r, d, standardize=True)
    z = torch.complex(torch.randn(50, surface.n_coords), torch.randn(50, surface.n_coords))
    x = f(z)
    lam = torch.complex(torch.randn(50, 1), torch.randn(50, 1))
    torch.testing.assert_close(f(lam * z), x, rtol=1e-10, atol=1e-10)
    for row in r[torch.randperm(len(r))[:10]]:
        torch.testing.assert_close(f(_phase(row, d) * z), x, rtol=1e-10, atol=1e-10)
    # the full feature map is not invariant: the test can fail
    full = ProjectiveFeatures(surface.n_coords, d)
    moved = full(_phase(r[(r != r[:, :1]).any(-1)][0], d) * z)
    assert (moved - full(z)).abs().max() > 1e-2


@pytest.mark.parametrize("phases", [False, True])
def test_fs_moments_match_monte_carlo_on_the_sphere(phases):
    surface = make_hypersurface("fermat_quartic")
    r = surface.phase_symmetries() if phases else None
    f = ProjectiveFeatures(4, 4 if phases else 2, r, 4 if phases else None)
    torch.manual_seed(0)
    z = torch.complex(torch.randn(400_000, 4), torch.randn(400_000, 4))  # uniform on S^7 after z/|z|
    x = f(z)
    mean, std = f.fs_moments()
    n = x.shape[0]
    torch.testing.assert_close(x.mean(0), mean, rtol=0, atol=float(6 * std.max() / math.sqrt(n)))
    assert ((x.std(0) / std - 1).abs() < 0.03).all()
    g = ProjectiveFeatures(4, f.degree, r, f.phase_order, standardize=True)
    xs = g(z)
    assert xs.mean(0).abs().max() < 0.02 and ((xs.std(0) - 1).abs() < 0.03).all()


@pytest.mark.parametrize("name", ["fermat_quintic", "fermat_cubic"])
def test_invariant_feature_jets_match_autodiff(name, point_cache):
    ps = point_cache(name, 20)
    d = ps.surface.degree
    f = ProjectiveFeatures(ps.surface.n_coords, d, ps.surface.phase_symmetries(), d, standardize=True)
    jet = f.jet(ps.z, ps.jac)
    value, dx, ddx = feature_jet_by_autodiff(f, ps)
    torch.testing.assert_close(jet.value, value)
    torch.testing.assert_close(jet.d, dx, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(jet.dd, ddx, rtol=1e-9, atol=1e-11)


def test_invariant_potential_has_the_symmetry_and_starts_at_fs(point_cache):
    ps = point_cache("fermat_quintic", 40)
    surface = ps.surface
    r = surface.phase_symmetries()
    model = build_potential("mlp", n_coords=5, width=16, feature_degree=5, feature_symmetry="phases",
                            phases=r, phase_order=5, init="random", seed=0, output_scale=0.3)
    plain = build_potential("mlp", n_coords=5, width=16, init="random", seed=0, output_scale=0.3)
    row = r[(r != r[:, :1]).any(-1)][3]
    moved = PointSet.from_points(surface, _phase(row, 5) * ps.z)
    with torch.no_grad():
        torch.testing.assert_close(model.phi(moved.z), model.phi(ps.z))
        assert (plain.phi(moved.z) - plain.phi(ps.z)).abs().max() > 1e-4
        # the metric is the pullback of one invariant (1,1)-form: its determinant is invariant
        # relative to |Ω|² (both pick up the same chart factor)
        eta = torch.linalg.det(model.metric(ps.z, ps.jac)).real / ps.omega2
        eta_moved = torch.linalg.det(model.metric(moved.z, moved.jac)).real / moved.omega2
        torch.testing.assert_close(eta_moved, eta)
    centered = build_potential("mlp", n_coords=5, width=16, feature_degree=5, feature_symmetry="phases",
                               phases=r, phase_order=5, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(centered.metric(ps.z, ps.jac), pullback(ps.jac, fs_metric(ps.z, 1.0)))


def test_bad_symmetry_options():
    with pytest.raises(ValueError, match="unknown feature_symmetry"):
        build_potential("mlp", n_coords=5, feature_symmetry="permutations")
    with pytest.raises(ValueError, match="needs the manifold's phase symmetries"):
        build_potential("mlp", n_coords=5, feature_symmetry="phases")
    with pytest.raises(ValueError, match="phase_order"):
        ProjectiveFeatures(5, 5, torch.zeros(1, 5, dtype=torch.long), None)
    with pytest.raises(ValueError, match="phases must have shape"):
        ProjectiveFeatures(5, 5, torch.zeros(1, 4, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="feature_symmetry"):
        analytic_kernel({"network": "mlp", "depth": 2, "feature_symmetry": "phases"})
    r = make_hypersurface("fermat_cubic").phase_symmetries()
    with pytest.warns(UserWarning, match="only the diagonal"):
        build_potential(
            "mlp", n_coords=3, width=8, feature_degree=2, feature_symmetry="phases", phases=r, phase_order=3
        )
    model = build_potential(
        "mlp", n_coords=3, width=8, feature_degree=3, feature_symmetry="phases", phases=r, phase_order=3
    )
    kernel = analytic_kernel(model)  # the phase features have an analytic kernel now (general route)
    assert kernel.general and kernel._feature_map(3).dim == model.features.dim


def test_a_generic_quintic_stops_before_building_its_wide_network():
    """A generic quintic has no phase symmetry: all 126² degree-5 entries are kept, and the model
    stops before building with the count and the options (issue 19)."""
    from nnflow.geometry.hypersurface import make_hypersurface
    from nnflow.models.potential import MAX_FEATURES, build_potential, phase_options

    generic = make_hypersurface("random_quintic", seed=0)
    options = phase_options(generic, "phases")
    # its only phase maps are the overall z → ωz (the identity on P^4): every entry is invariant
    assert (options["phases"] == options["phases"][:, :1]).all()
    with pytest.raises(ValueError, match=rf"15876 features .*max_features={MAX_FEATURES}.*feature_degree"):
        build_potential("mlp", 5, feature_degree=5, feature_symmetry="phases", width=8, depth=1, **options)
    # the Fermat quintic's phase-invariant ones fit, and the limit can be raised
    fermat = make_hypersurface("fermat_quintic")
    assert build_potential("mlp", 5, feature_degree=5, feature_symmetry="phases", width=8, depth=1,
                           **phase_options(fermat, "phases")).features.dim == 146
    assert build_potential("mlp", 5, feature_degree=2, width=8, depth=1, max_features=None).features.dim == 225
