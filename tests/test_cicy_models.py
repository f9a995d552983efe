"""Product features, Kähler potentials and nnflow-train on complete intersections (issue 19)."""

from __future__ import annotations

import pytest
import torch

from nnflow.geometry.cicy import bicubic, manifold_from_config
from nnflow.geometry.cicy_points import CICYPointSet
from nnflow.geometry.cicy_sampling import sample_cicy
from nnflow.geometry.curvature import curvature
from nnflow.models.features import ProjectiveFeatures
from nnflow.models.potential import build_potential
from nnflow.models.product_features import ProductProjectiveFeatures, product_feature_count
from nnflow.training.load import load_run
from nnflow.training.run import train
from tests.helpers import compose_train

TINY = ["model.width=16", "model.depth=1", "model.feature_degree=1", "data.n_train=256", "data.n_val=64",
        "data.n_test=512", "data.batch_size=64", "trainer.max_time=null", "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1", "optim.scheduler.warmup_steps=2"]


@pytest.fixture(scope="module")
def points():
    return sample_cicy(bicubic(), 300, seed=5)


def _blocks(z):
    return z[..., :3], z[..., 3:]


def test_product_features_kernel_is_the_product_of_factor_kernels(points):
    """x·x' = tr(M M') = Π_i |⟨z_i, z_i'⟩|^{2k_i}/(|z_i|^{2k_i}|z_i'|^{2k_i}) (unstandardized)."""
    f = ProductProjectiveFeatures([2, 2], [2, 1])
    assert f.dim == product_feature_count([2, 2], [2, 1]) == (6 * 3) ** 2
    x = f(points.z[:40])
    gram = x @ x.T
    a, b = _blocks(points.z[:40])
    def cos2(u):
        inner = u.conj() @ u.T
        return inner.abs() ** 2 / ((u.abs() ** 2).sum(-1)[:, None] * (u.abs() ** 2).sum(-1)[None, :])
    assert torch.allclose(gram, cos2(a) ** 2 * cos2(b), atol=1e-12)


def test_product_features_are_invariant_under_each_factor_rescaling(points):
    f = ProductProjectiveFeatures([2, 2], 2, standardize=True)
    a, b = _blocks(points.z)
    scaled = torch.cat([a * (0.4 - 1.1j), b * (2.0 + 0.3j)], -1)
    assert torch.allclose(f(scaled), f(points.z), atol=1e-10)


def test_one_factor_product_features_match_projective_features(points):
    z = torch.randn(30, 5, dtype=torch.complex128)
    one, ref = ProductProjectiveFeatures([4], 2), ProjectiveFeatures(5, 2)
    assert one.dim == ref.dim
    assert torch.allclose(one(z) @ one(z).T, ref(z) @ ref(z).T, atol=1e-12)


def test_product_fs_moments_against_monte_carlo():
    f = ProductProjectiveFeatures([1, 2], [1, 2])
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200_000, 5, dtype=torch.complex128, generator=g)  # Gaussian: uniform directions in each factor
    x = f(z)
    mean, std = f.fs_moments()
    se = x.std(0) / 200_000**0.5
    assert ((x.mean(0) - mean).abs() < 5 * se + 1e-12).all()
    assert torch.allclose(x.std(0), std, rtol=0.02, atol=1e-6)


def test_potential_metric_matches_autodiff_on_a_cicy(points):
    torch.manual_seed(0)
    pot = build_potential("mlp", n_coords=6, feature_degree=2, factors=[2, 2], width=16, depth=2, seed=0,
                          init="random", activation="gelu")
    pot = pot.double()
    sub = points.subset(slice(0, 12))
    g = pot.metric(sub.z, sub.jac)
    out = curvature(sub, pot.potential)
    assert torch.allclose(torch.linalg.det(g).real, out["det_g"], rtol=1e-10)
    assert not pot.has_exact_curvature  # the bi-jets are for one P^N: the autodiff route is used


def test_too_many_product_features_are_refused_before_building():
    with pytest.raises(ValueError, match="10000 features.*max_features=4096.*lower model.feature_degree"):
        build_potential("mlp", n_coords=6, feature_degree=3, factors=[2, 2], width=8, depth=1)


def test_nnflow_train_on_the_bicubic(tmp_path):
    run = tmp_path / "run"
    summary, _ = train(compose_train("experiment=bicubic_mlp", *TINY, tmp_path=tmp_path), run)
    assert summary["status"] == "completed" and summary["manifold"] == "bicubic"
    assert abs(summary["volume"] - 18.0) < 4 * summary["volume_err"]  # ∫(J_1 + J_2)^3: the class fixes it
    test = load_run(run).split("test")
    assert isinstance(test, CICYPointSet) and len(test) == 512
    x = manifold_from_config({"name": "bicubic", "seed": 0})
    assert torch.allclose(x(test.z).abs() / x.scale(test.z), torch.zeros(1, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("override,match", [("model=linearized", "model.kind=linearized"),
                                             ("kernel_tracking.enabled=true", "kernel_tracking")])
def test_unsupported_cicy_runs_are_refused_before_work(tmp_path, override, match):
    with pytest.raises(ValueError, match=f"complete intersection.*{match}"):
        train(compose_train("experiment=bicubic_mlp", *TINY, override, tmp_path=tmp_path), tmp_path / "run")
    assert not (tmp_path / "data").exists()


def test_nnflow_measure_on_a_cicy():
    from hydra import compose, initialize_config_dir

    from nnflow.cli import CONFIG_DIR
    from nnflow.cli.measure import measure

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="measure", overrides=["manifold=tetraquadric", "n_points=4000",
                                                          "curvature_points=4000", "seed=2", "kahler_t=2.0"])
    result, points = measure(cfg)
    assert isinstance(points, CICYPointSet) and len(points) == 4000
    assert result["euler_expected"] == -128 and result["volume_expected"] == 48 * 8
    assert result["volume"] == pytest.approx(48 * 8, rel=1e-9)  # one scalar t: Vol(t) = t^3 Vol(1) exactly
    assert abs(result["euler"] - (-128)) < 3 * result["euler_err"]
