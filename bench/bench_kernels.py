"""Metric-NTK time and peak memory per implementation, against a naive vmap(jacrev) contraction.

Fermat quintic points (n = 3, so 9 real metric components per point), an MLP on degree-1
features (d = 25) with gelu activations, float64. The baseline, measured in the same run, is the
straightforward method: per-point Jacobians of r(model.metric(z, J)) by vmap(jacrev) over all
points at once, contracted with one einsum per parameter tensor (no chunking, no symmetry).

Each measurement runs in its own subprocess so that its peak resident memory (ru_maxrss, minus
the process's footprint after setup and a warm-up on 4 points) is its own. Agreement between
implementations is checked on a sketch Θ·v (fixed random v) against the structured result.

    python bench/bench_kernels.py [--points 256 1024] [--widths 512 2048] [--depth 1]
                                  [--device cpu] [--max-seconds 700] [--out FILE]

Prints a table and writes JSON (default bench/results/kernels.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CHUNKS = {"naive": None, "jacobian": 256, "ntk_vp": 32, "structured": 64}
IMPLEMENTATIONS = ("naive", "jacobian", "ntk_vp", "structured")
FEATURES = 25  # degree-1 features on P^4
COMPONENTS = 9  # n² for the quintic threefold


def n_params(width: int, depth: int) -> int:
    return FEATURES * width + width + (depth - 1) * (width * width + width) + width + 1


# ---------------------------------------------------------------------- worker
def naive_metric_ntk(model, points):
    from torch.func import functional_call, jacrev, vmap

    from nnflow.kernels import hermitian_to_real

    params = {k: v.detach() for k, v in model.named_parameters()}

    def g(p, zr, jr):
        z, jac = torch.view_as_complex(zr), torch.view_as_complex(jr)
        return hermitian_to_real(functional_call(model, p, (z[None], jac[None]))[0])

    J = vmap(jacrev(g), (None, 0, 0))(params, torch.view_as_real(points.z), torch.view_as_real(points.jac))
    return sum(torch.einsum("xsp,ytp->xyst", t.flatten(2), t.flatten(2)) for t in J.values())


def _peak_bytes(device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def worker(impl: str, n: int, width: int, depth: int, chunk: int | None, device: str, sketch_path: str) -> dict:
    from nnflow.geometry import fermat_quintic, sample_points
    from nnflow.kernels import metric_ntk
    from nnflow.models import build_potential

    torch.set_default_dtype(torch.float64)
    dev = torch.device(device)
    points = sample_points(fermat_quintic(), n, seed=0, device=dev)
    model = build_potential("mlp", n_coords=5, width=width, depth=depth, activation="gelu", seed=0).to(dev)

    def run(pts):
        if impl == "naive":
            return naive_metric_ntk(model, pts)
        return metric_ntk(model, pts, implementation=impl, chunk_size=chunk)

    run(points.subset(slice(0, 4)))  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    base = _peak_bytes(dev)
    start = time.perf_counter()
    K = run(points)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    peak = _peak_bytes(dev)
    v = torch.randn(n * COMPONENTS, generator=torch.Generator().manual_seed(123), dtype=torch.float64).to(dev)
    M = K.permute(0, 2, 1, 3).reshape(n * COMPONENTS, n * COMPONENTS)
    torch.save((M @ v).cpu(), sketch_path)
    return {
        "seconds": seconds,
        "peak_mib": (peak - base) / 2**20 if dev.type == "cpu" else peak / 2**20,
        "process_peak_mib": peak / 2**20,
    }


# ---------------------------------------------------------------------- driver
def available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 * 2**30


def measure(impl, n, width, depth, chunk, device, tmp, timeout) -> dict:
    sketch = os.path.join(tmp, f"{impl}_{n}_{width}_{chunk}.pt")
    cmd = [sys.executable, __file__, "--worker", impl, str(n), str(width), str(depth), str(chunk or 0), device, sketch]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        why = "killed (out of memory?)" if proc.returncode < 0 else proc.stderr.strip().splitlines()[-1][:200]
        return {"status": f"failed: {why}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(status="ok", sketch=sketch)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--widths", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-seconds", type=float, default=700.0, help="skip runs estimated to take longer")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "kernels.json"))
    ap.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        impl, n, width, depth, chunk, device, sketch = args.worker
        res = worker(impl, int(n), int(width), int(depth), int(chunk) or None, device, sketch)
        print(json.dumps(res), flush=True)
        return

    rows, seconds_at = [], {}
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            for n in sorted(args.points):
                runs = [(impl, CHUNKS[impl]) for impl in IMPLEMENTATIONS]
                if n == max(args.points) and width == max(args.widths):
                    runs += [("structured", 32), ("structured", 256), ("structured", None)]  # memory vs chunk
                sketches = {}
                for impl, chunk in runs:
                    P = n_params(width, args.depth)
                    row = {"implementation": impl, "n_points": n, "width": width, "params": P, "chunk_size": chunk}
                    jac_bytes = n * COMPONENTS * P * 8
                    # a smaller run of the same implementation predicts this one (cost ∝ n²·P)
                    prev = [(s, nn, ww) for (i, c, nn, ww), s in seconds_at.items() if i == impl and c == chunk]
                    estimate = max((s * (n / nn) ** 2 * n_params(width, args.depth) / n_params(ww, args.depth)
                                    for s, nn, ww in prev), default=0.0)
                    if impl == "naive" and 2.5 * jac_bytes > 0.8 * available_bytes():
                        row["status"] = (
                            f"skipped: the {jac_bytes / 2**30:.1f} GiB Jacobian (≈{2.5 * jac_bytes / 2**30:.0f} GiB "
                            f"with vmap temporaries) does not fit in {available_bytes() / 2**30:.0f} GiB"
                        )
                    elif estimate > args.max_seconds:
                        row["status"] = (
                            f"skipped: estimated {estimate:.0f} s from the smaller runs "
                            f"(limit {args.max_seconds:.0f} s)"
                        )
                        row["estimated_seconds"] = estimate
                    else:
                        print(f"  {impl:>10} n={n:5d} width={width:5d} chunk={chunk} ...", file=sys.stderr, flush=True)
                        row.update(measure(impl, n, width, args.depth, chunk, args.device, tmp, 3 * args.max_seconds))
                        if row["status"] == "ok":
                            seconds_at[(impl, chunk, n, width)] = row["seconds"]
                            sketches[(impl, chunk)] = torch.load(row.pop("sketch"))
                    rows.append(row)
                ref = sketches.get(("structured", CHUNKS["structured"]))
                naive = seconds_at.get(("naive", None, n, width))
                for row in rows:
                    if row["n_points"] != n or row["width"] != width or row["status"] != "ok":
                        continue
                    s = sketches[(row["implementation"], row["chunk_size"])]
                    if ref is not None:
                        row["rel_diff_vs_structured"] = float((s - ref).norm() / ref.norm())
                    if naive is not None:
                        row["speedup_vs_naive"] = naive / row["seconds"]
    result = {
        "benchmark": "metric-NTK Θ_{ij̄kl̄}(x, x') on the Fermat quintic, all pairs of n points",
        "model": {"network": "mlp", "depth": args.depth, "activation": "gelu", "feature_degree": 1, "dtype": "float64"},
        "baseline": "naive: vmap(jacrev) of r(model.metric) per point over all points + einsum contraction",
        "chunk_sizes": CHUNKS,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "memory_gib": round(available_bytes() / 2**30, 1),
            "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(args.device),
            "torch": torch.__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "total_seconds": time.perf_counter() - started,
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp_out = Path(args.out).with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=2))
    tmp_out.replace(args.out)
    print(
        f"{'width':>6} {'n':>5} {'implementation':>14} {'chunk':>6} {'seconds':>9} "
        f"{'peak MiB':>9} {'vs naive':>9} {'rel diff':>9}"
    )
    for r in rows:
        if r["status"] != "ok":
            print(
                f"{r['width']:>6} {r['n_points']:>5} {r['implementation']:>14} {str(r['chunk_size']):>6}  {r['status']}"
            )
            continue
        speed = f"{r['speedup_vs_naive']:.1f}x" if "speedup_vs_naive" in r else "-"
        diff = f"{r['rel_diff_vs_structured']:.1e}" if "rel_diff_vs_structured" in r else "-"
        print(
            f"{r['width']:>6} {r['n_points']:>5} {r['implementation']:>14} {str(r['chunk_size']):>6} "
            f"{r['seconds']:>9.2f} {r['peak_mib']:>9.0f} {speed:>9} {diff:>9}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
