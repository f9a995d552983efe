"""Singular hypersurfaces are stopped before sampling, with the singular point found.

Every "the point is singular" claim is checked here by an independent evaluation of the partials
(a plain loop over monomials, not the library's PolynomialMap).
"""

import cmath
import itertools
import math
import os
import subprocess
import sys
import warnings

import pytest
import torch
from hydra import compose, initialize_config_dir

import nnflow.geometry.sampling as sampling
import nnflow.geometry.singularity as singularity
from nnflow.cli import CONFIG_DIR
from nnflow.cli.measure import measure
from nnflow.geometry import (
    Hypersurface,
    dwork_quintic,
    fermat_cubic,
    fermat_quartic,
    fermat_quintic,
    random_quintic,
    sample_points,
)
from nnflow.geometry.singularity import (
    NearSingularWarning,
    SingularManifoldError,
    check_smooth,
    format_point,
    singular_points,
)

SCRIPT = os.path.join(os.path.dirname(sys.executable), "nnflow-measure")
OMEGA = cmath.exp(2j * math.pi / 5)


def is_singular(surface: Hypersurface, z, tol: float = 1e-9) -> bool:
    """max_k |∂_k p(z)| < tol · d Σ|c_m| at z scaled to max |z_i| = 1 (that bound: |∂_k p| ≤ it)."""
    z = [complex(v) for v in z]
    top = max(z, key=abs)
    z = [v / top for v in z]
    bound = surface.degree * sum(abs(c) for c in surface.coefficients.tolist())
    grad = []
    for k in range(len(z)):
        g = 0j
        for e, c in zip(surface.exponents.tolist(), surface.coefficients.tolist()):
            if e[k]:
                g += c * e[k] * math.prod(v ** (p - (i == k)) for i, (v, p) in enumerate(zip(z, e)))
        grad.append(g)
    return max(abs(g) for g in grad) < tol * bound


def quintic_monomials():
    rows = []
    for combo in itertools.combinations_with_replacement(range(5), 5):
        row = [0] * 5
        for i in combo:
            row[i] += 1
        rows.append(row)
    return rows


def singular_line_quintic(seed: int = 1) -> Hypersurface:
    """Random quintic in the square of the ideal of L = {z2 = z3 = z4 = 0}: singular along L."""
    rows = [r for r in quintic_monomials() if r[2] + r[3] + r[4] >= 2]
    g = torch.Generator().manual_seed(seed)
    c = torch.complex(torch.randn(len(rows), generator=g), torch.randn(len(rows), generator=g))
    return Hypersurface(rows, c, name="singular_line")


def four_monomial_fermat() -> Hypersurface:
    """z0^5 + z1^5 + z2^5 + z3^5: a cone, singular only at [0:0:0:0:1]."""
    return Hypersurface(
        [[5, 0, 0, 0, 0], [0, 5, 0, 0, 0], [0, 0, 5, 0, 0], [0, 0, 0, 5, 0]], [1, 1, 1, 1],
        name="fermat_minus_one",
    )


