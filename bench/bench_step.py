"""Time per training step of the quintic MLP by route: direct, reference, packed, compiled.

One step = gather a batch of training points, the metric, det g, the Monge–Ampère loss,
backward and an Adam update (what MetricModule does, without Lightning). Routes (MetricModule's
``route`` names, models/potential.py "metric entry points"):

- ``direct``: ``model.metric(z, jac)`` (the θ0 jet of the centered init at every step) — baseline;
- ``reference``: ``metric_from_reference`` (g_FS − α∂∂̄f_θ0 cached per training point);
- ``packed``: ``packed_metric`` on ``packed_inputs`` (the feature jet cached too; real arithmetic);
- ``compiled``: ``packed`` under torch.compile (``--mode``; "reduce-overhead" captures CUDA graphs).

All routes start from the same parameters and must give the same loss to round-off (printed).

    python bench/bench_step.py [--batch 4096] [--width 256] [--dtype float32] [--mode reduce-overhead]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from nnflow.flows.losses import monge_ampere_loss
from nnflow.geometry import fermat_quintic, sample_points
from nnflow.geometry.hermitian import real_hermitian_det
from nnflow.geometry.linalg import hermitian_det
from nnflow.models import build_potential
from nnflow.precision import set_precision


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float64", "float32", "tf32"])
    parser.add_argument(
        "--mode", default=None, help="torch.compile mode (default: reduce-overhead on CUDA, default on CPU)"
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--routes",
        nargs="+",
        default=["direct", "reference", "packed", "compiled"],
        help="routes to time (the first is the baseline of the ratios)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "step.json"))
    args = parser.parse_args()
    mode = args.mode or ("reduce-overhead" if args.device.startswith("cuda") else "default")
    dtype = set_precision(args.dtype)
    cdtype = {torch.float64: torch.complex128, torch.float32: torch.complex64}[dtype]
    pts = sample_points(fermat_quintic(), args.n_train, seed=0).to(args.device, dtype=cdtype)
    model = build_potential("mlp", n_coords=5, width=args.width, depth=args.depth, input_scale=3.0, seed=0)
    model = model.to(device=args.device, dtype=dtype)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        reference = model.reference_metric(pts.z, pts.jac)
        packed_reference, feature_jet = model.packed_inputs(pts.z, pts.jac)

    def packed_det(ref, jet):
        return real_hermitian_det(model.packed_metric(ref, jet))

    compiled_det = torch.compile(packed_det, mode=mode, dynamic=False)
    routes = {
        "direct": lambda i: hermitian_det(model.metric(pts.z[i], pts.jac[i])),
        "reference": lambda i: hermitian_det(model.metric_from_reference(reference[i], pts.z[i], pts.jac[i])),
        "packed": lambda i: packed_det(packed_reference[i], feature_jet[i]),
        "compiled": lambda i: compiled_det(packed_reference[i], feature_jet[i]),
    }
    g = torch.Generator(device="cpu").manual_seed(0)
    batches = [torch.randperm(args.n_train, generator=g)[: args.batch].to(args.device) for _ in range(args.steps + 3)]
    results = {}
    for name in args.routes:
        det_fn = routes[name]
        model.load_state_dict(start)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = []

        def step(i, det_fn=det_fn, opt=opt, graphs=name == "compiled" and mode == "reduce-overhead"):
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            opt.zero_grad(set_to_none=True)
            loss = monge_ampere_loss(det_fn(i), pts.omega2[i], pts.weights[i], 1.0)
            loss.backward()
            opt.step()
            return loss.detach()

        t = time.perf_counter()
        losses.append(step(batches[0]))  # warm-up (compiles the compiled route)
        sync(args.device)
        warmup = time.perf_counter() - t
        for b in batches[1:3]:
            losses.append(step(b))
        sync(args.device)
        t = time.perf_counter()
        for b in batches[3:]:
            losses.append(step(b))
        sync(args.device)
        ms = (time.perf_counter() - t) / args.steps * 1e3
        results[name] = {"ms_per_step": ms, "first_step_s": warmup, "losses": torch.stack(losses).tolist()}
    base = results[args.routes[0]]
    print(
        f"training step, batch {args.batch}, {args.depth}×{args.width} {args.dtype} on {args.device} "
        f"(compile mode {mode})"
    )
    for name, r in results.items():
        drift = max(abs(a - b) / abs(b) for a, b in zip(r["losses"], base["losses"]))
        r["baseline"] = args.routes[0]
        r["speedup_vs_baseline"] = base["ms_per_step"] / r["ms_per_step"]
        r["max_rel_loss_diff_vs_baseline"] = drift
        print(
            f"  {name:9s} {r['ms_per_step']:8.2f} ms/step  {r['speedup_vs_baseline']:5.2f}× {args.routes[0]}  "
            f"first step {r['first_step_s']:6.1f} s  loss rel. diff {drift:.1e}"
        )
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "batch": args.batch,
                "width": args.width,
                "depth": args.depth,
                "dtype": args.dtype,
                "device": device_name,
                "torch": torch.__version__,
                "compile_mode": mode,
                "threads": torch.get_num_threads(),
                "routes": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
