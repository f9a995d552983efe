"""W&B glue (nnflow.tracking): offline runs read back from their files carry the resolved config,
the sweep's group, the run's name (arm, width, seed), the σ and kernel-tracking series, and the
report's numbers and figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnflow.tracking import read_offline_run, scalars, sweep_group

BIN = os.path.dirname(sys.executable)
ENV = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}


def _run(*cmd: str, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [os.path.join(BIN, cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=timeout, env=ENV
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow  # ~40 s on the shared 2-core machine: a two-run sweep and its report, three W&B runs
def test_sweep_runs_share_a_group_and_carry_config_series_and_report(tmp_path):
    sweep = tmp_path / "sweep"
    _run(
        "nnflow-train",
        "-m",
        "experiment=width_sweep",
        "logger=wandb",
        "model.kind=finite",
        "model.width=8,16",
        "seed=0",
        "data.n_train=32",
        "data.n_val=64",
        "data.n_test=64",
        "trainer.max_epochs=4",
        "trainer.check_val_every_n_epoch=2",
        "kernel_tracking.every_n_steps=2",
        "kernel_tracking.probe_size=4",
        "optim.optimizer.lr=0.3",
        f"data.cache_dir={tmp_path / 'data'}",
        f"hydra.sweep.dir={sweep}",
    )
    group = f"width_sweep_{sweep.name}"
    for width in (8, 16):
        run = read_offline_run(sweep / f"finite_w{width}_s0")
        assert run["group"] == group
        assert run["name"] == f"finite_w{width}_s0_lr0.3"  # arm, width, seed; lr from the command line
        assert run["config"]["model"]["width"] == width and run["config"]["optim"]["optimizer"]["lr"] == 0.3
        assert run["config"]["data"]["n_train"] == 32 and run["config"]["manifold"]["name"] == "fermat_cubic"
        sigmas = [row["val_sigma"] for row in run["history"] if "val_sigma" in row]
        assert len(sigmas) >= 2 and all(s > 0 for s in sigmas)  # the σ curve
        assert any(key.startswith("kernel/") for row in run["history"] for key in row)  # kernel tracking
        assert run["summary"]["sigma_test"] > 0
    proc = _run("nnflow-report", str(sweep), "--no-donaldson", "--wandb")
    report = read_offline_run(sweep / "wandb" / next(p.name for p in (sweep / "wandb").glob("offline-run-*")))
    assert report["group"] == group and report["job_type"] == "report"
    assert report["config"]["sweep_dir"] == str(sweep) and report["config"]["donaldson"] is False
    assert "slope_kernel_change" in proc.stdout and "slope_kernel_change" in report["summary"]
    logged = {k: v for row in report["history"] for k, v in row.items()}
    images = {k.removesuffix("/_type") for k, v in logged.items() if v == "image-file"}
    assert images == {p.stem for p in sweep.glob("*.png")} and images  # every figure, as an image
    files = next((sweep / "wandb").glob("offline-run-*")) / "files"
    assert all((files / logged[f"{name}/path"]).exists() for name in images)


def test_an_app_logs_its_resolved_config_when_enabled(tmp_path):
    out = tmp_path / "measure"
    _run(
        "nnflow-measure",
        "manifold=fermat_cubic",
        "n_points=400",
        "curvature_points=100",
        "seed=2",
        "wandb.enabled=true",
        f"hydra.run.dir={out}",
    )
    run = read_offline_run(out)
    assert run["name"] == "measure_fermat_cubic_s2" and run["job_type"] == "measure"
    assert run["config"]["n_points"] == 400 and run["config"]["manifold"]["name"] == "fermat_cubic"
    assert run["summary"]["volume"] == pytest.approx(3.0, rel=0.2)


def test_sweep_group_and_scalars():
    assert sweep_group("width_sweep", "multirun/width_sweep/2026-01-01_00-00-00") == "width_sweep_2026-01-01_00-00-00"
    assert sweep_group(None, Path("a/b")) == "b" and sweep_group("cubic_mlp", None) == "cubic_mlp"
    assert sweep_group(None, None) is None
    flat = scalars({"a": 1, "b": {"c": 2.5, "d": float("nan")}, "s": "x", "f": True, "provenance": {"t": 1}})
    assert flat == {"a": 1, "b/c": 2.5}


def test_unknown_wandb_key_is_named(tmp_path):
    from nnflow.tracking import start

    with pytest.raises(ValueError, match="config key wandb has unknown entries"):
        start({"wandb": {"enabled": True, "projetc": "x"}}, "measure", "m", tmp_path)
