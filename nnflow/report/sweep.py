"""The finite-versus-infinite report of a width sweep, from the runs' own files.

Each run directory of a sweep holds config.yaml, summary.json, metrics.csv and (finite and
linearized arms, with kernel tracking) kernel.csv. ``collect`` reads them, ``fit_slope`` fits
log-log slopes, ``write_report`` writes report.md and the figures (PNG and PDF):

    kernel_distance_vs_width   ‖Θ_N(0) − Θ̄‖/‖Θ̄‖ at initialization vs N, with the fitted slope
                               (the Monte Carlo expectation is −½)
    kernel_change_vs_width     ‖Θ_N(T) − Θ_N(0)‖/‖Θ_N(0)‖ after training vs N, with its slope
    sigma_vs_width             σ_test vs N, the frozen-NTK flow as the N = ∞ point, the
                               linearized model beside each width
    sigma_vs_params            σ_test vs the number of trained parameters (log-log): finite and
                               linearized arms, and Donaldson's balanced metrics at their own
                               parameter counts
    sigma_curves               σ_val against NTK time t = lr·step for every run

Beside each width, ``donaldson_rows`` (``nnflow.report.donaldson``) puts the classical algebraic
baseline: Donaldson's balanced metric of the degree k whose Hermitian H has the number of real
parameters closest to the network's
(summary.json ``n_params``), on the sweep's manifold and Kähler class, with H balanced on the
sweep's training points and σ measured on its test points (report.md table, markers on
sigma_vs_width, points on sigma_vs_params, ``donaldson`` in report.json).

No Weights & Biases needed: everything comes from files the runs wrote.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import yaml

from nnflow.fits import power_law_fit
from nnflow.report.donaldson import DONALDSON_MAX_K, DONALDSON_MAX_PARAMS, donaldson_rows, params_by_width

log = logging.getLogger("nnflow")

FIGURES = ("kernel_distance_vs_width", "kernel_change_vs_width", "sigma_vs_width", "sigma_vs_params", "sigma_curves")
LR_FIGURE = "lr_axis"  # only for a sweep with a learning-rate axis (``lr_axis``)


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

    A record has arm (summary.json's: ``arm_label`` or model.kind[_parameterization]), kind
    (model.kind), n_train, width, seed, lr (the step: optim.optimizer.lr, or flow.dt of a frozen
    flow that sets it), sigma_test, sigma_test_err, sigma_fs and sigma_fs_err (the FS metric on the
    same test points), ricci and ricci_fs (nan unless the run measured
    curvature), n_params (trained parameters,
    None if summary.json has none), kernel_dist0 (distance to Θ̄ at initialization), kernel_change
    (final relative change), the σ_val curve (time, sigma) in NTK time, and config (the run's
    resolved config.yaml as a dict, {} if absent).
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        what = "is not a directory" if sweep_dir.exists() else "does not exist"
        raise FileNotFoundError(f"sweep directory {sweep_dir} {what}: pass an nnflow-train multirun directory")
    records, foreign = [], []
    for summary_path in sorted(sweep_dir.rglob("summary.json")):
        run = summary_path.parent
        try:
            summary = json.loads(summary_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{summary_path} is not readable JSON ({err}); re-run that job or move it away") from err
        if not isinstance(summary, dict) or ("sigma_test" not in summary and summary.get("status") != "skipped"):
            foreign.append(str(summary_path.relative_to(sweep_dir)))  # e.g. nnflow-ricci's summary.json
            continue
        if summary.get("status") == "skipped":
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
        lr = _float((cfg.get("optim") or {}).get("optimizer", {}).get("lr"))
        dt = (cfg.get("flow") or {}).get("dt")
        if summary.get("kind") == "frozen" and dt is not None:
            lr = _float(dt)  # a frozen flow's step is flow.dt (its optimizer lr is unused)
        metrics = _read_csv(run / "metrics.csv")
        curve = [(int(r["step"]) * lr, _float(r["val_sigma"])) for r in metrics if r.get("val_sigma")]
        kernel = _read_csv(run / "kernel.csv")
        records.append(
            {
                "run": str(run),
                "arm": summary.get("arm", "finite"),
                "kind": summary.get("kind", summary.get("arm", "finite")),
                "n_train": (cfg.get("data") or {}).get("n_train"),
                "width": summary.get("width"),
                "seed": summary.get("seed"),
                "status": summary.get("status"),
                "lr": lr,
                "steps": summary.get("steps"),
                "sigma_test": _float(summary.get("sigma_test")),
                "sigma_test_err": _float(summary.get("sigma_test_err")),
                # the FS metric on the same test points (nan for runs written before it was recorded)
                "sigma_fs": _float(summary.get("sigma_fs")),
                "sigma_fs_err": _float(summary.get("sigma_fs_err")),
                # the learned metric's Ricci measure and FS's on the same points (curvature.points)
                "ricci": _float(summary.get("ricci")),
                "ricci_fs": _float(summary.get("ricci_fs")),
                "n_params": summary.get("n_params"),
                "kernel_dist0": _float(kernel[0].get("dist_analytic")) if kernel else math.nan,
                "kernel_change": _float(kernel[-1].get("rel_change")) if kernel else math.nan,
                "curve": curve,
                "config": cfg,
            }
        )
    if not records:
        found = f" (its summary.json files are not nnflow-train runs: {', '.join(foreign[:3])})" if foreign else ""
        raise ValueError(f"no run summaries of nnflow-train under {sweep_dir}{found}")
    if foreign:
        log.warning("skipped %d summary.json files not from nnflow-train: %s", len(foreign), ", ".join(foreign[:3]))
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


def arm_lrs(records: list[dict], arm: str) -> list[float]:
    """The distinct finite learning rates of one arm's runs, ascending."""
    return sorted({r["lr"] for r in records if r["arm"] == arm and math.isfinite(r["lr"])})


