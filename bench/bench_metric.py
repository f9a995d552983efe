"""Metric-evaluation throughput of Kähler-potential networks, against vmap(hessian).

The baseline is the plain route: for each point, the real 2(N+1)×2(N+1) Hessian of K(z) by
``torch.func.vmap(hessian)``, its Wirtinger combination, and the pullback J G J^†. nnflow's
route propagates a second-order jet of the projective features through the network
(models/networks.py). Both are timed in the same run, forward only and forward+backward
(a training step's work), and must agree to round-off.

    python bench/bench_metric.py [--batch 4096] [--width 256] [--depth 3] [--dtype float64]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch.func import hessian, vmap

from nnflow.geometry import fermat_quintic, pullback, sample_points
from nnflow.geometry.curvature import wirtinger_hessian
from nnflow.models import build_potential
from nnflow.precision import set_precision


def baseline_metric(model, z, jac):
    n_coords = z.shape[-1]

    def K(xr):
        return model.potential(torch.complex(xr[:n_coords], xr[n_coords:]))

    H = vmap(hessian(K))(torch.cat([z.real, z.imag], -1))
    return pullback(jac, wirtinger_hessian(H))


def best_of(fn, repeat=3):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32", "tf32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "metric.json"))
    args = parser.parse_args()
    dtype = set_precision(args.dtype)  # tf32: float32 tensors, TF32 matmuls on CUDA
    cdtype = {torch.float64: torch.complex128, torch.float32: torch.complex64}[dtype]
    pts = sample_points(fermat_quintic(), args.batch, seed=0).to(args.device, dtype=cdtype)
    model = build_potential("mlp", n_coords=5, width=args.width, depth=args.depth, init="random", seed=0)
    model = model.to(device=args.device, dtype=dtype)

    with torch.no_grad():
        err = (model.metric(pts.z, pts.jac) - baseline_metric(model, pts.z, pts.jac)).abs().max().item()
        t_ours = best_of(lambda: model.metric(pts.z, pts.jac))
        t_base = best_of(lambda: baseline_metric(model, pts.z, pts.jac))

    def step(m, metric):
        m.zero_grad()
        torch.linalg.det(metric()).real.sum().backward()

    t_ours_train = best_of(lambda: step(model, lambda: model.metric(pts.z, pts.jac)))
    t_base_train = best_of(lambda: step(model, lambda: baseline_metric(model, pts.z, pts.jac)))
    # Training's default init, "centered" (g starts at g_FS), subtracts the network at θ0: a
    # second jet per step, unless the θ-independent part is cached per training point
    # (MetricModule does this: reference_metric once, metric_from_reference every step).
    centered = build_potential("mlp", n_coords=5, width=args.width, depth=args.depth, init="centered", seed=0)
    centered = centered.to(device=args.device, dtype=dtype)
    reference = centered.reference_metric(pts.z, pts.jac)
    t_centered = best_of(lambda: step(centered, lambda: centered.metric(pts.z, pts.jac)))
    t_cached = best_of(lambda: step(centered, lambda: centered.metric_from_reference(reference, pts.z, pts.jac)))
    result = {
        "bench": "metric",
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.machine(),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "batch": args.batch,
        "width": args.width,
        "depth": args.depth,
        "max_abs_difference": err,
        "points_per_s": args.batch / t_ours,
        "baseline_points_per_s": args.batch / t_base,
        "speedup": t_base / t_ours,
        "train_step_points_per_s": args.batch / t_ours_train,
        "baseline_train_step_points_per_s": args.batch / t_base_train,
        "train_step_speedup": t_base_train / t_ours_train,
        "centered_train_step_points_per_s": args.batch / t_centered,
        "centered_cached_reference_train_step_points_per_s": args.batch / t_cached,
        "cached_reference_speedup": t_centered / t_cached,
        "target": "speedup >= 3 (batch 4096, width 256)",
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for key in ("points_per_s", "baseline_points_per_s", "speedup", "train_step_points_per_s",
                "baseline_train_step_points_per_s", "train_step_speedup", "centered_train_step_points_per_s",
                "centered_cached_reference_train_step_points_per_s", "cached_reference_speedup", "max_abs_difference"):
        print(f"{key:36s} {result[key]:14.4g}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
