"""Donaldson's balanced metrics on complete intersections: sections of O(k, …, k) (issue 19)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hydra import compose, initialize_config_dir

from nnflow.algebraic import BalancedMetric, section_basis
from nnflow.cli import CONFIG_DIR
from nnflow.cli.donaldson import donaldson
from nnflow.geometry.cicy import bicubic, cubic_cubic, multihomogeneous_monomials, tetraquadric
from nnflow.geometry.cicy_points import cicy_fs_metric
from nnflow.geometry.cicy_sampling import sample_cicy
from nnflow.geometry.fubini_study import pullback

from .test_donaldson import random_blocks
from .test_models import autodiff_metric

# ∫_X c_2 ∧ (J_1 + … + J_m) from the literature (c_2·J_i = 36 on the bicubic, 24 on the tetraquadric,
# 54 on X_{3,3}): Riemann–Roch on a Calabi–Yau threefold, h^0(O(D)) = D³/6 + c_2·D/12 for ample D,
# counts the sections independently of how the basis is built.
C2_DOT_SUM_J = {"bicubic": 72, "tetraquadric": 96, "cubic_cubic": 54}
MANIFOLDS = {"bicubic": bicubic, "tetraquadric": tetraquadric, "cubic_cubic": cubic_cubic}


@pytest.mark.parametrize("name,k", [("bicubic", 1), ("bicubic", 2), ("bicubic", 3), ("tetraquadric", 1),
                                    ("tetraquadric", 2), ("cubic_cubic", 1), ("cubic_cubic", 2)])
def test_section_count_is_riemann_roch(name, k):
    x = MANIFOLDS[name]()
    basis = section_basis(x, k)
    assert len(basis) == round(x.volume(k) / 6 + k * C2_DOT_SUM_J[name] / 12)


def test_sections_are_independent_on_x_and_span_the_restrictions():
    """At k = 3 the bicubic's 100 ambient monomials restrict to a 99-dimensional space (p vanishes on X):
    their values at points of X have numerical rank 99, and the basis alone has rank 99 too."""
    x = bicubic()
    z = sample_cicy(x, 400, seed=2).z
    everything = section_basis(x, 3).__class__.build(multihomogeneous_monomials([2, 2], [3, 3]), None, 3)
    def rank(basis):
        s = torch.linalg.svdvals(basis.values(z))
        return int((s > 1e-9 * s[0]).sum())
    assert len(everything) == 100 and rank(everything) == 99
    assert rank(section_basis(x, 3)) == 99


def test_two_equations_beyond_the_cut_are_refused():
    with pytest.raises(NotImplementedError, match="Gröbner basis of 2 polynomials; use k < 3"):
        section_basis(cubic_cubic(), 3)


def test_multinomial_h_is_the_product_fubini_study_metric():
    """H = diag(Π_i k!/α_i!): s^†Hs = Π_i |z^(i)|^{2k}, so K_H = Σ_i (t/π) log|z^(i)|² = K_FS(t)."""
    x = bicubic()
    points = sample_cicy(x, 30, seed=4)
    basis = section_basis(x, 2)
    weights = [math.prod(math.factorial(2) / math.factorial(a) for a in row) for row in basis.exponents.tolist()]
    h = BalancedMetric(basis, [torch.diag(torch.tensor(weights, dtype=torch.complex128))[None]], kahler_t=1.3)
    torch.testing.assert_close(h.metric(points.z, points.jac), pullback(points.jac, cicy_fs_metric(x, points.z, 1.3)))


def test_closed_form_metric_matches_autodiff_on_a_cicy():
    points = sample_cicy(tetraquadric(), 20, seed=1)
    basis = section_basis(points.surface, 2)
    h = BalancedMetric(basis, random_blocks(basis), kahler_t=0.8)
    torch.testing.assert_close(h.metric(points.z, points.jac), autodiff_metric(h, points.z, points.jac),
                               rtol=1e-10, atol=1e-12)


def test_nnflow_donaldson_on_the_bicubic_lowers_sigma_with_k():
    def run(k):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="donaldson", overrides=["manifold=bicubic", f"k={k}", "symmetry=phases",
                                                              "n_points=15000", "n_test=8000", "seed=3"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return donaldson(cfg)[0]

    k1, k2 = run(1), run(2)
    assert (k1["N_k"], k2["N_k"]) == (9, 36) and k1["converged"] and k2["converged"]
    assert k2["sigma"] + 3 * k2["sigma_err"] < k1["sigma"] < 0.42  # σ_FS ≈ 0.42 on this bicubic
    for r in (k1, k2):
        assert abs(r["volume"] - 18.0) < 4 * r["volume_err"]  # the class (J_1 + J_2) fixes it
