"""Donaldson rows of the width-sweep report: the balanced metric at each width's parameter count.

For each width of a sweep, the degree k whose Hermitian H (phase-reduced, ``nnflow.algebraic``) has
the number of real parameters closest to the finite network's, balanced on the sweep's training
points (more when the sweep has too few for k) and measured on the sweep's test points. Computes
only; ``nnflow.report.sweep`` writes the rows.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping

from nnflow.validation import check_int, check_positive, select

# The Donaldson baseline's budget. On the cubic sweep (705 to 45,057 network parameters) the
# k = 32 cap (1,026 real parameters of H) keeps the whole Donaldson part near 10 s on a shared
# 2-core CPU; the parameter cap bounds the cost on manifolds whose bases grow faster with k
# (on the quintic N_k ~ k⁴/24), where the k cap alone would allow hours.
DONALDSON_MAX_K = 32
DONALDSON_MAX_PARAMS = 1500
# T(H) is a sum of rank-one terms over the points: the balanced iteration needs many more points
# than parameters (nnflow.algebraic warns below 10 per parameter). Its sampling error dominates σ:
# on the cubic at k = 27 (731 parameters) σ_test is 0.026 with 20 points per parameter and 0.0089
# with 200 (17 s on the 2-core CPU), at k = 8 0.0147 and 0.0062.
DONALDSON_POINTS_PER_PARAMETER = 200
# ‖ΔH‖_F/‖H‖_F. From 1e-8 to 1e-10, σ of the cubic's k = 8 and 27 moved by < 1e-5 of itself,
# far below its standard error, for ~1.4× the iterations.
DONALDSON_TOLERANCE = 1e-8
DONALDSON_MAX_ITERATIONS = 200



def params_by_width(records: list[dict], arm: str) -> dict[int, int]:
    """{width: trained parameters} of one arm's runs that report a positive n_params.

    Seeds of one width share the architecture, hence the count; if they differ, the largest.
    """
    out: dict[int, int] = {}
    for r in records:
        n = r.get("n_params")
        if r["arm"] == arm and r["width"] is not None and isinstance(n, int) and not isinstance(n, bool) and n > 0:
            out[int(r["width"])] = max(n, out.get(int(r["width"]), 0))
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------- the Donaldson baseline
def degree_for_parameters(
    surface, n_params: int, max_k: int = DONALDSON_MAX_K, max_params: int = DONALDSON_MAX_PARAMS
) -> dict:
    """The degree k whose balanced H has the number of real parameters closest to ``n_params``.

    H is block-diagonal over the phase-symmetry sectors (``section_basis(surface, k, "phases")``;
    its real parameters are ``basis.n_parameters`` = Σ_blocks size²). The count grows strictly
    with k (multiplying by one coordinate maps each sector of O(k) injectively into a sector of
    O(k+1), and N_{k+1} > N_k), so the search walks k upward and stops at the first count
    ≥ ``n_params``. Ties go to the smaller k. Only k ≤ ``max_k`` with at most ``max_params``
    parameters are allowed.

    Args:
        surface: the Hypersurface or CompleteIntersection; n_params: the target count (> 0).
        max_k, max_params: the budget (max_k ≥ 1; k = 1 is always allowed).
    Returns:
        {"k", "basis" (its SectionBasis), "capped"}: capped is True when a k beyond the budget
        would be closer, and k is then the largest k the budget allows.
    Raises:
        ValueError: for n_params or max_k not a positive integer.
    """
    from nnflow.algebraic import section_basis

    check_int({"n_params": n_params, "donaldson_max_k": max_k}, "n_params", "donaldson_max_k")
    best = section_basis(surface, 1, "phases")
    k = 1
    while best.n_parameters < n_params:
        try:
            nxt = section_basis(surface, k + 1, "phases")
        except NotImplementedError:  # a CICY with several equations: no basis beyond the degrees they cut
            return {"k": k, "basis": best, "capped": True}
        closer = abs(nxt.n_parameters - n_params) < abs(best.n_parameters - n_params)
        if k + 1 > max_k or nxt.n_parameters > max_params:
            return {"k": k, "basis": best, "capped": closer}
        if not closer:
            break
        best, k = nxt, k + 1
    return {"k": k, "basis": best, "capped": False}


def _sweep_setting(records: list[dict], sweep_cfg: Mapping | None) -> dict:
    """manifold, kahler_t and the data block the Donaldson rows need, checked.

    ``sweep_cfg`` None: the finite runs' config.yaml, which must agree on these keys.
    Raises:
        ValueError: naming what is missing or inconsistent.
    """
    if sweep_cfg is None:
        configs = [r["config"] for r in records if r["arm"] == "finite" and r.get("config")]
        if not configs:
            raise ValueError("no finite run has a config.yaml")
        for key in ("manifold", "kahler_t", "data.seed", "data.n_train", "data.n_test"):
            if len({json.dumps(select(c, key), sort_keys=True, default=str) for c in configs}) > 1:
                raise ValueError(f"the finite runs differ in {key}")
        sweep_cfg = configs[0]
    manifold = select(sweep_cfg, "manifold")
    if not isinstance(manifold, Mapping) or "name" not in manifold:
        raise ValueError("the sweep's config has no manifold block (config value manifold.name missing)")
    check_int(sweep_cfg, "data.seed", minimum=0)
    check_int(sweep_cfg, "data.n_train", "data.n_test")
    kahler_t = select(sweep_cfg, "kahler_t", 1.0)
    check_positive({"kahler_t": kahler_t}, "kahler_t")
    return {
        "manifold": dict(manifold), "kahler_t": float(kahler_t), "seed": int(select(sweep_cfg, "data.seed")),
        "n_train": int(select(sweep_cfg, "data.n_train")), "n_test": int(select(sweep_cfg, "data.n_test")),
    }


def donaldson_rows(
    records: list[dict],
    sweep_cfg: Mapping | None = None,
    max_k: int = DONALDSON_MAX_K,
    max_params: int = DONALDSON_MAX_PARAMS,
    points_per_parameter: int = DONALDSON_POINTS_PER_PARAMETER,
    tolerance: float = DONALDSON_TOLERANCE,
    max_iterations: int = DONALDSON_MAX_ITERATIONS,
) -> list[dict]:
    """Donaldson's balanced metric beside each finite width, at the closest parameter count.

    For each width with a finite-arm n_params: k = ``degree_for_parameters`` (phase-reduced H), H
    balanced (``nnflow.algebraic.balanced_metric``, float64, CPU) on n_points =
    max(data.n_train, points_per_parameter · parameters of H) points sampled at the training
    split's seed (exactly the training points when n_points = n_train), σ measured on the
    networks' test points: data.n_test points at seed data.seed + SPLIT_SEED_OFFSET["test"], as
    σ = Σ_p w_p |1 − η_p/⟨η⟩| / Σ_p w_p, η = det g_H/|Ω|² (``BalancedMetric.measure``; the
    networks' σ_test is the same estimator). Each k is computed once and shared by the widths it
    serves.

    Args:
        records: ``collect``'s records.
        sweep_cfg: a mapping with manifold, kahler_t (default 1) and data.{seed, n_train, n_test};
            None reads them from the finite runs' config.yaml.
        max_k, max_params: the budget of ``degree_for_parameters``.
    Returns:
        One dict per width, ascending: width, n_params (the network's), k, N_k (sections),
        params (real parameters of H), capped (the budget stopped k), sigma_test, sigma_err,
        n_points (for H), n_points_train (data.n_train), n_test, points_per_parameter, max_k,
        max_params, converged, iterations, seconds (sampling, balancing and measuring that
        k; widths sharing a k repeat it), and error (None, or why the balanced metric failed: σ
        is then NaN).
    Raises:
        ValueError: the sweep lacks what the rows need (no finite run with n_params, no manifold
            block, bad data sizes); the report writer turns it into a one-line note.
    """
    from nnflow.algebraic import balanced_metric
    from nnflow.geometry.cicy import manifold_from_config
    from nnflow.geometry.cicy_sampling import sample_manifold
    from nnflow.training.data import SPLIT_SEED_OFFSET  # the networks' split seeds

    targets = params_by_width(records, "finite")
    if not targets:
        raise ValueError("no finite run reports n_params in summary.json")
    check_int({"points_per_parameter": points_per_parameter, "max_iterations": max_iterations},
              "points_per_parameter", "max_iterations")
    setting = _sweep_setting(records, sweep_cfg)
    surface = manifold_from_config(setting["manifold"])
    test = sample_manifold(surface, setting["n_test"], seed=setting["seed"] + SPLIT_SEED_OFFSET["test"])
    by_k: dict[int, dict] = {}
    rows = []
    for width, n_params in targets.items():
        choice = degree_for_parameters(surface, n_params, max_k, max_params)
        k, basis = choice["k"], choice["basis"]
        if k not in by_k:
            start = time.perf_counter()
            n_points = max(setting["n_train"], points_per_parameter * basis.n_parameters)
            train = sample_manifold(surface, n_points, seed=setting["seed"] + SPLIT_SEED_OFFSET["train"])
            result = {"n_points": n_points, "converged": False, "iterations": 0, "error": None,
                      "sigma_test": math.nan, "sigma_err": math.nan}
            try:
                with warnings.catch_warnings():  # non-convergence is recorded in the row instead
                    warnings.simplefilter("ignore", UserWarning)
                    metric = balanced_metric(basis, train, tolerance=tolerance, max_iterations=max_iterations,
                                             kahler_t=setting["kahler_t"])
                measures = metric.measure(test)
                result.update(sigma_test=measures["sigma"], sigma_err=measures["sigma_err"],
                              converged=metric.info["converged"], iterations=metric.info["iterations"])
            except ValueError as err:  # an ill-conditioned or non-positive H at this k
                result["error"] = str(err)
            result["seconds"] = time.perf_counter() - start
            by_k[k] = result
        rows.append({"width": width, "n_params": n_params, "k": k, "N_k": len(basis), "params": basis.n_parameters,
                     "capped": choice["capped"], "n_test": setting["n_test"], "n_points_train": setting["n_train"],
                     "points_per_parameter": points_per_parameter, "max_k": max_k, "max_params": max_params,
                     **by_k[k]})
    return rows
