"""nnflow-ricci: generalized Ricci flows on T^n from local metric-NTKs, against Ricci flow.

Runs the reference Ricci flow, the frozen-kernel flows of width σ, finite per-component
networks and their linearized models (``nnflow.flows.ricci_kernel``), and the linear-regime
mode rates; writes summary.json, metrics.csv and PNG plots to the run directory and prints
one JSON object as the last line of stdout.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from nnflow.cli import CONFIG_DIR, check_positive, run_dir

log = logging.getLogger("nnflow")

ERROR_INVARIANTS = ("R2", "ric2", "dR2")


# ---------------------------------------------------------------------- validation
def _check_int(cfg: DictConfig, key: str, minimum: int = 1) -> None:
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"config value {key}={value!r} must be an integer ≥ {minimum}")


def _check_list(cfg: DictConfig, key: str, positive_int: bool = False, allow_empty: bool = True) -> None:
    values = OmegaConf.select(cfg, key)
    values = list(values) if values is not None else None
    if values is None or (not values and not allow_empty):
        raise ValueError(f"config value {key}={values!r} must be a non-empty list")
    for v in values:
        ok = isinstance(v, int) if positive_int else isinstance(v, (int, float))
        if not ok or isinstance(v, bool) or v <= 0:
            kind = "positive integers" if positive_int else "positive numbers"
            raise ValueError(f"config value {key}={values!r} must be a list of {kind}")


def validate(cfg: DictConfig) -> None:
    """Raise ValueError naming the first bad config value."""
    from nnflow.flows.ricci_kernel import FIELDS, KERNELS

    _check_int(cfg, "n", 2)
    _check_int(cfg, "grid", 8)
    _check_int(cfg, "n_frames", 2)
    _check_int(cfg, "threads", 1)
    _check_int(cfg, "initial.max_mode", 1)
    _check_int(cfg, "solver.max_steps", 1)
    check_positive(cfg, "t_end", "initial.amplitude", "modes.sigma", "modes.amplitude", "network.sigma_a",
                   "network.alpha", "solver.rtol", "solver.atol", "solver.net_rtol", "solver.net_atol")
    if not cfg.initial.amplitude < 1:
        raise ValueError(f"config value initial.amplitude={cfg.initial.amplitude!r} must be < 1 (g0 > 0)")
    if not cfg.modes.amplitude <= 0.01:
        raise ValueError(f"config value modes.amplitude={cfg.modes.amplitude!r} must be ≤ 0.01 (linear regime)")
    if cfg.field not in FIELDS:
        raise ValueError(f"config value field={cfg.field!r} must be one of {tuple(FIELDS)}")
    if not isinstance(cfg.seed, int):
        raise ValueError(f"config value seed={cfg.seed!r} must be an integer")
    for kind in cfg.kernel.kinds:
        if kind not in KERNELS:
            raise ValueError(f"config value kernel.kinds={list(cfg.kernel.kinds)!r}: {kind!r} is not one of {KERNELS}")
    if cfg.network.kind not in ("cosnet", "gaussnet"):
        raise ValueError(f"config value network.kind={cfg.network.kind!r} must be 'cosnet' or 'gaussnet'")
    _check_list(cfg, "kernel.sigmas")
    _check_list(cfg, "network.sigmas")
    _check_list(cfg, "network.widths", positive_int=True)
    _check_list(cfg, "modes.widths", positive_int=True)
    if not cfg.network.sigma_c >= 0:
        raise ValueError(f"config value network.sigma_c={cfg.network.sigma_c!r} must be ≥ 0")
    for k in cfg.modes.ks:
        k = list(k)
        if len(k) != cfg.n or not all(isinstance(v, int) for v in k) or not any(k):
            raise ValueError(f"config value modes.ks contains {k!r}: each mode must be {cfg.n} integers, not all 0")
        if max(abs(v) for v in k) >= cfg.grid // 2:
            raise ValueError(f"config value modes.ks contains {k!r}: |k_i| must be < grid/2 = {cfg.grid // 2}")


# ---------------------------------------------------------------------- measures
def _errors(grid, metrics, ref_metrics, ref_invariants, change):
    """Per-frame metric distance, relative distance and invariant error against the reference."""
    from nnflow.flows.ricci_reference import metric_distance
    from nnflow.geometry.torus import curvature_invariants

    out = []
    for i, g in enumerate(metrics):
        err = metric_distance(grid, g, ref_metrics[i])
        try:
            inv = curvature_invariants(grid, g)
            inv_err = max(abs(inv[k] - ref_invariants[i][k]) / abs(ref_invariants[i][k]) for k in ERROR_INVARIANTS)
        except ValueError:  # not positive definite: the flow has left the space of metrics
            inv_err = math.nan
        out.append({"error": err, "rel_error": err / change if change > 0 else math.nan, "invariant_error": inv_err})
    return out


def fit_power_law(xs, ys) -> dict:
    """Least-squares fit log y = p log x + log C over finite positive pairs: {rate p, prefactor C, points}."""
    pts = [(x, y) for x, y in zip(xs, ys) if x > 0 and y is not None and math.isfinite(y) and y > 0]
    if len(pts) < 2:
        return {"rate": math.nan, "prefactor": math.nan, "points": len(pts)}
    lx = torch.tensor([math.log(x) for x, _ in pts], dtype=torch.float64)
    ly = torch.tensor([math.log(y) for _, y in pts], dtype=torch.float64)
    xc = lx - lx.mean()
    p = ((xc * (ly - ly.mean())).sum() / xc.square().sum()).item()
    return {"rate": p, "prefactor": math.exp((ly.mean() - p * lx.mean()).item()), "points": len(pts)}


def _groups(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by route: the kernel kind, or route_kind_N<width> for networks."""
    groups = {}
    for r in runs:
        label = r["kind"] if r["route"] == "kernel" else f"{r['route']}_{r['kind']}_N{r['width']}"
        groups.setdefault(label, []).append(r)
    return groups


