"""Cost of the singularity check before sampling, against sampling 10^5 points.

    python bench/bench_singularity.py [--points 100000] [--repeats 3] [--out FILE]

Times ``check_smooth`` on fresh surfaces (the result is memoized on a Hypersurface, so each
repeat builds a new one): the formula route (Fermat, Dwork ψ = 0.5), the homotopy route
(random quintics: 256 paths; a random quartic K3: 27 paths) and a singular one (the
four-monomial Fermat cone), then ``sample_points(fermat_quintic(), 10^5,
check_smooth=False)``. Prints a table with each check's time as a fraction of that sampling
time and writes JSON (default bench/results/singularity.json). Timings on a CPU shared with
other jobs are noisy; the JSON records the load average.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import torch

from nnflow.geometry import (
    Hypersurface,
    dwork_quintic,
    fermat_quintic,
    random_quintic,
    sample_points,
)
from nnflow.geometry.singularity import SingularManifoldError, check_smooth
from nnflow.provenance import provenance


def random_dense(n_coords: int, seed: int) -> Hypersurface:
    """All degree-n_coords monomials in P^{n_coords−1}, seeded complex Gaussian coefficients."""
    rows = []
    for combo in itertools.combinations_with_replacement(range(n_coords), n_coords):
        row = [0] * n_coords
        for i in combo:
            row[i] += 1
        rows.append(row)
    g = torch.Generator().manual_seed(seed)
    c = torch.complex(torch.randn(len(rows), generator=g), torch.randn(len(rows), generator=g))
    return Hypersurface(rows, c, name=f"random_{n_coords}")


def cone() -> Hypersurface:
    return Hypersurface(torch.eye(5, dtype=torch.long)[:4] * 5, [1.0] * 4, name="fermat_minus_one")


CASES = {
    "fermat_quintic (formula)": lambda seed: fermat_quintic(),
    "dwork_quintic psi=0.5 (formula)": lambda seed: dwork_quintic(0.5),
    "random_quintic (homotopy, 256 paths)": lambda seed: random_quintic(seed),
    "random_quartic (homotopy, 27 paths)": lambda seed: random_dense(4, seed),
    "fermat_minus_one cone (homotopy, singular)": lambda seed: cone(),
}


def time_check(make, repeats: int) -> list[float]:
    times = []
    for seed in range(repeats):
        surface = make(seed)
        start = time.perf_counter()
        try:
            check_smooth(surface)
        except SingularManifoldError:
            pass
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "singularity.json"))
    args = parser.parse_args()

    sample_points(fermat_quintic(), 1000, check_smooth=False)  # warm-up
    start = time.perf_counter()
    sample_points(fermat_quintic(), args.points, check_smooth=False)
    t_sample = time.perf_counter() - start

    rows = {}
    print(f"sampling {args.points} points on fermat_quintic: {t_sample:.3f} s")
    print(f"{'check':45s} {'median s':>9s} {'max s':>8s} {'/ sampling':>10s}")
    for name, make in CASES.items():
        times = sorted(time_check(make, args.repeats))
        median = times[len(times) // 2]
        rows[name] = {"seconds": times, "median_seconds": median, "ratio_to_sampling": median / t_sample}
        print(f"{name:45s} {median:9.4f} {times[-1]:8.4f} {median / t_sample:10.3f}")

    result = {
        "bench": "singularity",
        "points": args.points,
        "seconds_sampling": t_sample,
        "checks": rows,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "targets": {"random_quintic_check_seconds": "<= 1 (2-core CPU)"},
        **provenance("cpu"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
