"""Histograms of a learned metric's pointwise geometry beside Fubini–Study's (PNG and PDF).

From ``measure_metric(..., per_point=True)`` of both metrics on the same points:
η/κ = det g/(κ|Ω|²) weighted by w (the measure |Ω|² dA that the points integrate; η/κ ≡ 1 iff g
is Ricci-flat) and the scale-free Ricci scalar R·Vol^{1/n} weighted by the metric's volume form
w η (its mean |·| is the Ricci measure).
"""

from __future__ import annotations

from pathlib import Path

import torch

from nnflow.report.sweep import _save, pyplot

FIGURES = ("eta_hist", "ricci_scalar_hist")


def _hist(ax, values: torch.Tensor, weights: torch.Tensor, label: str, bins) -> None:
    ax.hist(values.numpy(), bins=bins, weights=(weights / weights.sum()).numpy(), histtype="step", lw=1.5, label=label)


def plot_metric_histograms(learned: dict, fubini_study: dict, out_dir: str | Path, title: str = "") -> list[str]:
    """eta_hist and ricci_scalar_hist (.png, .pdf) in ``out_dir``; returns the PNG paths.

    Args:
        learned, fubini_study: measure_metric results with ``per_point`` (same points).
        title: a prefix for the figure titles (e.g. the manifold and run).
    """
    plt = pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a, b = learned["per_point"], fubini_study["per_point"]
    both = torch.cat([a["eta"], b["eta"]])
    hi = float(torch.quantile(both, 0.995))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    bins = torch.linspace(0, max(hi, 1.5), 121).numpy()
    _hist(ax, b["eta"], b["weights"], f"Fubini–Study (σ = {fubini_study['sigma']:.3g})", bins)
    _hist(ax, a["eta"], a["weights"], f"learned (σ = {learned['sigma']:.3g})", bins)
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.set(xlabel="η/κ = det g / (κ |Ω|²)", ylabel="fraction of the Ω-measure", title=f"{title} η".strip())
    ax.legend(fontsize=8)
    _save(fig, out_dir, FIGURES[0])
    plt.close(fig)
    r = torch.cat([a["ricci_scalar"], b["ricci_scalar"]])
    lo, hi = (float(torch.quantile(r, q)) for q in (0.005, 0.995))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    bins = torch.linspace(lo, hi, 121).numpy()
    _hist(ax, b["ricci_scalar"], b["ricci_weights"], f"Fubini–Study (Ricci {fubini_study['ricci']:.3g})", bins)
    _hist(ax, a["ricci_scalar"], a["ricci_weights"], f"learned (Ricci {learned['ricci']:.3g})", bins)
    ax.axvline(0.0, color="k", lw=0.8, ls=":")
    ax.set(xlabel="R · Vol^{1/n}", ylabel="fraction of the volume", title=f"{title} Ricci scalar".strip())
    ax.legend(fontsize=8)
    _save(fig, out_dir, FIGURES[1])
    plt.close(fig)
    return [str(out_dir / f"{name}.png") for name in FIGURES]