def _primary(cfg) -> str:
    """The error that should vanish as σ → 0: the metric distance for Hamilton's field, the
    diffeomorphism-invariant one for Perelman's (Ricci flow only up to diffeomorphism)."""
    return "rel_error" if cfg.field == "hamilton" else "invariant_error"


# ---------------------------------------------------------------------- the study
def run(cfg: DictConfig) -> tuple[dict, list[dict], dict]:
    """Run the study; returns (summary, metrics rows, frames for plots). Computes; does not write."""
    from nnflow.flows.ricci_kernel import (
        kernel_flow,
        kernel_multiplier,
        net_flow,
        sigma_b_for_width,
    )
    from nnflow.flows.ricci_reference import conformal_flow_2d, metric_distance, ricci_flow
    from nnflow.geometry.torus import FourierMetric, TorusGrid, curvature_invariants
    from nnflow.models.torus import TorusMetricNet

    validate(cfg)
    torch.set_num_threads(int(cfg.threads))
    start = time.perf_counter()
    n, T, F = int(cfg.n), float(cfg.t_end), int(cfg.n_frames)
    grid = TorusGrid(n, int(cfg.grid))
    metric0 = FourierMetric.random(n, int(cfg.initial.max_mode), float(cfg.initial.amplitude), seed=int(cfg.seed))
    g0 = grid.evaluate(metric0)
    s = cfg.solver
    tol = dict(rtol=float(s.rtol), atol=float(s.atol))
    net_tol = dict(rtol=float(s.net_rtol), atol=float(s.net_atol), max_steps=int(s.max_steps), on_failure="stop")

    log.info("reference Ricci flow on T^%d, %d^%d grid, T = %g", n, grid.size, n, T)
    ref = ricci_flow(grid, g0, T, F, **tol)
    change = metric_distance(grid, ref.metrics[-1], g0)
    ref_inv = [curvature_invariants(grid, g) for g in ref.metrics]
    reference = {"n_steps": ref.n_steps, "seconds": ref.seconds, "change": change,
                 "invariants_T": ref_inv[-1], "invariants_0": ref_inv[0]}
    if n == 2:
        conf = conformal_flow_2d(grid, g0, T, F, **tol)
        reference["conformal_check"] = metric_distance(grid, conf.metrics[-1], ref.metrics[-1])
        log.info("reference: %d steps, %.1f s; |tensor − conformal| = %.2e", ref.n_steps, ref.seconds,
                 reference["conformal_check"])

    rows, runs = [], []
    frames = {"reference": ref.metrics, "grid": grid, "times": ref.times}

    def record(route, kind, width, linearized, sigma, sigma_b, result):
        errs = _errors(grid, result.metrics, ref.metrics, ref_inv, change)
        for t, e in zip(result.times.tolist(), errs):
            rows.append({"route": route, "kind": kind, "width": width, "linearized": linearized,
                         "sigma": sigma, "sigma_b": sigma_b, "t": t, **e})
        final = errs[-1] if result.failure is None else {k: math.nan for k in errs[-1]}
        entry = {"route": route, "kind": kind, "width": width, "linearized": linearized, "sigma": sigma,
                 "sigma_b": sigma_b, **final, "n_steps": result.n_steps, "seconds": result.seconds,
                 "failure": result.failure, "t_reached": result.times[-1].item(), **result.extra}
        runs.append(entry)
        log.info("%-10s %-8s N=%-5s σ=%-6g  rel_error=%.3e  invariant_error=%.3e  (%d steps, %.1f s)%s",
                 route, kind, width, sigma, final["rel_error"], final["invariant_error"], result.n_steps,
                 result.seconds, f"  FAILED: {result.failure}" if result.failure else "")
        return result

    for kind in cfg.kernel.kinds:
        for sigma in cfg.kernel.sigmas:
            sb = sigma_b_for_width(n, sigma) if kind != "gauss" else None
            res = kernel_flow(grid, g0, kernel_multiplier(grid, kind, sigma, float(cfg.network.sigma_c)),
                              cfg.field, T, F, max_steps=int(s.max_steps), on_failure="stop", **tol)
            record("kernel", kind, None, False, float(sigma), sb, res)
            frames[("kernel", kind, float(sigma))] = res.metrics

    def infinite_width(sigma):  # the kernel flow that the networks approach as N → ∞
        key_ = ("kernel", cfg.network.kind, float(sigma))
        if key_ not in frames:
            frames[key_] = kernel_flow(grid, g0, kernel_multiplier(grid, cfg.network.kind, sigma,
                                                                   float(cfg.network.sigma_c)),
                                       cfg.field, T, F, max_steps=int(s.max_steps), on_failure="stop", **tol).metrics
        return frames[key_]

    lin_max = cfg.network.get("linearized_max_width")
    for width in cfg.network.widths:
        for sigma in cfg.network.sigmas:
            with_lin = bool(cfg.network.linearized) and (lin_max is None or width <= lin_max)
            finite_T = None
            for lin in [False, True] if with_lin else [False]:
                sb = sigma_b_for_width(n, sigma)
                net = TorusMetricNet(n, metric0, cfg.network.kind, int(width), sb, float(cfg.network.sigma_a),
                                     float(cfg.network.sigma_c), alpha=float(cfg.network.alpha), seed=int(cfg.seed))
                res = net_flow(grid, net, cfg.field, T, F, linearized=lin, **net_tol)
                record("linearized" if lin else "finite", cfg.network.kind, int(width), lin, float(sigma), sb, res)
                kern = infinite_width(sigma)
                ok = res.failure is None and len(kern) == len(res.metrics)
                runs[-1]["rel_error_vs_kernel"] = (
                    metric_distance(grid, res.metrics[-1], kern[-1]) / change if ok else math.nan
                )
                if not lin:
                    finite_T = res.metrics[-1] if res.failure is None else None
                elif finite_T is not None and res.failure is None:  # the lazy-training gap
                    runs[-1]["rel_gap_to_finite"] = metric_distance(grid, res.metrics[-1], finite_T) / change

    key = _primary(cfg)
    fits = {}
    # The Gaussian route applies its exact multiplier at any σ; network kernels are sampled on the
    # grid and become a discrete δ below one grid spacing, so their fits use σ ≥ 1/M only.
    for label, group in _groups(runs).items():
        resolved = 0.0 if label == "gauss" else 1.0 / grid.size
        use = [r for r in group if r["sigma"] >= resolved]
        fits[label] = fit_power_law([r["sigma"] for r in use], [r[key] for r in use])
        fits[label].update(error=key, sigma_min=resolved)
        log.info("fit %-24s %s ∝ σ^%.2f (%d points with σ ≥ %.3g)", label, key, fits[label]["rate"],
                 fits[label]["points"], resolved)
    width_fits = {}
    for route in ("finite", "linearized"):
        for sigma in sorted({r["sigma"] for r in runs if r["route"] == route}):
            group = [r for r in runs if r["route"] == route and r["sigma"] == sigma]
            fit = fit_power_law([r["width"] for r in group], [r["rel_error_vs_kernel"] for r in group])
            width_fits[f"{route}_sigma{sigma:g}"] = fit
            log.info("fit %-24s |g_N − g_∞|/|Δg_ref| ∝ N^%.2f (%d widths)", f"{route} σ={sigma:g}", fit["rate"],
                     fit["points"])

    modes = _mode_rates(cfg, grid, tol, net_tol)

    kernel_devs = [m["rel_deviation"] for m in modes if m["route"] == "kernel"]
    summary = {
        "n": n, "grid": grid.size, "t_end": T, "field": cfg.field, "seed": int(cfg.seed),
        "initial": OmegaConf.to_container(cfg.initial), "primary_error": key,
        "reference": reference, "runs": runs, "fits": fits, "width_fits": width_fits, "modes": modes,
        "max_mode_rate_deviation_kernel": max(kernel_devs) if kernel_devs else math.nan,
        "seconds": time.perf_counter() - start,
    }
    return summary, rows, frames


