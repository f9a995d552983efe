import json
import math
import os
import subprocess
import sys

from nnflow.report import FIGURES

BIN = os.path.dirname(sys.executable)


def test_tiny_width_sweep_and_report(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        os.path.join(BIN, "nnflow-train"), "-m", "experiment=width_sweep",
        "model.width=8,32", "seed=0,1", "sweep_reference.width=8",
        "data.n_train=48", "data.n_val=150", "data.n_test=300", "trainer.max_epochs=12",
        "trainer.check_val_every_n_epoch=6", "kernel_tracking.every_n_steps=6",
        "kernel_tracking.probe_size=8", "optim.optimizer.lr=0.3",
        f"data.cache_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(runs) == 12  # 3 arms × 2 widths × 2 seeds
    statuses = [json.loads((sweep / r / "summary.json").read_text())["status"] for r in runs]
    assert statuses.count("skipped") == 3  # the frozen flow runs once
    assert statuses.count("completed") == 9
    for r in runs:
        if r.startswith(("finite", "linearized")):
            assert (sweep / r / "kernel.csv").exists() and (sweep / r / "metrics.csv").exists()

    rep = subprocess.run([os.path.join(BIN, "nnflow-report"), str(sweep)], capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    stats = json.loads(rep.stdout.strip().splitlines()[-1])
    for key in ("slope_kernel_dist0", "slope_kernel_change", "slope_sigma_gap"):
        assert math.isfinite(stats[key]), key
    assert math.isfinite(stats["frozen_sigma"])
    text = (sweep / "report.md").read_text()
    assert "| width | finite σ_test | ± | linearized σ_test | ± | kernel dist. at init | kernel change |" in text
    assert "| 8 |" in text and "| 32 |" in text
    for name in FIGURES:
        assert (sweep / f"{name}.png").exists() and (sweep / f"{name}.pdf").exists()


def test_report_of_an_empty_directory_is_a_clear_error(tmp_path):
    rep = subprocess.run([os.path.join(BIN, "nnflow-report"), str(tmp_path)], capture_output=True, text=True)
    assert rep.returncode == 2
    assert "no run summaries" in rep.stderr


def test_slope_error_matches_least_squares_covariance():
    import numpy as np

    from nnflow.report import fit_slope, slope_error

    widths = [64, 256, 1024, 4096]
    exact = [3.0 * w**-0.5 for w in widths]
    assert abs(fit_slope(widths, exact)[0] + 0.5) < 1e-12 and slope_error(widths, exact) < 1e-12
    noisy = [y * f for y, f in zip(exact, (1.1, 0.93, 1.04, 0.97))]
    coef, cov = np.polyfit(np.log(widths), np.log(noisy), 1, cov="unscaled")
    resid = np.log(noisy) - np.polyval(coef, np.log(widths))
    se = math.sqrt(cov[0, 0] * (resid @ resid) / (len(widths) - 2))
    assert abs(fit_slope(widths, noisy)[0] - coef[0]) < 1e-12
    assert abs(slope_error(widths, noisy) - se) < 1e-12
    assert math.isnan(slope_error(widths[:2], noisy[:2]))  # two points: no residual left
