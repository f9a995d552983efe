"""Donaldson's balanced metrics and optimized Bergman metrics (nnflow.algebraic)."""

import functools
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

import nnflow
from nnflow.algebraic import (
    BalancedMetric,
    BergmanPotential,
    TOperator,
    balanced_metric,
    build_bergman,
    hilbert_dimension,
    projective_basis,
    section_basis,
)
from nnflow.algebraic.balanced import dense, identity_blocks, inverse
from nnflow.algebraic.sections import multinomial
from nnflow.flows.losses import class_kappa
from nnflow.geometry import (
    PointSet,
    fs_metric,
    fs_potential,
    make_hypersurface,
    pullback,
    sample_points,
)
from nnflow.geometry.linalg import hermitian_det
from nnflow.geometry.measures import evaluate_metric, sigma_measure
from nnflow.training.data import PointDataModule
from nnflow.training.modules import MetricModule

from .test_models import autodiff_metric


def quiet_balanced(*args, **kwargs):
    """balanced_metric without the small-sample warning (tests use modest samples on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return balanced_metric(*args, **kwargs)


def random_blocks(basis, seed=0):
    """A random Hermitian positive block-diagonal H (well conditioned, far from identity)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for grp in basis.groups:
        a = torch.randn(grp.n_blocks, grp.size, grp.size, 2, generator=g, dtype=torch.float64)
        a = torch.view_as_complex(a)
        out.append(a @ a.conj().transpose(-1, -2) + grp.size * torch.eye(grp.size))
    return out


# ---------------------------------------------------------------------- sections
@pytest.mark.parametrize("k", [1, 2, 4, 5, 6, 9])
def test_quintic_sections_match_hilbert_polynomial(k):
    surface = make_hypersurface("fermat_quintic")
    basis = section_basis(surface, k, "phases")
    below = math.comb(k - 1, 4) if k >= 5 else 0
    assert len(basis) == math.comb(k + 4, 4) - below
    assert sum(basis.block_sizes) == len(basis)
    assert not (basis.exponents >= torch.tensor([5, 0, 0, 0, 0])).all(1).any()  # no multiple of z_0^5


@pytest.mark.parametrize("name,k", [("fermat_quartic", 4), ("fermat_quartic", 6), ("fermat_cubic", 7),
                                    ("random_quintic", 6), ("dwork_quintic", 5)])
def test_sections_match_hilbert_polynomial(name, k):
    surface = make_hypersurface(name)
    N, d = surface.n_coords - 1, surface.degree
    expected = math.comb(N + k, N) - (math.comb(N + k - d, N) if k >= d else 0)
    assert hilbert_dimension(surface.n_coords, d, k) == expected
    for symmetry in ("none", "phases"):
        basis = section_basis(surface, k, symmetry)
        assert len(basis) == expected and sum(basis.block_sizes) == expected
        assert len({tuple(r) for r in basis.exponents.tolist()}) == expected
    # the sections are independent on X: their Gram matrix on points of X has full rank
    points = sample_points(surface, 4 * expected, seed=1)
    s = basis.values(points.z)
    assert torch.linalg.matrix_rank(s / s.abs().amax(1, keepdim=True)).item() == expected


def test_sectors_are_characters_of_the_phase_group():
    surface = make_hypersurface("fermat_quartic")
    basis = section_basis(surface, 6, "phases")
    G = surface.phase_symmetries()
    charges = (basis.exponents @ G.T) % surface.degree
    labels = []
    for grp in basis.groups:
        for b in range(grp.n_blocks):
            rows = charges[grp.start + b * grp.size : grp.start + (b + 1) * grp.size]
            assert (rows == rows[:1]).all()  # one character per block
            labels.append(tuple(rows[0].tolist()))
    assert len(set(labels)) == len(labels)  # different blocks, different characters
    assert max(basis.block_sizes) > 1


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_k_must_be_a_positive_integer(k):
    with pytest.raises(ValueError, match="k="):
        section_basis(make_hypersurface("fermat_cubic"), k)


# ---------------------------------------------------------------------- the metric of H
@pytest.mark.parametrize("k", [1, 3])
def test_multinomial_identity_on_all_monomials_is_fubini_study(k, point_cache):
    points = point_cache("fermat_quintic", 40)
    basis = projective_basis(5, k)
    h = BalancedMetric(basis, [torch.diag(multinomial(basis.exponents)).to(torch.complex128)[None]], kahler_t=1.7)
    lam = torch.complex(torch.randn(40), torch.randn(40))[:, None]  # any scaling of z
    torch.testing.assert_close(h.potential(lam * points.z), fs_potential(lam * points.z, 1.7))
    torch.testing.assert_close(h.metric(points.z, points.jac), pullback(points.jac, fs_metric(points.z, 1.7)))