def _mode_rates(cfg: DictConfig, grid, tol: dict, net_tol: dict) -> list[dict]:
    """Linear regime: measured vs predicted (K̂(k)·λ(k)) rates of single small modes."""
    from nnflow.flows.ricci_kernel import (
        fitted_rate,
        kernel_flow,
        kernel_multiplier,
        mode_metric,
        mode_time,
        net_flow,
        net_kernel_fourier,
        predicted_rate,
        sigma_b_for_width,
    )
    from nnflow.flows.ricci_reference import mode_amplitude
    from nnflow.models.torus import TorusMetricNet

    n, sigma, eps = int(cfg.n), float(cfg.modes.sigma), float(cfg.modes.amplitude)
    out = []
    routes = [("kernel", kind, None) for kind in cfg.kernel.kinds]
    routes += [("finite", cfg.network.kind, int(w)) for w in cfg.modes.widths]
    for k in cfg.modes.ks:
        k = [int(v) for v in k]
        for route, kind, width in routes:
            mult = kernel_multiplier(grid, kind if route == "kernel" else cfg.network.kind, sigma,
                                     float(cfg.network.sigma_c))
            khat = mult[tuple(v % grid.size for v in k)].item()
            rates, local, dirs = predicted_rate(k, khat, cfg.field)
            for c in range(len(rates)):
                if abs(local[c].item()) < 1e-9:  # gauge directions: rate 0 for every kernel
                    continue
                metric = mode_metric(k, dirs[c], eps)
                t_mode = mode_time(rates[c].item())
                if route == "kernel":
                    res = kernel_flow(grid, grid.evaluate(metric), mult, cfg.field, t_mode, 6, **tol)
                else:
                    net = TorusMetricNet(n, metric, kind, width, sigma_b_for_width(n, sigma),
                                         float(cfg.network.sigma_a), float(cfg.network.sigma_c),
                                         alpha=float(cfg.network.alpha), seed=int(cfg.seed))
                    res = net_flow(grid, net, cfg.field, t_mode, 6, **net_tol)
                eye = torch.eye(n, dtype=torch.float64)
                amps = mode_amplitude(grid, res.metrics - eye, k, dirs[c])
                measured = fitted_rate(res.times, amps)
                predicted = rates[c].item()
                closed = None
                if kind != "gauss":
                    closed = net_kernel_fourier(kind, [k], sigma_b_for_width(n, sigma),
                                                float(cfg.network.sigma_c)).item()
                out.append({
                    "k": k, "route": route, "kind": kind, "width": width, "sigma": sigma,
                    "direction": dirs[c].tolist(), "local_rate": local[c].item(), "multiplier": khat,
                    "multiplier_closed_form": closed, "predicted": predicted, "measured": measured,
                    "rel_deviation": abs(measured - predicted) / abs(predicted),
                })
                log.info("mode k=%s %-6s %-7s N=%-5s λ=%9.3f K̂=%.4f predicted %9.3f measured %9.3f",
                         k, route, kind, width, local[c].item(), khat, predicted, measured)
    return out


