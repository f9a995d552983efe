"""The report of a multi-arm study (experiment=quintic_width_sweep): finite against infinite width,
lazy against feature-learning training, like for like, from the runs' own files.

A study's runs carry an ``arm_label`` (conf/arm/*.yaml; summary.json ``arm``). Finite arms
(model.kind finite or linearized: lazy, adam, mup, linearized) have a width; limit arms
(model.kind frozen: frozen_ntk, frozen_nngp, gaussian) have one run per data size. An arm with
several learning rates (lazy and lazy_lr_up share the label "lazy") is tabulated at its smallest
one; the others form the learning-rate axis (``report.sweep.lr_axis``, against frozen_ntk).

``summarize_study(records)`` computes what the report states; ``verdict(stats)`` turns it into
sentences, every one computed from the numbers (swap two arms' σ and the verdict follows);
``write_study_report`` writes report.md, report.json and the figures (PNG and PDF):

    study_sigma_vs_width   σ_test against width per arm and data size, ± the standard error
                           over seeds, the limit arms as N = ∞ lines
    study_sigma_vs_data    σ_test against the number of training points (each finite arm at
                           its widest width, the limits)
    study_kernel_change    ‖Θ_T − Θ_0‖/‖Θ_0‖ against width per arm and learning rate, with fits
    study_spectrum         the metric-NTK spectrum on the probe points at initialization and
                           after training, for the best finite arm (histogram of log10 λ)
    study_alignment        the kernel–target alignment yᵀΘ_t y/(‖Θ_t‖‖y‖²) over training, and
                           the kernel's relative change, for the best finite arm and lazy
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from nnflow.report.sweep import (
    _fmt,
    _pm,
    _save,
    by_width,
    fit_slope,
    lazy_records,
    lr_axis,
    pyplot,
    slope_error,
)

FINITE_KINDS = ("finite", "linearized")
LIMIT = "frozen_ntk"  # the infinite-width limit of the lazy arms (NTK parameterization, same NTK time)
ENSEMBLE_ARMS = ("lazy", "adam", "mup")
STUDY_FIGURES = ("study_sigma_vs_width", "study_sigma_vs_data", "study_kernel_change", "study_spectrum",
                 "study_alignment", "study_ricci_vs_width")


def is_study(records: list[dict]) -> bool:
    """Whether a sweep's runs name their arms (``arm_label``): a study, not a plain width sweep."""
    return any((r.get("config") or {}).get("arm_label") for r in records)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean over seeds and its standard error (NaN for one value)."""
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else math.nan
    return mean, se


def _read_kernel_csv(run: str) -> list[dict]:
    path = Path(run) / "kernel.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _read_spectrum(run: str) -> dict | None:
    path = Path(run) / "kernel_spectrum.json"
    return json.loads(path.read_text()) if path.exists() else None


def summarize_study(records: list[dict]) -> dict:
    """The numbers of a study (module doc).

    Returns a dict: sizes (training-set sizes, ascending), finite_arms and limit_arms (in order of
    appearance), sigma {arm: {n: by_width rows (width, mean, se, count)}} at each arm's smallest
    lr, limits {arm: {n: (σ, se)}} (se: the mean's standard error over runs, or the Monte Carlo
    error of one run's σ_test), ricci {arm: {n: by_width rows of the Ricci measure}} (finite arms whose
    runs measured curvature) and ricci_fs (FS's, the mean over those runs), kernel_change
    [{arm, lr, n_train, rows, slope, slope_err}],
    best {arm, n_train, width, sigma, se} (the finite cell of lowest mean σ), overtake
    {arm: {n: smallest width whose σ + 2 se is below the frozen_ntk flow's, or None}},
    lr_axis (``report.sweep.lr_axis`` of lazy against frozen_ntk), spectrum (the best cell's
    kernel_spectrum.json, or None) and alignment {arm: [(step, align_target, rel_change)]}.
    """
    done = [r for r in records if r.get("status") in ("completed", None)]
    main = lazy_records(done)
    sizes = sorted({int(r["n_train"]) for r in done if r.get("n_train") is not None})
    finite_arms = list(dict.fromkeys(r["arm"] for r in done if r.get("kind") in FINITE_KINDS))
    limit_arms = list(dict.fromkeys(r["arm"] for r in done if r.get("kind") not in FINITE_KINDS))
    sigma = {arm: {n: by_width([r for r in main if r.get("n_train") == n], arm, "sigma_test") for n in sizes}
             for arm in finite_arms}
    limits = {}
    for arm in limit_arms:
        limits[arm] = {}
        for n in sizes:
            runs = [r for r in main if r["arm"] == arm and r.get("n_train") == n and math.isfinite(r["sigma_test"])]
            if runs:
                mean, se = mean_se([r["sigma_test"] for r in runs])
                limits[arm][n] = (mean, runs[0]["sigma_test_err"] if len(runs) == 1 else se)
    change = []
    for arm in finite_arms:
        for lr in sorted({r["lr"] for r in done if r["arm"] == arm}):
            for n in sizes:
                runs = [r for r in done if r["lr"] == lr and r.get("n_train") == n]
                rows = by_width(runs, arm, "kernel_change")
                if rows:
                    xs, ys = [w for w, *_ in rows], [m for _, m, *_ in rows]
                    change.append({"arm": arm, "lr": lr, "n_train": n, "rows": rows,
                                   "slope": fit_slope(xs, ys)[0], "slope_err": slope_error(xs, ys)})
    cells = [(m, e, arm, n, w) for arm in finite_arms for n in sizes for w, m, e, _ in sigma[arm][n]
             if math.isfinite(m)]
    best = None
    if cells:
        m, e, arm, n, w = min(cells)
        best = {"arm": arm, "n_train": n, "width": w, "sigma": m, "se": e}
    overtake = {}
    for arm in finite_arms:
        overtake[arm] = {}
        for n in sizes:
            limit = limits.get(LIMIT, {}).get(n)
            if limit is None:
                continue
            below = [w for w, m, e, _ in sigma[arm][n] if m + 2 * (e if math.isfinite(e) else 0.0) < limit[0]]
            overtake[arm][n] = min(below) if below else None
    # the second axis: the learned metrics' Ricci measure (runs with curvature.points), FS's beside it
    ricci = {arm: {n: rows for n in sizes
                   if (rows := by_width([r for r in main if r.get("n_train") == n], arm, "ricci"))}
             for arm in finite_arms}
    ricci = {arm: v for arm, v in ricci.items() if v}
    fs = [r["ricci_fs"] for r in main if math.isfinite(r.get("ricci_fs", math.nan))]
    stats = {"ricci": ricci, "ricci_fs": sum(fs) / len(fs) if fs else math.nan,
             "sizes": sizes, "finite_arms": finite_arms, "limit_arms": limit_arms, "sigma": sigma,
             "limits": limits, "kernel_change": change, "best": best, "overtake": overtake,
             "lr_axis": lr_axis(done, arms=("lazy",), frozen=LIMIT), "spectrum": None, "alignment": {}}
    if best is not None:
        run = _first_run(main, best["arm"], best["n_train"], best["width"])
        stats["spectrum"] = _read_spectrum(run["run"]) if run else None
        for arm in dict.fromkeys((best["arm"], "lazy")):
            run = _first_run(main, arm, best["n_train"], best["width"])
            rows = _read_kernel_csv(run["run"]) if run else []
            if rows and "align_target" in rows[0]:
                stats["alignment"][arm] = [(int(r["step"]), float(r["align_target"]), float(r["rel_change"]))
                                           for r in rows]
    return stats


def _first_run(records: list[dict], arm: str, n_train: int, width: int) -> dict | None:
    """The lowest-seed run of one cell."""
    runs = [r for r in records if r["arm"] == arm and r.get("n_train") == n_train and r["width"] == width]
    return min(runs, key=lambda r: r["seed"] if r["seed"] is not None else 0) if runs else None


def _widest(rows: list) -> tuple | None:
    finite = [row for row in rows if math.isfinite(row[1])]
    return finite[-1] if finite else None


def _ranking(stats: dict, n: int) -> list[tuple[float, str]]:
    """(σ, arm) at data size n: each finite arm at its widest width, each limit arm: ascending."""
    out = [(row[1], f"{arm} (N = {row[0]})") for arm in stats["finite_arms"]
           if (row := _widest(stats["sigma"][arm].get(n, [])))]
    out += [(stats["limits"][arm][n][0], f"{arm} (N = ∞)") for arm in stats["limit_arms"] if n in stats["limits"][arm]]
    return sorted(out)


def _trend(slope: float, err: float) -> str:
    if not math.isfinite(slope):
        return "no fit"
    if math.isfinite(err) and abs(slope) < 2 * err:
        return "no trend within two standard errors: it does not vanish with width"
    return "vanishes with width" if slope < 0 else "grows with width"


def verdict(stats: dict) -> list[str]:
    """The study's conclusions in words, each computed from ``summarize_study``'s numbers."""
    out = []
    best, sizes = stats["best"], stats["sizes"]
    if best is None:
        return ["No finite arm completed: no verdict."]
    n = best["n_train"]
    overall = _ranking(stats, n)
    limit = stats["limits"].get(LIMIT, {}).get(n)
    lowest_sigma, lowest = overall[0]
    out.append(f"Lowest σ_test at n = {n} training points (each arm at its widest width): {lowest}, "
               f"σ_test = {_fmt(lowest_sigma)}.")
    if limit is not None:
        factor = limit[0] / best["sigma"]
        relation = f"{factor:.2f}× below" if factor > 1 else f"{1 / factor:.2f}× above"
        out.append(f"The best finite network ({best['arm']}, N = {best['width']}: σ_test = {_fmt(best['sigma'])}"
                   f"{_pm(best['se'])}) is {relation} the frozen NTK flow (σ_test = {_fmt(limit[0])}{_pm(limit[1])}).")
    for size in sizes:
        ranking = _ranking(stats, size)
        if ranking:
            out.append(f"Ranking at n = {size}: " + " < ".join(f"{arm} {_fmt(s, 3)}" for s, arm in ranking) + ".")
    if len(sizes) > 1:
        firsts = {size: r[0][1].split(" (")[0] for size in sizes if (r := _ranking(stats, size))}
        if len(set(firsts.values())) == 1:
            out.append(f"The same arm ({next(iter(firsts.values()))}) is lowest at every data size.")
        else:
            out.append("The lowest arm changes with data size: "
                       + "; ".join(f"n = {size}: {arm}" for size, arm in firsts.items()) + ".")
    for arm, by_n in stats["overtake"].items():
        for size, width in by_n.items():
            widths = [w for w, *_ in stats["sigma"][arm][size]]
            if not widths:
                continue
            if width is None:
                out.append(f"{arm} (n = {size}) is not below its frozen NTK limit by two standard errors at any "
                           f"width up to N = {max(widths)}.")
            else:
                out.append(f"{arm} (n = {size}) is below the frozen NTK flow from N = {width} on "
                           f"(two standard errors).")
    lazy = stats["sigma"].get("lazy", {}).get(n, [])
    if limit is not None and len(lazy) >= 2:
        gaps = [(w, abs(m - limit[0])) for w, m, *_ in lazy]
        xs, ys = [w for w, _ in gaps], [g for _, g in gaps]
        slope, err = fit_slope(xs, ys)[0], slope_error(xs, ys)
        if math.isfinite(slope):
            out.append(f"The lazy arm's gap to the frozen NTK flow |σ_N − σ_∞| goes as N^{slope:.2f}{_pm(err)} "
                       f"({'it approaches its limit' if slope < 0 else 'no approach'} over N = {xs[0]}…{xs[-1]}).")
    for entry in stats["kernel_change"]:
        if entry["n_train"] == n and len(entry["rows"]) >= 2:
            out.append(f"Kernel change ‖Θ_T − Θ_0‖/‖Θ_0‖ of {entry['arm']} (lr {entry['lr']:g}): N^"
                       f"{entry['slope']:.2f}{_pm(entry['slope_err'])}, {_trend(entry['slope'], entry['slope_err'])}.")
    moved = [e for e in stats["kernel_change"] if e["arm"] == best["arm"] and e["n_train"] == n]
    lazy_change = {w: m for e in stats["kernel_change"] if e["arm"] == "lazy" and e["n_train"] == n
                   and e["lr"] == min(x["lr"] for x in stats["kernel_change"] if x["arm"] == "lazy")
                   for w, m, *_ in e["rows"]}
    if moved:
        rows = {w: m for w, m, *_ in moved[0]["rows"]}
        if best["width"] in rows:
            change = rows[best["width"]]
            text = (f"The best finite network's kernel moved by {_fmt(change, 3)} (relative Frobenius) during "
                    f"training")
            if best["arm"] != "lazy" and lazy_change.get(best["width"], 0) > 0:
                text += f", {change / lazy_change[best['width']]:.3g}× the lazy arm's at the same width"
            out.append(text + ".")
    return out


def _table(stats: dict) -> list[str]:
    lines = []
    for n in stats["sizes"]:
        arms = [a for a in stats["finite_arms"] if stats["sigma"][a].get(n)]
        widths = sorted({w for a in arms for w, *_ in stats["sigma"][a][n]})
        lines += [f"### n = {n} training points", "", "| width | " + " | ".join(f"{a} σ_test | ±" for a in arms) + " |",
                  "|---|" + "---|---|" * len(arms)]
        for w in widths:
            cells = []
            for a in arms:
                row = next((r for r in stats["sigma"][a][n] if r[0] == w), None)
                cells += [_fmt(row[1]), _fmt(row[2], 2)] if row else ["—", "—"]
            lines.append(f"| {w} | " + " | ".join(cells) + " |")
        for a in stats["limit_arms"]:
            if n in stats["limits"][a]:
                s, e = stats["limits"][a][n]
                lines.append(f"| ∞: {a} | {_fmt(s)} | {_fmt(e, 2)} |" + " |" * (2 * len(arms) - 2))
        lines.append("")
    return lines


def _finish_loglog(fig, ax, xlabel: str, ylabel: str, title: str, legend_size: int, out_dir: Path, name: str,
                   made: list[str]) -> None:
    """Log–log axes, labels, grid and legend; save as PNG and PDF, close, record the name."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend_size)
    _save(fig, out_dir, name)
    pyplot().close(fig)
    made.append(name)


def make_study_figures(stats: dict, out_dir: Path) -> list[str]:
    """Write the STUDY_FIGURES the data allow (PNG and PDF); return their names."""
    plt = pyplot()
    made = []
    sizes = stats["sizes"]
    fig, axes = plt.subplots(1, max(1, len(sizes)), figsize=(5.5 * max(1, len(sizes)), 4.2), squeeze=False)
    for ax, n in zip(axes[0], sizes):
        for i, arm in enumerate(stats["finite_arms"]):
            rows = stats["sigma"][arm].get(n, [])
            if rows:
                ax.errorbar([w * (1 + 0.04 * i) for w, *_ in rows], [m for _, m, *_ in rows],
                            yerr=[e if math.isfinite(e) else 0 for _, _, e, _ in rows], marker="o", color=f"C{i}",
                            label=arm)
        for j, arm in enumerate(stats["limit_arms"]):
            if n in stats["limits"][arm]:
                ax.axhline(stats["limits"][arm][n][0], color=f"C{(len(stats['finite_arms']) + j) % 10}", ls=":",
                           label=f"{arm} (N = ∞)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width N")
        ax.set_ylabel("σ_test")
        ax.set_title(f"σ_test vs width, n = {n}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, out_dir, STUDY_FIGURES[0])
    plt.close(fig)
    made.append(STUDY_FIGURES[0])
    if len(sizes) > 1:
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        for i, arm in enumerate(stats["finite_arms"] + stats["limit_arms"]):
            pts = []
            for n in sizes:
                if arm in stats["sigma"]:
                    row = _widest(stats["sigma"][arm].get(n, []))
                    if row:
                        pts.append((n, row[1], row[2]))
                elif n in stats["limits"][arm]:
                    pts.append((n, *stats["limits"][arm][n]))
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] if math.isfinite(p[2]) else 0
                                                                             for p in pts],
                            marker="o", ls="-" if arm in stats["sigma"] else ":", color=f"C{i % 10}", label=arm)
        _finish_loglog(fig, ax, "training points n", "σ_test", "σ_test vs data (finite arms at their widest width)",
                       7, out_dir,
                       STUDY_FIGURES[1], made)
    if stats["kernel_change"]:
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        for i, e in enumerate(stats["kernel_change"]):
            rows = e["rows"]
            ax.errorbar([w for w, *_ in rows], [m for _, m, *_ in rows],
                        yerr=[s if math.isfinite(s) else 0 for _, _, s, _ in rows], marker="o", color=f"C{i % 10}",
                        label=f"{e['arm']} lr {e['lr']:g} n {e['n_train']}: N^{_fmt(e['slope'], 2)}")
        _finish_loglog(fig, ax, "width N", "‖Θ_T − Θ_0‖/‖Θ_0‖", "relative metric-NTK change during training",
                       6, out_dir,
                       STUDY_FIGURES[2], made)
    spectrum = stats["spectrum"]
    if spectrum:
        best = stats["best"]
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        for key, color in (("initial", "C0"), ("final", "C3")):
            evals = [v for v in spectrum[key]["eigenvalues"] if v > 0]
            if evals:
                ax.hist([math.log10(v) for v in evals], bins=30, alpha=0.5, color=color,
                        label=f"{key} (step {spectrum[key]['step']})")
        ax.set_xlabel("log10 eigenvalue of Θ (probe points)")
        ax.set_ylabel("count")
        ax.set_title(f"metric-NTK spectrum: {best['arm']}, N = {best['width']}")
        ax.legend(fontsize=8)
        _save(fig, out_dir, STUDY_FIGURES[3])
        plt.close(fig)
        made.append(STUDY_FIGURES[3])
    if stats["alignment"]:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for i, (arm, rows) in enumerate(stats["alignment"].items()):
            steps = [r[0] for r in rows]
            left.plot(steps, [r[1] for r in rows], marker=".", color=f"C{i}", label=arm)
            right.plot(steps, [r[2] for r in rows], marker=".", color=f"C{i}", label=arm)
        left.set_xlabel("step")
        left.set_ylabel("yᵀΘy / (‖Θ‖ ‖y‖²)")
        left.set_title("kernel–target alignment (y = −∂L/∂g)")
        right.set_xlabel("step")
        right.set_ylabel("‖Θ_t − Θ_0‖/‖Θ_0‖")
        right.set_title("kernel change")
        for ax in (left, right):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        _save(fig, out_dir, STUDY_FIGURES[4])
        plt.close(fig)
        made.append(STUDY_FIGURES[4])
    if stats["ricci"]:
        fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4.2), squeeze=False)
        for ax, n in zip(axes[0], sizes):
            for i, arm in enumerate(stats["finite_arms"]):
                rows = stats["ricci"].get(arm, {}).get(n, [])
                if rows:
                    ax.errorbar([w * (1 + 0.04 * i) for w, *_ in rows], [m for _, m, *_ in rows],
                                yerr=[e for _, _, e, _ in rows], marker="o", color=f"C{i}", label=arm)
            if math.isfinite(stats["ricci_fs"]):
                ax.axhline(stats["ricci_fs"], color="k", ls=":", label="Fubini–Study")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set(xlabel="width N", ylabel="Ricci measure Vol^{1/n}⟨|R|⟩", title=f"Ricci measure vs width, n = {n}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        _save(fig, out_dir, STUDY_FIGURES[5])
        plt.close(fig)
        made.append(STUDY_FIGURES[5])
    return made


def _grid(records: list[dict]) -> list[str]:
    """What the sweep ran, and what its preset says it cut (``study.cuts``)."""
    done = [r for r in records if r.get("status") in ("completed", None)]
    lines = ["## What was run", ""]
    for arm in dict.fromkeys(r["arm"] for r in done):
        runs = [r for r in done if r["arm"] == arm]
        widths = sorted({r["width"] for r in runs if r["width"] is not None and r.get("kind") in FINITE_KINDS})
        seeds = sorted({r["seed"] for r in runs if r["seed"] is not None})
        sizes = sorted({r["n_train"] for r in runs if r.get("n_train") is not None})
        lrs = sorted({r["lr"] for r in runs if math.isfinite(r["lr"])})
        steps = sorted({r["steps"] for r in runs if r.get("steps") is not None})
        lines.append(f"- {arm}: {len(runs)} runs; widths {widths or '∞'}, seeds {seeds}, n_train {sizes}, "
                     f"lr {[f'{x:g}' for x in lrs]}, steps {steps}.")
    diverged = [r for r in records if r.get("status") == "diverged"]
    if diverged:
        lines.append("- diverged (left out of the tables): "
                     + ", ".join(f"{r['arm']} N={r['width']} s{r['seed']} n{r.get('n_train')} lr {r['lr']:g}"
                                 for r in diverged) + ".")
    cuts = next((((r.get("config") or {}).get("study") or {}).get("cuts") for r in records
                 if ((r.get("config") or {}).get("study") or {}).get("cuts")), None)
    if cuts:
        lines += ["", "Cut to fit the budget (the preset's ``study.cuts``):"] + [f"- {c}" for c in cuts]
    return lines + [""]


def write_study_report(records: list[dict], sweep_dir: Path, out_dir: Path, ensemble: bool = True) -> Path:
    """report.md, report.json and the figures of a study; returns report.md's path."""
    stats = summarize_study(records)
    stats["ensemble"], stats["ensemble_note"] = [], None
    if ensemble:
        from nnflow.report.ensemble import ensemble_rows

        try:
            stats["ensemble"] = ensemble_rows(records, arms=ENSEMBLE_ARMS)
        except ValueError as err:
            stats["ensemble_note"] = str(err)
    stats["verdict"] = verdict(stats)
    figures = make_study_figures(stats, out_dir)
    lines = [f"# Finite versus infinite: {sweep_dir.name}", "", f"{len(records)} runs read from `{sweep_dir}`.", "",
             "## Verdict (computed from the tables below)", ""] + [f"- {v}" for v in stats["verdict"]] + [""]
    lines += ["## σ_test by width (mean over seeds ± its standard error; ∞: the limit flows)", ""] + _table(stats)
    lines += ["## Relative kernel change during training", "",
              "| arm | lr | n_train | width | ‖Θ_T − Θ_0‖/‖Θ_0‖ | ± |", "|---|---|---|---|---|---|"]
    for e in stats["kernel_change"]:
        for w, m, s, _ in e["rows"]:
            lines.append(f"| {e['arm']} | {e['lr']:g} | {e['n_train']} | {w} | {_fmt(m, 3)} | {_fmt(s, 2)} |")
    lines += [""] + [f"- {e['arm']} (lr {e['lr']:g}, n {e['n_train']}): N^{_fmt(e['slope'], 3)}{_pm(e['slope_err'])}"
                     for e in stats["kernel_change"]] + [""]
    if stats["ricci"]:
        lines += ["## Ricci measure of the learned metrics (the second axis; mean over seeds ± its standard error)",
                  "", f"Fubini–Study on the same points: {_fmt(stats['ricci_fs'], 3)}. The limit flows have no "
                  "potential.", "",
                  "| arm | n_train | width | Ricci measure | ± | runs |", "|---|---|---|---|---|---|"]
        for arm, by_n in stats["ricci"].items():
            lines += [f"| {arm} | {n} | {w} | {_fmt(m, 3)} | {_fmt(e, 2)} | {c} |"
                      for n, rows in by_n.items() for w, m, e, c in rows]
        lines.append("")
    if stats["lr_axis"]:
        lines += ["## Learning-rate axis (lazy; the frozen NTK flow at the same step and NTK time)", "",
                  "| lr | width | σ_test | ± | frozen_ntk σ_test |", "|---|---|---|---|---|"]
        for e in stats["lr_axis"]:
            lines += [f"| {e['lr']:g} | {w} | {_fmt(m)} | {_fmt(s, 2)} | {_fmt(e['frozen_sigma'])} |"
                      for w, m, s, _ in e["sigma"]]
        lines.append("")
    lines += ["## Seed ensembles (the mean of the potentials over seeds)", ""]
    if stats["ensemble_note"]:
        lines += [f"No ensemble rows: {stats['ensemble_note']}", ""]
    elif stats["ensemble"]:
        lines += ["| arm | n_train | width | seeds | ensemble σ_test | ± | members' mean σ_test |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['arm']} | {r['n_train']} | {r['width']} | {r['n']} | {_fmt(r['sigma_test'])} "
                  f"| {_fmt(r['sigma_err'], 2)} | {_fmt(r['member_sigma'])} |" for r in stats["ensemble"]]
        lines.append("")
    if stats["spectrum"]:
        evals = {k: [v for v in stats["spectrum"][k]["eigenvalues"]] for k in ("initial", "final")}
        lines += ["## Metric-NTK spectrum of the best finite cell (probe points)", "",
                  f"Largest eigenvalue {_fmt(evals['initial'][0], 3)} at initialization, {_fmt(evals['final'][0], 3)} "
                  f"after training; trace {_fmt(sum(evals['initial']), 3)} → {_fmt(sum(evals['final']), 3)}.", ""]
    lines += _grid(records)
    lines += ["## Figures", ""] + [f"![{f}]({f}.png)" for f in figures] + [""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    (out_dir / "report.json").write_text(json.dumps(stats | {"study": True}, indent=2, default=str))
    return path
