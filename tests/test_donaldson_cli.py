"""nnflow-donaldson (Hydra app), its k-sweep preset, and model=bergman in nnflow-train."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import nnflow
from nnflow.algebraic import BalancedMetric
from nnflow.cli import CONFIG_DIR
from nnflow.cli.donaldson import donaldson
from nnflow.training.run import train

from .helpers import compose_train

REPO = str(Path(nnflow.__file__).resolve().parents[1])  # the checkout under test, wherever pytest runs
SMALL = ["manifold=fermat_cubic", "k=2", "n_points=3000", "n_test=2000"]


def _compose(*overrides, hydra_config=False):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="donaldson", overrides=list(overrides), return_hydra_config=hydra_config)


def _run(args, cwd):
    env = dict(os.environ, HYDRA_FULL_ERROR="0", PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "nnflow.cli.donaldson", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=cwd)


def test_donaldson_runs_and_reports():
    result, metric = donaldson(_compose(*SMALL, "curvature_points=100"))
    assert result["N_k"] == 6 and result["converged"] and result["iterations"] >= 1
    for key in ("sigma", "sigma_err", "volume", "euler", "seconds", "seconds_balanced"):
        assert math.isfinite(result[key]), key
    assert result["volume"] == pytest.approx(3.0, rel=0.05)
    assert {"commit", "versions", "device"} <= set(result["provenance"])
    assert isinstance(metric, BalancedMetric)


@pytest.mark.parametrize("override,key", [("k=0", "k"), ("n_points=-5", "n_points"), ("symmetry=sun", "symmetry"),
                                          ("tolerance=0", "tolerance"), ("curvature_points=-1", "curvature_points"),
                                          ("max_iterations=1.5", "max_iterations")])
def test_bad_config_values_name_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        donaldson(_compose(*SMALL, override))


def test_too_few_points_for_k():
    with pytest.raises(ValueError, match="n_points=50 is too small for k=4"):
        donaldson(_compose("manifold=fermat_cubic", "k=4", "symmetry=none", "n_points=50", "n_test=100"))


def test_app_prints_json_last_and_writes_the_run_dir(tmp_path):
    proc = _run([*SMALL, f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"sigma", "sigma_err", "N_k", "iterations", "seconds"} <= set(last)
    written = json.loads((tmp_path / "donaldson.json").read_text())
    assert written["sigma"] == last["sigma"] and "commit" in written["provenance"]
    metric, surface = BalancedMetric.load(tmp_path / "balanced.pt")
    assert metric.k == 2 and surface["name"] == "fermat_cubic"


def test_k_sweep_preset_runs_a_multirun_over_k(tmp_path):
    cfg = _compose("donaldson/experiment=k_sweep", hydra_config=True)
    assert str(cfg.hydra.sweeper.params.k) == "1,2,3,4,5,6,7,8" and cfg.symmetry == "phases"
    proc = _run(["-m", "donaldson/experiment=k_sweep", *SMALL[:1], "n_points=2000", "n_test=1000",
                 "hydra.sweeper.params.k='1,3'", f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sigmas = {k: json.loads((tmp_path / f"k{k}" / "donaldson.json").read_text())["sigma"] for k in (1, 3)}
    assert sigmas[3] < sigmas[1]


def test_model_bergman_trains_in_nnflow_train(tmp_path):
    overrides = ["manifold=fermat_quartic", "model=bergman", "model.k=2", "~logger", "data.n_train=3000",
                 "data.n_val=500", "data.n_test=2000", "data.batch_size=3000", "trainer.max_epochs=20",
                 "trainer.enable_progress_bar=false", "optim.optimizer.lr=0.01"]
    start, _ = train(compose_train(*overrides, "trainer.max_epochs=1", "optim.optimizer.lr=1e-12",
                                   tmp_path=tmp_path), tmp_path / "start")
    summary, objects = train(compose_train(*overrides, tmp_path=tmp_path), tmp_path / "run")
    assert summary["status"] == "completed" and summary["n_params"] == 20  # 10 phase sectors of size 1, H = L L^†
    assert summary["sigma_test"] < 0.7 * start["sigma_test"], (start["sigma_test"], summary["sigma_test"])
    assert isinstance(objects["module"].model.l_real[0], torch.nn.Parameter)