def no_warnings(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


# ---------------------------------------------------------------------- singular: rejected
@pytest.mark.parametrize("psi", [1.0, OMEGA, OMEGA**3])
def test_conifold_is_rejected_with_a_singular_point(psi):
    s = dwork_quintic(psi)
    with pytest.raises(SingularManifoldError) as info:
        check_smooth(s)
    err = info.value
    assert isinstance(err, ValueError)
    message = str(err)
    assert "dwork_quintic" in message and "ψ^5 = 1" in message
    assert format_point(err.point) in message
    assert is_singular(s, err.point.tolist())
    assert err.point.abs().max() == pytest.approx(1.0)


def test_diagonal_form_with_general_coefficients():
    # Σ a_i z_i^5 + b Π z_i is Dwork after z_i → a_i^{1/5} z_i; ψ^5 = 1 for b = −5 Π a_i^{1/5}
    a = [1.0, 2.0, 3.0, 0.5j, 1 + 1j]
    rows = (torch.eye(5, dtype=torch.long) * 5).tolist() + [[1] * 5]
    b = -5 * math.prod(ai ** 0.2 for ai in a) * OMEGA**2
    singular = Hypersurface(rows, a + [b], name="scaled_conifold")
    with pytest.raises(SingularManifoldError, match="scaled_conifold") as info:
        check_smooth(singular)
    assert is_singular(singular, info.value.point.tolist())
    smooth = Hypersurface(rows, a + [0.7 * b], name="scaled_smooth")
    assert no_warnings(check_smooth, smooth).smooth


def test_homotopy_finds_all_125_conifold_nodes():
    # the numerical route, independent of the formula: every node of the ψ = 1 conifold is a
    # regular solution of the square system, so all 125 (ω^{a_i}, Σ a_i ≡ 0 mod 5) must appear
    s = dwork_quintic(1.0)
    points = singular_points(s)
    assert points.shape == (125, 5)
    for z in points.tolist():
        assert is_singular(s, z)
        fifth = [v**5 for v in z]
        assert all(abs(f - 1) < 1e-8 for f in fifth)  # largest coordinate 1, so all are 5th roots
    exponents = {tuple(round(cmath.phase(v) / (2 * math.pi) * 5) % 5 for v in z) for z in points.tolist()}
    assert len(exponents) == 125 and all(sum(e) % 5 == 0 for e in exponents)


def test_cone_is_rejected_at_the_coordinate_point():
    s = four_monomial_fermat()
    with pytest.raises(SingularManifoldError, match="fermat_minus_one") as info:
        check_smooth(s)
    z = info.value.point
    torch.testing.assert_close(z, torch.tensor([0, 0, 0, 0, 1], dtype=torch.complex128), atol=1e-4, rtol=0)
    assert is_singular(s, z.tolist())
    assert "[0 : 0 : 0 : 0 : 1]" in str(info.value)


def test_singular_line_is_rejected_and_found_along_the_line():
    s = singular_line_quintic()
    with pytest.raises(SingularManifoldError) as info:
        check_smooth(s)
    z = info.value.point
    assert is_singular(s, z.tolist())
    assert z[2:].abs().max() < 1e-6  # on L
    # a positive-dimensional locus shows up as several distinct end points on it
    # (at the points of L where the transverse Hessian degenerates ∇p vanishes to second order,
    # so the position is only fixed to ~ the square root of round-off: 1e-5, not 1e-8)
    points = singular_points(s)
    assert len(points) >= 3
    for p in points:
        assert p[2:].abs().max() < 1e-5 and is_singular(s, p.tolist())


def test_singular_surface_locus_is_rejected():
    # z0² (z0³ + z1³ + z2³ + z3³ + z4³): ∇p = 2 z0 q ∇z0 + z0² ∇q vanishes on all of the doubled
    # component {z0 = 0} (a threefold, not only its surface {Σ_{i≥1} z_i³ = 0}), so any point found
    # has z0 = 0
    rows = [[5, 0, 0, 0, 0], [2, 3, 0, 0, 0], [2, 0, 3, 0, 0], [2, 0, 0, 3, 0], [2, 0, 0, 0, 3]]
    s = Hypersurface(rows, [1, 1, 1, 1, 1], name="doubled")
    with pytest.raises(SingularManifoldError, match="doubled") as info:
        check_smooth(s)
    z = info.value.point
    assert abs(z[0]) < 1e-6 and abs(z).max() == pytest.approx(1.0)
    assert is_singular(s, z.tolist())


def test_nodal_cubic_curve_is_rejected():
    # y² z = x³ + x² z: a node at [0 : 0 : 1] (coordinates (x, y, z)); not of diagonal form
    s = Hypersurface([[0, 2, 1], [3, 0, 0], [2, 0, 1]], [1, -1, -1], name="nodal_cubic")
    with pytest.raises(SingularManifoldError, match="nodal_cubic") as info:
        check_smooth(s)
    torch.testing.assert_close(info.value.point, torch.tensor([0, 0, 1], dtype=torch.complex128), atol=1e-8, rtol=0)


# ---------------------------------------------------------------------- smooth: pass
@pytest.mark.parametrize(
    "make",
    [fermat_quintic, lambda: dwork_quintic(0.5), fermat_quartic, fermat_cubic],
    ids=["fermat_quintic", "dwork_0.5", "fermat_quartic", "fermat_cubic"],
)
def test_smooth_presets_pass_without_warning(make):
    s = make()
    report = no_warnings(check_smooth, s)
    assert report.smooth and report.method == "diagonal formula"
    # the numerical route agrees: no singular point anywhere
    assert len(singular_points(s)) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_quintics_pass(seed):
    report = no_warnings(check_smooth, random_quintic(seed))
    assert report.smooth and report.method == "homotopy"
    assert report.paths == 256 and report.failed == 0
    assert report.distance > singularity.NEAR_SINGULAR_DISTANCE


def test_no_path_jumping_on_a_smooth_quintic():
    # every one of the 256 paths ends at its own solution of the square system: two paths ending
    # at the same point (one jumped) would leave a solution unvisited
    # (the tracker's end points, before refinement moves them towards minima of |∇p|)
    system = singularity._System(random_quintic(6), torch.Generator().manual_seed(0))
    w, _, ok = singularity.track_paths(system)
    assert ok.all() and len(w) == 256
    G, _ = system.target(w)
    assert G.abs().max() < 1e-10  # each end point solves A ∇p = 0
    z = system.point(w)
    unit = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    overlap = (unit.conj() @ unit.T).abs()
    overlap.fill_diagonal_(0)
    assert (1 - overlap.max(1).values ** 2).clamp_min(0).sqrt().min() > 1e-6


def test_random_quartic_k3_passes():
    rows = []
    for combo in itertools.combinations_with_replacement(range(4), 4):
        row = [0] * 4
        for i in combo:
            row[i] += 1
        rows.append(row)
    g = torch.Generator().manual_seed(3)
    c = torch.complex(torch.randn(len(rows), generator=g), torch.randn(len(rows), generator=g))
    report = no_warnings(check_smooth, Hypersurface(rows, c, name="random_quartic"))
    assert report.smooth and report.paths == 27 and report.failed == 0


# ---------------------------------------------------------------------- close to singular: warn
def test_near_conifold_warns_with_the_distance():
    with pytest.warns(NearSingularWarning, match=r"\|ψ\^5 − 1\| = 0\.005") as record:
        report = check_smooth(dwork_quintic(0.999))
    assert report.smooth
    assert "converge slowly" in str(record[0].message)


def test_near_conifold_warns_on_the_homotopy_route_too():
    # Dwork ψ = 0.999 with a negligible extra monomial: not diagonal, so the homotopy decides;
    # its distance δ tracks |ψ^5 − 1| as the module docstring claims (δ ≈ 0.008 |ψ^5 − 1|)
    psi = 0.999
    base = dwork_quintic(psi)
    rows = base.exponents.tolist() + [[4, 1, 0, 0, 0]]
    s = Hypersurface(rows, base.coefficients.tolist() + [1e-13], name="near_conifold")
    with pytest.warns(NearSingularWarning, match="δ = 3.9e-05") as record:
        report = check_smooth(s)
    assert report.smooth and report.method == "homotopy"
    ratio = report.distance / abs(psi**5 - 1)
    assert 0.006 < ratio < 0.01, ratio
    assert "near [" in str(record[0].message)


# ---------------------------------------------------------------------- hook in sample_points
def test_sample_points_raises_before_any_sampling_work(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("sampling work started on a singular surface")

    monkeypatch.setattr(sampling, "random_lines", forbidden)
    monkeypatch.setattr(sampling, "line_roots", forbidden)
    with pytest.raises(SingularManifoldError, match="ψ\\^5 = 1"):
        sample_points(dwork_quintic(1.0), 100)
    with pytest.raises(SingularManifoldError, match="fermat_minus_one"):
        sample_points(four_monomial_fermat(), 100)


def test_check_smooth_false_samples_as_before():
    s = dwork_quintic(1.0)
    points = sample_points(s, 200, seed=3, check_smooth=False)
    assert len(points) == 200
    assert (s(points.z).abs() / s.scale(points.z)).max() < 1e-10
    # on a smooth surface the check changes nothing in the result
    smooth = random_quintic(4)
    a = sample_points(smooth, 100, seed=1)
    b = sample_points(smooth, 100, seed=1, check_smooth=False)
    assert torch.equal(a.z, b.z) and torch.equal(a.weights, b.weights)


def test_check_is_memoized_on_the_surface(monkeypatch):
    calls = []
    real = singularity.homotopy_end_points

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(singularity, "homotopy_end_points", counted)
    s = random_quintic(5)
    sample_points(s, 50)
    sample_points(s, 50, seed=1)
    assert s.check_smooth().smooth
    assert len(calls) == 1
    bad = four_monomial_fermat()
    for _ in range(2):
        with pytest.raises(SingularManifoldError):
            bad.check_smooth()
    assert len(calls) == 2


def test_hypersurface_singular_points_method():
    s = four_monomial_fermat()
    points = s.singular_points()
    assert points.shape == (1, 5)
    assert is_singular(s, points[0].tolist())
    assert len(fermat_cubic().singular_points()) == 0


# ---------------------------------------------------------------------- the measure app
def _compose(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="measure", overrides=list(overrides))


def test_measure_app_stops_on_the_conifold():
    cfg = _compose("manifold=dwork_quintic", "manifold.psi=1.0", "n_points=500")
    with pytest.raises(SingularManifoldError, match="ψ\\^5 = 1"):
        measure(cfg)


def test_measure_console_script_exits_with_the_clear_error(tmp_path):
    cmd = [SCRIPT, "manifold=dwork_quintic", "manifold.psi=1.0", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "is singular" in proc.stderr and "ψ^5 = 1" in proc.stderr
    assert "[1 : 1 : 1 : 1 : 1]" in proc.stderr
    assert not (tmp_path / "measure.json").exists()