@pytest.mark.parametrize("name,k,symmetry", [("fermat_quintic", 5, "phases"), ("fermat_quartic", 4, "none"),
                                             ("random_quintic", 2, "none"), ("fermat_cubic", 4, "phases")])
def test_closed_form_metric_matches_autodiff(name, k, symmetry, point_cache):
    points = point_cache(name, 20)
    basis = section_basis(points.surface, k, symmetry)
    h = BalancedMetric(basis, random_blocks(basis), kahler_t=0.8)
    g = h.metric(points.z, points.jac)
    torch.testing.assert_close(g, autodiff_metric(h, points.z, points.jac), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, g.conj().transpose(-1, -2))
    assert (torch.linalg.eigvalsh(g) > 0).all()


def test_potential_shifts_and_metric_is_invariant_under_scaling(point_cache):
    points = point_cache("fermat_quartic", 30)
    basis = section_basis(points.surface, 4, "phases")
    h = BalancedMetric(basis, random_blocks(basis, seed=2), kahler_t=1.3)
    lam = torch.complex(torch.randn(30), torch.randn(30))
    shift = (1.3 / math.pi) * torch.log(lam.abs().square())  # (t/kπ)·log|λ|^{2k}
    torch.testing.assert_close(h.potential(lam[:, None] * points.z), h.potential(points.z) + shift)
    # the tangent vectors scale with the point: the metric is that of P^N, pulled back
    scaled = h.metric(lam[:, None] * points.z, lam[:, None, None] * points.jac)
    torch.testing.assert_close(scaled, h.metric(points.z, points.jac))


# ---------------------------------------------------------------------- balanced metrics
def test_trace_identity_and_fixed_point(point_cache):
    points = point_cache("fermat_quartic", 3000)
    basis = section_basis(points.surface, 4, "phases")
    T = TOperator(basis, points)
    H = random_blocks(basis, seed=4)
    torch.testing.assert_close(torch.trace(dense(H) @ dense(T(H))).real, torch.tensor(float(len(basis))))
    balanced = quiet_balanced(basis, points, tolerance=1e-11)
    assert balanced.info["converged"]
    H = dense(balanced.blocks)
    residual = torch.linalg.matrix_norm(dense(T(balanced.blocks)) @ H - torch.eye(len(basis)))
    assert residual < 1e-8
    # a random H is far from it
    h = random_blocks(basis)
    assert torch.linalg.matrix_norm(dense(T(h)) @ dense(h) - torch.eye(len(basis))) > 1


@pytest.mark.parametrize("name,k,symmetry", [("fermat_quintic", 6, "phases"), ("fermat_quartic", 3, "none")])
def test_t_operator_routes_agree(name, k, symmetry, point_cache):
    """Gram features (two real mat-vecs), cached values, and recomputed chunks: one T."""
    points = point_cache(name, 700)
    basis = section_basis(points.surface, k, symmetry)
    H = random_blocks(basis, seed=5)
    routes = {
        "chunks": TOperator(basis, points, chunk_size=256, cache_bytes=0),
        "default": TOperator(basis, points, chunk_size=256),
    }
    # small blocks go through the Gram features, one large block through cached values
    assert routes["default"].route == ("features" if symmetry == "phases" else "values")
    assert routes["chunks"].route == "chunks"
    reference = dense(routes["chunks"](H))
    for route in routes:
        torch.testing.assert_close(dense(routes[route](H)), reference, rtol=1e-11, atol=1e-13)


def symmetrized(points: PointSet) -> PointSet:
    """The orbit of every point under the phase group (modulo the overall phase)."""
    surface = points.surface
    G = surface.phase_symmetries()
    G = G[G[:, 0] == 0]  # r and r + (1, …, 1) act alike on P^N
    omega = torch.exp(2j * math.pi * G / surface.degree)  # (G, N+1)
    z = (omega[:, None, :] * points.z[None]).reshape(-1, surface.n_coords)
    return PointSet.from_points(surface, z)


