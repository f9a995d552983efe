import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nnflow.cli import CONFIG_DIR
from nnflow.fits import power_law_fit
from nnflow.report.ricci import write_outputs
from nnflow.torus.study import headline
from nnflow.torus.study import run_study as run

SCRIPT = os.path.join(os.path.dirname(sys.executable), "nnflow-ricci")
RICCI_DIR = str(Path(CONFIG_DIR) / "ricci")
TINY = [
    "grid=12", "t_end=0.005", "n_frames=3", "kernel.sigmas=[0.16,0.08]", "kernel.kinds=[gauss,cosnet]",
    "network.widths=[32]", "network.sigmas=[0.16]", "modes.ks=[[1,0],[1,1]]", "modes.widths=[32]",
]


@pytest.fixture(autouse=True)
def _restore_threads():  # run_study() sets the thread count from the config
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def _compose_cfg(*overrides):
    with initialize_config_dir(config_dir=RICCI_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def _compose(*overrides) -> dict:
    """The resolved config as the plain dict the library takes (what nnflow-ricci passes)."""
    return OmegaConf.to_container(_compose_cfg(*overrides), resolve=True)


def test_run_composes_and_reports(tmp_path):
    summary, rows, frames = run(_compose(*TINY))
    assert summary["n"] == 2 and summary["field"] == "hamilton" and summary["primary_error"] == "rel_error"
    assert summary["reference"]["conformal_check"] < 1e-6 * summary["reference"]["change"]
    kernel = {(r["kind"], r["sigma"]): r for r in summary["runs"] if r["route"] == "kernel"}
    for kind in ("gauss", "cosnet"):  # a narrower kernel is closer to Ricci flow
        assert kernel[(kind, 0.08)]["rel_error"] < kernel[(kind, 0.16)]["rel_error"]
    routes = {r["route"] for r in summary["runs"]}
    assert routes == {"kernel", "finite", "linearized"}
    assert summary["max_mode_rate_deviation_kernel"] < 1e-4
    assert {m["route"] for m in summary["modes"]} == {"kernel", "finite"}
    assert len(rows) == 3 * len(summary["runs"])  # n_frames per run
    written = write_outputs(tmp_path, summary, rows, frames, plots=True)
    for name in ("summary.json", "metrics.csv", "error_vs_sigma.png", "error_vs_time.png", "mode_rates.png",
                 "curvature.png"):
        assert name in written and (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["fits"].keys() == summary["fits"].keys()
    assert json.loads(json.dumps(headline(summary)))["n"] == 2


def test_fit_power_law_recovers_exponent():
    xs = [0.1, 0.05, 0.025]
    fit = power_law_fit(xs, [3.0 * x**2 for x in xs])
    assert fit["rate"] == pytest.approx(2.0) and fit["prefactor"] == pytest.approx(3.0)
    assert math.isnan(power_law_fit([0.1, 0.05], [1.0, math.nan])["rate"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("n=1", "n="), ("grid=4", "grid"), ("t_end=0", "t_end"), ("field=yamabe", "field"),
        ("kernel.kinds=[laplace]", "kernel.kinds"), ("kernel.sigmas=[0.1,-1]", "kernel.sigmas"),
        ("network.widths=[0]", "network.widths"), ("network.kind=mlp", "network.kind"),
        ("initial.amplitude=1.5", "initial.amplitude"), ("modes.amplitude=0.5", "modes.amplitude"),
        ("modes.ks=[[1,0,0]]", "modes.ks"), ("modes.ks=[[20,0]]", "modes.ks"), ("threads=0", "threads"),
    ],
)
def test_bad_config_values(override, message):
    with pytest.raises(ValueError, match=message):
        run(_compose(*TINY, override))


@pytest.mark.parametrize("preset,n", [("ricci_t2", 2), ("ricci_t3", 3)])
def test_presets_compose(preset, n):
    cfg = _compose_cfg(f"experiment={preset}")
    assert cfg.n == n and cfg.name == preset and all(len(k) == n for k in cfg.modes.ks)


def test_console_script_prints_json_last(tmp_path):
    cmd = [SCRIPT, *TINY, "n_frames=2", "modes.widths=[]", "network.linearized=false", "plots=false",
           f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n"] == 2 and result["run_dir"] == str(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["seconds"] == result["seconds"]
    assert (tmp_path / "metrics.csv").exists() and (tmp_path / ".hydra" / "config.yaml").exists()
    assert "reference Ricci flow" in proc.stderr  # progress goes to stderr
    prov = json.loads((tmp_path / "summary.json").read_text())["provenance"]
    head = subprocess.run(["git", "-C", str(Path(CONFIG_DIR).parent), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert prov["commit"].removesuffix("-dirty") == head  # the checkout that produced the numbers
    assert prov["versions"]["torch"] == torch.__version__ and prov["device"] == "cpu"
    assert prov["threads"] == 1  # the config's thread count, set by the study


def test_rates_carry_standard_errors():
    # grid 16: every σ ≥ 1/16 is resolved, so the net-kernel fit also has three points
    summary, _, _ = run(_compose(*TINY, "grid=16", "kernel.sigmas=[0.16,0.12,0.08]", "network.widths=[]",
                                 "modes.ks=[[1,0]]", "modes.widths=[]"))
    for label in ("gauss", "cosnet"):
        fit = summary["fits"][label]
        runs = [r for r in summary["runs"] if r["kind"] == label and r["sigma"] >= fit["sigma_min"]]
        expected = power_law_fit([r["sigma"] for r in runs], [r["rel_error"] for r in runs])
        assert fit["n"] == len(runs) == 3 and fit["stderr"] == expected["stderr"] and math.isfinite(fit["stderr"])
    assert headline(summary)["fits_stderr"] == {k: v["stderr"] for k, v in summary["fits"].items()}


def test_perelman_field_reports_invariant_error():
    summary, _, _ = run(_compose(*TINY, "field=perelman", "network.widths=[]", "modes.widths=[]"))
    assert summary["primary_error"] == "invariant_error"
    assert all(math.isfinite(r["invariant_error"]) for r in summary["runs"])
    # the longitudinal gauge mode grows at +K̂|q|²
    growing = [m for m in summary["modes"] if m["predicted"] > 0]
    assert any(m["measured"] == pytest.approx(m["predicted"], rel=1e-4) for m in growing)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["ricci_t2", "ricci_t3"])
def test_presets_run_end_to_end(preset, tmp_path):
    proc = subprocess.run(
        [SCRIPT, f"experiment={preset}", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failures"] == 0
    assert result["fits"]["gauss"] == pytest.approx(2.0, abs=0.2)  # error ∝ σ² for the Gaussian kernel
    assert result["max_mode_rate_deviation_kernel"] < 1e-4
    for name in ("summary.json", "metrics.csv", "error_vs_sigma.png", "mode_rates.png"):
        assert (tmp_path / name).exists()


def test_library_study_imports_no_hydra():
    code = (
        "import sys, nnflow.torus.study, nnflow.report.ricci, nnflow.fits; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('hydra', 'omegaconf', 'lightning')]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_plain_dict_config_errors_name_the_key():
    cfg = _compose(*TINY)
    del cfg["solver"]["max_steps"]
    with pytest.raises(ValueError, match="solver.max_steps=missing"):
        run(cfg)
    cfg = _compose(*TINY)
    cfg["modes"]["ks"] = 3
    with pytest.raises(ValueError, match="modes.ks"):
        run(cfg)
