"""Memory estimates from a config, checked against the machine before any work starts.

Why: a sampling, kernel or dense flow far larger than memory otherwise fails late, inside an
allocation (or swaps the machine to a halt), after minutes of sampling. Each app first adds up
what its run will hold at once and stops with ``InfeasibleError`` (a ValueError) giving the
estimate in GiB, the memory available and the option that lowers it.

Estimates (bytes; float64 reals, complex128 points; N+1 = ``n_coords``, n = N − 1 the dimension,
m = n² real metric components, ``hermitian_to_real``):

- a PointSet: B·(16(N+1)(1 + n) + 32): z (B, N+1) and jac (B, n, N+1) complex128, weights,
  |Ω|², patch and elim (B,) of 8 bytes each (:func:`pointset_bytes`, exact);
- sampling B points: 3 × the PointSet (``SAMPLING_FACTOR``): the chunks, whose tensors are
  partly views of larger per-chunk buffers, and their concatenation. Measured: the peak resident
  memory grew by 2.7 × (quintic) and 3.1 × (cubic) the PointSet while sampling 4·10^5 points;
- a kernel between B points with c₁ and c₂ components per point (1 for the potential, m for a
  metric index): (B c₁)(B c₂)·8 per copy (:func:`kernel_bytes`, exact for the stored tensor);
- a frozen flow on B training points: the dense Θ(train, train), (B m)²·8, when stored, plus the
  blockwise workspace 2·(b m)²·8 per block of b points (one kernel block and its permuted copy);
  matrix-free it is the workspace alone. Measured: 240 MiB estimated, 270 MiB peak growth for a
  dense flow on 1200 K3 points (b = 512);
- training: the three PointSets the datamodule holds, sampling the largest one, and the per-point
  route cache (the reference metric, n²·16 bytes a point).

They are lower bounds on the peak (the library's own temporaries, Python and torch come on top);
the check is for sizes that cannot work, not a tight budget.

Available memory: ``NNFLOW_MAX_MEMORY_GB`` (environment) or the caller's ``max_memory_gb`` when
set, else free device memory on CUDA (``torch.cuda.mem_get_info``), else MemAvailable from
/proc/meminfo (psutil's ``available`` where /proc is absent); with none of these the check passes.
Pure torch and the standard library: no Lightning, Hydra or omegaconf.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

GIB = 2**30
SAMPLING_FACTOR = 3  # sample_points' chunks (views of larger buffers) and their concatenation: measured 2.7–3.1×
ENV_LIMIT = "NNFLOW_MAX_MEMORY_GB"


class InfeasibleError(ValueError):
    """The run's memory estimate exceeds the memory available (message: estimate, memory, option)."""


@dataclass(frozen=True)
class Estimate:
    """One part of a run's memory: what it is, its bytes and the option that lowers it."""

    what: str
    bytes: int
    remedy: str


def pointset_bytes(n_points: int, n_coords: int) -> int:
    """Bytes of a PointSet of ``n_points`` points in P^N (N+1 = n_coords): exact, module doc."""
    n = n_coords - 2
    return int(n_points) * (16 * n_coords * (1 + n) + 32)


def kernel_bytes(n_points: int, components: tuple[int, int], n_points2: int | None = None, itemsize: int = 8) -> int:
    """Bytes of one kernel tensor (B₁ c₁, B₂ c₂) of ``itemsize``-byte reals (B₂ = B₁ by default)."""
    n2 = n_points if n_points2 is None else n_points2
    return int(n_points) * components[0] * int(n2) * components[1] * itemsize


def kernel_components(orders: tuple[int, int], dim: int) -> tuple[int, int]:
    """Components per point of a kernel of derivative orders (0: the potential, 1; 2: the metric, n²)."""
    return tuple(1 if order == 0 else dim * dim for order in orders)


def sampling(n_points: int, n_coords: int, key: str = "n_points") -> Estimate:
    """Sampling ``n_points`` points: SAMPLING_FACTOR × the PointSet."""
    return Estimate(
        f"sampling {n_points} points ({key})",
        SAMPLING_FACTOR * pointset_bytes(n_points, n_coords),
        f"use fewer points ({key})",
    )


def dense_kernels(n_points: int, components: tuple[int, int], copies: int = 1, key: str = "n_points") -> Estimate:
    """``copies`` kernels between ``n_points`` points, stored dense (float64)."""
    return Estimate(
        f"{copies} dense kernel(s) of shape ({n_points}·{components[0]}, {n_points}·{components[1]}) ({key})",
        copies * kernel_bytes(n_points, components),
        f"use fewer points ({key}); chunk_size bounds the temporaries, not the stored kernels",
    )


