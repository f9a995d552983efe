import json
import math
import os
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir

from nnflow.cli import CONFIG_DIR
from nnflow.cli.measure import measure

SCRIPT = os.path.join(os.path.dirname(sys.executable), "nnflow-measure")


def _compose(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="measure", overrides=list(overrides))


def test_measure_composes_and_runs():
    cfg = _compose("manifold=fermat_quartic", "n_points=2000", "curvature_points=400", "seed=1")
    result, points = measure(cfg)
    assert len(points) == 2000
    for key in ("sigma", "sigma_err", "volume", "euler", "euler_err", "n_points", "seconds"):
        assert math.isfinite(result[key])
    assert result["volume"] == pytest.approx(4.0)


@pytest.mark.parametrize(
    "override,message",
    [("n_points=0", "n_points"), ("kahler_t=-1", "kahler_t"), ("curvature_points=-3", "curvature_points")],
)
def test_bad_config_values(override, message):
    cfg = _compose("manifold=fermat_cubic", override)
    with pytest.raises(ValueError, match=message):
        measure(cfg)


def test_custom_manifold_from_config():
    cfg = _compose(
        "manifold=custom",
        "manifold.exponents=[[3,0,0],[0,3,0],[0,0,3],[1,1,1]]",
        "manifold.coefficients=[1,1,1,'0.3+0.1j']",
        "n_points=600",
        "curvature_points=300",
    )
    result, _ = measure(cfg)
    assert result["volume"] == pytest.approx(3.0)


def test_console_script_prints_json_last(tmp_path):
    env = dict(os.environ, HYDRA_FULL_ERROR="0")
    cmd = [
        SCRIPT, "manifold=fermat_cubic", "n_points=900",
        "curvature_points=300", f"hydra.run.dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["n_points"] == 900 and result["manifold"] == "fermat_cubic"
    assert json.loads((tmp_path / "measure.json").read_text())["sigma"] == result["sigma"]
    assert (tmp_path / ".hydra" / "config.yaml").exists()  # the resolved config is saved
    provenance = json.loads((tmp_path / "measure.json").read_text())["provenance"]
    assert provenance == result["provenance"]
    assert provenance["versions"]["torch"] == torch.__version__ and provenance["device"] == "cpu"
    assert provenance["commit"] and provenance["threads"] >= 1


def test_unknown_manifold_is_a_clear_error(tmp_path):
    cmd = [SCRIPT, "manifold=banana", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "banana" in proc.stderr and "fermat_quintic" in proc.stderr
