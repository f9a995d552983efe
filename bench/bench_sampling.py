"""Sampling and measure throughput on the Fermat quintic, against a naive per-line sampler.

The baseline is the straightforward method, measured in the same run: for each random line,
expand p(a + t b) with numpy polynomial products, solve it with ``np.roots``, then compute
each point's chart, Jacobian, FS metric and weight in numpy, one point at a time.

    python bench/bench_sampling.py [--points 100000] [--naive-points 3000] [--out FILE]

Prints a table and writes JSON (default bench/results/sampling.json).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from nnflow.geometry import fermat_quintic, sample_points
from nnflow.geometry.curvature import curvature
from nnflow.geometry.fubini_study import fs_potential
from nnflow.geometry.measures import fs_det, sigma_measure, volume
from nnflow.provenance import device_info, provenance


def naive_sample(exponents: np.ndarray, coeffs: np.ndarray, n_points: int, seed: int):
    """Per-line np.roots and per-point numpy weights; returns (points, weights)."""
    rng = np.random.default_rng(seed)
    n_coords = exponents.shape[1]
    points, weights = [], []
    while len(points) < n_points:
        a = (rng.normal(size=n_coords) + 1j * rng.normal(size=n_coords)) / math.sqrt(2)
        b = (rng.normal(size=n_coords) + 1j * rng.normal(size=n_coords)) / math.sqrt(2)
        q = np.poly1d([0j])
        for e, c in zip(exponents, coeffs):
            term = np.poly1d([c])
            for i, k in enumerate(e):
                for _ in range(k):
                    term = term * np.poly1d([b[i], a[i]])
            q = q + term
        for t in np.roots(q.coeffs):
            z = a + t * b
            i = int(np.argmax(np.abs(z)))
            z = z / z[i]
            grad = np.array(
                [
                    sum(
                        c * e[k] * np.prod(z ** (e - np.eye(n_coords, dtype=int)[k]))
                        for e, c in zip(exponents, coeffs)
                        if e[k] > 0
                    )
                    for k in range(n_coords)
                ]
            )
            order = np.argsort(-np.abs(grad))
            j = int(order[0] if order[0] != i else order[1])
            loc = [k for k in range(n_coords) if k not in (i, j)]
            J = np.zeros((len(loc), n_coords), dtype=complex)
            for a_, k in enumerate(loc):
                J[a_, k] = 1
                J[a_, j] = -grad[k] / grad[j]
            s = np.vdot(z, z).real
            g = (np.eye(n_coords) / s - np.outer(z.conj(), z) / s**2) / math.pi
            det = np.linalg.det(J @ g @ J.conj().T).real
            points.append(z)
            weights.append(1 / abs(grad[j]) ** 2 / det)
    return np.array(points[:n_points]), np.array(weights[:n_points])


def timed(fn, repeat: int = 3):
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--naive-points", type=int, default=3_000)
    parser.add_argument("--curvature-points", type=int, default=10_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sampling.json"))
    args = parser.parse_args()

    surface = fermat_quintic()
    sample_points(surface, 1000, seed=0, device=args.device)  # warm-up
    t_naive, (_, w_naive) = timed(
        lambda: naive_sample(surface.exponents.numpy(), surface.coefficients.numpy(), args.naive_points, 0), repeat=1
    )
    t_ours, points = timed(lambda: sample_points(surface, args.points, seed=0, device=args.device))
    t_measure, _ = timed(lambda: (sigma_measure(points, fs_det(points)), volume(points, fs_det(points))))
    sub = points.subset(slice(0, args.curvature_points))
    t_curv, _ = timed(lambda: curvature(sub, fs_potential), repeat=1)

    naive_rate = args.naive_points / t_naive
    ours_rate = args.points / t_ours
    # Same estimator on both: the naive weights are a check that the baseline is doing the work.
    w_ours = points.weights[: args.naive_points].mean().item()
    result = {
        "bench": "sampling",
        "manifold": surface.name,
        **device_info(args.device),  # device, device_name, threads
        "provenance": provenance(args.device),
        "points": args.points,
        "seconds_sampling": t_ours,
        "points_per_s": ours_rate,
        "naive_points": args.naive_points,
        "naive_seconds": t_naive,
        "naive_points_per_s": naive_rate,
        "speedup_vs_naive": ours_rate / naive_rate,
        "naive_mean_weight": float(w_naive.mean()),
        "ours_mean_weight": w_ours,
        "seconds_sigma_volume": t_measure,
        "sigma_volume_points_per_s": args.points / t_measure,
        "curvature_points": len(sub),
        "seconds_curvature": t_curv,
        "curvature_points_per_s": len(sub) / t_curv,
        "targets": {"speedup_vs_naive": ">= 20", "seconds_sampling_1e5": "< 2 (2-core CPU)"},
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'quantity':32s} {'value':>14s}")
    for key in (
        "points_per_s",
        "naive_points_per_s",
        "speedup_vs_naive",
        "seconds_sampling",
        "sigma_volume_points_per_s",
        "curvature_points_per_s",
    ):
        print(f"{key:32s} {result[key]:14.3f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