def frozen_flow(
    n_train: int,
    dim: int,
    dense: bool,
    block_size: int,
    rows: slice | None = None,
    key: str = "data.n_train",
    low_rank: int | None = None,
) -> Estimate:
    """The frozen flow's kernel on ``n_train`` points of an n-fold (m = n² components).

    ``rows``: the training points whose rows of Θ this process stores (under torch.distributed,
    ``nnflow.distributed.row_range``); default all. ``low_rank``: p landmarks of the Nyström
    route (flows/frozen.py): U (n_train·m × p·m), W = Θ(L, L) and its eigenvectors.
    """
    m = dim * dim
    block = min(int(block_size), int(n_train))
    workspace = 2 * kernel_bytes(block, (m, m))
    if low_rank is not None:
        p = min(int(low_rank), int(n_train))
        return Estimate(
            f"the Nyström frozen flow's factor U ({n_train}·{m} × {p}·{m}, model.low_rank) and W = Θ(L, L)",
            8 * (n_train * m * p * m + 3 * (p * m) ** 2) + kernel_bytes(block, (m, m), p) + workspace,
            "use fewer landmarks (model.low_rank) or fewer training points",
        )
    n_rows = n_train if rows is None else len(range(n_train)[rows])
    if dense:
        return Estimate(
            f"the frozen flow's dense Θ(train, train), {n_rows}·{m} rows of {n_train}·{m} ({key})",
            kernel_bytes(n_rows, (m, m), n_train) + workspace,
            "use the matrix-free flow (model.dense=false, memory set by model.block_size) or fewer training "
            f"points ({key})",
        )
    return Estimate(
        f"the matrix-free frozen flow's kernel blocks of {block} points (model.block_size)",
        workspace,
        "use a smaller model.block_size",
    )


def training(n_train: int, n_val: int, n_test: int, n_coords: int) -> Estimate:
    """What a training run holds for its points: three PointSets, sampling the largest, the route cache."""
    n = n_coords - 2
    sizes = (n_train, n_val, n_test)
    held = sum(pointset_bytes(s, n_coords) for s in sizes)
    peak_sampling = (SAMPLING_FACTOR - 1) * pointset_bytes(max(sizes), n_coords)
    return Estimate(
        f"the training points ({n_train} + {n_val} + {n_test}) and their per-point cache",
        held + peak_sampling + n_train * n * n * 16,
        "use fewer points (data.n_train, data.n_val, data.n_test)",
    )


def available_bytes(device=None, max_memory_gb: float | None = None) -> tuple[int, str] | None:
    """(bytes available, where the number comes from), or None when nothing tells (module doc)."""
    limit = os.environ.get(ENV_LIMIT)
    if max_memory_gb is None and limit:
        try:
            max_memory_gb = float(limit)
        except ValueError as err:
            raise ValueError(f"environment variable {ENV_LIMIT}={limit!r} must be a number of GiB") from err
    if max_memory_gb is not None:
        if isinstance(max_memory_gb, bool) or not isinstance(max_memory_gb, (int, float)) or not max_memory_gb > 0:
            raise ValueError(f"config value max_memory_gb={max_memory_gb!r} must be a positive number (GiB) or null")
        return int(max_memory_gb * GIB), "the limit max_memory_gb"
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0]), f"free memory on {device}"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available), "psutil"


def check_feasible(*estimates: Estimate, device=None, max_memory_gb: float | None = None) -> int:
    """Raise InfeasibleError if the estimates together exceed the memory available; return their sum.

    The parts are held at once, so they add. The message gives each part in GiB, the memory
    available and where that number comes from, and each part's option (largest first).
    """
    total = sum(e.bytes for e in estimates)
    available = available_bytes(device, max_memory_gb)
    if available is None or total <= available[0]:
        return total
    parts = sorted(estimates, key=lambda e: -e.bytes)
    listed = "; ".join(f"{e.what}: {e.bytes / GIB:.3g} GiB" for e in parts)
    remedies = "; or ".join(dict.fromkeys(e.remedy for e in parts if e.bytes))
    raise InfeasibleError(
        f"this run needs about {total / GIB:.3g} GiB ({listed}), more than the {available[0] / GIB:.3g} GiB "
        f"available ({available[1]}): {remedies}"
    )
