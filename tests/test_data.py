import pytest
import torch

from nnflow.training.data import ShuffledBatches


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_batches_cover_each_point_once_per_epoch(drop_last):
    sampler = ShuffledBatches(103, 10, drop_last=drop_last, seed=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == (10 if drop_last else 11)
    assert all(b.dtype == torch.long for b in batches)
    seen = torch.cat(batches)
    assert len(seen) == len(set(seen.tolist()))  # no point twice
    assert len(seen) == (100 if drop_last else 103) and set(seen.tolist()) <= set(range(103))
    if drop_last:
        assert all(len(b) == 10 for b in batches)


def test_shuffled_batches_depend_on_epoch_and_seed_only():
    a, b = ShuffledBatches(50, 8, seed=1), ShuffledBatches(50, 8, seed=1)
    first = torch.cat(list(a))
    a.set_epoch(1)
    second = torch.cat(list(a))
    assert not torch.equal(first, second)  # a new order each epoch
    b.set_epoch(1)
    assert torch.equal(torch.cat(list(b)), second)  # a resumed run draws the same order
    assert not torch.equal(torch.cat(list(ShuffledBatches(50, 8, seed=2))), first)