@pytest.mark.parametrize("name,k", [("fermat_quartic", 4), ("fermat_cubic", 5)])
def test_block_diagonal_balanced_equals_unreduced_on_symmetric_points(name, k, point_cache):
    """On a phase-symmetric sample T maps invariant H to invariant H, so the unreduced iteration
    stays block diagonal: it must equal the reduced one (and on the raw sample they differ
    only by the noise of T's off-block entries)."""
    raw = point_cache(name, 300)
    points = symmetrized(raw)
    surface = raw.surface
    reduced = section_basis(surface, k, "phases")
    full = section_basis(surface, k, "none")
    h_red = quiet_balanced(reduced, points, tolerance=1e-12)
    h_full = quiet_balanced(full, points, tolerance=1e-12)
    position = {tuple(e): i for i, e in enumerate(reduced.exponents.tolist())}
    perm = torch.tensor([position[tuple(e)] for e in full.exponents.tolist()])
    H_red = dense(h_red.blocks)[perm][:, perm]
    H_full = dense(h_full.blocks)
    torch.testing.assert_close(H_full, H_red, rtol=1e-8, atol=1e-9)
    # invariance: D(g) H D(g)^† = H for every phase symmetry g
    chars = torch.exp(2j * math.pi * (full.exponents @ surface.phase_symmetries().T) / surface.degree)  # (N_k, G)
    for col in range(0, chars.shape[1], 7):
        D = torch.diag(chars[:, col])
        torch.testing.assert_close(D @ H_full @ D.conj().T, H_full, rtol=1e-8, atol=1e-9)
    assert reduced.n_parameters < full.n_parameters


@pytest.mark.parametrize(
    "name,n_points,ks", [("fermat_quintic", 20000, [1, 2, 3, 4]), ("fermat_quartic", 10000, [1, 2, 3, 4])]
)
def test_sigma_decreases_with_k(name, n_points, ks, point_cache):
    points, test = point_cache(name, n_points), point_cache(name, 10000, seed=7)
    sigmas, errors = [], []
    for k in ks:
        m = quiet_balanced(section_basis(points.surface, k, "phases"), points).measure(test)
        sigmas.append(m["sigma"])
        errors.append(m["sigma_err"])
    for a, b, ea, eb in zip(sigmas, sigmas[1:], errors, errors[1:]):
        assert b < a - 3 * math.hypot(ea, eb), sigmas


def test_quintic_k1_balanced_is_fubini_study(point_cache):
    """k = 1: the phase and permutation symmetries force H ∝ identity, so the balanced metric is g_FS."""
    points = point_cache("fermat_quintic", 2000)
    balanced = quiet_balanced(section_basis(points.surface, 1, "phases"), points)
    det_fs = hermitian_det(pullback(points.jac, fs_metric(points.z)))
    sigma_fs = sigma_measure(points, det_fs)[0]
    # H is exactly diagonal; its entries differ from each other only by the sample's noise
    diag = dense(balanced.blocks).diagonal().real
    assert (diag - 1).abs().max() < 0.1
    assert balanced.measure(points)["sigma"] == pytest.approx(sigma_fs, abs=0.02)


def test_cubic_balanced_metrics_tend_to_the_flat_metric(point_cache):
    """On an elliptic curve the balanced metrics converge to the flat one very fast: beyond k = 1
    σ_k is the sampling error of T, which falls with the number of points."""
    test = point_cache("fermat_cubic", 20000, seed=7)
    small, large = point_cache("fermat_cubic", 4000), point_cache("fermat_cubic", 40000)
    sigma1 = quiet_balanced(section_basis(test.surface, 1, "phases"), large).measure(test)["sigma"]
    for k in (2, 3, 4):
        basis = section_basis(test.surface, k, "phases")
        s_small = quiet_balanced(basis, small).measure(test)["sigma"]
        s_large = quiet_balanced(basis, large).measure(test)["sigma"]
        assert s_large < 0.05 * sigma1
        assert s_large < 0.5 * s_small  # ∝ n_points^{-1/2}: √10 ≈ 3.2 expected


# ---------------------------------------------------------------------- errors
def test_too_few_points_is_an_error_naming_the_numbers(point_cache):
    points = point_cache("fermat_quartic", 100)
    basis = section_basis(points.surface, 6, "none")  # N_k = C(9,3) − C(5,3) = 74: 5476 parameters
    with pytest.raises(ValueError, match=r"n_points=100 .*5476"):
        balanced_metric(basis, points)
    with pytest.warns(UserWarning, match="noisy"):
        balanced_metric(section_basis(points.surface, 3, "phases"), points)  # 20 parameters


def test_non_positive_and_nan_h_are_errors(point_cache):
    points = point_cache("fermat_cubic", 500)
    basis = section_basis(points.surface, 2, "none")
    bad = [-torch.eye(len(basis), dtype=torch.complex128)[None]]
    with pytest.raises(ValueError, match="not positive definite"):
        inverse(bad)
    with pytest.raises(ValueError, match="NaN"):
        inverse([torch.full((1, 6, 6), math.nan, dtype=torch.complex128)])
    with pytest.raises(ValueError, match="ill-conditioned"):
        balanced_metric(basis, points, max_condition=1.0)
    with pytest.raises(ValueError, match="tolerance"):
        balanced_metric(basis, points, tolerance=0.0)
    with pytest.raises(ValueError, match="not positive definite"):  # T(H) < 0 from S < 0
        balanced_metric(basis, points, initial=[-b for b in identity_blocks(basis)])


