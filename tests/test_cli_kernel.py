import json
import math
import os
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir

from nnflow.cli import CONFIG_DIR
from nnflow.cli.kernel import compare

SCRIPT = os.path.join(os.path.dirname(sys.executable), "nnflow-kernel")


def _compose(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="kernel", overrides=list(overrides))


@pytest.mark.parametrize("model,kernel", [("mlp", "metric"), ("cosnet", "potential"), ("gaussnet", "kahler")])
def test_kernel_compare_composes_and_runs(model, kernel):
    cfg = _compose(f"model={model}", "model.width=64", "n_points=6", "seeds=2", f"kernel={kernel}")
    result, objects = compare(cfg)
    for key in ("rel_frobenius_error", "alignment", "seconds", "single_seed_error_mean"):
        assert math.isfinite(result[key])
    assert result["width"] == 64 and result["seeds"] == 2 and result["kernel"] == kernel
    assert objects["empirical"].shape == objects["analytic"].shape
    assert -1 <= result["alignment"] <= 1


@pytest.mark.parametrize(
    "override,message",
    [("model.width=-4", "model.width"), ("seeds=0", "seeds"), ("n_points=0", "n_points"),
     ("chunk_size=-1", "chunk_size"), ("kernel=hessian", "kernel"), ("implementation=magic", "implementation"),
     ("model.parameterization=standard", "standard"), ("model.activation=relu", "not smooth"),
     ("threads=0", "threads")],
)
def test_bad_config_values(override, message):
    cfg = _compose("n_points=4", "seeds=1", "model.width=16", override)
    with pytest.raises(ValueError, match=message):
        compare(cfg)


def test_console_script_prints_json_last(tmp_path):
    cmd = [SCRIPT, "manifold=fermat_cubic", "model.width=32", "model.depth=1", "n_points=5", "seeds=2",
           f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("rel_frobenius_error", "alignment", "width", "seeds", "seconds"):
        assert key in result
    assert result["width"] == 32 and result["seeds"] == 2 and result["manifold"] == "fermat_cubic"
    assert json.loads((tmp_path / "kernel.json").read_text()) == result
    assert (tmp_path / ".hydra" / "config.yaml").exists()
    assert "seed 2/2" in proc.stderr  # progress goes to stderr
    provenance = result["provenance"]
    assert provenance["versions"]["torch"] == torch.__version__ and provenance["device"] == "cpu"
    assert provenance["commit"] and provenance["threads"] >= 1



def test_kernel_compare_takes_the_feature_options():
    """Phase-invariant standardized features: the general-route analytic kernel of those features
    against the Monte Carlo mean of the same networks' empirical kernels."""
    from nnflow.geometry.hypersurface import make_hypersurface
    from nnflow.kernels import analytic_kernel
    from nnflow.models.potential import phase_options

    cfg = _compose("model.width=512", "model.depth=2", "model.feature_degree=5", "model.feature_symmetry=phases",
                   "n_points=3", "seeds=2")
    result, objects = compare(cfg)
    assert result["feature_symmetry"] == "phases" and result["feature_degree"] == 5
    arch = {"network": "mlp", "depth": 2, "feature_degree": 5, "feature_symmetry": "phases"}
    kernel = analytic_kernel(arch | phase_options(make_hypersurface("fermat_quintic"), "phases"))
    torch.testing.assert_close(objects["analytic"], kernel.metric(objects["points"]), rtol=1e-12, atol=0)
    assert result["rel_frobenius_error"] < 3 * result["expected_error_scale"]  # the MC mean agrees
