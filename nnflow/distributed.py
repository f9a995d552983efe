"""Row sharding of kernel work across torch.distributed ranks (pure torch).

A kernel matrix over N points is split into contiguous row blocks, one per rank; each rank
computes only its rows, and results that every rank needs are all-gathered. With one process
(or no process group) every function is the identity on the full range.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialized process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def row_range(n: int, rank: int | None = None, size: int | None = None) -> slice:
    """The contiguous block of rows [start, stop) of ``n`` that ``rank`` owns."""
    if rank is None or size is None:
        rank, size = world()
    per = -(-n // size)
    return slice(min(n, rank * per), min(n, (rank + 1) * per))


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """Concatenate every rank's row block (dim 0) into the full (n, ...) tensor on all ranks."""
    rank, size = world()
    if size == 1:
        return local
    per = -(-n // size)
    padded = local.new_zeros((per, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat(parts)[:n]


def sharded_kernel(kernel_fn, n1: int, n2: int | None = None, **kwargs) -> torch.Tensor:
    """A full kernel whose rows are computed shard by shard across ranks.

    Args:
        kernel_fn: rows → kernel block, called as kernel_fn(rows=slice, **kwargs) and returning
            the (rows, n2, ...) block of the kernel.
        n1: number of rows.
    Returns:
        the (n1, n2, ...) kernel on every rank.
    """
    rows = row_range(n1)
    return gather_rows(kernel_fn(rows=rows, **kwargs), n1)
