"""The ensemble arm of a width sweep: the mean of the finite networks' potentials over seeds.

For runs s = 1..S of one arm, width and learning rate, K_ens = (1/S) Σ_s K_s; ∂∂̄ is linear, so

    g_ens(z) = (1/S) Σ_s g_s(z)        ((B, n, n) complex, every run on the same points)

and σ_test of the ensemble is ``evaluate_metric`` of that mean on the sweep's test points (the
runs' own test split, read from their point cache or re-sampled from the same seed). Each run is
rebuilt by ``nnflow.load_run`` (its config.yaml and the tested state summary.json names), in
float64. Lee et al. (2020) found ensembles of finite networks to move toward the kernel limit.
Computing only (no files); the report writer (``report.sweep``) puts the rows in report.md and report.json.
"""

from __future__ import annotations

import math
from collections import defaultdict

ENSEMBLE_ARMS = ("finite",)


def load_run_model(record: dict):
    """The trained metric model of one run record (``report.sweep.collect``) and its manifold:
    ``nnflow.load_run`` of the record's run directory (the tested state, float64, eval mode).

    Raises ValueError naming the run when it cannot be rebuilt (no config, summary or checkpoint,
    an unreadable one, or one at another step than the tested one).
    """
    from nnflow.training.load import load_run

    try:
        loaded = load_run(record["run"])
    except FileNotFoundError as err:
        raise ValueError(f"run {record['run']} cannot be rebuilt: {err}") from err
    return loaded.model, loaded.surface


def sweep_test_points(record: dict, surface):
    """The run's test split: its point cache if present, else sampled from the same seed (cached)."""
    from nnflow.training.data import load_or_sample

    data = record["config"]["data"]
    return load_or_sample(data["cache_dir"], surface, "test", int(data["n_test"]), int(data["seed"]))


def ensemble_metric(models):
    """g_ens(z, jac) = mean over ``models`` of model.metric(z, jac) (no gradients)."""
    import torch

    def metric(z, jac):
        with torch.no_grad():
            return torch.stack([m.metric(z, jac) for m in models]).mean(0)

    return metric


def ensemble_rows(records: list[dict], arms=ENSEMBLE_ARMS, batch_size: int = 4096, device=None) -> list[dict]:
    """σ_test of the seed ensemble for every (arm, width, lr, n_train) with at least two completed seeds.

    ``device``: where the members are evaluated (None: CUDA when available, else the CPU; a
    GPU sweep's widest members cost ~N² d·n² flops per point each).

    Returns one dict per group, sorted by (arm, lr, n_train, width): arm, width, lr, n_train, seeds (sorted),
    n (members), sigma_test, sigma_err (of the ensemble metric), member_sigma (the members' mean
    σ_test) and volume. Raises ValueError (naming the run) when a member cannot be rebuilt, or
    when the members disagree on the test points (manifold, data seed or n_test).
    """
    import torch

    from nnflow.geometry.measures import evaluate_metric

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    groups = defaultdict(list)
    for r in records:
        if r["arm"] in arms and r["width"] is not None and r.get("status") in ("completed", None):
            groups[(r["arm"], int(r["width"]), r["lr"], r.get("n_train"))].append(r)
    rows = []
    order = sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][3] or 0, kv[0][1]))
    for (arm, width, lr, n_train), members in order:
        if len(members) < 2:
            continue
        settings = {_points_setting(m) for m in members}
        if len(settings) > 1:
            raise ValueError(f"the {arm} runs at width {width} do not share their test points: {sorted(settings)}")
        models, surface = [], None
        for m in members:
            model, surface = load_run_model(m)
            models.append(model.to(device))
        points = sweep_test_points(members[0], surface).to(device)
        result = evaluate_metric(points, ensemble_metric(models), batch_size=batch_size)
        member = [m["sigma_test"] for m in members if math.isfinite(m["sigma_test"])]
        rows.append({
            "arm": arm, "width": width, "lr": lr, "n_train": n_train,
            "seeds": sorted(m["seed"] for m in members), "n": len(members),
            "sigma_test": result["sigma"], "sigma_err": result["sigma_err"], "volume": result["volume"],
            "member_sigma": sum(member) / len(member) if member else math.nan,
        })
    return rows


def _points_setting(record: dict) -> tuple:
    cfg = record.get("config") or {}
    data = cfg.get("data") or {}
    return (str((cfg.get("manifold") or {}).get("name")), data.get("seed"), data.get("n_test"))
