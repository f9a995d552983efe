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



def _fake_run(directory, kind, width, lr, sigma, change):
    """A run directory as nnflow-train writes it, with the given σ_test and final kernel change."""
    import json

    directory.mkdir(parents=True)
    summary = {"status": "completed", "arm": kind, "width": width, "seed": 0, "sigma_test": sigma,
               "sigma_test_err": 0.01 * sigma, "n_params": 10 * width, "steps": 10}
    (directory / "summary.json").write_text(json.dumps(summary))
    (directory / "config.yaml").write_text(f"optim:\n  optimizer:\n    lr: {lr}\n")
    (directory / "metrics.csv").write_text(f"step,val_sigma\n0,0.2\n10,{sigma}\n")
    if kind != "frozen":
        (directory / "kernel.csv").write_text(f"step,rel_change,dist_analytic\n0,0,{width**-0.5}\n10,{change},0.1\n")


def test_learning_rate_axis_tables_slopes_and_sentences(tmp_path):
    from nnflow.report import summarize
    from nnflow.report.sweep import LR_FIGURE

    sweep = tmp_path / "sweep"
    sigma = {0.1: 0.05, 1.0: 0.2}  # the larger step is worse, and its kernel moves ∝ lr·N^−1/2
    for lr in (0.1, 1.0):
        for w in (16, 64, 256):
            _fake_run(sweep / f"finite_w{w}_lr{lr}", "finite", w, lr, sigma[lr] * (1 + 1 / w), lr * w**-0.5)
        _fake_run(sweep / f"frozen_lr{lr}", "frozen", 16, lr, sigma[lr], None)
    stats = summarize(collect(sweep))
    low, high = stats["lr_axis"]
    assert (low["lr"], high["lr"]) == (0.1, 1.0)
    assert low["slope_kernel_change"] == pytest.approx(-0.5, abs=1e-12)
    assert high["slope_kernel_change"] == pytest.approx(-0.5, abs=1e-12)
    assert (low["frozen_sigma"], high["frozen_sigma"]) == (0.05, 0.2)
    # the main tables and the frozen flow are the smallest step's
    assert [m for _, m, *_ in stats["finite_sigma"]] == pytest.approx([0.05 * (1 + 1 / w) for w in (16, 64, 256)])
    assert stats["frozen_sigma"] == 0.05
    text = write_report(sweep, donaldson=False, ensemble=False).read_text()
    assert "## Learning-rate axis" in text and "| finite | 1 | 256 | 0.2008 |" in text
    assert "N = 256: lr = 1 moves the kernel 10× as much as lr = 0.1." in text
    assert "lr = 1: the widest network (N = 256) is at 1× the frozen flow's σ_test" in text
    assert (sweep / f"{LR_FIGURE}.png").exists()
    # one learning rate: no axis, no section
    single = tmp_path / "single"
    for w in (16, 64):
        _fake_run(single / f"finite_w{w}", "finite", w, 0.1, 0.05, 0.1 * w**-0.5)
    assert summarize(collect(single))["lr_axis"] == []
    assert "Learning-rate axis" not in write_report(single, donaldson=False, ensemble=False).read_text()


LR_TINY = ["experiment=width_sweep_lr", "model.width=8", "sweep_reference.width=8", "data.n_train=32",
           "data.n_val=64", "data.n_test=200", "trainer.max_epochs=8", "trainer.check_val_every_n_epoch=4",
           "kernel_tracking.every_n_steps=4", "kernel_tracking.probe_size=4"]


@pytest.mark.slow  # six short training runs (~30 s on the shared 2-core machine)
def test_learning_rate_axis_on_trained_runs(tmp_path):
    from nnflow.report import summarize
    from nnflow.report.sweep import LR_FIGURE

    sweep = tmp_path / "sweep"
    for lr in (0.05, 0.3):
        for kind, width in (("finite", 8), ("finite", 32), ("frozen", 8)):
            cfg = compose_train(*LR_TINY, f"model.kind={kind}", f"model.width={width}", f"optim.optimizer.lr={lr}",
                                tmp_path=tmp_path)
            train(cfg, sweep / f"{kind}_w{width}_s0_lr{lr}")
    records = collect(sweep)
    stats = summarize(records)
    low, high = stats["lr_axis"]
    assert (low["arm"], low["lr"], high["lr"]) == ("finite", 0.05, 0.3)
    by = {(r["arm"], r["width"], r["lr"]): r for r in records}
    # the main tables are the smallest step's; each lr's frozen flow is its own run
    assert [m for _, m, *_ in stats["finite_sigma"]] == [by["finite", 8, 0.05]["sigma_test"],
                                                         by["finite", 32, 0.05]["sigma_test"]]
    assert stats["frozen_sigma"] == by["frozen", 8, 0.05]["sigma_test"]
    assert high["frozen_sigma"] == by["frozen", 8, 0.3]["sigma_test"]
    # 6× the NTK time in the same steps moves the kernel more at every width
    for (w, c_low, *_), (_, c_high, *_) in zip(low["kernel_change"], high["kernel_change"]):
        assert c_high > c_low > 0, w
    text = write_report(sweep, donaldson=False, ensemble=False).read_text()
    assert "## Learning-rate axis" in text and "| finite | 0.3 | 32 |" in text
    ratio = by["finite", 32, 0.3]["kernel_change"] / by["finite", 32, 0.05]["kernel_change"]
    assert f"N = 32: lr = 0.3 moves the kernel {ratio:.3g}× as much as lr = 0.05." in text
    assert (sweep / f"{LR_FIGURE}.png").exists()
