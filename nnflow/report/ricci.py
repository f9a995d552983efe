"""Files of the Ricci/torus study (``nnflow.torus.study``): summary.json, metrics.csv and figures.

    error_vs_sigma.png   the primary error at T against σ per route, log-log, with the fitted
                         power laws σ^p (± the fit's standard error)
    error_vs_time.png    the primary error against flow time, every run
    mode_rates.png       measured against predicted K̂(k)λ(k) decay rates of single modes
    curvature.png        (n = 2, frames given) scalar curvature of the reference at 0 and T and of
                         the narrowest kernel flow at T
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch

from nnflow.report.sweep import pyplot
from nnflow.torus.study import groups

METRICS_FIELDS = ("route", "kind", "width", "linearized", "sigma", "sigma_b", "t", "error", "rel_error",
                  "invariant_error")


def json_default(obj):
    """json.dumps ``default``: tensors as nested lists."""
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj)}")


def write_outputs(out: Path, summary: dict, rows: list[dict], frames: dict | None, plots: bool = True) -> list[str]:
    """summary.json, metrics.csv and (if plots) PNG figures in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=json_default))
    with (out / "metrics.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(METRICS_FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    written = ["summary.json", "metrics.csv"]
    if plots:
        written += plot_all(out, summary, rows, frames)
    return written


def _positive(y) -> bool:
    return y is not None and math.isfinite(y) and y > 0


def _save(plt, fig, out: Path, name: str, dpi: int = 120) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=dpi)
    plt.close(fig)
    return name


def _loglog_axes(ax) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)


def fit_label(label: str, fit: dict, variable: str = "σ") -> str:
    """'label: σ^p ± e' (the stderr only where finite), or the bare label without a fit."""
    if not math.isfinite(fit["rate"]):
        return label
    err = fit.get("stderr", math.nan)
    return f"{label}: {variable}^{fit['rate']:.2f}" + (f" ± {err:.2g}" if math.isfinite(err) else "")


def plot_error_vs_sigma(plt, out: Path, summary: dict) -> str:
    key = summary["primary_error"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for label, group in groups(summary["runs"]).items():
        pts = [(r["sigma"], r[key]) for r in group if _positive(r[key])]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        fit = summary["fits"][label]
        style = "o-" if group[0]["route"] == "kernel" else ("s--" if group[0]["route"] == "finite" else "^:")
        line = ax.loglog(xs, ys, style, label=fit_label(label, fit))
        if math.isfinite(fit["rate"]):
            xx = torch.tensor([max(min(xs), fit["sigma_min"]), max(xs)])
            ax.loglog(xx, fit["prefactor"] * xx ** fit["rate"], "-", color=line[0].get_color(), alpha=0.3, lw=4)
    ax.set_xlabel("kernel width σ (torus period 1)")
    ax.set_ylabel(key.replace("_", " ") + " at T")
    ax.set_title(f"T^{summary['n']}: {summary['field']} field vs Ricci flow, T = {summary['t_end']}")
    _loglog_axes(ax)
    return _save(plt, fig, out, "error_vs_sigma.png")


def plot_error_vs_time(plt, out: Path, summary: dict, rows: list[dict]) -> str:
    key = summary["primary_error"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    series: dict[str, list] = {}
    for r in rows:
        label = f"{r['route']} {r['kind']}" + (f" N={r['width']}" if r["width"] else "") + f" σ={r['sigma']:g}"
        series.setdefault(label, []).append((r["t"], r[key]))
    for label, pts in series.items():
        pts = [(t, y) for t, y in pts if t > 0 and _positive(y)]
        if pts:
            ax.semilogy(*zip(*pts), label=label, lw=1)
    ax.set_xlabel("flow time t")
    ax.set_ylabel(key.replace("_", " "))
    ax.legend(fontsize=5, ncol=2)
    ax.grid(True, alpha=0.3)
    return _save(plt, fig, out, "error_vs_time.png")


def plot_mode_rates(plt, out: Path, modes: list[dict]) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for route in sorted({(m["route"], m["kind"], m["width"]) for m in modes}, key=str):
        ms = [m for m in modes if (m["route"], m["kind"], m["width"]) == route]
        ax.plot([-m["predicted"] for m in ms], [-m["measured"] for m in ms], "o" if route[0] == "kernel" else "x",
                label=f"{route[0]} {route[1]}" + (f" N={route[2]}" if route[2] else ""))
    lim = max(abs(m["predicted"]) for m in modes) * 1.1
    ax.plot([0, lim], [0, lim], "k-", lw=0.5)
    ax.set_xlabel("predicted decay rate −K̂(k)λ(k)")
    ax.set_ylabel("measured decay rate")
    _loglog_axes(ax)
    return _save(plt, fig, out, "mode_rates.png")


def plot_curvature(plt, out: Path, frames: dict) -> str:
    from nnflow.torus.geometry import grid_curvature

    grid = frames["grid"]
    kernels = [key for key in frames if isinstance(key, tuple)]
    narrow = min(kernels, key=lambda k_: k_[2])
    panels = [("reference t=0", frames["reference"][0]), ("reference t=T", frames["reference"][-1]),
              (f"{narrow[1]} σ={narrow[2]:g} t=T", frames[narrow][-1])]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (title, g) in zip(axes, panels):
        im = ax.imshow(grid_curvature(grid, g)["scalar"].T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r")
        ax.set_title("R: " + title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(plt, fig, out, "curvature.png", dpi=110)


def plot_all(out: Path, summary: dict, rows: list[dict], frames: dict | None) -> list[str]:
    """error_vs_sigma.png, error_vs_time.png, mode_rates.png and (n = 2, frames given) curvature.png."""
    plt = pyplot()
    written = [plot_error_vs_sigma(plt, out, summary), plot_error_vs_time(plt, out, summary, rows)]
    if summary["modes"]:
        written.append(plot_mode_rates(plt, out, summary["modes"]))
    if frames is not None and frames["grid"].n == 2 and any(isinstance(k, tuple) for k in frames):
        written.append(plot_curvature(plt, out, frames))
    return written
