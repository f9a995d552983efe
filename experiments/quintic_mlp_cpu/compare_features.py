"""σ_val against wall-clock time for the quintic_mlp CPU runs: phase-invariant features
(this directory, float64; ../quintic_mlp_cpu_float32) and the full degree-1 features
(../quintic_mlp_cpu_degree1).

    python experiments/quintic_mlp_cpu/compare_features.py   # writes features.png / .pdf here
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nnflow.training.callbacks import read_metrics  # noqa: E402

HERE = Path(__file__).parent
RUNS = {
    "phase-invariant features (degree 5, 146), float64": HERE,
    "phase-invariant features, float32": HERE.parent / "quintic_mlp_cpu_float32",
    "full features (degree 1, 25), float32": HERE.parent / "quintic_mlp_cpu_degree1",
}


def main() -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, run in RUNS.items():
        rows = [r for r in read_metrics(run / "metrics.csv") if r.get("val_sigma") not in (None, "")]
        minutes = [float(r["seconds"]) / 60 for r in rows]
        sigma = [float(r["val_sigma"]) for r in rows]
        test = json.loads((run / "summary.json").read_text())
        line = ax.plot(minutes, sigma, marker=".", label=f"{label}: σ_test {test['sigma_test']:.4f}")[0]
        ax.axhline(test["sigma_test"], color=line.get_color(), lw=0.6, ls=":")
    ax.axhline(0.01, color="k", lw=0.8, ls="--", label="target σ_test ≤ 0.01 in 30 min")
    ax.set(xscale="linear", yscale="log", xlabel="wall-clock minutes (2-core CPU)", ylabel="σ_val (10^4 points)",
           title="Fermat quintic, 3×256 gelu MLP, quintic_mlp preset")
    ax.legend(fontsize=7)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(HERE / f"features.{ext}", dpi=130)
    print(f"wrote {HERE / 'features.png'}")


if __name__ == "__main__":
    main()
