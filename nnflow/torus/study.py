"""The σ → 0 study of the generalized Ricci flow on T^n (the computation behind ``nnflow-ricci``).

Runs the reference Ricci flow, the frozen-kernel flows of width σ, finite per-component
networks and their linearized models (``nnflow.torus.kernel_flow``), and the linear-regime mode
rates; fits power laws (``nnflow.fits.power_law_fit``, with standard errors) of the errors
against σ and against the width N. Computes only: ``run_study`` returns (summary, rows, frames)
and ``nnflow.report.ricci`` writes them.

The config is a plain nested dict (the Hydra shell passes ``OmegaConf.to_container(cfg,
resolve=True)``) with the keys of conf/ricci/config.yaml; ``validate`` checks it.

Errors against the reference, per frame (``frame_errors``):

    error           = ‖g − g_ref‖ (``metric_distance``, flat L² over T^n)
    rel_error       = error / ‖g_ref(T) − g0‖
    invariant_error = max over I ∈ {R2, ric2, dR2} of |I(g) − I(g_ref)| / |I(g_ref)|
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from nnflow.fits import power_law_fit
from nnflow.provenance import provenance
from nnflow.torus.geometry import FourierMetric, TorusGrid, curvature_invariants
from nnflow.torus.kernel_flow import (
    FIELDS,
    TORUS_KERNELS,
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
from nnflow.torus.networks import PRODUCT_NETWORKS, TorusMetricNet
from nnflow.torus.reference import (
    FlowResult,
    conformal_flow_2d,
    metric_distance,
    mode_amplitude,
    ricci_flow,
)
from nnflow.validation import check_bool, check_choice, check_int, check_list, check_positive, select

log = logging.getLogger("nnflow")

ERROR_INVARIANTS = ("R2", "ric2", "dR2")


# ---------------------------------------------------------------------- validation
def validate(cfg: Mapping) -> None:
    """Raise ValueError naming the first bad config value (cfg: a plain nested dict)."""
    check_int(cfg, "n", minimum=2)
    check_int(cfg, "grid", minimum=8)
    check_int(cfg, "n_frames", minimum=2)
    check_int(cfg, "threads", "initial.max_mode", "solver.max_steps", minimum=1)
    check_positive(cfg, "t_end", "initial.amplitude", "modes.sigma", "modes.amplitude", "network.sigma_a",
                   "network.alpha", "solver.rtol", "solver.atol", "solver.net_rtol", "solver.net_atol")
    if not cfg["initial"]["amplitude"] < 1:
        raise ValueError(f"config value initial.amplitude={cfg['initial']['amplitude']!r} must be < 1 (g0 > 0)")
    if not cfg["modes"]["amplitude"] <= 0.01:
        raise ValueError(f"config value modes.amplitude={cfg['modes']['amplitude']!r} must be ≤ 0.01 (linear regime)")
    check_choice(cfg, "field", FIELDS)
    if "plots" in cfg:  # read by nnflow-ricci after the study
        check_bool(cfg, "plots")
    seed = select(cfg, "seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"config value seed={seed!r} must be an integer")
    kinds = select(cfg, "kernel.kinds")
    for kind in kinds if isinstance(kinds, (list, tuple)) else [kinds]:
        if kind not in TORUS_KERNELS:
            raise ValueError(f"config value kernel.kinds={kinds!r}: {kind!r} is not one of {TORUS_KERNELS}")
    check_choice(cfg, "network.kind", tuple(PRODUCT_NETWORKS))
    check_list(cfg, "kernel.sigmas")
    check_list(cfg, "network.sigmas")
    check_list(cfg, "network.widths", positive_int=True)
    check_list(cfg, "modes.widths", positive_int=True)
    sigma_c = select(cfg, "network.sigma_c")
    if not (isinstance(sigma_c, (int, float)) and sigma_c >= 0):
        raise ValueError(f"config value network.sigma_c={sigma_c!r} must be ≥ 0")
    n, size = cfg["n"], cfg["grid"]
    ks = select(cfg, "modes.ks")
    if not isinstance(ks, (list, tuple)):
        raise ValueError(f"config value modes.ks={ks!r} must be a list of modes (lists of {n} integers)")
    for k in ks:
        if not isinstance(k, (list, tuple)):
            raise ValueError(f"config value modes.ks contains {k!r}: each mode must be {n} integers, not all 0")
        k = list(k)
        if len(k) != n or not all(isinstance(v, int) for v in k) or not any(k):
            raise ValueError(f"config value modes.ks contains {k!r}: each mode must be {n} integers, not all 0")
        if max(abs(v) for v in k) >= size // 2:
            raise ValueError(f"config value modes.ks contains {k!r}: |k_i| must be < grid/2 = {size // 2}")


# ---------------------------------------------------------------------- the reference
@dataclass
class Reference:
    """The reference Ricci flow on the grid: metrics (F, M, …, M, n, n) at times (F,), the
    curvature invariants of each frame, and change = ‖g_ref(T) − g0‖ (the scale of rel_error)."""

    grid: TorusGrid
    metrics: torch.Tensor
    times: torch.Tensor
    invariants: list[dict]
    change: float


def reference_flow(grid: TorusGrid, g0: torch.Tensor, t_end: float, n_frames: int, tol: dict) -> tuple[Reference, dict]:
    """Ricci flow from g0 (and, for n = 2, its conformal reduction as a check): (Reference, summary entry)."""
    log.info("reference Ricci flow on T^%d, %d^%d grid, T = %g", grid.n, grid.size, grid.n, t_end)
    ref = ricci_flow(grid, g0, t_end, n_frames, **tol)
    change = metric_distance(grid, ref.metrics[-1], g0)
    invariants = [curvature_invariants(grid, g) for g in ref.metrics]
    entry = {"n_steps": ref.n_steps, "seconds": ref.seconds, "change": change,
             "invariants_T": invariants[-1], "invariants_0": invariants[0]}
    if grid.n == 2:
        conf = conformal_flow_2d(grid, g0, t_end, n_frames, **tol)
        entry["conformal_check"] = metric_distance(grid, conf.metrics[-1], ref.metrics[-1])
        log.info("reference: %d steps, %.1f s; |tensor − conformal| = %.2e", ref.n_steps, ref.seconds,
                 entry["conformal_check"])
    return Reference(grid, ref.metrics, ref.times, invariants, change), entry


def frame_errors(ref: Reference, metrics: torch.Tensor) -> list[dict]:
    """Per-frame error, rel_error and invariant_error of ``metrics`` (F', …) against the reference."""
    out = []
    for i, g in enumerate(metrics):
        err = metric_distance(ref.grid, g, ref.metrics[i])
        try:
            inv = curvature_invariants(ref.grid, g)
            inv_err = max(abs(inv[k] - ref.invariants[i][k]) / abs(ref.invariants[i][k]) for k in ERROR_INVARIANTS)
        except ValueError:  # not positive definite: the flow has left the space of metrics
            inv_err = math.nan
        out.append({"error": err, "rel_error": err / ref.change if ref.change > 0 else math.nan,
                    "invariant_error": inv_err})
    return out


def record(ref: Reference, result: FlowResult, route: str, kind: str, width, linearized: bool, sigma: float,
           sigma_b) -> tuple[dict, list[dict]]:
    """One flow's summary entry (errors at T, nan if it failed; solver work) and its metrics rows."""
    errs = frame_errors(ref, result.metrics)
    label = {"route": route, "kind": kind, "width": width, "linearized": linearized, "sigma": sigma,
             "sigma_b": sigma_b}
    rows = [{**label, "t": t, **e} for t, e in zip(result.times.tolist(), errs)]
    final = errs[-1] if result.failure is None else {k: math.nan for k in errs[-1]}
    entry = {**label, **final, "n_steps": result.n_steps, "seconds": result.seconds, "failure": result.failure,
             "t_reached": result.times[-1].item(), **result.extra}
    log.info("%-10s %-8s N=%-5s σ=%-6g  rel_error=%.3e  invariant_error=%.3e  (%d steps, %.1f s)%s",
             route, kind, width, sigma, final["rel_error"], final["invariant_error"], result.n_steps,
             result.seconds, f"  FAILED: {result.failure}" if result.failure else "")
    return entry, rows


# ---------------------------------------------------------------------- the routes
def _tolerances(cfg: Mapping) -> tuple[dict, dict]:
    """(grid-flow tolerances, network-flow tolerances with max_steps and on_failure="stop")."""
    s = cfg["solver"]
    tol = {"rtol": float(s["rtol"]), "atol": float(s["atol"])}
    net_tol = {"rtol": float(s["net_rtol"]), "atol": float(s["net_atol"]), "max_steps": int(s["max_steps"]),
               "on_failure": "stop"}
    return tol, net_tol


def _kernel_flow(cfg: Mapping, grid: TorusGrid, g0: torch.Tensor, kind: str, sigma: float) -> FlowResult:
    """The frozen infinite-width flow of kernel ``kind`` at width σ from g0, to t_end."""
    tol, _ = _tolerances(cfg)
    mult = kernel_multiplier(grid, kind, sigma, float(cfg["network"]["sigma_c"]))
    return kernel_flow(grid, g0, mult, cfg["field"], float(cfg["t_end"]), int(cfg["n_frames"]),
                       max_steps=int(cfg["solver"]["max_steps"]), on_failure="stop", **tol)


def kernel_routes(cfg: Mapping, ref: Reference, g0: torch.Tensor) -> tuple[list[dict], list[dict], dict]:
    """Kernel flows for every kind × σ: (runs, rows, final-time frames keyed ("kernel", kind, σ))."""
    runs, rows, frames = [], [], {}
    for kind in cfg["kernel"]["kinds"]:
        for sigma in cfg["kernel"]["sigmas"]:
            sb = sigma_b_for_width(int(cfg["n"]), sigma) if kind != "gauss" else None
            res = _kernel_flow(cfg, ref.grid, g0, kind, float(sigma))
            entry, new_rows = record(ref, res, "kernel", kind, None, False, float(sigma), sb)
            runs.append(entry)
            rows += new_rows
            frames[("kernel", kind, float(sigma))] = res.metrics
    return runs, rows, frames


def _torus_net(cfg: Mapping, metric0, kind: str, width: int, sigma: float) -> TorusMetricNet:
    net = cfg["network"]
    return TorusMetricNet(int(cfg["n"]), metric0, kind, int(width), sigma_b_for_width(int(cfg["n"]), sigma),
                          float(net["sigma_a"]), float(net["sigma_c"]), alpha=float(net["alpha"]),
                          seed=int(cfg["seed"]))


def network_routes(cfg: Mapping, ref: Reference, metric0, g0: torch.Tensor,
                   kernel_frames: dict) -> tuple[list[dict], list[dict], dict]:
    """Finite networks (and linearized models) for every width × σ, with their distance to the
    infinite-width kernel flow (rel_error_vs_kernel) and the lazy-training gap (rel_gap_to_finite).

    Returns (runs, rows, the infinite-width kernel frames computed here that ``kernel_frames``
    lacked, keyed like it).
    """
    net_cfg = cfg["network"]
    kind = net_cfg["kind"]
    _, net_tol = _tolerances(cfg)
    sigmas = [float(s) for s in net_cfg["sigmas"]]
    limits = {}  # the kernel flows that the networks approach as N → ∞
    if net_cfg["widths"]:
        limits = {("kernel", kind, s): kernel_frames.get(("kernel", kind, s)) for s in sigmas}
        limits = {key: (v if v is not None else _kernel_flow(cfg, ref.grid, g0, kind, key[2]).metrics)
                  for key, v in limits.items()}
    lin_max = select(cfg, "network.linearized_max_width")
    runs, rows = [], []
    for width in net_cfg["widths"]:
        for sigma in sigmas:
            with_lin = bool(net_cfg["linearized"]) and (lin_max is None or width <= lin_max)
            finite_T = None
            for lin in [False, True] if with_lin else [False]:
                net = _torus_net(cfg, metric0, kind, width, sigma)
                res = net_flow(ref.grid, net, cfg["field"], float(cfg["t_end"]), int(cfg["n_frames"]),
                               linearized=lin, **net_tol)
                entry, new_rows = record(ref, res, "linearized" if lin else "finite", kind, int(width), lin, sigma,
                                         net.sigma_b)
                kern = limits[("kernel", kind, sigma)]
                ok = res.failure is None and len(kern) == len(res.metrics)
                entry["rel_error_vs_kernel"] = (
                    metric_distance(ref.grid, res.metrics[-1], kern[-1]) / ref.change if ok else math.nan
                )
                if not lin:
                    finite_T = res.metrics[-1] if res.failure is None else None
                elif finite_T is not None and res.failure is None:  # the lazy-training gap
                    entry["rel_gap_to_finite"] = metric_distance(ref.grid, res.metrics[-1], finite_T) / ref.change
                runs.append(entry)
                rows += new_rows
    new_frames = {key: v for key, v in limits.items() if key not in kernel_frames}
    return runs, rows, new_frames


# ---------------------------------------------------------------------- fits
def route_label(run: dict) -> str:
    """The route group of a run: the kernel kind, or route_kind_N<width> for networks."""
    return run["kind"] if run["route"] == "kernel" else f"{run['route']}_{run['kind']}_N{run['width']}"


def groups(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by ``route_label``, in first-seen order."""
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(route_label(r), []).append(r)
    return out


def primary_error(field: str) -> str:
    """The error that should vanish as σ → 0: the metric distance for Hamilton's field, the
    diffeomorphism-invariant one for Perelman's (Ricci flow only up to diffeomorphism)."""
    return "rel_error" if field == "hamilton" else "invariant_error"


def resolved_sigma(label: str, grid_size: int) -> float:
    """The smallest σ a route's fit uses. The Gaussian route applies its exact multiplier at any
    σ; network kernels are sampled on the grid and become a discrete δ below one grid spacing,
    so their fits use σ ≥ 1/M only."""
    return 0.0 if label == "gauss" else 1.0 / grid_size


def sigma_fits(runs: list[dict], key: str, grid_size: int) -> dict[str, dict]:
    """Per route: ``power_law_fit`` of error ``key`` at T against σ (σ ≥ ``resolved_sigma``)."""
    fits = {}
    for label, group in groups(runs).items():
        resolved = resolved_sigma(label, grid_size)
        use = [r for r in group if r["sigma"] >= resolved]
        fits[label] = {**power_law_fit([r["sigma"] for r in use], [r[key] for r in use]), "error": key,
                       "sigma_min": resolved}
        log.info("fit %-24s %s ∝ σ^%.2f ± %.2g (%d points with σ ≥ %.3g)", label, key, fits[label]["rate"],
                 fits[label]["stderr"], fits[label]["n"], resolved)
    return fits


def width_fits(runs: list[dict]) -> dict[str, dict]:
    """Per network route and σ: ``power_law_fit`` of |g_N − g_∞|/|Δg_ref| at T against N."""
    fits = {}
    for route in ("finite", "linearized"):
        for sigma in sorted({r["sigma"] for r in runs if r["route"] == route}):
            group = [r for r in runs if r["route"] == route and r["sigma"] == sigma]
            fit = power_law_fit([r["width"] for r in group], [r["rel_error_vs_kernel"] for r in group])
            fits[f"{route}_sigma{sigma:g}"] = fit
            log.info("fit %-24s |g_N − g_∞|/|Δg_ref| ∝ N^%.2f ± %.2g (%d widths)", f"{route} σ={sigma:g}",
                     fit["rate"], fit["stderr"], fit["n"])
    return fits


# ---------------------------------------------------------------------- linear regime
def mode_rate(cfg: Mapping, grid: TorusGrid, k: list[int], route: str, kind: str, width) -> list[dict]:
    """Measured vs predicted (K̂(k)·λ_c(k)) rates of one small mode k along each non-gauge direction c."""
    tol, net_tol = _tolerances(cfg)
    n, sigma, eps = int(cfg["n"]), float(cfg["modes"]["sigma"]), float(cfg["modes"]["amplitude"])
    sigma_c, field = float(cfg["network"]["sigma_c"]), cfg["field"]
    mult = kernel_multiplier(grid, kind, sigma, sigma_c)
    khat = mult[tuple(v % grid.size for v in k)].item()
    rates, local, dirs = predicted_rate(k, khat, field)
    closed = net_kernel_fourier(kind, [k], sigma_b_for_width(n, sigma), sigma_c).item() if kind != "gauss" else None
    out = []
    for c in range(len(rates)):
        if abs(local[c].item()) < 1e-9:  # gauge directions: rate 0 for every kernel
            continue
        metric = mode_metric(k, dirs[c], eps)
        t_mode = mode_time(rates[c].item())
        if route == "kernel":
            res = kernel_flow(grid, grid.evaluate(metric), mult, field, t_mode, 6, **tol)
        else:
            res = net_flow(grid, _torus_net(cfg, metric, kind, width, sigma), field, t_mode, 6, **net_tol)
        amps = mode_amplitude(grid, res.metrics - torch.eye(n, dtype=torch.float64), k, dirs[c])
        measured, predicted = fitted_rate(res.times, amps), rates[c].item()
        out.append({
            "k": k, "route": route, "kind": kind, "width": width, "sigma": sigma,
            "direction": dirs[c].tolist(), "local_rate": local[c].item(), "multiplier": khat,
            "multiplier_closed_form": closed, "predicted": predicted, "measured": measured,
            "rel_deviation": abs(measured - predicted) / abs(predicted),
        })
        log.info("mode k=%s %-6s %-7s N=%-5s λ=%9.3f K̂=%.4f predicted %9.3f measured %9.3f",
                 k, route, kind, width, local[c].item(), khat, predicted, measured)
    return out


def mode_rates(cfg: Mapping, grid: TorusGrid) -> list[dict]:
    """``mode_rate`` for every mode in modes.ks through every kernel kind and finite width in modes.widths."""
    routes = [("kernel", kind, None) for kind in cfg["kernel"]["kinds"]]
    routes += [("finite", cfg["network"]["kind"], int(w)) for w in cfg["modes"]["widths"]]
    return [m for k in cfg["modes"]["ks"] for route in routes
            for m in mode_rate(cfg, grid, [int(v) for v in k], *route)]


# ---------------------------------------------------------------------- the study
def run_study(cfg: Mapping) -> tuple[dict, list[dict], dict]:
    """Run the study; returns (summary, metrics rows, frames for plots). Computes; does not write.

    frames: {"reference": (F, M, …, n, n), "grid": TorusGrid, "times": (F,),
    ("kernel", kind, σ): (F, M, …, n, n) per kernel flow}. summary carries ``provenance("cpu")``.
    """
    validate(cfg)
    torch.set_num_threads(int(cfg["threads"]))
    start = time.perf_counter()
    n, T, F = int(cfg["n"]), float(cfg["t_end"]), int(cfg["n_frames"])
    grid = TorusGrid(n, int(cfg["grid"]))
    init = cfg["initial"]
    metric0 = FourierMetric.random(n, int(init["max_mode"]), float(init["amplitude"]), seed=int(cfg["seed"]))
    g0 = grid.evaluate(metric0)
    ref, reference = reference_flow(grid, g0, T, F, _tolerances(cfg)[0])
    kernel_runs, kernel_rows, kernel_frames = kernel_routes(cfg, ref, g0)
    net_runs, net_rows, limit_frames = network_routes(cfg, ref, metric0, g0, kernel_frames)
    runs, rows = kernel_runs + net_runs, kernel_rows + net_rows
    key = primary_error(cfg["field"])
    modes = mode_rates(cfg, grid)
    kernel_devs = [m["rel_deviation"] for m in modes if m["route"] == "kernel"]
    summary = {
        "n": n, "grid": grid.size, "t_end": T, "field": cfg["field"], "seed": int(cfg["seed"]),
        "initial": dict(init), "primary_error": key,
        "reference": reference, "runs": runs, "fits": sigma_fits(runs, key, grid.size), "width_fits": width_fits(runs),
        "modes": modes,
        "max_mode_rate_deviation_kernel": max(kernel_devs) if kernel_devs else math.nan,
        "provenance": provenance("cpu"),  # the study's tensors are all on the CPU
        "seconds": time.perf_counter() - start,
    }
    frames = {"reference": ref.metrics, "grid": grid, "times": ref.times, **kernel_frames, **limit_frames}
    return summary, rows, frames


def headline(summary: dict) -> dict:
    """The one-line JSON result: the main numbers of the study (fit exponents with their stderr)."""
    key = summary["primary_error"]
    narrow = {}
    for r in summary["runs"]:
        if r["route"] == "kernel" and (r["kind"] not in narrow or r["sigma"] < narrow[r["kind"]]["sigma"]):
            narrow[r["kind"]] = r
    return {
        "n": summary["n"], "grid": summary["grid"], "t_end": summary["t_end"], "field": summary["field"],
        "primary_error": key,
        "fits": {k: v["rate"] for k, v in summary["fits"].items()},
        "fits_stderr": {k: v["stderr"] for k, v in summary["fits"].items()},
        "width_fits": {k: v["rate"] for k, v in summary["width_fits"].items()},
        "width_fits_stderr": {k: v["stderr"] for k, v in summary["width_fits"].items()},
        "narrowest_kernel_error": {k: {"sigma": r["sigma"], key: r[key]} for k, r in narrow.items()},
        "max_mode_rate_deviation_kernel": summary["max_mode_rate_deviation_kernel"],
        "failures": sum(r["failure"] is not None for r in summary["runs"]),
        "seconds": summary["seconds"],
    }
