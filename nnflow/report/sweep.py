"""The finite-versus-infinite report of a width sweep, from the runs' own files.

Each run directory of a sweep holds config.yaml, summary.json, metrics.csv and (finite and
linearized arms, with kernel tracking) kernel.csv. ``collect`` reads them, ``fit_slope`` fits
log-log slopes, ``write_report`` writes report.md and the figures (PNG and PDF):

    kernel_distance_vs_width   ‖Θ_N(0) − Θ̄‖/‖Θ̄‖ at initialization vs N, with the fitted slope
                               (the Monte Carlo expectation is −½)
    kernel_change_vs_width     ‖Θ_N(T) − Θ_N(0)‖/‖Θ_N(0)‖ after training vs N, with its slope
    sigma_vs_width             σ_test vs N, the frozen-NTK flow as the N = ∞ point, the
                               linearized model beside each width
    sigma_curves               σ_val against NTK time t = lr·step for every run

No Weights & Biases needed: everything comes from files the runs wrote.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import yaml

from nnflow.fits import power_law_fit

FIGURES = ("kernel_distance_vs_width", "kernel_change_vs_width", "sigma_vs_width", "sigma_curves")


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def collect(sweep_dir: str | Path) -> list[dict]:
    """One record per completed run below ``sweep_dir`` (skipped duplicates are left out).

    A record has arm, width, seed, lr, sigma_test, sigma_test_err, kernel_dist0 (distance to Θ̄
    at initialization), kernel_change (final relative change), and the σ_val curve
    (time, sigma) in NTK time.
    """
    records = []
    for summary_path in sorted(Path(sweep_dir).rglob("summary.json")):
        run = summary_path.parent
        summary = json.loads(summary_path.read_text())
        if summary.get("status") == "skipped":
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
        lr = _float((cfg.get("optim") or {}).get("optimizer", {}).get("lr"))
        metrics = _read_csv(run / "metrics.csv")
        curve = [(int(r["step"]) * lr, _float(r["val_sigma"])) for r in metrics if r.get("val_sigma")]
        kernel = _read_csv(run / "kernel.csv")
        records.append(
            {
                "run": str(run),
                "arm": summary.get("arm", "finite"),
                "width": summary.get("width"),
                "seed": summary.get("seed"),
                "status": summary.get("status"),
                "lr": lr,
                "steps": summary.get("steps"),
                "sigma_test": _float(summary.get("sigma_test")),
                "sigma_test_err": _float(summary.get("sigma_test_err")),
                "kernel_dist0": _float(kernel[0].get("dist_analytic")) if kernel else math.nan,
                "kernel_change": _float(kernel[-1].get("rel_change")) if kernel else math.nan,
                "curve": curve,
            }
        )
    if not records:
        raise ValueError(f"no run summaries under {sweep_dir}")
    return records


def fit_slope(xs, ys) -> tuple[float, float]:
    """Least-squares slope and intercept of log y against log x (finite, positive pairs).

    ``nnflow.fits.power_law_fit`` (slope p, intercept log C); nan with fewer than two points.
    """
    fit = power_law_fit(xs, ys)
    return fit["rate"], math.log(fit["prefactor"]) if math.isfinite(fit["prefactor"]) else math.nan


def slope_error(xs, ys) -> float:
    """Standard error of the fit_slope slope from its residuals (nan with fewer than 3 points)."""
    return power_law_fit(xs, ys)["stderr"]


def by_width(records: list[dict], arm: str, key: str) -> list[tuple[int, float, float, int]]:
    """(width, mean, standard error over seeds, count) of ``key`` for one arm, by width."""
    groups = defaultdict(list)
    for r in records:
        if r["arm"] == arm and r["width"] is not None and math.isfinite(r[key]):
            groups[int(r["width"])].append(r[key])
    out = []
    for width in sorted(groups):
        vals = groups[width]
        mean = sum(vals) / len(vals)
        se = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) / len(vals)) if len(vals) > 1 else 0.0)
        out.append((width, mean, se, len(vals)))
    return out


def summarize(records: list[dict]) -> dict:
    """The numbers the report states: per-width tables, fitted slopes, the frozen flow's σ."""
    finite_sigma = by_width(records, "finite", "sigma_test")
    linear_sigma = by_width(records, "linearized", "sigma_test")
    dist = by_width(records, "finite", "kernel_dist0")
    change = by_width(records, "finite", "kernel_change")
    frozen = [r["sigma_test"] for r in records if r["arm"] == "frozen" and math.isfinite(r["sigma_test"])]
    frozen_sigma = sum(frozen) / len(frozen) if frozen else math.nan
    # how fast the finite network's σ approaches the frozen flow's
    gap = [(w, abs(m - frozen_sigma)) for w, m, _, _ in finite_sigma]
    stats = {
        "finite_sigma": finite_sigma,
        "linearized_sigma": linear_sigma,
        "frozen_sigma": frozen_sigma,
        "kernel_dist0": dist,
        "kernel_change": change,
    }
    for name, rows in (("kernel_dist0", [(w, m) for w, m, *_ in dist]),
                       ("kernel_change", [(w, m) for w, m, *_ in change]),
                       ("sigma_gap", gap)):
        xs, ys = [w for w, _ in rows], [v for _, v in rows]
        stats[f"slope_{name}"] = fit_slope(xs, ys)[0]
        stats[f"slope_{name}_err"] = slope_error(xs, ys)
    return stats


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> None:
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=120)
    fig.savefig(out_dir / f"{name}.pdf")


