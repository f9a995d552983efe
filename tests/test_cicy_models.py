"""Product features, Kähler potentials and nnflow-train on complete intersections (issue 19)."""

from __future__ import annotations

import warnings

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


def test_frozen_flow_on_a_cicy_equals_linearized_gradient_descent(points):
    """GD on the linearized network θ ← θ − η Jᵀ∇L moves g by −η Θ0 ∇L: the Euler step of the frozen
    flow of the empirical kernel, built by the runner's factory with the bicubic's factors."""
    from nnflow.flows.frozen import build_frozen_flow
    from nnflow.flows.linearized import LinearizedPotential
    from nnflow.flows.losses import class_kappa, monge_ampere_loss

    train_points = points.subset(torch.arange(30))
    kappa = class_kappa(points)
    net = dict(network="mlp", width=8, depth=1, activation="tanh", feature_degree=1, input_scale=0.1)
    flow = build_frozen_flow(train_points, kappa, kernel="empirical", seed=3, factors=[2, 2], **net)
    torch.testing.assert_close(torch.linalg.det(flow.start(train_points.z, train_points.jac)).real,
                               train_points.fs_det())  # starts at the block FS metric
    linear = LinearizedPotential(build_potential(n_coords=6, seed=3, factors=[2, 2], **net))
    opt = torch.optim.SGD(linear.parameters(), lr=0.02)  # standardized features: large metric jets
    for _ in range(4):
        opt.zero_grad()
        det = torch.linalg.det(linear.metric(train_points.z, train_points.jac)).real
        loss = monge_ampere_loss(det, train_points.omega2, train_points.weights, kappa)
        loss.backward()
        opt.step()
        assert flow.step(0.02) == pytest.approx(loss.item(), rel=1e-9)
    held_out = points.subset(torch.arange(30, 60))
    with torch.no_grad():
        g_lin = linear.metric(held_out.z, held_out.jac)
    g_flow = flow.metric(held_out.z, held_out.jac)
    assert (g_lin - g_flow).abs().max() / g_flow.abs().max() < 1e-6
    assert not torch.allclose(g_flow, flow.start(held_out.z, held_out.jac))  # it did move


@pytest.mark.parametrize("override", [["model=linearized"], ["model=frozen_ntk", "model.kernel=empirical"],
                                      ["model=frozen_ntk"], ["model.feature_symmetry=phases"],
                                      ["kernel_tracking.enabled=true", "kernel_tracking.every_n_steps=4",
                                       "kernel_tracking.probe_size=4"]])
def test_every_model_kind_runs_on_the_bicubic(tmp_path, override):
    run = tmp_path / "run"
    # erf: a closed-form dual for the analytic kernels; eager float64 steps (linearized model, kernel symmetry)
    cfg = compose_train("experiment=bicubic_mlp", *TINY, "route=auto", "compile=none", "model.activation=erf",
                        "dtype=float64", *override, tmp_path=tmp_path)
    summary, _ = train(cfg, run)
    assert summary["status"] == "completed" and summary["manifold"] == "bicubic"
    assert summary["sigma_test"] < summary["sigma_fs"]  # a few steps of any of them lower σ
    assert abs(summary["volume"] - 18.0) < 4 * summary["volume_err"]
    if "kernel_tracking.enabled=true" in override:
        rows = (run / "kernel.csv").read_text().splitlines()
        assert len(rows) >= 2 and "analytic" in rows[0]  # the analytic product kernel was found and compared


def test_model_bergman_trains_on_the_bicubic(tmp_path):
    """model=bergman on a CICY: the balanced H of O(1, 1) (9 sections) on the training split, then trained."""
    overrides = ["manifold=bicubic", "model=bergman", "model.k=1", "model.feature_symmetry=none", "logger=csv",
                 *[o for o in TINY if not o.startswith("model.")], "data.n_train=1000"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1,000 points for 81 parameters of H: T is a noisy estimate
        summary, _ = train(compose_train(*overrides, tmp_path=tmp_path), tmp_path / "run")
    assert summary["status"] == "completed" and summary["model"].endswith("build_bergman")
    assert summary["sigma_test"] < summary["sigma_fs"]
    assert abs(summary["volume"] - 18.0) < 4 * summary["volume_err"]


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


def _symmetric_bicubic():
    """Σ_i x_i³y_i³ + x_0x_1x_2·y_0y_1y_2: phase group {r ∈ Z_3^6 : Σ r ≡ 0} (243 elements)."""
    from nnflow.geometry.cicy import CompleteIntersection

    exps = [[3 if j == i else 0 for j in range(3)] + [3 if j == i else 0 for j in range(3)] for i in range(3)]
    exps.append([1] * 6)
    return CompleteIntersection([2, 2], [(exps, [1.0, 1.0, 1.0, 0.5])], name="symmetric_bicubic")


def test_cicy_phase_symmetries_preserve_every_equation():
    x = _symmetric_bicubic()
    r = x.phase_symmetries()
    assert x.phase_order == 3 and len(r) == 3**5  # Σ r ≡ 0 (mod 3): the one constraint, from x0x1x2y0y1y2
    z = torch.randn(50, 6, dtype=torch.complex128)
    omega = torch.exp(2j * torch.pi * r.double() / 3)  # (G, 6)
    p, p_moved = x(z)[:, 0], x(omega[:, None, :] * z)[..., 0]  # (50,), (G, 50)
    ratio = p_moved / p
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))  # p(ω^r z) = c_r p(z)
    generic = bicubic().phase_symmetries()  # only the maps that rescale a whole factor: 3 × 3 of them
    assert len(generic) == 9 and all(len(set(row[:3])) == 1 and len(set(row[3:])) == 1 for row in generic.tolist())


