"""PointDataModule: train/val/test PointSets sampled once and cached on disk.

Files are keyed by manifold (name and parameters), split, size and seed, so runs with the
same settings share points and a sweep samples each set once. Batches are index slices of the
cached tensors (no per-sample collation): a batch is a dict of tensors z, jac, weights, omega2.
Under data parallelism the training set is sharded across ranks (DistributedSampler; the
batch size is per rank) and every rank validates on the whole validation set, so σ_val is
the global one on every rank.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
)

from nnflow.geometry import Hypersurface, PointSet, sample_points

log = logging.getLogger("nnflow")

# Seeds of the three splits are offset so that they never share lines.
SPLIT_SEED_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_003}
BATCH_KEYS = ("z", "jac", "weights", "omega2")


class EpochBatchSampler(BatchSampler):
    """BatchSampler that forwards set_epoch (Lightning calls it) to a DistributedSampler."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


class PointBatches(Dataset):
    """Indexable by a list of indices → a batch dict (use with a BatchSampler, batch_size=None)."""

    def __init__(self, points: PointSet):
        self.points = points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(index)
        batch = {k: getattr(self.points, k)[index] for k in BATCH_KEYS}
        batch["index"] = index  # positions in the split (training looks up fixed per-point terms)
        return batch


def cache_path(cache_dir: str | Path, surface: Hypersurface, split: str, n: int, seed: int) -> Path:
    """<cache_dir>/<manifold>-<hash of its polynomial>/<split>_<n>_seed<seed>.pt"""
    key = hashlib.sha1(json.dumps(surface.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{surface.name}-{key}" / f"{split}_{n}_seed{seed}.pt"


def load_or_sample(cache_dir, surface: Hypersurface, split: str, n: int, seed: int) -> PointSet:
    """The cached PointSet if present, else sample it and write the cache."""
    path = cache_path(cache_dir, surface, split, n, seed)
    if path.exists():
        return PointSet.load(path)
    log.info("sampling %d %s points on %s (seed %d) → %s", n, split, surface.name, seed, path)
    points = sample_points(surface, n, seed=seed + SPLIT_SEED_OFFSET[split])
    points.save(path)
    return points


class PointDataModule(L.LightningDataModule):
    """Train/val/test points on one hypersurface.

    Args:
        surface: the hypersurface.
        n_train, n_val, n_test: split sizes (> 0).
        batch_size: training batch size (≥ n_train means full batch).
        seed: base seed of the three splits.
        cache_dir: where PointSets are cached.
        dtype: torch.float64 or torch.float32 (complex128 / complex64 points).
        drop_last: drop each training epoch's last, smaller batch (every step has the same
            shape, so a compiled step is compiled once).
    """

    def __init__(
        self,
        surface: Hypersurface,
        n_train: int = 100_000,
        n_val: int = 10_000,
        n_test: int = 100_000,
        batch_size: int = 4096,
        seed: int = 0,
        cache_dir: str | Path = "data",
        dtype: torch.dtype = torch.float64,
        eval_batch_size: int = 8192,
        drop_last: bool = False,
    ):
        super().__init__()
        for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test),
                            ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"data.{name} must be a positive integer; got {value!r}")
        self.surface = surface
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.batch_size = min(batch_size, n_train)
        self.eval_batch_size = eval_batch_size
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.cache_dir = Path(cache_dir)
        self.complex_dtype = {torch.float64: torch.complex128, torch.float32: torch.complex64}[dtype]
        self.points: dict[str, PointSet] = {}

    def prepare_data(self) -> None:
        for split in ("train", "val"):
            load_or_sample(self.cache_dir, self.surface, split, self.sizes[split], self.seed)

    def split(self, name: str) -> PointSet:
        """A split's PointSet (sampled or loaded on first use), in the module's precision."""
        if name not in self.points:
            pts = load_or_sample(self.cache_dir, self.surface, name, self.sizes[name], self.seed)
            self.points[name] = pts.to(dtype=self.complex_dtype)
        return self.points[name]

    def setup(self, stage: str | None = None) -> None:
        self.split("train")
        self.split("val")

    def _loader(self, points: PointSet, batch_size: int, shuffle: bool, drop_last: bool = False) -> DataLoader:
        if shuffle and torch.distributed.is_available() and torch.distributed.is_initialized():
            # data parallel: each rank draws its own shard (batch_size per rank)
            sampler = DistributedSampler(range(len(points)), shuffle=True, seed=self.seed)
        elif shuffle:
            sampler = RandomSampler(range(len(points)))
        else:
            sampler = SequentialSampler(range(len(points)))
        batches = EpochBatchSampler(sampler, batch_size, drop_last=drop_last)
        return DataLoader(PointBatches(points), sampler=batches, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.split("train"), self.batch_size, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split("val"), self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split("test"), self.eval_batch_size, shuffle=False)
