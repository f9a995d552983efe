"""Curvature throughput of a learned metric: the exact bi-jet route against nested autodiff.

The quintic_mlp architecture (Fermat quintic, phase-invariant standardized degree-5 features,
MLP width 256, depth 3, gelu, input scale 0.1, init "centered" with θ moved off θ0 so that the
network part does not cancel), float64. Per point, both routes give g, ∂g, ∂̄g and ∂∂̄g in the
chart coordinates and then the same curvature algebra (nnflow.geometry.curvature):

- baseline: nested torch.func autodiff of the potential K(z(ξ)) in the 2n real chart coordinates
  (jacfwd∘jacfwd∘jacfwd∘jacrev under vmap; ``curvature(points, potential)``);
- exact: bidegree-(2, 2) Wirtinger jets carried through the features and the layers
  (``KahlerPotential.metric_derivatives``, models/bijets.py; ``curvature(..., derivatives=)``).

Both run in the same process on their own points; the ratio of points per second is the
speedup (target ≥ 20×), and the two agree on the baseline's points (max relative difference of
the Ricci scalar and the Chern density). JSON: bench/results/curvature.json.

    python bench/bench_curvature.py [--points 512] [--baseline-points 32] [--block 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from nnflow.geometry import sample_points
from nnflow.geometry.curvature import curvature
from nnflow.geometry.hypersurface import make_hypersurface
from nnflow.models.potential import build_potential, phase_options


def quintic_mlp(surface, seed: int = 0):
    pot = build_potential("mlp", surface.n_coords, feature_degree=5, feature_symmetry="phases", width=256, depth=3,
                          activation="gelu", input_scale=0.1, seed=seed, **phase_options(surface, "phases")).double()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in pot.network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return pot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=512, help="points for the exact route")
    parser.add_argument("--baseline-points", type=int, default=32, help="points for nested autodiff")
    parser.add_argument("--block", type=int, default=16, help="points per bi-jet block")
    parser.add_argument("--out", default="bench/results/curvature.json")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    surface = make_hypersurface("fermat_quintic")
    pot = quintic_mlp(surface)
    exact = lambda z, j, h: pot.metric_derivatives(z, j, h, block=args.block)  # noqa: E731
    warm = sample_points(surface, 4, seed=0)
    curvature(warm, pot.potential, chunk_size=4)
    curvature(warm, pot.potential, derivatives=exact)
    base_pts = sample_points(surface, args.baseline_points, seed=1)
    t = time.perf_counter()
    slow = curvature(base_pts, pot.potential, chunk_size=args.baseline_points)
    t_base = time.perf_counter() - t
    pts = sample_points(surface, args.points, seed=2)
    t = time.perf_counter()
    curvature(pts, pot.potential, chunk_size=256, derivatives=exact)
    t_exact = time.perf_counter() - t
    same = curvature(base_pts, pot.potential, derivatives=exact)
    diff = {k: float(((same[k] - slow[k]).abs() / slow[k].abs().clamp(min=1e-300)).max())
            for k in ("det_g", "ricci_scalar", "chern_density")}
    result = {
        "machine": platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "architecture": "quintic_mlp: phases, degree 5, width 256, depth 3, gelu, centered", "dtype": "float64",
        "block": args.block,
        "baseline_points": args.baseline_points, "baseline_seconds": t_base,
        "baseline_points_per_second": args.baseline_points / t_base,
        "exact_points": args.points, "exact_seconds": t_exact, "exact_points_per_second": args.points / t_exact,
        "speedup": (args.points / t_exact) / (args.baseline_points / t_base), "target_speedup": 20.0,
        "max_rel_diff": diff,
    }
    print(f"nested autodiff: {result['baseline_points_per_second']:.2f} points/s; exact bi-jets: "
          f"{result['exact_points_per_second']:.1f} points/s; speedup {result['speedup']:.1f}× (target ≥ 20×); "
          f"max rel. difference {max(diff.values()):.1e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
