"""The Dwork-family moduli scan (experiment=dwork_scan, nnflow.report.moduli): a tiny scan runs and
reports σ_FS and σ_test against ψ; the rows follow the runs' numbers; σ_FS in summary.json is the
FS metric's σ on the run's test points (an independent evaluation); the conifold is refused."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from nnflow.geometry.hypersurface import make_hypersurface
from nnflow.geometry.sampling import sample_points
from nnflow.geometry.singularity import SingularManifoldError
from nnflow.report.moduli import is_moduli_scan, moduli_findings, moduli_rows
from nnflow.training.load import load_run
from nnflow.training.run import train
from tests.helpers import compose_train

BIN = os.path.dirname(sys.executable)
ENV = os.environ | {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
TINY = ["model.width=16", "model.depth=1", "data.n_train=256", "data.n_val=64", "data.n_test=512",
        "data.batch_size=64", "trainer.max_time=null", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
        "optim.scheduler.warmup_steps=2", "compile=null"]


def _record(psi, seed, sigma, sigma_fs, name="dwork_quintic"):
    return {"run": f"/nonexistent/{psi}_{seed}", "status": "completed", "sigma_test": sigma, "sigma_test_err": 0.001,
            "sigma_fs": sigma_fs, "sigma_fs_err": 0.002, "config": {"manifold": {"name": name, "psi": psi}}}


def test_rows_follow_the_runs():
    records = [_record(0.9, 0, 0.010, 0.40), _record(0.9, 1, 0.014, 0.40), _record(0.0, 0, 0.002, 0.37),
               _record(1.5, 0, 0.004, 0.30)]
    assert is_moduli_scan(records)
    assert not is_moduli_scan(records[:2])  # one ψ: not a scan
    assert not is_moduli_scan(records + [_record(None, 0, 0.1, 0.3, name="fermat_quintic")])
    rows = moduli_rows(records)
    assert [r["psi"] for r in rows] == ["0", "0.9", "1.5"]
    mid = rows[1]
    assert mid["runs"] == 2 and mid["sigma_test"] == pytest.approx(0.012)
    assert mid["sigma_test_err"] == pytest.approx(0.002)  # the standard error of (0.010, 0.014)
    assert rows[0]["sigma_test_err"] == 0.001  # one run keeps its Monte Carlo error
    assert mid["conifold_distance"] == pytest.approx(1 - 0.9**5)
    assert mid["reduction"] == pytest.approx(0.40 / 0.012)
    findings = moduli_findings(rows)
    assert findings[0].startswith("σ_FS is largest at ψ = 0.9") and "σ_test is largest at ψ = 0.9" in findings[0]
    assert f"{0.37 / 0.002:.3g}×" in findings[1] and f"{0.40 / 0.012:.3g}×" in findings[1]
    # swap: the largest trained σ moves with the numbers
    records[3]["sigma_test"] = 0.05
    assert "σ_test is largest at ψ = 1.5" in moduli_findings(moduli_rows(records))[0]


def test_summary_sigma_fs_is_the_fs_metric_on_the_test_points(tmp_path):
    run = tmp_path / "run"
    summary, _ = train(compose_train("experiment=dwork_scan", "manifold.psi=0.5", *TINY, tmp_path=tmp_path), run)
    test = load_run(run).split("test")
    # g_FS = ∂∂̄ log|z|² = (|z|² δ − z̄ zᵀ)/|z|⁴ by hand, pulled back by the chart Jacobian, and σ's formula
    z = test.z
    norm = (z.abs() ** 2).sum(-1)[:, None, None]
    g = (norm * torch.eye(z.shape[1], dtype=z.dtype) - z.conj()[:, :, None] * z[:, None, :]) / norm**2
    det = torch.linalg.det(test.jac @ g @ test.jac.conj().transpose(1, 2)).real
    eta = det / test.omega2
    w = test.weights
    sigma = float((w * (1 - eta / ((w * eta).sum() / w.sum()))).abs().sum() / w.sum())
    assert summary["sigma_fs"] == pytest.approx(sigma, rel=1e-10)
    assert len(test) == 512 and 0.2 < sigma < 0.6  # the Dwork quintic at ψ = 0.5 is near the Fermat one's 0.37
    assert summary["manifold_params"] == {"psi": str(complex(0.5))}
    assert summary["sigma_test"] < summary["sigma_fs"]


def test_the_conifold_is_refused_before_training(tmp_path):
    with pytest.raises(SingularManifoldError, match="dwork_quintic.* is singular"):
        train(compose_train("experiment=dwork_scan", "manifold.psi=1.0", *TINY, tmp_path=tmp_path), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(SingularManifoldError):  # a fifth root of unity off the real line too
        sample_points(make_hypersurface("dwork_quintic", psi=complex(math.cos(0.4 * math.pi), math.sin(0.4 * math.pi))),
                      16, seed=0)


def test_tiny_scan_runs_and_reports(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [os.path.join(BIN, "nnflow-train"), "-m", "experiment=dwork_scan", "manifold.psi=0,0.9", *TINY,
           f"data.cache_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = subprocess.run([os.path.join(BIN, "nnflow-report"), str(sweep)], capture_output=True, text=True,
                         timeout=300, env=ENV)
    assert rep.returncode == 0, rep.stderr[-3000:]
    brief = json.loads(rep.stdout.strip().splitlines()[-1])
    assert brief["psi"] == ["0", "0.9"]
    summaries = {json.loads((p / "summary.json").read_text())["manifold_params"]["psi"]:
                 json.loads((p / "summary.json").read_text()) for p in sweep.iterdir() if p.is_dir()}
    for psi, sigma in zip(("0j", "(0.9+0j)"), brief["sigma_test"]):
        assert sigma == summaries[psi]["sigma_test"]
    assert brief["sigma_fs"][0] != brief["sigma_fs"][1]  # two manifolds, two FS metrics
    text = (sweep / "report.md").read_text()
    assert "## σ against ψ" in text and "| 0.9 |" in text
    assert (sweep / "moduli_scan.png").exists() and (sweep / "moduli_scan.pdf").exists()
