"""Quality-in-time of the training presets: σ_test reached and the wall time it took.

Runs ``nnflow-train experiment=<preset>`` (its own process, csv logger, run directory under
outputs/bench/) for each preset and reads the run's summary.json and metrics.csv. Baseline,
the same run: σ of the Fubini–Study metric it starts from (metrics.csv, step 0), so the
printed ratio σ_FS/σ_test says how much training improved on it. Targets (issue 3, 2-core
CPU): cubic_mlp σ_test ≤ 0.005 within 3 min; quintic_mlp σ_test ≤ 0.01 within 30 min.

    python bench/bench_training.py cubic_mlp [quintic_mlp] [--set dtype=float32 threads=1]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"cubic_mlp": (0.005, 180.0), "quintic_mlp": (0.01, 1800.0)}


def run_preset(preset: str, overrides: list[str], root: Path) -> dict:
    run_dir = root / f"{preset}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    script = Path(sys.executable).parent / "nnflow-train"  # the venv's console script
    cmd = [
        str(script) if script.exists() else "nnflow-train",
        f"experiment={preset}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    env = {**os.environ, "WANDB_MODE": "offline"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"preset": preset, "error": proc.stderr.strip().splitlines()[-1:], "command": " ".join(cmd)}
    summary = json.loads((run_dir / "summary.json").read_text())
    with (run_dir / "metrics.csv").open() as f:
        first = next(csv.DictReader(f))
    sigma_fs = float(first["val_sigma"])
    target_sigma, target_seconds = TARGETS.get(preset, (float("nan"), float("nan")))
    return {
        "preset": preset,
        "command": " ".join(cmd),
        "run_dir": str(run_dir),
        "sigma_test": summary["sigma_test"],
        "sigma_test_err": summary["sigma_test_err"],
        "sigma_fs_val": sigma_fs,
        "improvement_over_fs": sigma_fs / summary["sigma_test"],
        "wall_seconds": wall,
        "steps": summary["steps"],
        "dtype": summary["dtype"],
        "device": summary["device"],
        "target_sigma": target_sigma,
        "target_seconds": target_seconds,
        "meets_target": summary["sigma_test"] <= target_sigma and wall <= target_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--set", nargs="*", default=[], help="extra nnflow-train overrides")
    parser.add_argument("--root", default="outputs/bench")
    parser.add_argument("--out", default=str(HERE / "results" / "training.json"))
    args = parser.parse_args()
    results = [run_preset(p, args.set, Path(args.root)) for p in args.presets]
    print(f"{'preset':14s} {'σ_test':>10s} {'σ_FS/σ_test':>12s} {'wall s':>8s} {'target':>18s} ok")
    for r in results:
        if "error" in r:
            print(f"{r['preset']:14s} failed: {r['error']}")
            continue
        target = f"≤{r['target_sigma']} in {r['target_seconds']:.0f} s"
        print(
            f"{r['preset']:14s} {r['sigma_test']:>10.5f} {r['improvement_over_fs']:>12.1f} {r['wall_seconds']:>8.1f} "
            f"{target:>18s} {'yes' if r['meets_target'] else 'no'}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
