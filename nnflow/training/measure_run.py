"""The geometry of a trained metric on fresh points, beside Fubini–Study's (nnflow-measure run=,
and nnflow-train's ``curvature_points``).

``measure_learned`` runs ``measure_metric`` (σ, volume, χ = ∫c_n and the Ricci measure, each with
its Monte Carlo standard error) on the learned metric g = ∂∂̄K_θ — det g from the model's
``metric`` (the run's tested metric), curvature from its potential K_θ — and on the Fubini–Study
metric of the run's Kähler class on the same points. Curvature takes the exact bi-jet route
through the network where the model has one (an MLP potential: ``KahlerPotential.metric_derivatives``)
and nested autodiff of the potential otherwise (``route``). Computing only: the caller samples,
logs, plots and writes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nnflow.geometry import PointSet
from nnflow.geometry.linalg import hermitian_det
from nnflow.geometry.measures import measure_fubini_study, measure_metric

ROUTES = ("auto", "exact", "autodiff")


def metric_det(metric: Callable, batch_size: int = 8192) -> Callable[[PointSet], torch.Tensor]:
    """det_fn for measure_metric: PointSet (B points) → (B,) real det of metric(z, jac), in batches, no grad."""

    @torch.no_grad()
    def det(points: PointSet) -> torch.Tensor:
        return torch.cat([
            hermitian_det(metric(points.z[i : i + batch_size], points.jac[i : i + batch_size]))
            for i in range(0, len(points), batch_size)
        ])

    return det


def curvature_route(model, route: str = "auto", kind: str | None = None) -> str:
    """The curvature route measure_learned takes for ``model``: "exact" (bi-jets through an MLP
    potential) or "autodiff" (nested autodiff of any potential). ValueError for an unknown route,
    for "exact" on a model without one, and for a model without a Kähler potential (``kind``: the
    run's model.kind, named in the message)."""
    if route not in ROUTES:
        raise ValueError(f"unknown curvature route {route!r}; choose from {ROUTES}")
    if not callable(getattr(model, "potential", None)):
        what = f"{kind}: {type(model).__name__}" if kind else type(model).__name__
        raise ValueError(f"the model ({what}) has no Kähler potential, so its curvature (χ, Ricci) cannot be "
                         "measured; measure a finite or linearized run")
    exact = bool(getattr(model, "has_exact_curvature", False))
    if route == "exact" and not exact:
        raise ValueError(f"curvature route 'exact' needs an MLP potential; {type(model).__name__} has none: "
                         "use route 'autodiff'")
    return "exact" if route == "exact" or (route == "auto" and exact) else "autodiff"


def measure_learned(
    model, points: PointSet, kahler_t: float, curvature_points: int | None = 20000, chunk_size: int = 1024,
    batch_size: int = 8192, route: str = "auto", per_point: bool = False,
) -> dict:
    """measure_metric of ``model``'s learned metric on ``points``, with the FS values beside it.

    Args:
        model: a trained model with ``metric`` and ``potential`` (model.kind finite or linearized:
            ``nnflow.load_run(...).model``; a frozen flow has no potential to take curvature of).
        points: points on the model's manifold, on its device.
        kahler_t: the run's Kähler class t (the FS metric it is compared with).
        curvature_points, chunk_size: as in measure_metric (leading subsample; points per chunk).
        route: "auto", "exact" or "autodiff" (``curvature_route``).
        per_point: also return measure_metric's per-point values (for the histograms).
    Returns:
        measure_metric's dict for the learned metric with ``curvature_route``, plus
        ``fubini_study``: the same dict for g_FS of class t on the same points.
    Raises:
        ValueError: the model has no Kähler potential, or no exact route was asked for.
    """
    chosen = curvature_route(model, route)
    kwargs = {"curvature_points": curvature_points, "chunk_size": chunk_size, "per_point": per_point}
    derivatives = model.metric_derivatives if chosen == "exact" else None
    learned = measure_metric(points, metric_det(model.metric, batch_size), model.potential,
                             derivatives=derivatives, **kwargs)
    learned["curvature_route"] = chosen
    learned["fubini_study"] = measure_fubini_study(points, t=float(kahler_t), **kwargs)
    return learned
