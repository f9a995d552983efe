"""One table from the JSON files of bench/gpu.sh (or any directory of bench results).

    python bench/gpu_table.py bench/results/gpu
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(directory: Path, name: str) -> dict | None:
    path = directory / name
    return json.loads(path.read_text()) if path.exists() else None


def rows(directory: Path) -> list[tuple[str, str, str]]:
    out = []
    s = load(directory, "sampling.json")
    if s:
        out.append(
            (
                f"sampling, {s['points']:,} quintic points",
                f"{s['seconds_sampling']:.3f} s ({s['points_per_s']:,.0f} pts/s)",
                f"{s['speedup_vs_naive']:.0f}× naive numpy sampler",
            )
        )
    for width, label in ((256, "metric"), (1024, "train_step")):
        for dt in ("float64", "float32", "tf32"):
            m = load(directory, f"{label}_w{width}_{dt}.json")
            if not m:
                continue
            if label == "metric":
                out.append(
                    (
                        f"metric throughput, width {width}, batch {m['batch']}, {dt}",
                        f"{m['points_per_s']:,.0f} pts/s",
                        f"{m['speedup']:.1f}× vmap(hessian)",
                    )
                )
            else:
                step = m["batch"] / m["train_step_points_per_s"]
                out.append(
                    (
                        f"training step (metric + det + backward), width {width}, depth {m['depth']}, "
                        f"batch {m['batch']}, {dt}",
                        f"{step * 1e3:.1f} ms",
                        f"{m['train_step_speedup']:.1f}× vmap(hessian)",
                    )
                )
    for dt in ("float64", "float32", "tf32"):
        for path in sorted(directory.glob(f"step_{dt}*.json")):
            st = json.loads(path.read_text())
            for route, r in st["routes"].items():
                base = r.get("baseline", "direct")
                ratio = r.get("speedup_vs_baseline", r.get("speedup_vs_direct"))
                out.append(
                    (
                        f"training step by route: {route}, {st['depth']}×{st['width']}, batch {st['batch']}, {dt}",
                        f"{r['ms_per_step']:.2f} ms",
                        f"{ratio:.2f}× {base}",
                    )
                )
    k = load(directory, "kernels.json")
    if k:
        for r in k["results"]:
            if r["implementation"] == "structured" and r.get("status") == "ok":
                out.append(
                    (
                        f"metric-NTK, n = {r['n_points']}, width {r['width']} (structured, chunk {r['chunk_size']})",
                        f"{r['seconds']:.2f} s, {r['peak_mib']:,.0f} MiB",
                        f"{r['speedup_vs_naive']:.1f}× vmap(jacrev)" if r.get("speedup_vs_naive") else "",
                    )
                )
    for dt in ("float64", "float32"):
        f = load(directory, f"flow_{dt}.json")
        if not f:
            continue
        for n, r in f.get("dense", {}).items():
            if "step_s" in r:
                out.append(
                    (
                        f"frozen flow, dense, n = {n}, {dt}",
                        f"{r['step_s'] * 1e3:.2f} ms/step",
                        f"assembly {r['assembly_s']:.1f} s",
                    )
                )
        mf = f.get("matrix_free")
        if mf and "step_s_estimate" in mf:
            what = "measured" if mf["rows_timed"] == mf["n"] else "extrapolated"
            out.append(
                (
                    f"frozen flow, matrix-free, n = {mf['n']}, {dt}",
                    f"{mf['step_s_estimate']:.2f} s/step ({what})",
                    f"peak {mf['peak_bytes'] / 2**30:.1f} GiB",
                )
            )
    return out


def main() -> None:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/gpu")
    table = rows(directory)
    if not table:
        sys.exit(f"no benchmark JSON in {directory}")
    names = (json.loads(p.read_text()).get("device_name") for p in sorted(directory.glob("*.json")))
    device = next((name for name in names if name), "?")
    print(f"| benchmark ({device}) | result | against the baseline |")
    print("|---|---|---|")
    for what, result, ratio in table:
        print(f"| {what} | {result} | {ratio} |")


if __name__ == "__main__":
    main()
