"""The seed-ensemble arm of the width-sweep report (nnflow.report.ensemble) on a tiny sweep."""

from __future__ import annotations

import math

import pytest
import torch

from nnflow.report import collect, write_report
from nnflow.report.ensemble import ensemble_metric, ensemble_rows, load_run_model, sweep_test_points
from nnflow.training.run import train

from .helpers import compose_train

TINY = ["experiment=width_sweep", "model.kind=finite", "model.width=8", "data.n_train=32", "data.n_val=64",
        "data.n_test=200", "trainer.max_epochs=6", "trainer.check_val_every_n_epoch=3", "kernel_tracking.enabled=false",
        "optim.optimizer.lr=0.3"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    for seed in (0, 1):
        train(compose_train(*TINY, f"seed={seed}", tmp_path=root), root / "sweep" / f"finite_w8_s{seed}")
    return root / "sweep"


def test_one_member_ensemble_is_the_run_itself(sweep):
    for record in collect(sweep):
        model, surface = load_run_model(record)
        from nnflow.geometry.measures import evaluate_metric

        result = evaluate_metric(sweep_test_points(record, surface), ensemble_metric([model]))
        assert result["sigma"] == pytest.approx(record["sigma_test"], rel=1e-12)


def test_two_seed_ensemble_is_the_mean_metric(sweep):
    records = collect(sweep)
    (row,) = ensemble_rows(records)
    assert row["width"] == 8 and row["seeds"] == [0, 1] and row["n"] == 2
    models, surface = zip(*(load_run_model(r) for r in records))
    points = sweep_test_points(records[0], surface[0])
    g = ensemble_metric(models)(points.z[:5], points.jac[:5])
    with torch.no_grad():
        mean = (models[0].metric(points.z[:5], points.jac[:5]) + models[1].metric(points.z[:5], points.jac[:5])) / 2
    torch.testing.assert_close(g, mean, rtol=1e-13, atol=0)
    assert math.isfinite(row["sigma_test"]) and row["sigma_test"] != pytest.approx(row["member_sigma"], rel=1e-6)
    assert row["member_sigma"] == pytest.approx(sum(r["sigma_test"] for r in records) / 2)
    # a second copy of one run changes nothing: the ensemble of {s0, s0} is s0
    twice = [records[0], dict(records[0], seed=5)]
    assert ensemble_rows(twice)[0]["sigma_test"] == pytest.approx(records[0]["sigma_test"], rel=1e-12)


def test_report_has_the_ensemble_table_or_a_note(sweep, tmp_path):
    text = write_report(sweep, tmp_path / "a", donaldson=False).read_text()
    assert "## Seed ensembles" in text and "| finite | 0.3 | 8 | 2 |" in text
    broken = tmp_path / "b"
    for record in collect(sweep):  # the same runs without their checkpoints
        run = broken / record["run"].rsplit("/", 1)[-1]
        run.mkdir(parents=True)
        for name in ("summary.json", "config.yaml", "metrics.csv"):
            (run / name).write_bytes((sweep / run.name / name).read_bytes())
    text = write_report(broken, donaldson=False).read_text()
    assert "No ensemble rows: run" in text and "checkpoints/last.ckpt" in text
