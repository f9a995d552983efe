"""The geometry of a trained run's metric on fresh points, beside Fubini–Study's (nnflow-measure run=).

For a run loaded by ``nnflow.load_run`` and points on its manifold, ``measure_metric`` (σ, volume,
χ = ∫c_n and the Ricci measure, each with its Monte Carlo standard error) of the learned metric
g = ∂∂̄K_θ — det g from the model's ``metric`` (the run's tested metric), curvature from its
potential K_θ — and of the Fubini–Study metric of the run's Kähler class on the same points.
Computing only: the caller samples, logs and writes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nnflow.geometry import PointSet
from nnflow.geometry.linalg import hermitian_det
from nnflow.geometry.measures import measure_fubini_study, measure_metric


def metric_det(metric: Callable, batch_size: int = 8192) -> Callable[[PointSet], torch.Tensor]:
    """det_fn for measure_metric: PointSet (B points) → (B,) real det of metric(z, jac), in batches, no grad."""

    @torch.no_grad()
    def det(points: PointSet) -> torch.Tensor:
        return torch.cat([
            hermitian_det(metric(points.z[i : i + batch_size], points.jac[i : i + batch_size]))
            for i in range(0, len(points), batch_size)
        ])

    return det


def measure_learned(
    run, points: PointSet, curvature_points: int | None = 20000, chunk_size: int = 1024, batch_size: int = 8192
) -> dict:
    """measure_metric of the run's learned metric on ``points``, with the FS values beside it.

    Args:
        run: a ``LoadedRun`` (nnflow.training.load) whose model has ``metric`` and ``potential``
            (model.kind finite or linearized; a frozen flow has no potential to take curvature of).
        points: points on ``run.surface``, on the model's device.
        curvature_points, chunk_size: as in measure_metric (leading subsample; points per chunk).
    Returns:
        measure_metric's dict for the learned metric, plus ``fubini_study``: the same dict for
        g_FS of class t = the run's kahler_t on the same points.
    Raises:
        ValueError: the model has no Kähler potential (named with its kind).
    """
    model = run.model
    if not callable(getattr(model, "potential", None)):
        raise ValueError(
            f"the run's model ({run.cfg.model.kind}: {type(model).__name__}) has no Kähler potential, so its "
            "curvature (χ, Ricci) cannot be measured; measure a finite or linearized run"
        )
    kwargs = {"curvature_points": curvature_points, "chunk_size": chunk_size}
    learned = measure_metric(points, metric_det(model.metric, batch_size), model.potential, **kwargs)
    learned["fubini_study"] = measure_fubini_study(points, t=float(run.cfg.kahler_t), **kwargs)
    return learned
