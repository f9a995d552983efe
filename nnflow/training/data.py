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
    Sampler,
    SequentialSampler,
)

from nnflow.geometry import Hypersurface, PointSet
from nnflow.geometry.cicy import CompleteIntersection
from nnflow.geometry.cicy_points import CICYPointSet
from nnflow.geometry.cicy_sampling import sample_manifold
from nnflow.geometry.pointset import UnreadablePointSetError
from nnflow.validation import check_int

log = logging.getLogger("nnflow")

# Seeds of the three splits are offset so that they never share lines.
SPLIT_SEED_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_003}
BATCH_KEYS = ("z", "jac", "weights", "omega2")


class EpochBatchSampler(BatchSampler):
    """BatchSampler that forwards set_epoch (Lightning calls it) to a DistributedSampler."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


class ShuffledBatches(Sampler):
    """Shuffled index batches as tensors: one ``randperm`` per epoch, sliced into batches.

    The default RandomSampler + BatchSampler build a Python list of ints per batch (about a
    millisecond of host time at batch 4096, as much as a compiled GPU step). The permutation of
    epoch e is drawn from seed + e, so a resumed run sees the batches it would have seen.
    """

    def __init__(self, n: int, batch_size: int, drop_last: bool = False, seed: int = 0):
        self.n, self.batch_size, self.drop_last, self.seed = n, batch_size, drop_last, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        if self.drop_last:
            perm = perm[: len(self) * self.batch_size]
        yield from perm.split(self.batch_size)


class PointBatches(Dataset):
    """Indexable by a list of indices → a batch dict (use with a BatchSampler, batch_size=None).

    ``keys``: the PointSet fields a batch carries besides "index" (none: a model that caches its
    per-point terms on the device needs only the indices, and nothing else crosses to it).
    """

    def __init__(self, points: PointSet, keys: tuple[str, ...] = BATCH_KEYS):
        self.points = points
        self.keys = tuple(keys)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(index)
        batch = {k: getattr(self.points, k)[index] for k in self.keys}
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
        try:
            return point_class(surface).load(path)
        except UnreadablePointSetError as err:
            # a cache is re-creatable: keep the bad file beside it (nothing is deleted) and re-sample
            kept = path.with_name(path.name + ".unreadable")
            path.replace(kept)
            log.warning("%s; kept it as %s and re-sampling the %s split", err, kept, split)
    log.info("sampling %d %s points on %s (seed %d) → %s", n, split, surface.name, seed, path)
    points = sample_manifold(surface, n, seed=seed + SPLIT_SEED_OFFSET[split])
    points.save(path)
    return points


def point_class(surface) -> type[PointSet]:
    """PointSet for a hypersurface, CICYPointSet for a complete intersection."""
    return CICYPointSet if isinstance(surface, CompleteIntersection) else PointSet


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
        train_index_only: training batches carry only "index" (for a module that caches the
            training points' terms on its device: MetricModule with ``compile``).
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
        train_index_only: bool = False,
    ):
        super().__init__()
        sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "batch_size": batch_size,
                 "eval_batch_size": eval_batch_size}
        check_int({"data": sizes}, *(f"data.{name}" for name in sizes))  # named as in conf/train.yaml
        self.surface = surface
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.batch_size = min(batch_size, n_train)
        self.eval_batch_size = eval_batch_size
        self.drop_last = bool(drop_last)
        self.train_index_only = bool(train_index_only)
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

    def _loader(
        self, points: PointSet, batch_size: int, shuffle: bool, drop_last: bool = False, keys=BATCH_KEYS
    ) -> DataLoader:
        if shuffle and torch.distributed.is_available() and torch.distributed.is_initialized():
            # data parallel: each rank draws its own shard (batch_size per rank)
            sampler = DistributedSampler(range(len(points)), shuffle=True, seed=self.seed)
        elif shuffle:
            batches = ShuffledBatches(len(points), batch_size, drop_last=drop_last, seed=self.seed)
            return DataLoader(PointBatches(points, keys), sampler=batches, batch_size=None)
        else:
            sampler = SequentialSampler(range(len(points)))
        batches = EpochBatchSampler(sampler, batch_size, drop_last=drop_last)
        return DataLoader(PointBatches(points, keys), sampler=batches, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        keys = () if self.train_index_only else BATCH_KEYS
        return self._loader(self.split("train"), self.batch_size, shuffle=True, drop_last=self.drop_last, keys=keys)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split("val"), self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split("test"), self.eval_batch_size, shuffle=False)