def lazy_records(records: list[dict]) -> list[dict]:
    """The runs of each arm at its smallest learning rate (the kernel-regime step) when the arm
    has several (a learning-rate axis, ``lr_axis``); all runs otherwise."""
    smallest = {arm: lrs[0] for arm in {r["arm"] for r in records} if len(lrs := arm_lrs(records, arm)) > 1}
    return [r for r in records if r["arm"] not in smallest or r["lr"] == smallest[r["arm"]]]


def lr_axis(records: list[dict], arms=("finite", "linearized"), frozen: str = "frozen") -> list[dict]:
    """Per arm with several learning rates and per lr (ascending): {"arm", "lr", "sigma" and
    "kernel_change" (``by_width`` rows), "slope_kernel_change" and its "_err" (log-log fit over
    the per-width means), "frozen_sigma" (the run of arm ``frozen`` at the same lr, i.e. the same
    NTK time lr·steps; nan if none), "diverged" (runs of that lr that diverged)}. [] without an axis."""
    out = []
    for arm in arms:
        lrs = arm_lrs(records, arm)
        if len(lrs) < 2:
            continue
        for lr in lrs:
            runs = [r for r in records if r["lr"] == lr]
            change = by_width(runs, arm, "kernel_change")
            xs, ys = [w for w, *_ in change], [m for _, m, *_ in change]
            limit = [r["sigma_test"] for r in runs if r["arm"] == frozen and math.isfinite(r["sigma_test"])]
            out.append({
                "arm": arm, "lr": lr, "sigma": by_width(runs, arm, "sigma_test"), "kernel_change": change,
                "slope_kernel_change": fit_slope(xs, ys)[0], "slope_kernel_change_err": slope_error(xs, ys),
                "frozen_sigma": sum(limit) / len(limit) if limit else math.nan,
                "diverged": sum(r["arm"] == arm and r.get("status") == "diverged" for r in runs),
            })
    return out


def summarize(records: list[dict]) -> dict:
    """The numbers the report states: per-width tables, fitted slopes, the frozen flow's σ.

    With a learning-rate axis the tables and slopes are those of each arm's smallest lr
    (``lazy_records``) and ``lr_axis`` holds every lr; ``n_params`` and ``linearized_n_params``
    are {width: trained parameters} of the two arms.
    """
    axis = lr_axis(records)
    records = lazy_records(records)
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
        "n_params": params_by_width(records, "finite"),
        "linearized_n_params": params_by_width(records, "linearized"),
        "lr_axis": axis,
    }
    for name, rows in (("kernel_dist0", [(w, m) for w, m, *_ in dist]),
                       ("kernel_change", [(w, m) for w, m, *_ in change]),
                       ("sigma_gap", gap)):
        xs, ys = [w for w, _ in rows], [v for _, v in rows]
        stats[f"slope_{name}"] = fit_slope(xs, ys)[0]
        stats[f"slope_{name}_err"] = slope_error(xs, ys)
    return stats