def test_phase_invariant_product_features_are_exactly_the_invariant_entries():
    x = _symmetric_bicubic()
    r = x.phase_symmetries()
    full = ProductProjectiveFeatures([2, 2], [2, 1])
    kept = ProductProjectiveFeatures([2, 2], [2, 1], phases=r, phase_order=3)
    assert kept.dim < full.dim
    z = torch.randn(20, 6, dtype=torch.complex128)
    moved = torch.exp(2j * torch.pi * r[17].double() / 3) * z
    torch.testing.assert_close(kept(moved), kept(z))  # invariant under a group element
    # the dropped entries: some group element changes each of them (brute force over the group)
    omega = torch.exp(2j * torch.pi * r.double() / 3)
    fz = full(z)
    changed = (full(omega[:, None, :] * z) - fz).abs().amax((0, 1)) > 1e-9
    assert int((~changed).sum()) == kept.dim
    # standardized and unstandardized maps keep the same entries; the FS moments still hold (Monte Carlo)
    std = ProductProjectiveFeatures([2, 2], [2, 1], standardize=True, phases=r, phase_order=3)
    w = torch.randn(40000, 6, dtype=torch.complex128)  # Gaussian ambient points: FS-uniform on each factor
    y = std(w)
    assert y.mean(0).abs().max() < 0.1 and (y.std(0) - 1).abs().max() < 0.1


def test_phase_features_on_a_symmetric_cicy_and_on_a_generic_one():
    from nnflow.models.potential import phase_options

    opts = phase_options(_symmetric_bicubic(), "phases")
    model = build_potential("mlp", n_coords=6, feature_degree=1, factors=[2, 2], width=8, depth=1,
                            feature_symmetry="phases", **opts)
    assert model.features.dim == 9  # (1, 1): only the diagonal |x_i y_j|² entries are invariant
    generic = build_potential("mlp", n_coords=6, feature_degree=1, factors=[2, 2], width=8, depth=1,
                              feature_symmetry="phases", **phase_options(bicubic(), "phases"))
    assert generic.features.dim == 81  # nothing to drop: per-factor rescalings act trivially


def test_analytic_kernel_of_product_features_is_the_wide_network_limit(points):
    """Mean of the empirical metric-NTK over 8 networks of width 512 on the bicubic's product features
    against the analytic kernel (general route): within 3 Monte Carlo standard errors, and < 15%."""
    import math

    from nnflow.kernels import KERNEL_ORDERS, analytic_kernel, empirical_kernel, relative_frobenius

    cfg = {"network": "mlp", "depth": 2, "activation": "gelu", "feature_degree": 1, "factors": [2, 2]}
    few = points.subset(torch.arange(4))
    analytic = analytic_kernel(cfg).kernel(few, None, KERNEL_ORDERS["metric"])
    orders = KERNEL_ORDERS["metric"]
    samples = [empirical_kernel(build_potential(n_coords=6, width=512, seed=s, **cfg), few, None, orders)
               for s in range(8)]
    mean = sum(samples) / 8
    error = relative_frobenius(mean, analytic)
    standard_error = math.sqrt(sum(float((s - mean).norm() ** 2) for s in samples) / 7 / 8) / float(analytic.norm())
    assert error <= 3 * standard_error and error < 0.15, (error, standard_error)
    model = build_potential(n_coords=6, width=16, seed=0, **cfg)
    assert analytic_kernel(model).factors == [2, 2]  # a KahlerPotential on a product gives the product kernel