# ---------------------------------------------------------------------- outputs
def write_outputs(out: Path, summary: dict, rows: list[dict], frames: dict, plots: bool = True) -> list[str]:
    """summary.json, metrics.csv and (if plots) PNG figures in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    with (out / "metrics.csv").open("w", newline="") as fh:
        fields = ["route", "kind", "width", "linearized", "sigma", "sigma_b", "t", "error", "rel_error",
                  "invariant_error"]
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    written = ["summary.json", "metrics.csv"]
    if plots:
        written += plot_all(out, summary, rows, frames)
    return written


def _json_default(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj)}")


def plot_all(out: Path, summary: dict, rows: list[dict], frames: dict | None) -> list[str]:
    """error_vs_sigma.png, error_vs_time.png, mode_rates.png and (n = 2, frames given) curvature.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = summary["primary_error"]
    written = []
    # error vs σ, log-log, with fitted power laws
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for label, group in _groups(summary["runs"]).items():
        pts = [(r["sigma"], r[key]) for r in group if r[key] is not None and math.isfinite(r[key]) and r[key] > 0]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        fit = summary["fits"][label]
        style = "o-" if group[0]["route"] == "kernel" else ("s--" if group[0]["route"] == "finite" else "^:")
        line = ax.loglog(xs, ys, style, label=f"{label}: σ^{fit['rate']:.2f}" if math.isfinite(fit["rate"]) else label)
        if math.isfinite(fit["rate"]):
            xx = torch.tensor([max(min(xs), fit["sigma_min"]), max(xs)])
            ax.loglog(xx, fit["prefactor"] * xx ** fit["rate"], "-", color=line[0].get_color(), alpha=0.3, lw=4)
    ax.set_xlabel("kernel width σ (torus period 1)")
    ax.set_ylabel(key.replace("_", " ") + " at T")
    ax.set_title(f"T^{summary['n']}: {summary['field']} field vs Ricci flow, T = {summary['t_end']}")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "error_vs_sigma.png", dpi=120)
    plt.close(fig)
    written.append("error_vs_sigma.png")

    # error vs flow time
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    series = {}
    for r in rows:
        label = f"{r['route']} {r['kind']}" + (f" N={r['width']}" if r["width"] else "") + f" σ={r['sigma']:g}"
        series.setdefault(label, []).append((r["t"], r[key]))
    for label, pts in series.items():
        pts = [(t, y) for t, y in pts if t > 0 and y is not None and math.isfinite(y) and y > 0]
        if pts:
            ax.semilogy(*zip(*pts), label=label, lw=1)
    ax.set_xlabel("flow time t")
    ax.set_ylabel(key.replace("_", " "))
    ax.legend(fontsize=5, ncol=2)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "error_vs_time.png", dpi=120)
    plt.close(fig)
    written.append("error_vs_time.png")

    # mode rates: measured against predicted K̂(k)·λ(k)
    if summary["modes"]:
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        for route in sorted({(m["route"], m["kind"], m["width"]) for m in summary["modes"]}, key=str):
            ms = [m for m in summary["modes"] if (m["route"], m["kind"], m["width"]) == route]
            ax.plot([-m["predicted"] for m in ms], [-m["measured"] for m in ms], "o" if route[0] == "kernel" else "x",
                    label=f"{route[0]} {route[1]}" + (f" N={route[2]}" if route[2] else ""))
        lim = max(abs(m["predicted"]) for m in summary["modes"]) * 1.1
        ax.plot([0, lim], [0, lim], "k-", lw=0.5)
        ax.set_xlabel("predicted decay rate −K̂(k)λ(k)")
        ax.set_ylabel("measured decay rate")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "mode_rates.png", dpi=120)
        plt.close(fig)
        written.append("mode_rates.png")

    # n = 2: scalar curvature of the reference and the narrowest kernel flow at T
    if frames is None:
        return written
    grid = frames["grid"]
    kernels = [key_ for key_ in frames if isinstance(key_, tuple)]
    if grid.n == 2 and kernels:
        from nnflow.geometry.torus import grid_curvature

        narrow = min(kernels, key=lambda k_: k_[2])
        panels = [("reference t=0", frames["reference"][0]), ("reference t=T", frames["reference"][-1]),
                  (f"{narrow[1]} σ={narrow[2]:g} t=T", frames[narrow][-1])]
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
        for ax, (title, g) in zip(axes, panels):
            im = ax.imshow(grid_curvature(grid, g)["scalar"].T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r")
            ax.set_title("R: " + title, fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.tight_layout()
        fig.savefig(out / "curvature.png", dpi=110)
        plt.close(fig)
        written.append("curvature.png")
    return written


def headline(summary: dict) -> dict:
    """The one-line JSON result: the main numbers of the study."""
    key = summary["primary_error"]
    kernel_runs = [r for r in summary["runs"] if r["route"] == "kernel"]
    narrow = {}
    for r in kernel_runs:
        if r["kind"] not in narrow or r["sigma"] < narrow[r["kind"]]["sigma"]:
            narrow[r["kind"]] = r
    return {
        "n": summary["n"], "grid": summary["grid"], "t_end": summary["t_end"], "field": summary["field"],
        "primary_error": key,
        "fits": {k: v["rate"] for k, v in summary["fits"].items()},
        "width_fits": {k: v["rate"] for k, v in summary["width_fits"].items()},
        "narrowest_kernel_error": {k: {"sigma": r["sigma"], key: r[key]} for k, r in narrow.items()},
        "max_mode_rate_deviation_kernel": summary["max_mode_rate_deviation_kernel"],
        "failures": sum(r["failure"] is not None for r in summary["runs"]),
        "seconds": summary["seconds"],
    }


@hydra.main(version_base="1.3", config_path=str(Path(CONFIG_DIR) / "ricci"), config_name="config")
def main(cfg: DictConfig) -> float:
    summary, rows, frames = run(cfg)
    out = run_dir()
    written = write_outputs(out, summary, rows, frames, plots=bool(cfg.plots))
    log.info("wrote %s to %s", ", ".join(written), out)
    result = headline(summary)
    result["run_dir"] = str(out)
    print(json.dumps(result, default=_json_default), flush=True)
    values = [v for v in result["narrowest_kernel_error"].values()]
    return values[0][summary["primary_error"]] if values else math.nan