# ---------------------------------------------------------------------- optimized Bergman metrics
def test_optimized_bergman_beats_balanced(tmp_path):
    surface = make_hypersurface("fermat_quintic")
    data = PointDataModule(surface, n_train=4000, n_val=1000, n_test=1000, batch_size=4000, cache_dir=tmp_path)
    train = data.split("train")
    model = build_bergman(5, k=2, manifold={"name": "fermat_quintic"}, n_points=4000, points_seed=0)
    torch.testing.assert_close(model.potential(train.z[:5]), model.as_balanced().potential(train.z[:5]))
    test = sample_points(surface, 10000, seed=11)
    before = evaluate_metric(test, model.metric)
    module = MetricModule(
        model, optimizer=functools.partial(torch.optim.Adam, lr=1e-2), loss="ma2", kappa=class_kappa(train, 1.0)
    )
    trainer = L.Trainer(
        max_epochs=40,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        check_val_every_n_epoch=40,
    )
    trainer.fit(module, datamodule=data)
    after = evaluate_metric(test, model.metric)
    assert after["positive_fraction"] == 1.0
    assert after["sigma"] < 0.7 * before["sigma"], (before["sigma"], after["sigma"])


def test_bergman_from_file_and_its_checks(tmp_path, point_cache):
    points = point_cache("fermat_quartic", 2000)
    balanced = quiet_balanced(section_basis(points.surface, 2, "phases"), points)
    path = balanced.save(tmp_path / "balanced.pt", surface=points.surface)
    model = build_bergman(4, k=2, manifold={"name": "fermat_quartic"}, h_file=str(path))
    torch.testing.assert_close(
        model.metric(points.z[:8], points.jac[:8]), balanced.metric(points.z[:8], points.jac[:8])
    )
    with pytest.raises(ValueError, match="model.h_file.*k=2"):
        build_bergman(4, k=3, manifold={"name": "fermat_quartic"}, h_file=str(path))
    with pytest.raises(ValueError, match="model.h_file.*fermat_quartic"):
        build_bergman(
            4,
            k=2,
            manifold={
                "name": "custom",
                "exponents": [[4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 4, 0], [0, 0, 0, 4], [1, 1, 1, 1]],
                "coefficients": [1, 1, 1, 1, 0.5],
            },
            h_file=str(path),
        )
    with pytest.raises(ValueError, match="model.manifold"):
        build_bergman(4, k=2)
    with pytest.raises(ValueError, match="coordinates"):
        build_bergman(5, k=2, manifold={"name": "fermat_quartic"}, h_file=str(path))
    # float32 keeps H complex (real and imaginary parts are separate parameters)
    g32 = (
        BergmanPotential(balanced.basis, balanced.blocks)
        .to(torch.float32)
        .metric(points.z[:8].to(torch.complex64), points.jac[:8].to(torch.complex64))
    )
    torch.testing.assert_close(
        g32, balanced.metric(points.z[:8], points.jac[:8]).to(torch.complex64), rtol=1e-4, atol=1e-5
    )


def test_algebraic_package_is_pure_torch():
    code = (
        "import sys, nnflow.algebraic; "
        "print(sorted(m for m in ('lightning', 'hydra', 'omegaconf') if m in sys.modules))"
    )
    repo = str(Path(nnflow.__file__).resolve().parents[1])  # the checkout under test
    env = dict(os.environ, PYTHONPATH=repo)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, env=env)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_k3_euler_characteristic_and_ricci_of_balanced_metrics(point_cache):
    """The existing curvature code on the balanced potentials: χ(K3) = 24 at every k (topology),
    while the scale-free mean |Ricci| falls with k (the metrics approach the Ricci-flat one)."""
    points, test = point_cache("fermat_quartic", 20000), point_cache("fermat_quartic", 3000, seed=7)
    ricci = []
    for k in (1, 3):
        m = quiet_balanced(section_basis(points.surface, k, "phases"), points).measure(test, curvature_points=3000)
        assert abs(m["euler"] - 24) < 4 * m["euler_err"], (k, m["euler"], m["euler_err"])
        ricci.append(m["ricci"])
    assert ricci[1] < 0.5 * ricci[0], ricci
