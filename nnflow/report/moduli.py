"""The report of a moduli scan: one model trained on each member of the Dwork family
Σ z_i^5 − 5ψ Π z_i = 0 (experiment=dwork_scan: ``manifold.psi`` over a list), from the runs' files.

``moduli_rows`` groups the runs by ψ: σ of the Fubini–Study metric on each run's test points
(summary.json ``sigma_fs``, where training starts) and the trained σ_test, each a mean over seeds
with its standard error (one run: its own Monte Carlo error), and their ratio.
``write_moduli_report`` writes report.md, report.json and the figure ``moduli_scan`` (PNG, PDF):
σ_FS and σ_test against |ψ| on a log axis, with the conifold |ψ| = 1 (ψ^5 = 1, singular: sampling
refuses it) marked. No Weights & Biases needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nnflow.report.study import mean_se
from nnflow.report.sweep import _fmt, _save, pyplot

FIGURE = "moduli_scan"


def record_psi(record: dict) -> complex | None:
    """ψ of a run (its config's manifold.psi) for a Dwork-family run, else None."""
    manifold = (record.get("config") or {}).get("manifold") or {}
    if manifold.get("name") != "dwork_quintic" or manifold.get("psi") is None:
        return None
    return complex(str(manifold["psi"]).replace(" ", ""))


def is_moduli_scan(records: list[dict]) -> bool:
    """Whether the runs are Dwork-family runs at two or more values of ψ."""
    psis = [record_psi(r) for r in records]
    return all(p is not None for p in psis) and len(set(psis)) > 1


def _mean_se(values: list[float], errors: list[float]) -> tuple[float, float]:
    """Mean over seeds and its standard error (study.mean_se); one value keeps its own error."""
    if len(values) == 1:
        return values[0], errors[0]
    return mean_se(values)


def moduli_rows(records: list[dict]) -> list[dict]:
    """One row per ψ (ascending |ψ|, then arg ψ): psi (str), abs_psi, conifold_distance |ψ^5 − 1|,
    runs, sigma_fs, sigma_fs_err, sigma_test, sigma_test_err and reduction σ_FS/σ_test."""
    groups: dict[complex, list[dict]] = {}
    for r in records:
        if r.get("status") in ("completed", None) and math.isfinite(r["sigma_test"]):
            groups.setdefault(record_psi(r), []).append(r)
    rows = []
    for psi in sorted(groups, key=lambda p: (abs(p), math.atan2(p.imag, p.real))):
        runs = groups[psi]
        fs = [r for r in runs if math.isfinite(r.get("sigma_fs", math.nan))]
        s_fs, e_fs = _mean_se([r["sigma_fs"] for r in fs], [r["sigma_fs_err"] for r in fs]) if fs else (math.nan,) * 2
        s, e = _mean_se([r["sigma_test"] for r in runs], [r["sigma_test_err"] for r in runs])
        rows.append({"psi": f"{psi.real:g}" if psi.imag == 0 else str(psi), "abs_psi": abs(psi),
                     "conifold_distance": abs(psi**5 - 1), "runs": len(runs), "sigma_fs": s_fs, "sigma_fs_err": e_fs,
                     "sigma_test": s, "sigma_test_err": e, "reduction": s_fs / s if s > 0 else math.nan})
    return rows


def moduli_findings(rows: list[dict]) -> list[str]:
    """Sentences computed from the rows: where σ_FS and the trained σ are largest, and the range of
    the reduction."""
    if not rows:
        return ["No completed runs."]
    worst_fs = max(rows, key=lambda r: r["sigma_fs"] if math.isfinite(r["sigma_fs"]) else -1)
    worst = max(rows, key=lambda r: r["sigma_test"])
    red = [r["reduction"] for r in rows if math.isfinite(r["reduction"])]
    out = [f"σ_FS is largest at ψ = {worst_fs['psi']} ({_fmt(worst_fs['sigma_fs'])}, |ψ^5 − 1| = "
           f"{_fmt(worst_fs['conifold_distance'], 3)}); the trained σ_test is largest at ψ = {worst['psi']} "
           f"({_fmt(worst['sigma_test'])} ± {_fmt(worst['sigma_test_err'], 2)})."]
    if red:
        out.append(f"Training lowers σ by {min(red):.3g}× to {max(red):.3g}× from σ_FS across the scan.")
    return out


def write_moduli_report(records: list[dict], sweep_dir: Path, out_dir: Path) -> Path:
    """report.md, report.json ({"moduli_scan": True, "rows", "findings"}) and the figure; returns report.md."""
    rows = moduli_rows(records)
    findings = moduli_findings(rows)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["abs_psi"] for r in rows]
    ax.errorbar(xs, [r["sigma_fs"] for r in rows], yerr=[r["sigma_fs_err"] for r in rows], marker="s",
                label="Fubini–Study")
    ax.errorbar(xs, [r["sigma_test"] for r in rows], yerr=[r["sigma_test_err"] for r in rows], marker="o",
                label="trained")
    ax.axvline(1.0, color="k", ls=":", label="conifold ψ⁵ = 1")
    ax.set_yscale("log")
    ax.set_xlabel("|ψ|")
    ax.set_ylabel("σ on test points")
    ax.set_title("Dwork family Σ z⁵ − 5ψ Π z")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    _save(fig, out_dir, FIGURE)
    plt.close(fig)
    lines = [f"# Moduli scan of the Dwork family: {sweep_dir.name}", "",
             f"{len(records)} runs read from `{sweep_dir}`.", "", "## Findings (from the numbers below)", ""]
    lines += [f"- {f}" for f in findings] + [""]
    lines += ["## σ against ψ", "", "σ_FS: the Fubini–Study metric on each run's test points (where training "
              "starts); σ_test: the trained metric on the same points. Mean over seeds ± standard error "
              "(one run: its Monte Carlo error).", "",
              "| ψ | abs(ψ^5 − 1) | runs | σ_FS | ± | σ_test | ± | σ_FS/σ_test |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['psi']} | {_fmt(r['conifold_distance'], 3)} | {r['runs']} | {_fmt(r['sigma_fs'])} "
                     f"| {_fmt(r['sigma_fs_err'], 2)} | {_fmt(r['sigma_test'])} | {_fmt(r['sigma_test_err'], 2)} "
                     f"| {_fmt(r['reduction'], 3)} |")
    lines += ["", "## Figures", "", f"![{FIGURE}]({FIGURE}.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    (out_dir / "report.json").write_text(json.dumps({"moduli_scan": True, "rows": rows, "findings": findings},
                                                    indent=2))
    return path
