"""Donaldson's balanced metrics on the Fermat quintic: σ_k, N_k, seconds and peak memory.

For k = 1 … k_max with H block-diagonal over the phase-symmetry sectors (the route that makes
large k cheap) and k = 1 … k_max_full with a general H (the baseline). Both routes use the same
points (T integrates over ``--n-points``; σ is measured on ``--n-test`` fresh points) and must
agree at every k where both run, up to the noise of T's off-block entries; the speed ratio
unreduced/reduced is printed for those k. Each case runs in a fresh process, so its peak RSS
(``peak_mb``, including torch itself and the points) is its own.

    python bench/bench_donaldson.py            # k ≤ 8 (reduced), k ≤ 5 (unreduced), 2·10^5 points
    python bench/bench_donaldson.py --quick    # k ≤ 5 and k ≤ 3 on 3·10^4 points (< 1 min)

Writes bench/results/donaldson.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time
import warnings
from pathlib import Path

TEST_SEED = 2_000_003  # nnflow-train's and nnflow-donaldson's test split for seed 0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_case(args: tuple) -> dict:
    """One (symmetry, k) case in this (fresh) process."""
    symmetry, k, n_points, n_test, threads = args
    import torch

    from nnflow.algebraic import balanced_metric, section_basis
    from nnflow.geometry import fermat_quintic, sample_points

    torch.set_num_threads(threads)
    surface = fermat_quintic()
    points = sample_points(surface, n_points, seed=0)
    test = sample_points(surface, n_test, seed=TEST_SEED)
    base = peak_mb()
    start = time.perf_counter()
    basis = section_basis(surface, k, symmetry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metric = balanced_metric(basis, points)
    seconds = time.perf_counter() - start
    t = time.perf_counter()
    m = metric.measure(test)
    return {
        "symmetry": symmetry, "k": k, "N_k": len(basis), "n_parameters": basis.n_parameters,
        "n_blocks": len(basis.block_sizes), "max_block": max(basis.block_sizes),
        "sigma": m["sigma"], "sigma_err": m["sigma_err"], "volume": m["volume"],
        "iterations": metric.info["iterations"], "converged": metric.info["converged"],
        "seconds": seconds, "seconds_per_iteration": seconds / metric.info["iterations"],
        "seconds_measure": time.perf_counter() - t, "peak_mb": peak_mb(), "peak_mb_before": base,
        "warnings": [str(w.message) for w in caught],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="k ≤ 5 / ≤ 3 on 3·10^4 points")
    parser.add_argument("--k-max", type=int, default=None, help="largest k, reduced route (default 8)")
    parser.add_argument("--k-max-full", type=int, default=None, help="largest k, unreduced route (default 5)")
    parser.add_argument("--n-points", type=int, default=None, help="points T integrates over (default 2·10^5)")
    parser.add_argument("--n-test", type=int, default=None, help="points σ is measured on (default 10^5)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "donaldson.json"))
    args = parser.parse_args()
    quick = args.quick
    k_max = args.k_max or (5 if quick else 8)
    k_max_full = args.k_max_full if args.k_max_full is not None else (3 if quick else 5)
    n_points = args.n_points or (30_000 if quick else 200_000)
    n_test = args.n_test or (10_000 if quick else 100_000)

    cases = [("phases", k) for k in range(1, k_max + 1)] + [("none", k) for k in range(1, k_max_full + 1)]
    results = []
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:  # a fresh process per case
        for symmetry, k in cases:
            r = pool.apply(run_case, ((symmetry, k, n_points, n_test, args.threads),))
            results.append(r)
            print(
                f"{symmetry:>6} k={k} N_k={r['N_k']:4d} params={r['n_parameters']:6d}  "
                f"σ = {r['sigma']:.4f} ± {r['sigma_err']:.4f}  {r['iterations']:3d} it  "
                f"{r['seconds']:7.1f} s  peak {r['peak_mb']:.0f} MB", flush=True,
            )
    reduced = {r["k"]: r for r in results if r["symmetry"] == "phases"}
    comparison = []
    for r in results:
        if r["symmetry"] == "none" and r["k"] in reduced:
            red = reduced[r["k"]]
            comparison.append({
                "k": r["k"], "speedup": r["seconds"] / red["seconds"],
                "sigma_unreduced": r["sigma"], "sigma_reduced": red["sigma"],
            })
            print(f"k={r['k']}: unreduced/reduced time = {r['seconds'] / red['seconds']:.1f}×, "
                  f"σ {r['sigma']:.4f} vs {red['sigma']:.4f}")
    from nnflow.provenance import provenance

    out = {
        "benchmark": "donaldson", "manifold": "fermat_quintic", "quick": quick, "n_points": n_points,
        "n_test": n_test, "threads": args.threads, "cases": results, "baseline_comparison": comparison,
        "seconds_total": time.perf_counter() - start, "machine": platform.processor() or platform.machine(),
        "provenance": provenance("cpu"),
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