def pyplot():
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


def _donaldson_ok(stats: dict) -> list[dict]:
    """The Donaldson rows with a finite σ (none without the baseline)."""
    return [r for r in stats.get("donaldson") or [] if math.isfinite(r["sigma_test"])]


def _sigma_axes(ax, xlabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("σ_test")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def make_figures(records: list[dict], stats: dict, out_dir: Path) -> list[str]:
    """Write the FIGURES that the data allow (PNG and PDF) to out_dir; return their names."""
    plt = pyplot()
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
    donaldson = _donaldson_ok(stats)
    arms = (("finite", "finite_sigma", "n_params", "o", "C0", 1.0),
            ("linearized", "linearized_sigma", "linearized_n_params", "s", "C2", 1.12))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for arm, key, _, marker, color, shift in arms:
        rows = stats[key]
        if rows:
            ax.errorbar([w * shift for w, *_ in rows], [m for _, m, *_ in rows], yerr=[e for _, _, e, _ in rows],
                        marker=marker, ls="-", color=color, label=arm)
    if donaldson:  # beside the width whose parameter count it matches
        ax.errorbar([r["width"] * 0.89 for r in donaldson], [r["sigma_test"] for r in donaldson],
                    yerr=[r["sigma_err"] for r in donaldson], marker="*", ms=9, ls="none", color="C1",
                    label="Donaldson k (closest parameter count)")
    if math.isfinite(stats["frozen_sigma"]):
        ax.axhline(stats["frozen_sigma"], color="k", ls=":", label="frozen-NTK flow (N = ∞)")
    _sigma_axes(ax, "width N", "σ_test vs width")
    _save(fig, out_dir, FIGURES[2])
    plt.close(fig)
    made.append(FIGURES[2])
    if stats["n_params"] or donaldson:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for arm, key, params_key, marker, color, _ in arms:
            rows = [(stats[params_key][w], m, e) for w, m, e, _ in stats[key] if w in stats[params_key]]
            if rows:  # the arms share parameter counts: linearized hollow and dashed, under the finite
                ax.errorbar([p for p, *_ in rows], [m for _, m, _ in rows], yerr=[e for *_, e in rows],
                            marker=marker, ls="-" if arm == "finite" else "--", color=color,
                            mfc=color if arm == "finite" else "none", zorder=3 if arm == "finite" else 2,
                            label=f"{arm} network")
        if donaldson:  # at their own parameter counts; a k shared by several widths is drawn once
            pts = sorted({(r["params"], r["sigma_test"], r["sigma_err"], r["k"]) for r in donaldson})
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="*", ms=9,
                        ls="--", color="C1", label="Donaldson balanced metric")
            for p, s, _, k in pts:
                ax.annotate(f"k={k}", (p, s), textcoords="offset points", xytext=(4, 4), fontsize=7, color="C1")
        if math.isfinite(stats["frozen_sigma"]):
            ax.axhline(stats["frozen_sigma"], color="k", ls=":", label="frozen-NTK flow (N = ∞)")
        _sigma_axes(ax, "trained real parameters", "σ_test vs parameter count")
        _save(fig, out_dir, FIGURES[3])
        plt.close(fig)
        made.append(FIGURES[3])
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
    _save(fig, out_dir, FIGURES[4])
    plt.close(fig)
    made.append(FIGURES[4])
    if stats.get("lr_axis"):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for i, entry in enumerate(stats["lr_axis"]):
            color, tag = f"C{i % 10}", f"{entry['arm']}, lr = {entry['lr']:g}"
            if entry["kernel_change"]:
                _loglog_with_fit(left, entry["kernel_change"], tag, color)
            rows = entry["sigma"]
            right.errorbar([w for w, *_ in rows], [m for _, m, *_ in rows], yerr=[e for _, _, e, _ in rows],
                           marker="o", color=color, label=tag)
            if math.isfinite(entry["frozen_sigma"]):
                right.axhline(entry["frozen_sigma"], color=color, ls=":", lw=1)
        left.set_title("kernel change vs width, by learning rate")
        _sigma_axes(right, "width N", "σ_test vs width by lr (dotted: frozen flow at that lr)")
        _save(fig, out_dir, LR_FIGURE)
        plt.close(fig)
        made.append(LR_FIGURE)
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
        out.append(f"The empirical metric-NTK at initialization approaches the analytic kernel Θ̄ as "
                   f"N^{s:.2f}{_pm(stats.get('slope_kernel_dist0_err'))}, {verdict} the Monte Carlo rate N^(−1/2).")
    s = stats["slope_kernel_change"]
    if math.isfinite(s):
        trend = "shrinks" if s < 0 else "grows"
        out.append(f"The relative change of the kernel during training {trend} with width as "
                   f"N^{s:.2f}{_pm(stats.get('slope_kernel_change_err'))}: "
                   + ("wider networks are closer to the frozen-kernel (lazy) regime." if s < 0
                      else "wider networks move their kernel more, unlike the lazy regime."))
    fs = stats["frozen_sigma"]
    fin = stats["finite_sigma"]
    if fin and math.isfinite(fs):
        best_w, best_s = min(((w, m) for w, m, *_ in fin), key=lambda p: p[1])
        widest_w, widest_s = fin[-1][0], fin[-1][1]
        out.append(
            f"The frozen-NTK flow reaches σ_test = {_fmt(fs)}; the widest finite network (N = {widest_w}) "
            f"reaches {_fmt(widest_s)} and the best finite width (N = {best_w}) {_fmt(best_s)}."
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
            out.append(f"Linearized models differ from their finite networks by {_fmt(100 * diffs[0], 3)}% in "
                       f"σ_test at the smallest width and {_fmt(100 * diffs[-1], 3)}% at the largest.")
    finite = {w: m for w, m, *_ in fin}
    pairs = [(r, finite[r["width"]]) for r in _donaldson_ok(stats) if r["width"] in finite]
    if pairs:
        lower = [r["width"] for r, m in pairs if r["sigma_test"] < m]
        out.append(f"At the networks' parameter counts Donaldson's balanced metric reaches the lower σ_test at "
                   f"{len(lower)} of {len(pairs)} widths" + (f" (N = {', '.join(map(str, lower))})." if lower else ".")
                   + " " + "; ".join(f"N = {r['width']}: k = {r['k']}, σ {_fmt(r['sigma_test'])} vs {_fmt(m)}"
                                     for r, m in pairs) + ".")
    return out


def _donaldson_section(stats: dict) -> list[str]:
    """report.md's Donaldson table and its caption (or the note saying why it is absent)."""
    lines = ["## Donaldson's balanced metric at each width's parameter count", ""]
    if stats.get("donaldson_note"):
        return lines + [f"Donaldson rows omitted: {stats['donaldson_note']}", ""]
    rows = stats["donaldson"]
    finite = {w: m for w, m, *_ in stats["finite_sigma"]}
    lines += ["| width | network params | finite σ_test | Donaldson k | N_k | params of H | Donaldson σ_test | ± "
              "| points for H | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = f"{r['k']} (k ≤ {r['k']} reached)" if r["capped"] else str(r["k"])
        points = f"{r['n_points']}*" if r["n_points"] > r["n_points_train"] else str(r["n_points"])
        lines.append(f"| {r['width']} | {r['n_params']} | {_fmt(finite.get(r['width'], math.nan))} | {k} | {r['N_k']} "
                     f"| {r['params']} | {_fmt(r['sigma_test'])} | {_fmt(r['sigma_err'], 2)} | {points} "
                     f"| {r['seconds']:.2g} |")
    first = rows[0]
    caption = [
        "",
        f"Donaldson k: the degree whose balanced H (sections of O(k), block-diagonal over the phase-symmetry "
        f"sectors) has the number of real parameters closest to the network's; σ_test on the networks' "
        f"{first['n_test']} test points. H is balanced on the {first['n_points_train']} training points, or, "
        f"marked *, where {first['points_per_parameter']} points per parameter of H need more, on that many "
        f"points sampled at the training split's seed (T(H) is a sum over points: σ includes its sampling error).",
    ]
    if any(r["capped"] for r in rows):
        caption.append(f"\"k ≤ K reached\": the closest k lies beyond the budget (k ≤ {first['max_k']}, at most "
                       f"{first['max_params']} parameters of H); K is the largest k it allows.")
    unconverged = sorted({r["k"] for r in rows if not r["converged"] and r["error"] is None})
    if unconverged:
        ks = ", ".join(map(str, unconverged))
        caption.append(f"The balanced iteration stopped before its tolerance at k = {ks}.")
    for k, err in sorted({(r["k"], r["error"]) for r in rows if r["error"]}):
        caption.append(f"k = {k} failed: {err}")
    return lines + caption + [""]


def _means(rows) -> dict:
    """{width: mean} of ``by_width`` rows."""
    return {w: m for w, m, *_ in rows}


def _lr_section(stats: dict) -> list[str]:
    """The learning-rate axis: per lr, σ_test and the kernel change by width, the kernel-change
    slope, and what a larger step does at the widest width (computed from the rows)."""
    axis = stats.get("lr_axis") or []
    if not axis:
        return []
    lines = ["## Learning-rate axis", "",
             "| arm | lr | width | σ_test | ± | kernel change | frozen flow σ_test (same lr) |",
             "|---|---|---|---|---|---|---|"]
    for e in axis:
        change = {w: m for w, m, *_ in e["kernel_change"]}
        for w, m, err, _ in e["sigma"]:
            lines.append(f"| {e['arm']} | {e['lr']:g} | {w} | {_fmt(m)} | {_fmt(err, 2)} "
                         f"| {_fmt(change.get(w, math.nan))} | {_fmt(e['frozen_sigma'])} |")
    lines.append("")
    for arm in dict.fromkeys(e["arm"] for e in axis):
        entries = [e for e in axis if e["arm"] == arm]
        slopes = "; ".join(f"lr = {e['lr']:g}: N^{_fmt(e['slope_kernel_change'], 3)}{_pm(e['slope_kernel_change_err'])}"
                           + (f", {e['diverged']} diverged" if e["diverged"] else "") for e in entries)
        lines.append(f"- {arm}: relative kernel change against width — {slopes}.")
        low, high = entries[0], entries[-1]
        low_c, high_c = _means(low["kernel_change"]), _means(high["kernel_change"])
        shared = sorted(set(low_c) & set(high_c))
        if shared and low_c[shared[-1]] > 0:
            w = shared[-1]
            lines.append(f"- {arm}, N = {w}: lr = {high['lr']:g} moves the kernel {high_c[w] / low_c[w]:.3g}× as much "
                         f"as lr = {low['lr']:g}.")
        low_s, high_s = _means(low["sigma"]), _means(high["sigma"])
        for e, sig in ((low, low_s), (high, high_s)):
            if sig and math.isfinite(e["frozen_sigma"]) and e["frozen_sigma"] > 0:
                w = max(sig)
                lines.append(f"- {arm}, lr = {e['lr']:g}: the widest network (N = {w}) is at "
                             f"{sig[w] / e['frozen_sigma']:.3g}× the frozen flow's σ_test at the same NTK time.")
    return lines + [""]


def _ensemble_section(stats: dict) -> list[str]:
    """The seed-ensemble table: σ_test of the mean metric over seeds beside the members' mean σ."""
    lines = ["## Seed ensembles (the mean of the potentials over seeds)", ""]
    if stats["ensemble_note"]:
        return lines + [f"No ensemble rows: {stats['ensemble_note']}", ""]
    if not stats["ensemble"]:
        return lines + ["No width has two completed seeds of one arm and learning rate.", ""]
    lines += ["| arm | lr | width | seeds | ensemble σ_test | ± | members' mean σ_test |",
              "|---|---|---|---|---|---|---|"]
    for r in stats["ensemble"]:
        lines.append(f"| {r['arm']} | {_fmt(r['lr'])} | {r['width']} | {r['n']} | {_fmt(r['sigma_test'])} "
                     f"| {_fmt(r['sigma_err'], 2)} | {_fmt(r['member_sigma'])} |")
    return lines + [""]


def write_report(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    donaldson: bool = True,
    donaldson_max_k: int = DONALDSON_MAX_K,
    donaldson_max_params: int = DONALDSON_MAX_PARAMS,
    ensemble: bool = True,
) -> Path:
    """Read a sweep, write report.md, report.json and the figures; return report.md's path.

    A study (runs with ``arm_label``: experiment=quintic_width_sweep) gets the multi-arm report of
    ``nnflow.report.study`` instead (the Donaldson rows are not part of it), and a moduli scan
    (Dwork-family runs at several ψ: experiment=dwork_scan) that of ``nnflow.report.moduli``.

    ``donaldson``: add the balanced-metric rows (``donaldson_rows`` with the given budget; a sweep
    that lacks what they need gets a one-line note instead). ``ensemble``: add the seed-ensemble
    rows (``report.ensemble.ensemble_rows``: σ_test of the mean metric over seeds per width; a
    member that cannot be rebuilt gives a one-line note instead). report.json holds the stats of
    ``summarize`` plus ``donaldson`` (the rows, [] when skipped), ``donaldson_note``, ``ensemble``
    and ``ensemble_note``.
    """
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir else sweep_dir
    records = collect(sweep_dir)  # first: a missing, empty or foreign directory stops before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    from nnflow.report.study import is_study, write_study_report

    if is_study(records):  # runs with arm labels (experiment=quintic_width_sweep): the study's report
        return write_study_report(records, sweep_dir, out_dir, ensemble=ensemble)
    from nnflow.report.moduli import is_moduli_scan, write_moduli_report

    if is_moduli_scan(records):  # Dwork-family runs at several ψ (experiment=dwork_scan)
        return write_moduli_report(records, sweep_dir, out_dir)
    stats = summarize(records)
    stats["donaldson"], stats["donaldson_note"] = [], None
    if donaldson:
        try:
            stats["donaldson"] = donaldson_rows(records, max_k=donaldson_max_k, max_params=donaldson_max_params)
        except (ValueError, TypeError) as err:  # a sweep without the manifold block or n_params
            stats["donaldson_note"] = str(err)
    stats["ensemble"], stats["ensemble_note"] = [], None
    if ensemble:
        from nnflow.report.ensemble import ensemble_rows

        try:
            stats["ensemble"] = ensemble_rows(records)
        except ValueError as err:  # a member without its checkpoint or config, or other test points
            stats["ensemble_note"] = str(err)
    figures = make_figures(records, stats, out_dir)
    lines = [f"# Finite versus infinite width: {sweep_dir.name}", "",
             f"{len(records)} runs read from `{sweep_dir}`.", ""]
    lines += ["## Conclusions (from the numbers below)", ""] + [f"- {c}" for c in conclusions(stats)] + [""]
    lines += ["## σ_test by width", "",
              "| width | finite σ_test | ± | linearized σ_test | ± | kernel dist. at init | kernel change |",
              "|---|---|---|---|---|---|---|"]
    lin = {w: (m, e) for w, m, e, _ in stats["linearized_sigma"]}
    dist = {w: m for w, m, *_ in stats["kernel_dist0"]}
    change = {w: m for w, m, *_ in stats["kernel_change"]}
    for w, m, e, _ in stats["finite_sigma"]:
        lm, le = lin.get(w, (math.nan, math.nan))
        lines.append(f"| {w} | {_fmt(m)} | {_fmt(e, 2)} | {_fmt(lm)} | {_fmt(le, 2)} "
                     f"| {_fmt(dist.get(w, math.nan))} | {_fmt(change.get(w, math.nan))} |")
    lines += ["", f"Frozen-NTK flow (N = ∞): σ_test = {_fmt(stats['frozen_sigma'])}.", ""]
    if donaldson:
        lines += _donaldson_section(stats)
    if ensemble:
        lines += _ensemble_section(stats)
    lines += _lr_section(stats)
    lines += ["## Fitted slopes (log-log, over the per-width means; ± the standard error of the fit)", ""]
    for key, what in (("kernel_dist0", "kernel distance to Θ̄ at initialization"),
                      ("kernel_change", "relative kernel change during training"), ("sigma_gap", "|σ_N − σ_∞|")):
        lines.append(f"- {what}: {_fmt(stats['slope_' + key], 3)}{_pm(stats['slope_' + key + '_err'])}")
    lines.append("")
    lines += ["## Figures", ""] + [f"![{f}]({f}.png)" for f in figures] + [""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    (out_dir / "report.json").write_text(json.dumps(stats, indent=2, default=str))
    return path
