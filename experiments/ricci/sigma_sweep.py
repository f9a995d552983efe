"""σ → 0 study of the generalized Ricci flow on T² and T³ (the ``nnflow-ricci`` app, larger sweeps).

    .venv/bin/python experiments/ricci/sigma_sweep.py            # ≈ 12 min on one CPU thread
    .venv/bin/python experiments/ricci/sigma_sweep.py --quick    # ≈ 1 min smoke version (outputs/)
    .venv/bin/python experiments/ricci/sigma_sweep.py --readme-only   # README + figures from results/

Runs four studies through ``nnflow.torus.study.run_study`` (config conf/ricci, with overrides below),
writes each study's summary.json, metrics.csv and figures under experiments/ricci/results/<study>/,
two extra figures (error against width, mode rates against |k|) and experiments/ricci/README.md
with the measured tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nnflow.cli import CONFIG_DIR
from nnflow.report.ricci import plot_all, write_outputs
from nnflow.torus.study import run_study, sigma_fits, width_fits

HERE = Path(__file__).resolve().parent
SIGMAS_2D = [round(0.16 * 2 ** (-j / 2), 4) for j in range(9)]  # 0.16 … 0.01

STUDIES = {
    "t2_hamilton": [
        "name=t2_hamilton", "n=2", "grid=32", "t_end=0.02", "field=hamilton",
        "kernel.kinds=[gauss,cosnet,gaussnet]", f"kernel.sigmas={SIGMAS_2D}",
        "network.kind=cosnet", "network.widths=[256,1024,4096,16384]", "network.sigmas=[0.16,0.08,0.04]",
        "network.linearized=true", "network.linearized_max_width=4096",
        "modes.ks=[[1,0],[1,1],[2,0],[2,1],[3,0],[3,2],[4,0]]", "modes.sigma=0.05", "modes.widths=[1024,4096]",
    ],
    "t2_gaussnet_widths": [
        "name=t2_gaussnet_widths", "n=2", "grid=32", "t_end=0.02", "field=hamilton",
        "kernel.kinds=[gaussnet]", "kernel.sigmas=[0.24,0.16]",
        "network.kind=gaussnet", "network.widths=[1024,4096]", "network.sigmas=[0.24,0.16]",
        "network.linearized=false", "modes.ks=[[1,0]]", "modes.widths=[]",
    ],
    "t2_perelman": [
        "name=t2_perelman", "n=2", "grid=32", "t_end=0.02", "field=perelman",
        "kernel.kinds=[gauss,cosnet]", f"kernel.sigmas={SIGMAS_2D[:7]}",
        "network.kind=cosnet", "network.widths=[1024]", "network.sigmas=[0.16,0.08]", "network.linearized=false",
        "modes.ks=[[1,0],[2,1],[3,0]]", "modes.sigma=0.05", "modes.widths=[]", "solver.max_steps=4000",
    ],
    "t3_hamilton": [
        "name=t3_hamilton", "n=3", "grid=12", "t_end=0.02", "field=hamilton",
        "kernel.kinds=[gauss,cosnet]", "kernel.sigmas=[0.24,0.16,0.12,0.09,0.06,0.045,0.03,0.02]",
        "network.kind=cosnet", "network.widths=[128,512,2048]", "network.sigmas=[0.24,0.12]",
        "network.linearized=true", "network.linearized_max_width=512",
        "modes.ks=[[1,0,0],[1,1,0],[1,1,1],[2,0,0],[2,1,0]]", "modes.sigma=0.05", "modes.widths=[]",
    ],
}

QUICK = {  # the same pipeline on tiny problems, to check the script itself
    "t2_hamilton": ["grid=12", "kernel.sigmas=[0.16,0.08]", "network.widths=[32,64]", "network.sigmas=[0.16]",
                    "modes.ks=[[1,0]]", "modes.widths=[32]"],
    "t2_gaussnet_widths": ["grid=12", "network.widths=[32,64]"],
    "t2_perelman": ["grid=12", "kernel.sigmas=[0.16,0.08]", "network.widths=[32]", "network.sigmas=[0.16]",
                    "modes.ks=[[1,0]]"],
    "t3_hamilton": ["grid=8", "kernel.sigmas=[0.24,0.12]", "network.widths=[32,64]", "network.sigmas=[0.24]",
                    "modes.ks=[[1,0,0]]"],
}


def read_rows(path: Path) -> list[dict]:
    """metrics.csv back into rows with numbers (as ``run`` returns them)."""
    import csv

    def num(v):
        if v in ("", "None"):
            return None
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return v

    with path.open() as fh:
        return [{k: num(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def compose_study(overrides: list[str]) -> dict:
    """conf/ricci with overrides, resolved to the plain dict ``run_study`` takes."""
    with initialize_config_dir(config_dir=str(Path(CONFIG_DIR) / "ricci"), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="config", overrides=overrides), resolve=True)


def refit(summary: dict) -> dict:
    """The summary with its fits recomputed by the library (summaries saved before the fits
    carried standard errors get them; the same rule and points as ``run_study``)."""
    fits = sigma_fits(summary["runs"], summary["primary_error"], summary["grid"])
    return {**summary, "fits": fits, "width_fits": width_fits(summary["runs"])}


def _rate(fit: dict, digits: int = 2) -> str:
    """'p ± e' for a fitted exponent (the ± only where the stderr is finite)."""
    err = fit.get("stderr", math.nan)
    return f"{fit['rate']:.{digits}f}" + (f" ± {err:.2g}" if math.isfinite(err) else "")


# ---------------------------------------------------------------------- figures
def plot_widths(summary: dict, path: Path) -> None:
    """|g_N(T) − g_∞(T)|/|Δg_ref| against N, one line per σ and route, with the N^{-1/2} guide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for route, style in (("finite", "o-"), ("linearized", "^:")):
        for sigma in sorted({r["sigma"] for r in summary["runs"] if r["route"] == route}):
            rs = sorted((r for r in summary["runs"] if r["route"] == route and r["sigma"] == sigma),
                        key=lambda r: r["width"])
            fit = summary["width_fits"].get(f"{route}_sigma{sigma:g}", {})
            ax.loglog([r["width"] for r in rs], [r["rel_error_vs_kernel"] for r in rs], style,
                      label=f"{route} σ={sigma:g}: N^{_rate(fit) if fit else 'nan'}")
    ws = torch.tensor([100.0, 20000.0])
    ax.loglog(ws, 2.0 * ws**-0.5, "k--", lw=0.8, label=r"$\propto N^{-1/2}$")
    ax.set_xlabel("width N (per component network)")
    ax.set_ylabel("|g_N(T) − g_∞(T)| / |Δg_Ricci|")
    ax.set_title(f"T^{summary['n']}: finite cos-nets vs their infinite-width kernel flow", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_mode_factors(summary: dict, path: Path) -> None:
    """Measured rate / local Ricci rate against |k|, with the kernels' K̂(k) (the prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    sigma = summary["modes"][0]["sigma"]
    kk = torch.linspace(0, 4.6, 100)
    ax.plot(kk, torch.exp(-2 * math.pi**2 * sigma**2 * kk**2), "k-", lw=0.8, label=f"exp(−2π²σ²|k|²), σ={sigma}")
    markers = {"gauss": "o", "cosnet": "s", "gaussnet": "D"}
    for route in sorted({(m["route"], m["kind"], m["width"]) for m in summary["modes"]}, key=str):
        ms = [m for m in summary["modes"] if (m["route"], m["kind"], m["width"]) == route]
        knorm = [math.sqrt(sum(v * v for v in m["k"])) for m in ms]
        ratio = [m["measured"] / m["local_rate"] for m in ms]
        label = f"{route[0]} {route[1]}" + (f" N={route[2]}" if route[2] else "")
        ax.plot(knorm, ratio, markers.get(route[1], "x") if route[0] == "kernel" else "x", mfc="none", label=label)
    ax.set_xlabel("|k|")
    ax.set_ylabel("measured rate / Ricci rate  (prediction: K̂(k))")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- tables
def _fmt(x, digits=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}e}" if abs(x) < 1e-2 or abs(x) >= 1e3 else f"{x:.{digits}f}"


def kernel_table(summary: dict, key: str) -> str:
    kinds = list(dict.fromkeys(r["kind"] for r in summary["runs"] if r["route"] == "kernel"))
    runs = {(r["kind"], r["sigma"]): r for r in summary["runs"] if r["route"] == "kernel"}
    sigmas = sorted({s for _, s in runs}, reverse=True)
    lines = ["| σ | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for s in sigmas:
        cells = []
        for kind in kinds:
            r = runs.get((kind, s))
            if r is None:
                cells.append("")
            elif r["failure"]:
                cells.append(f"fails at t={r['t_reached']:.4f}")
            else:
                cells.append(_fmt(r[key]))
        lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
    fits = sigma_fits(summary["runs"], key, summary["grid"])  # the study's rule: σ ≥ 1/M for net kernels
    cells = [f"**{_rate(fits[kind])}** (σ ≥ {fits[kind]['sigma_min']:.3g})" for kind in kinds]
    lines.append("| **fitted exponent** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def network_table(summary: dict, key: str) -> str:
    nets = [r for r in summary["runs"] if r["route"] != "kernel"]
    if not nets:
        return "(no network runs)"
    lines = [
        "| route | N | σ | σ_b | error vs Ricci | error vs N=∞ kernel flow | finite−linearized gap "
        "| rel. parameter change | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(nets, key=lambda r: (r["route"], r["width"], -r["sigma"])):
        lines.append(
            f"| {r['route']} | {r['width']} | {r['sigma']:g} | {r['sigma_b']:.2f} | {_fmt(r[key])} | "
            f"{_fmt(r.get('rel_error_vs_kernel'))} | {_fmt(r.get('rel_gap_to_finite'))} | "
            f"{_fmt(r.get('relative_parameter_change'))} | {r['seconds']:.1f} |"
        )
    fits = summary["fits"]
    lines.append("")
    by_sigma = [
        f"{k}: {_rate(v)}"
        for k, v in fits.items()
        if k not in ("gauss", "cosnet", "gaussnet") and math.isfinite(v["rate"])
    ]
    by_width = [f"{k}: {_rate(v)}" for k, v in summary["width_fits"].items() if math.isfinite(v["rate"])]
    if by_sigma:
        lines.append("Fitted exponents of the error against σ: " + ", ".join(by_sigma) + ".")
    if by_width:
        lines.append("Fitted exponents of |g_N − g_∞| against N: " + ", ".join(by_width) + ".")
    return "\n".join(lines)


def mode_table(summary: dict) -> str:
    routes = sorted({(m["route"], m["kind"], m["width"]) for m in summary["modes"]}, key=str)
    head = [f"{r[0]} {r[1]}" + (f" N={r[2]}" if r[2] else "") for r in routes]
    lines = [
        "| k | λ_Ricci | K̂ (gauss) | predicted (gauss) | " + " | ".join(f"measured: {h}" for h in head) + " |",
        "|---" * (4 + len(head)) + "|",
    ]
    seen = {}  # degenerate directions (n = 3): show the worst one
    for m in summary["modes"]:
        cell = seen.setdefault((tuple(m["k"]), round(m["local_rate"], 6)), {})
        key = (m["route"], m["kind"], m["width"])
        if key not in cell or m["rel_deviation"] > cell[key]["rel_deviation"]:
            cell[key] = m
    for (k, lam), by_route in seen.items():
        g = by_route.get(("kernel", "gauss", None))
        cells = []
        for r in routes:
            m = by_route.get(r)
            cells.append(
                "" if m is None else f"{m['measured']:.3f} (pred {m['predicted']:.3f}, Δ {m['rel_deviation']:.1e})"
            )
        lines.append(
            f"| {list(k)} | {lam:.3f} | {_fmt(g['multiplier'] if g else None, 4)} | "
            f"{_fmt(g['predicted'] if g else None)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def findings(results: dict) -> list[str]:
    """The headline numbers, computed from the summaries."""
    out = []
    t2, t3, per, gn = (results.get(k) for k in ("t2_hamilton", "t3_hamilton", "t2_perelman", "t2_gaussnet_widths"))
    all_modes = [m for s in results.values() for m in s["modes"]]
    kernel_dev = max((m["rel_deviation"] for m in all_modes if m["route"] == "kernel"), default=math.nan)
    if t2:
        fits = t2["fits"]
        k = {(r["kind"], r["sigma"]): r for r in t2["runs"] if r["route"] == "kernel"}
        s_min = min(s for _, s in k)
        out.append(
            f"- **Kernel flow → Ricci flow as σ → 0, error ∝ σ²** (T²): fitted exponents {_rate(fits['gauss'])}"
            f" (Gaussian), {_rate(fits['cosnet'])} (cos-net NTK), {_rate(fits['gaussnet'])} (gauss-net NTK);"
            f" relative error {k[('gauss', s_min)]['rel_error']:.1e} at σ = {s_min:g} (Gaussian)."
        )
    if t3:
        out.append(f"- Same in T³: Gaussian-kernel exponent {_rate(t3['fits']['gauss'])}.")
    out.append(
        f"- **Linear regime: measured mode rates = K̂(k)·λ_Ricci(k)** for every kernel, mode and field"
        f" (n = 2, 3; including Perelman's growing gauge mode): largest relative deviation {kernel_dev:.1e}"
        " (ε = 1e-4 amplitudes: the nonlinear correction to a mode's own rate is O(ε²); solver rtol 1e-8)."
    )
    if t2:
        nets = [r for r in t2["runs"] if r["route"] == "finite"]
        wf = [v["rate"] for key, v in t2["width_fits"].items() if key.startswith("finite") and math.isfinite(v["rate"])]
        s_small = min(r["sigma"] for r in nets)
        at = sorted((r for r in nets if r["sigma"] == s_small), key=lambda r: r["width"])
        kern = [r for r in t2["runs"] if r["route"] == "kernel" and r["kind"] == "cosnet" and r["sigma"] == s_small]
        exps = {r["width"]: t2["fits"][f"finite_cosnet_N{r['width']}"]["rate"] for r in at}
        out.append(
            f"- **Finite cos-nets approach their kernel flow like N^(−1/2)**: |g_N − g_∞|/|Δg| ∝ N^p with p in"
            f" [{min(wf):.2f}, {max(wf):.2f}]. At σ = {s_small:g} the error against Ricci flow falls from"
            f" {at[0]['rel_error']:.3f} (N = {at[0]['width']}) to {at[-1]['rel_error']:.3f} (N = {at[-1]['width']}),"
            + (f" the kernel flow's being {kern[0]['rel_error']:.3f};" if kern else "")
            + " so the finite-width σ-exponent grows with N ("
            + ", ".join(f"N={w}: {e:.2f}" for w, e in exps.items())
            + ") toward the kernel's 2."
        )
        lin = [r for r in t2["runs"] if r["route"] == "linearized" and "rel_gap_to_finite" in r]
        change = max(r["relative_parameter_change"] for r in t2["runs"] if r["route"] == "finite")
        if lin:
            out.append(
                f"- **Linearized = finite (lazy regime)**: |g_finite − g_lin|/|Δg| ≤"
                f" {max(r['rel_gap_to_finite'] for r in lin):.1e}; parameters move by ≤ {change:.1e} of their norm."
                " The finite-width error is the random initial NTK, not its evolution."
            )
        fm = [m["rel_deviation"] for m in t2["modes"] if m["route"] == "finite"]
        if fm:
            out.append(
                f"- Finite-net mode rates deviate from K̂λ by {min(fm):.1e}–{max(fm):.1e} at N = 1024–4096"
                " (the empirical NTK is not stationary; one seed)."
            )
    if gn and t2:
        g = {(r["width"], r["sigma"]): r for r in gn["runs"] if r["route"] == "finite"}
        c = {(r["width"], r["sigma"]): r for r in t2["runs"] if r["route"] == "finite"}
        common = sorted(set(g) & set(c))
        if common:
            w, sg = common[-1]
            out.append(
                f"- Gauss-nets converge far more slowly (log-normal features): at N = {w}, σ = {sg:g},"
                f" |g_N − g_∞|/|Δg| = {g[(w, sg)]['rel_error_vs_kernel']:.3f} against the cos-net's"
                f" {c[(w, sg)]['rel_error_vs_kernel']:.3f}."
            )
    if per:
        kr = [r for r in per["runs"] if r["route"] == "kernel" and r["kind"] == "gauss"]
        ok = [r for r in kr if r["failure"] is None]
        bad = [r for r in kr if r["failure"] is not None]
        out.append(
            "- **Perelman's F-gradient (measure fixed)** matches Ricci flow only up to diffeomorphism: its"
            f" invariants converge (error {ok[0]['invariant_error']:.2f} → {ok[-1]['invariant_error']:.2f} for"
            f" σ = {ok[0]['sigma']:g} → {ok[-1]['sigma']:g}) while the metric drifts"
            f" (relative error {ok[-1]['rel_error']:.2f} at σ = {ok[-1]['sigma']:g});"
            + (
                f" for σ ≤ {max(r['sigma'] for r in bad):g} the flow breaks down before T (its longitudinal"
                " gauge mode is backward-parabolic, growth rate up to 2/(eσ²))."
                if bad
                else ""
            )
        )
    return out


def write_readme(results: dict, seconds: dict, command: str) -> None:
    t2, t3, per, gn = (results.get(k) for k in ("t2_hamilton", "t3_hamilton", "t2_perelman", "t2_gaussnet_widths"))
    parts = [
        "# Generalized Ricci flow from local metric-NTKs (σ → 0 study)",
        "",
        "With a frozen, non-mixing metric-NTK the network metric flow on the flat torus T^n is",
        "∂_t g = K_σ ∗ V(g). For Hamilton's field V = −2Ric it is Ricci flow at σ = 0 and a",
        "*generalized* Ricci flow (non-local at scale σ) for σ > 0; for Perelman's F-gradient",
        "V = −2(Ric + ∇²φ) (measure e^{−φ}dV fixed) it is Ricci flow up to diffeomorphism.",
        "Library: `nnflow/torus/` (`geometry.py`, `networks.py`, `reference.py`, `kernel_flow.py`,",
        "`study.py`), files and figures `nnflow/report/ricci.py`; app: `nnflow-ricci` (conf/ricci).",
        "",
        "## Findings",
        "",
        *findings(results),
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
        "Compute time on this machine (one CPU thread of a shared 2-core box; plotting excluded): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
        + f"; total {sum(seconds.values()) / 60:.1f} min.",
        "Outputs: `results/<study>/` (summary.json, metrics.csv, figures).",
        "",
        "## Setup",
        "",
        "- Initial metric g0 = δ + Σ_k [A_k cos 2πk·θ + B_k sin 2πk·θ], all k with |k_i| ≤ 1, random",
        "  symmetric A_k, B_k scaled so that Σ‖A_k‖ + ‖B_k‖ = 0.3 (seed 0); flow time T = 0.02.",
        "- Reference: ∂_t g = −2Ric(g), Fourier pseudo-spectral on the grid, Dormand–Prince 5(4),",
        "  rtol 1e-8, in its own gauge (no DeTurck term). In n = 2 it is checked against the conformal",
        "  reduction ∂_t w = e^{−2w}(Δ_{g0}w − R0/2) (independent, strictly parabolic).",
        '- Error: ‖g_flow(T) − g_Ricci(T)‖ / ‖g_Ricci(T) − g0‖ with ‖h‖² = ∫|h|_F² dθ ("rel error").',
        "  For Perelman's field the metrics can only agree up to diffeomorphism, so the error is the",
        "  largest relative difference of the diffeomorphism invariants ∫R²dV, ∫|Ric|²dV, ∫|∇R|²dV.",
        "- Fitted exponents: least squares in log-log space (`nnflow.fits.power_law_fit`), p ± the",
        "  standard error of the slope from the residuals (no ± with two points).",
        "- Kernels (unit mass, width σ in θ, torus period 1): `gauss` = periodic Gaussian, multiplier",
        "  exp(−2π²σ²|k|²); `cosnet`/`gaussnet` = the exact infinite-width NTK of the product cos-/gauss-net",
        "  on the periodic features (cos 2πθ, sin 2πθ), σ_b = √(2n)/(2πσ), sampled on the grid.",
        "- Finite networks: one product cos-net per metric component, NTK parameterization, σ_a = 1,",
        "  g = g0 + (f_w − f_w⁰), trained by the field with η = 1/(Σ Θ̄ M^{−n}); the linearized model",
        "  replaces f_w by its first-order Taylor polynomial at w⁰.",
        "",
    ]
    if t2:
        ref = t2["reference"]
        parts += [
            "## T², Hamilton's field (32² grid)",
            "",
            f"Reference: {ref['n_steps']} steps; ‖Δg_Ricci‖ = {ref['change']:.4f}; tensor solver vs conformal",
            f"reduction at T: {ref['conformal_check']:.1e}.",
            "",
            "### Kernel flows: relative error at T against Ricci flow",
            "",
            kernel_table(t2, "rel_error"),
            "",
            "![error vs sigma](results/t2_hamilton/error_vs_sigma.png)",
            "",
            "The Gaussian kernel's error is ∝ σ² over the whole range (its multiplier is",
            "1 − 2π²σ²|k|² + O(σ⁴)). The network kernels follow it while σ is at least a grid spacing",
            "(1/32); below that the sampled kernel is a discrete δ and the error drops faster.",
            "",
            "### Finite cos-nets of growing width and their linearized models",
            "",
            network_table(t2, "rel_error"),
            "",
            "![error vs width](results/t2_hamilton/error_vs_width.png)",
            "",
            "### Linear regime: mode rates, measured against K̂(k)·λ_Ricci(k)",
            "",
            "Single modes g0 = δ + 1e-4·E cos 2πk·θ along the decaying eigen-direction E (λ = −|2πk|²),",
            f'kernel width σ = {t2["modes"][0]["sigma"]}; "pred" uses each kernel\'s own multiplier.',
            "",
            mode_table(t2),
            "",
            "![mode factors](results/t2_hamilton/mode_factors.png)",
            "",
        ]
    if gn:
        parts += [
            "### Finite gauss-nets",
            "",
            network_table(gn, "rel_error"),
            "",
            "The gauss-net's features e^{b·p} are log-normal: the relative fluctuation of its empirical",
            "NTK grows like e^{σ_b²/2}/√N (σ_b = 1.3 at σ = 0.24, 2.0 at σ = 0.16), so at equal width it",
            "stays several times farther from its kernel flow than the cos-net (compare the cos-net table",
            "at σ = 0.16), and at the σ of the cos-net study (σ_b ≥ 4) no feasible width approaches it.",
            "",
        ]
    if per:
        parts += [
            "## T², Perelman's field (fixed measure)",
            "",
            "Invariant error at T (the gauge-independent comparison with Ricci flow):",
            "",
            kernel_table(per, "invariant_error"),
            "",
            "Metric (gauge-dependent) relative error at T, for contrast:",
            "",
            kernel_table(per, "rel_error"),
            "",
            "Finite cos-nets (invariant error; finite widths add high-frequency curvature noise):",
            "",
            network_table(per, "invariant_error"),
            "",
            "Linear regime, both non-gauge-neutral directions: the transverse mode (λ = −|2πk|²) and the",
            "longitudinal gauge mode q qᵀ, which *grows* at λ = +|2πk|²:",
            "",
            mode_table(per),
            "",
            "![perelman error vs sigma](results/t2_perelman/error_vs_sigma.png)",
            "",
            "Reading: the metric itself does not converge to Ricci flow (it drifts along the",
            "diffeomorphisms generated by ∇φ, and more so as σ shrinks); the invariants do, ∝ σ², down to",
            "σ ≈ 0.06. Below that the longitudinal gauge mode, growing at up to max_q |q|²K̂(q) = 2/(eσ²),",
            "takes over: the invariant error stalls at σ = 0.04 and for σ ≤ 0.028 the flow breaks down",
            "(step size underflow) before T = 0.02. The fixed-measure F-gradient flow is backward-parabolic",
            "in that direction (Perelman evolves φ backward for this reason); the kernel bounds the growth",
            "exponent over the run by T·2/(eσ²) = 4.6 at σ = 0.057 (converging), 9.2 at σ = 0.04 (stalls),",
            "18 at σ = 0.028 (breaks down).",
            "",
        ]
    if t3:
        ref = t3["reference"]
        parts += [
            "## T³, Hamilton's field (12³ grid)",
            "",
            f"Reference: {ref['n_steps']} steps; ‖Δg_Ricci‖ = {ref['change']:.4f}.",
            "",
            kernel_table(t3, "rel_error"),
            "",
            network_table(t3, "rel_error"),
            "",
            mode_table(t3),
            "",
            "![t3 error vs sigma](results/t3_hamilton/error_vs_sigma.png)",
            "",
            "![t3 error vs width](results/t3_hamilton/error_vs_width.png)",
            "",
        ]
    (HERE / "README.md").write_text("\n".join(parts))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny problems (checks the script, ≈ 1 min)")
    parser.add_argument("--only", nargs="*", choices=sorted(STUDIES), help="run only these studies")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results directory (default: experiments/ricci/results; with --quick: "
        "outputs/ricci/sigma_sweep_quick, so a smoke run never overwrites the study)",
    )
    parser.add_argument(
        "--readme-only", action="store_true", help="rebuild README.md from the saved results/<study>/summary.json files"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path("outputs/ricci/sigma_sweep_quick") if args.quick else HERE / "results"
    if args.readme_only:
        results = {name: refit(json.loads((args.out / name / "summary.json").read_text())) for name in STUDIES}
        for name, summary in results.items():
            plot_all(args.out / name, summary, read_rows(args.out / name / "metrics.csv"), None)
            if any(r["route"] != "kernel" for r in summary["runs"]):
                plot_widths(summary, args.out / name / "error_vs_width.png")
            if summary["modes"]:
                plot_mode_factors(summary, args.out / name / "mode_factors.png")
        seconds = {name: s["seconds"] for name, s in results.items()}
        write_readme(results, seconds, ".venv/bin/python experiments/ricci/sigma_sweep.py")
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[%(asctime)s] %(message)s")
    torch.set_num_threads(1)
    results, seconds = {}, {}
    for name, overrides in STUDIES.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        cfg = compose_study(overrides + (QUICK[name] if args.quick else []))
        print(f"[sigma_sweep] {name} …", file=sys.stderr, flush=True)
        summary, rows, frames = run_study(cfg)
        out = args.out / name
        write_outputs(out, summary, rows, frames, plots=True)
        if any(r["route"] != "kernel" for r in summary["runs"]):
            plot_widths(summary, out / "error_vs_width.png")
        if summary["modes"]:
            plot_mode_factors(summary, out / "mode_factors.png")
        results[name] = summary
        seconds[name] = time.perf_counter() - start
        print(f"[sigma_sweep] {name}: {seconds[name]:.0f} s", file=sys.stderr, flush=True)
    command = ".venv/bin/python experiments/ricci/sigma_sweep.py" + (" --quick" if args.quick else "")
    if not args.quick and not args.only:
        write_readme(results, {k: v["seconds"] for k, v in results.items()}, command)
    print(
        json.dumps(
            {
                k: {
                    "fits": {f: v["rate"] for f, v in s["fits"].items()},
                    "fits_stderr": {f: v["stderr"] for f, v in s["fits"].items()},
                    "seconds": seconds[k],
                }
                for k, s in results.items()
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
