"""nnflow-measure run=<run dir>: the learned metric's geometry on fresh points, FS beside it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

import nnflow
from nnflow.cli import CONFIG_DIR
from nnflow.cli.measure import measure
from nnflow.geometry import sample_points
from nnflow.geometry.measures import evaluate_metric
from nnflow.training.run import train

from .helpers import compose_train

SCRIPT = os.path.join(os.path.dirname(sys.executable), "nnflow-measure")
TINY = ["data.n_train=64", "data.n_val=32", "data.n_test=64", "data.batch_size=16", "logger=csv",
        "trainer.enable_progress_bar=false", "+trainer.max_steps=6"]
KEYS = ("sigma", "sigma_err", "volume", "volume_err", "euler", "euler_err", "ricci", "ricci_err", "n_points")


def _compose(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="measure", overrides=list(overrides))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("measure_run")
    overrides = ["experiment=cubic_mlp", "model.width=8", "model.depth=1", "curvature.points=32", *TINY]
    train(compose_train(*overrides, tmp_path=root), root / "run")
    return root / "run"


def test_measure_run_prints_the_learned_and_fs_geometry(run, tmp_path):
    points = ["n_points=400", "curvature_points=150", "seed=2"]
    cmd = [SCRIPT, f"run={run}", *points, "chunk_size=64", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "loaded" in proc.stderr and "learned σ" in proc.stderr  # progress on stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "measure.json").read_text())
    for key in KEYS:
        assert math.isfinite(result[key]) and math.isfinite(result["fubini_study"][key]), key
    assert result["manifold"] == "fermat_cubic" and result["kind"] == "finite" and result["checkpoint_step"] == 6
    assert result["curvature_route"] == "exact"  # an MLP potential: bi-jets through the network
    for name in ("eta_hist", "ricci_scalar_hist"):
        assert (tmp_path / f"{name}.png").exists() and (tmp_path / f"{name}.pdf").exists(), name
    # the nested-autodiff route gives the same curvature (two implementations)
    slow, _ = measure(_compose(f"run={run}", *points, "chunk_size=64", "curvature_route=autodiff"))
    assert slow["curvature_route"] == "autodiff"
    for key in ("euler", "ricci", "euler_err", "ricci_err"):
        assert slow[key] == pytest.approx(result[key], rel=1e-9), key
    # the learned σ is load_run's metric on the same points (sampled from the same seed)
    loaded = nnflow.load_run(run)
    same = sample_points(loaded.surface, 400, seed=2)
    assert result["sigma"] == pytest.approx(evaluate_metric(same, loaded.model.metric)["sigma"], rel=1e-12)
    # the FS values are plain nnflow-measure's on the same manifold, seed and points
    plain, _ = measure(_compose("manifold=fermat_cubic", *points))
    for key in KEYS:
        assert result["fubini_study"][key] == pytest.approx(plain[key], rel=1e-12), key
    # the learned metric is not FS, but its volume (the Kähler class) and χ = 0 (a torus) are FS's
    assert result["sigma"] != pytest.approx(plain["sigma"], rel=1e-3)
    assert abs(result["volume"] - 3.0) < 5 * result["volume_err"]
    assert abs(result["euler"]) < 5 * result["euler_err"]


def test_training_adds_the_learned_ricci_measure_to_its_summary(run):
    """curvature.points: summary.json's Ricci measure and χ are measure_learned's on the leading
    test points, FS's beside them, and the histograms are in the run directory."""
    from nnflow.training.measure_run import measure_learned

    summary = json.loads((run / "summary.json").read_text())
    assert summary["curvature_points"] == 32 and summary["curvature_route"] == "exact"
    loaded = nnflow.load_run(run)
    again = measure_learned(loaded.model, loaded.split("test").subset(slice(0, 32)), 1.0, curvature_points=32)
    for key in ("ricci", "ricci_err", "euler", "euler_err"):
        assert summary[key] == pytest.approx(again[key], rel=1e-10), key
        assert summary[f"{key.split('_')[0]}_fs{'_err' if key.endswith('err') else ''}"] == pytest.approx(
            again["fubini_study"][key], rel=1e-10), key
    for name in ("eta_hist", "ricci_scalar_hist"):
        assert (run / f"{name}.png").exists() and (run / f"{name}.pdf").exists(), name


def test_measure_run_of_a_frozen_flow_or_a_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        measure(_compose(f"run={tmp_path / 'nowhere'}", "n_points=50"))
    frozen = tmp_path / "frozen"
    train(compose_train("experiment=cubic_frozen", *TINY, tmp_path=tmp_path), frozen)
    with pytest.raises(ValueError, match="frozen.*has no Kähler potential"):
        measure(_compose(f"run={frozen}", "n_points=50", "curvature_points=20"))
    with pytest.raises(ValueError, match="curvature.points: a frozen flow"):  # before training
        train(compose_train("experiment=cubic_frozen", "curvature.points=10", *TINY, tmp_path=tmp_path), tmp_path / "x")
    with pytest.raises(ValueError, match="curvature.route"):
        train(compose_train("experiment=cubic_mlp", "curvature.route=fast", *TINY, tmp_path=tmp_path), tmp_path / "y")
    # a model that offers only metric(): refused before sampling or training, not after
    with pytest.raises(ValueError, match="PoisonedPotential.*no Kähler potential"):
        train(compose_train("experiment=cubic_mlp", "+model._target_=tests.helpers.PoisonedPotential",
                            "+model.offer_potential=false", *TINY, tmp_path=tmp_path / "fresh"), tmp_path / "z")
    assert not (tmp_path / "fresh" / "data").exists() and not (tmp_path / "z" / "checkpoints").exists()


@pytest.mark.slow
def test_trained_cubic_curve_is_ten_times_flatter_than_fubini_study(tmp_path):
    """The cubic_mlp preset (about 1.5 minutes): on a torus the Ricci-flat metric is flat, and the
    learned metric's Ricci measure (summary.json, curvature.points = 2,000 test points) is ≥ 10×
    below Fubini–Study's on the same points, with χ = 0 within three standard errors."""
    summary, _ = train(compose_train("experiment=cubic_mlp", "logger=csv", "trainer.enable_progress_bar=false",
                                     tmp_path=tmp_path), tmp_path / "run")
    assert summary["status"] == "completed" and summary["curvature_route"] == "exact"
    assert summary["ricci"] * 10 <= summary["ricci_fs"], (summary["ricci"], summary["ricci_fs"])
    assert abs(summary["euler"]) < 3 * summary["euler_err"]