def _loglog_with_fit(ax, rows, label, color):
    ws = [w for w, *_ in rows]
    ms = [m for _, m, *_ in rows]
    es = [e for _, _, e, _ in rows]
    ax.errorbar(ws, ms, yerr=es, marker="o", color=color, ls="none", label=label)
    slope, icpt = fit_slope(ws, ms)
    if math.isfinite(slope):
        xs = [min(ws), max(ws)]
        ax.plot(xs, [math.exp(icpt) * x**slope for x in xs], color=color, ls="--", label=f"fit: slope {slope:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width N")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()


def make_figures(records: list[dict], stats: dict, out_dir: Path) -> list[str]:
    plt = _plt()
    made = []
    kernel_panels = (
        (FIGURES[0], "kernel_dist0", "‖Θ_N(0) − Θ̄‖/‖Θ̄‖", "C0", "metric-NTK at initialization vs infinite width"),
        (FIGURES[1], "kernel_change", "‖Θ_N(T) − Θ_N(0)‖/‖Θ_N(0)‖", "C3", "relative kernel change during training"),
    )
    for name, key, label, color, title in kernel_panels:
        if not stats[key]:
            continue
        fig, ax = plt.subplots(figsize=(5, 4))
        _loglog_with_fit(ax, stats[key], label, color)
        ax.set_title(title)
        _save(fig, out_dir, name)
        plt.close(fig)
        made.append(name)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for arm, color, shift in (("finite", "C0", 1.0), ("linearized", "C2", 1.12)):
        rows = stats["finite_sigma" if arm == "finite" else "linearized_sigma"]
        if rows:
            ax.errorbar([w * shift for w, *_ in rows], [m for _, m, *_ in rows], yerr=[e for _, _, e, _ in rows],
                        marker="o" if arm == "finite" else "s", ls="-", color=color, label=arm)
    if math.isfinite(stats["frozen_sigma"]):
        ax.axhline(stats["frozen_sigma"], color="k", ls=":", label="frozen-NTK flow (N = ∞)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("σ_test")
    ax.set_title("σ_test vs width")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    _save(fig, out_dir, FIGURES[2])
    plt.close(fig)
    made.append(FIGURES[2])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    styles = {"finite": "-", "linearized": "--", "frozen": ":"}
    widths = sorted({int(r["width"]) for r in records if r["width"] is not None and r["arm"] != "frozen"})
    cmap = plt.get_cmap("viridis")
    for r in records:
        if not r["curve"]:
            continue
        t, s = zip(*r["curve"])
        if r["arm"] == "frozen":
            ax.plot(t, s, color="k", ls=":", lw=2, label="frozen-NTK flow")
        else:
            idx = widths.index(int(r["width"])) / max(1, len(widths) - 1)
            label = f"{r['arm']} N={r['width']}" if r["seed"] in (0, None) else None
            ax.plot(t, s, color=cmap(idx), ls=styles[r["arm"]], alpha=0.8, label=label)
    ax.set_xlabel("NTK time t = lr · step")
    ax.set_ylabel("σ_val")
    ax.set_yscale("log")
    ax.set_title("σ(t): finite (solid), linearized (dashed), frozen flow (dotted)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, out_dir, FIGURES[3])
    plt.close(fig)
    made.append(FIGURES[3])
    return made


def _fmt(x: float, digits: int = 4) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _pm(err) -> str:
    """' (± e)' for a finite standard error, else nothing."""
    return f" (± {err:.2g})" if err is not None and math.isfinite(err) else ""


def conclusions(stats: dict) -> list[str]:
    """Statements in words, each derived from the numbers (no fixed verdicts)."""
    out = []
    s = stats["slope_kernel_dist0"]
    if math.isfinite(s):
        verdict = "consistent with" if -0.7 <= s <= -0.3 else "not consistent with"
        out.append(f"The empirical metric-NTK at initialization approaches the analytic kernel Θ̄ as N^{s:.2f}{_pm(stats.get('slope_kernel_dist0_err'))}, {verdict} the Monte Carlo rate N^(−1/2).")
    s = stats["slope_kernel_change"]
    if math.isfinite(s):
        trend = "shrinks" if s < 0 else "grows"
        out.append(f"The relative change of the kernel during training {trend} with width as N^{s:.2f}{_pm(stats.get('slope_kernel_change_err'))}: " + (
            "wider networks are closer to the frozen-kernel (lazy) regime." if s < 0 else "wider networks move their kernel more, unlike the lazy regime."))
    fs = stats["frozen_sigma"]
    fin = stats["finite_sigma"]
    if fin and math.isfinite(fs):
        best_w, best_s = min(((w, m) for w, m, *_ in fin), key=lambda p: p[1])
        widest_w, widest_s = fin[-1][0], fin[-1][1]
        out.append(
            f"The frozen-NTK flow reaches σ_test = {_fmt(fs)}; the widest finite network (N = {widest_w}) reaches {_fmt(widest_s)} "
            f"and the best finite width (N = {best_w}) {_fmt(best_s)}."
        )
        if best_s < fs:
            out.append(f"A finite network reaches the lower σ: {best_s / fs:.2f}× the frozen flow's.")
        else:
            out.append(f"The frozen flow reaches the lower σ: finite networks are at best {best_s / fs:.2f}× its σ.")
        gap, err = stats["slope_sigma_gap"], stats.get("slope_sigma_gap_err", math.nan)
        if math.isfinite(gap):
            if math.isfinite(err) and abs(gap) < 2 * err:
                trend = " (within two standard errors of zero: no clear trend over these widths and seeds)."
            elif gap < 0:
                trend = " (finite networks approach the frozen flow)."
            else:
                trend = " (no approach to the frozen flow over these widths)."
            out.append(f"|σ_N − σ_∞| changes with width as N^{gap:.2f}{_pm(err)}" + trend)
    lin = stats["linearized_sigma"]
    if lin and fin:
        diffs = [abs(a[1] - b[1]) / b[1] for a, b in zip(lin, fin) if a[0] == b[0] and b[1] > 0]
        if diffs:
            out.append(f"Linearized models differ from their finite networks by {_fmt(100 * diffs[0], 3)}% in σ_test at the smallest width and {_fmt(100 * diffs[-1], 3)}% at the largest.")
    return out


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Read a sweep, write report.md, report.json and the figures; return report.md's path."""
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir else sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    records = collect(sweep_dir)
    stats = summarize(records)
    figures = make_figures(records, stats, out_dir)
    lines = [f"# Finite versus infinite width: {sweep_dir.name}", "", f"{len(records)} runs read from `{sweep_dir}`.", ""]
    lines += ["## Conclusions (from the numbers below)", ""] + [f"- {c}" for c in conclusions(stats)] + [""]
    lines += ["## σ_test by width", "", "| width | finite σ_test | ± | linearized σ_test | ± | kernel dist. at init | kernel change |", "|---|---|---|---|---|---|---|"]
    lin = {w: (m, e) for w, m, e, _ in stats["linearized_sigma"]}
    dist = {w: m for w, m, *_ in stats["kernel_dist0"]}
    change = {w: m for w, m, *_ in stats["kernel_change"]}
    for w, m, e, _ in stats["finite_sigma"]:
        lm, le = lin.get(w, (math.nan, math.nan))
        lines.append(f"| {w} | {_fmt(m)} | {_fmt(e, 2)} | {_fmt(lm)} | {_fmt(le, 2)} | {_fmt(dist.get(w, math.nan))} | {_fmt(change.get(w, math.nan))} |")
    lines += ["", f"Frozen-NTK flow (N = ∞): σ_test = {_fmt(stats['frozen_sigma'])}.", ""]
    lines += ["## Fitted slopes (log-log, over the per-width means; ± the standard error of the fit)", ""]
    for key, what in (("kernel_dist0", "kernel distance to Θ̄ at initialization"),
                      ("kernel_change", "relative kernel change during training"), ("sigma_gap", "|σ_N − σ_∞|")):
        lines.append(f"- {what}: {_fmt(stats['slope_' + key], 3)}{_pm(stats['slope_' + key + '_err'])}")
    lines.append("")
    lines += ["## Figures", ""] + [f"![{f}]({f}.png)" for f in figures] + [""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    serial = {k: v for k, v in stats.items()}
    (out_dir / "report.json").write_text(json.dumps(serial, indent=2, default=str))
    return path
