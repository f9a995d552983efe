"""nnflow.load_run: a run directory's tested state, rebuilt, gives the run's σ_test again."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import nnflow
from nnflow.geometry.measures import evaluate_metric
from nnflow.training.callbacks import read_metrics
from nnflow.training.run import train

from .helpers import compose_train

# 64 training points in batches of 16: 4 steps an epoch, validated at each epoch's end; max_steps=7
# stops the run 3 steps after its last validation (step 4), between validations
TINY = ["data.n_train=64", "data.n_val=32", "data.n_test=150", "data.batch_size=16", "logger=csv",
        "trainer.enable_progress_bar=false", "+trainer.max_steps=7"]
KINDS = {
    "finite": ["experiment=cubic_mlp", "model.width=8", "model.depth=1"],
    "linearized": ["experiment=cubic_mlp", "model=linearized", "model.width=8", "model.depth=1"],
    # full batch: one epoch = one flow step, validated every 5 steps, stopped at step 7
    "frozen": ["experiment=cubic_frozen", "trainer.max_epochs=7", "trainer.check_val_every_n_epoch=5"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("load_run")
    out = {}
    for kind, overrides in KINDS.items():
        out[kind] = root / kind
        train(compose_train(*overrides, *TINY, tmp_path=root), out[kind])
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_load_run_reproduces_sigma_test_of_a_run_stopped_between_validations(kind, runs):
    run = runs[kind]
    summary = json.loads((run / "summary.json").read_text())
    validated = [int(r["step"]) for r in read_metrics(run / "metrics.csv")]
    assert summary["steps"] == 7 and summary["checkpoint"] == "checkpoints/last.ckpt"
    assert summary["checkpoint_step"] == 7 and validated[-1] == 7 and 7 - validated[-2] > 1
    loaded = nnflow.load_run(run)
    assert loaded.checkpoint == run / "checkpoints" / "last.ckpt" and loaded.summary == summary
    assert loaded.cfg.model.kind == kind and loaded.surface.name == "fermat_cubic"
    assert all(p.dtype == torch.float64 for p in loaded.model.parameters())
    test = loaded.split("test")
    assert len(test) == summary["n_test"]
    result = evaluate_metric(test, loaded.model.metric)
    assert result["sigma"] == pytest.approx(summary["sigma_test"], rel=1e-12, abs=0)
    assert result["volume"] == pytest.approx(summary["volume"], rel=1e-12, abs=0)


def test_the_tested_state_is_not_the_last_validation_state(runs, tmp_path):
    # the state 3 steps earlier (a copy of the run trained to step 4) gives another σ_test: the
    # check above can tell the saved state from the tested one
    earlier = tmp_path / "earlier"
    summary, _ = train(compose_train(*KINDS["finite"], *TINY[:-1], "+trainer.max_steps=4", tmp_path=tmp_path), earlier)
    final = nnflow.load_run(runs["finite"])
    result = evaluate_metric(final.split("test"), nnflow.load_run(earlier).model.metric)
    assert result["sigma"] == pytest.approx(summary["sigma_test"], rel=1e-12)
    assert result["sigma"] != pytest.approx(final.summary["sigma_test"], rel=1e-6)


def test_a_run_stopped_by_its_clock_reproduces(tmp_path):
    # trainer.max_time with no validation before the end: the state at the clock's stop is tested and saved
    overrides = [*KINDS["finite"], *TINY[:-1], "trainer.max_epochs=100000", "trainer.max_time=00:00:00:01",
                 "trainer.check_val_every_n_epoch=100000"]
    summary, _ = train(compose_train(*overrides, tmp_path=tmp_path), tmp_path / "run")
    assert summary["steps"] > 4 and summary["checkpoint_step"] == summary["steps"]
    loaded = nnflow.load_run(tmp_path / "run")
    result = evaluate_metric(loaded.split("test"), loaded.model.metric)
    assert result["sigma"] == pytest.approx(summary["sigma_test"], rel=1e-12, abs=0)


def _copy(run, to, *without):
    shutil.copytree(run, to, ignore=shutil.ignore_patterns(*without))
    return to


def test_missing_or_mismatched_files_are_named(runs, tmp_path):
    run = runs["finite"]
    with pytest.raises(FileNotFoundError, match="run directory .*nowhere not found"):
        nnflow.load_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"last\.ckpt not found.*resume the run"):
        nnflow.load_run(_copy(run, tmp_path / "a", "checkpoints"))
    with pytest.raises(FileNotFoundError, match=r"config\.yaml not found"):
        nnflow.load_run(_copy(run, tmp_path / "b", "config.yaml"))
    edited = _copy(run, tmp_path / "c")
    config = (edited / "config.yaml").read_text()
    assert "  width: 8\n" in config
    (edited / "config.yaml").write_text(config.replace("  width: 8\n", "  width: 9\n"))
    with pytest.raises(ValueError, match=r"last\.ckpt does not match the model of .*config\.yaml"):
        nnflow.load_run(edited)
    broken = _copy(run, tmp_path / "d")
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"last\.ckpt cannot be read .*re-run or resume the training"):
        nnflow.load_run(broken)


def test_a_run_that_saved_no_tested_state_says_so(tmp_path):
    run = tmp_path / "run"
    summary, _ = train(compose_train(*KINDS["finite"], *TINY, "+trainer.fast_dev_run=true", tmp_path=tmp_path), run)
    assert summary["checkpoint"] is None
    with pytest.raises(ValueError, match="names no checkpoint"):
        nnflow.load_run(run)
