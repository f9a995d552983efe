"""The quintic_mlp network's analytic metric-NTK (phase-invariant standardized degree-5 features,
the general (x·x', |x|², |x'|²) route) and its frozen flows: dense against the Nyström route.

Fermat quintic, the quintic_frozen_ntk architecture (depth 3, gelu, σ_w 1, σ_b 0.1, input scale
0.1), float64. Three parts, each with its baseline in the same run:

1. per pair: the metric kernel Θ_{ij̄kl̄}(x, x') by the general route (a 256 × 256 block) against
   the torch.func route (``AnalyticKernel.autodiff``: nested jacfwd of the scalar kernel);
2. assembly of the dense Θ(train, train) at n points (default 2,000): seconds and peak memory
   (ru_maxrss growth of this process), against the 2-minute target;
3. flows at n: the dense frozen NTK flow (baseline) and Nyström flows with p landmarks, the same
   steps (dt 2, the preset's): σ_test on fresh points, the relative error of the metric on
   them against the dense flow, the rank, and seconds. The kernel over train ∪ test is computed
   once and looked up by every flow (so the flows differ only in their algebra).

    python bench/bench_frozen_ntk.py [--points 2000] [--test 1000] [--landmarks 250 500 1000]
                                     [--steps 1000] [--parts per_pair assembly flows] [--out FILE]

The 10,000-point flow is a run of its own (``nnflow-train experiment=quintic_frozen_ntk_lowrank``;
its summary.json has seconds, peak_rss_gb and kernel_rank): bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

from nnflow.flows.frozen import FrozenKernelFlow, assemble_dense, fs_start, metric_kernel_from_options
from nnflow.flows.losses import class_kappa
from nnflow.geometry import sample_points
from nnflow.geometry.hypersurface import make_hypersurface
from nnflow.geometry.measures import sigma_measure
from nnflow.geometry.pointset import PointSet
from nnflow.kernels import analytic_kernel
from nnflow.models.potential import phase_options

PARTS = ("per_pair", "assembly", "flows")
ARCH = dict(network="mlp", depth=3, activation="gelu", sigma_w=1.0, sigma_b=0.1, feature_degree=5,
            feature_symmetry="phases", input_scale=0.1)


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def per_pair(kernel, surface, autodiff_points: int) -> dict:
    """Seconds per pair of the metric kernel: a 256 × 256 block against torch.func on a few pairs."""
    block = sample_points(surface, 256, seed=21)
    kernel.metric(sample_points(surface, 8, seed=22))  # warm-up (quadrature rule, feature tables)
    t = time.perf_counter()
    kernel.metric(block, sample_points(surface, 256, seed=23), chunk_size=256)
    ours = (time.perf_counter() - t) / 256**2
    p1, p2 = sample_points(surface, autodiff_points, seed=24), sample_points(surface, 2, seed=25)
    t = time.perf_counter()
    ref = kernel.autodiff(p1, p2)
    autodiff = (time.perf_counter() - t) / (2 * autodiff_points)
    err = float((kernel.metric(p1, p2) - ref).abs().max() / ref.abs().max())
    return {"seconds_per_pair": ours, "autodiff_seconds_per_pair": autodiff, "speedup": autodiff / ours,
            "max_rel_diff_vs_autodiff": err}


class LookupKernel:
    """Θ between any points of a fixed set, looked up from one precomputed (P, P, m, m) tensor."""

    def __init__(self, kernel, points):
        before = time.perf_counter()
        self.table = kernel.metric(points, chunk_size=256)
        self.seconds = time.perf_counter() - before
        self.index = {complex(v): i for i, v in enumerate(points.z[:, 0].tolist())}

    def rows(self, z):
        return torch.tensor([self.index[complex(v)] for v in z[:, 0]])

    def __call__(self, z1, j1, z2, j2):
        return self.table[self.rows(z1)][:, self.rows(z2)]


def flows(kernel, surface, n, n_test, landmarks, steps, dt) -> dict:
    train, test = sample_points(surface, n, seed=31), sample_points(surface, n_test, seed=32)
    both = PointSet.cat([train, test])
    rss0 = rss_gb()
    t = time.perf_counter()
    lookup = LookupKernel(kernel, both)
    assembly = {"points": n + n_test, "seconds": time.perf_counter() - t, "peak_rss_growth_gb": rss_gb() - rss0}
    kappa = class_kappa(train, 1.0)
    results = []
    dense_metric = None
    for p in [None] + list(landmarks):
        t = time.perf_counter()
        flow = FrozenKernelFlow(lookup, train, kappa=kappa, start=fs_start(1.0), dense=p is None, low_rank=p)
        for _ in range(steps):
            flow.step(dt)
        g = flow.metric(test.z, test.jac)
        det = torch.linalg.det(g).real
        row = {"landmarks": p, "rank": flow.rank if p else n * 9, "sigma_test": sigma_measure(test, det)[0],
               "sigma_train": sigma_measure(train, torch.linalg.det(flow.metric(train.z, train.jac)).real)[0],
               "seconds_flow": time.perf_counter() - t}
        if p is None:
            dense_metric = g
        else:
            row["metric_rel_error_vs_dense"] = float((g - dense_metric).norm() / dense_metric.norm())
        results.append(row)
        print(row, flush=True)
    return {"assembly_union": assembly, "flows": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--landmarks", type=int, nargs="*", default=[250, 500, 1000])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--dt", type=float, default=2.0)
    parser.add_argument("--parts", nargs="*", choices=PARTS, default=list(PARTS),
                        help="which parts to run (e.g. --parts assembly: the 2-minute target alone)")
    parser.add_argument("--out", default="bench/results/frozen_ntk.json")
    args = parser.parse_args()
    surface = make_hypersurface("fermat_quintic")
    kernel = analytic_kernel(ARCH | phase_options(surface, "phases"))
    out = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "architecture": ARCH}
    # gelu has no closed-form dual: under torch.func its Gauss–Hermite sums run to full length, so
    # the closed-form erf network on the same features is the like-for-like per-pair comparison
    if "per_pair" in args.parts:
        out["per_pair"] = per_pair(kernel, surface, 1)
        erf = analytic_kernel(ARCH | {"activation": "erf"} | phase_options(surface, "phases"))
        out["per_pair_erf"] = per_pair(erf, surface, 4)
        print("per pair (gelu, erf):", out["per_pair"], out["per_pair_erf"], flush=True)
    if "assembly" in args.parts:
        train = sample_points(surface, args.points, seed=31)
        rss0 = rss_gb()
        t = time.perf_counter()
        fn = metric_kernel_from_options("analytic", 5, **(ARCH | phase_options(surface, "phases")))
        matrix = assemble_dense(fn, train.z, train.jac, 512)
        seconds = time.perf_counter() - t
        out["dense_assembly"] = {"points": args.points, "matrix_shape": list(matrix.shape), "seconds": seconds,
                                 "target_seconds": 120.0, "ratio_to_target": seconds / 120.0,
                                 "peak_rss_growth_gb": rss_gb() - rss0}
        print("dense assembly:", out["dense_assembly"], flush=True)
        del matrix
    if "flows" in args.parts:
        out.update(flows(kernel, surface, args.points, args.test, args.landmarks, args.steps, args.dt))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
