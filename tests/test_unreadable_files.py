"""Unreadable point caches and checkpoints: named in the error, never torch's internal message alone."""

import logging

import pytest

from nnflow.geometry import fermat_cubic, sample_points
from nnflow.geometry.pointset import PointSet, UnreadablePointSetError
from nnflow.training.data import cache_path, load_or_sample
from nnflow.training.run import train

from .helpers import FAST_TRAIN, compose_train


def truncate(path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_truncated_pointset_names_the_file(tmp_path):
    path = sample_points(fermat_cubic(), 30, seed=0).save(tmp_path / "points.pt")
    truncate(path)
    with pytest.raises(UnreadablePointSetError, match="points.pt is not a readable PointSet") as info:
        PointSet.load(path)
    assert info.value.__cause__ is not None  # torch's own error is kept as the cause


def test_foreign_file_is_no_pointset(tmp_path):
    import torch

    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(UnreadablePointSetError, match="other.pt holds no PointSet"):
        PointSet.load(path)


def test_truncated_cache_is_resampled_and_kept_aside(tmp_path, caplog):
    surface = fermat_cubic()
    good = load_or_sample(tmp_path, surface, "train", 30, seed=0)
    path = cache_path(tmp_path, surface, "train", 30, 0)
    truncate(path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="nnflow"):
        again = load_or_sample(tmp_path, surface, "train", 30, seed=0)
    assert str(path) in caplog.text and "re-sampling" in caplog.text
    assert (again.z == good.z).all()  # the same seed gives the same points
    kept = path.with_name(path.name + ".unreadable")
    assert kept.read_bytes() == damaged  # nothing deleted
    assert PointSet.load(path).z.shape == good.z.shape  # the cache is whole again


def test_corrupt_checkpoint_stops_before_training_with_its_name(tmp_path):
    run = tmp_path / "run"
    base = ["experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", "trainer.max_epochs=1"]
    train(compose_train(*base, tmp_path=tmp_path), run)
    last = run / "checkpoints" / "last.ckpt"
    truncate(last, keep=1000)
    damaged = last.read_bytes()
    with pytest.raises(ValueError, match=r"checkpoint .*last\.ckpt cannot be read .*resume=never"):
        train(compose_train(*base, "trainer.max_epochs=2", tmp_path=tmp_path), run)
    assert last.read_bytes() == damaged  # left as it was
    again, _ = train(compose_train(*base, "trainer.max_epochs=1", "resume=never", tmp_path=tmp_path), run / "fresh")
    assert again["status"] == "completed"
