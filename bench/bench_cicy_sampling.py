"""CICY sampling throughput (bicubic, tetraquadric, X_{3,3}) against a per-point loop, same run.

The baseline is the straightforward way to use the same mathematics: draw one plane, solve it
alone (numpy: ``np.roots`` for one equation; for two, the resultant of that one plane through
the same solver called with a batch of one), then chart, Jacobian and weight one point at a time
(CICYPointSet.from_points on a single point). The vectorized sampler (nnflow.geometry.cicy_sampling)
solves every plane of a chunk at once.

    python bench/bench_cicy_sampling.py [--points 50000] [--naive-points 1000] [--out FILE]

Prints a table and writes JSON (default bench/results/cicy_sampling.json).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from nnflow.geometry.cicy import CICY_PRESETS
from nnflow.geometry.cicy_points import CICYPointSet
from nnflow.geometry.cicy_sampling import codimension_choices, random_planes, sample_cicy, solve_planes
from nnflow.provenance import device_info, provenance


def naive_sample(x, n_points: int, seed: int) -> torch.Tensor:
    """One plane and one point at a time; returns the weights (n_points,)."""
    types, probs, counts = codimension_choices(x)
    g = torch.Generator().manual_seed(seed)
    weights = []
    while len(weights) < n_points:
        kind = int(torch.multinomial(probs, 1, generator=g))
        c, count = tuple(types[kind].tolist()), int(counts[kind])
        base, directions = random_planes(x, c, 1, g)
        if x.n_equations == 1:
            nodes = np.exp(2j * np.pi * np.arange(count + 1) / (count + 1))
            values = np.array([x(base[0] + complex(t) * directions[0, 0]).item() for t in nodes])
            coeffs = np.fft.fft(values) / (count + 1)
            u = torch.tensor(np.roots(coeffs[::-1]), dtype=torch.complex128)[None, :, None]
        else:
            u = solve_planes(x, base, directions, count)
        for point in (base[:, None, :] + torch.einsum("lsk,lkj->lsj", u, directions))[0]:
            weights.append(CICYPointSet.from_points(x, point[None]).weights[0])
    return torch.stack(weights[:n_points])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--naive-points", type=int, default=1_000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cicy_sampling.json"))
    args = parser.parse_args()

    rows = []
    for name, make in CICY_PRESETS.items():
        x = make()
        sample_cicy(x, 200, seed=0)  # warm-up
        t = time.perf_counter()
        w_naive = naive_sample(x, args.naive_points, 0)
        t_naive = time.perf_counter() - t
        t = time.perf_counter()
        points = sample_cicy(x, args.points, seed=0)
        t_ours = time.perf_counter() - t
        rows.append({
            "manifold": name,
            "points": args.points,
            "seconds": t_ours,
            "points_per_s": args.points / t_ours,
            "naive_points": args.naive_points,
            "naive_seconds": t_naive,
            "naive_points_per_s": args.naive_points / t_naive,
            "speedup_vs_naive": (args.points / t_ours) / (args.naive_points / t_naive),
            # the same estimator: both mean weights estimate n!·∫|Ω|²/Vol_FS (a check that both do the work)
            "naive_mean_weight": w_naive.mean().item(),
            "ours_mean_weight": points.weights.mean().item(),
            "max_residual": points.meta["max_residual"],
        })
    result = {
        "bench": "cicy_sampling",
        **device_info("cpu"),
        "provenance": provenance("cpu"),
        "rows": rows,
        "targets": {"speedup_vs_naive": ">= 20"},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'manifold':14s} {'pts/s':>10s} {'naive pts/s':>12s} {'speedup':>8s} {'mean w':>10s} {'naive w':>10s}")
    for r in rows:
        print(f"{r['manifold']:14s} {r['points_per_s']:10.0f} {r['naive_points_per_s']:12.0f} "
              f"{r['speedup_vs_naive']:8.1f} {r['ours_mean_weight']:10.4g} {r['naive_mean_weight']:10.4g}")
    print(f"wrote {out}")
    if not all(math.isfinite(r["speedup_vs_naive"]) for r in rows):
        raise SystemExit("non-finite timing")


if __name__ == "__main__":
    main()
