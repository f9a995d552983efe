"""nnflow-measure: sample points on X and measure its Fubini–Study metric — or, with
``run=<run dir>``, a trained run's learned metric with the FS values beside it — writes
measure.json and prints it as the last line of stdout."""

from __future__ import annotations

import logging
import time

import hydra
from omegaconf import DictConfig, OmegaConf

from nnflow.cli import CONFIG_DIR, device_from_config, run_dir, write_summary
from nnflow.geometry.cicy import CompleteIntersection, manifold_from_config
from nnflow.provenance import provenance
from nnflow.validation import check_bool, check_int, check_positive

log = logging.getLogger("nnflow")


def measure(cfg: DictConfig, out_dir=None) -> tuple[dict, object]:
    """Sample points and measure the Fubini–Study metric, or with ``run`` set the run's learned
    metric and FS beside it (the run's manifold and Kähler class; its η and Ricci-scalar
    histograms into ``out_dir`` when given); returns (result dict, PointSet)."""
    from nnflow.feasibility import check_feasible, sampling
    from nnflow.geometry.cicy_sampling import sample_manifold
    from nnflow.geometry.measures import measure_fubini_study

    check_int(cfg, "n_points", "curvature_points", allow_none=("curvature_points",))
    check_int(cfg, "chunk_size")
    check_int(cfg, "seed", minimum=-(2**63))  # any integer torch takes as a seed
    check_positive(cfg, "kahler_t")
    check_bool(cfg, "save_points")
    device = device_from_config(cfg.device)
    loaded = load(cfg.run, device) if cfg.get("run") is not None else None
    if loaded:
        from nnflow.training.measure_run import curvature_route

        # before sampling: a clear error for a model without a potential or an unknown route
        route = curvature_route(loaded.model, str(cfg.curvature_route), str(loaded.cfg.model.kind))
        log.info("curvature route: %s", route)
    surface = loaded.surface if loaded else manifold_from_config(OmegaConf.to_container(cfg.manifold, resolve=True))
    kahler_t = float(loaded.cfg.kahler_t if loaded else cfg.kahler_t)
    check_feasible(sampling(int(cfg.n_points), surface.n_coords), device=device, max_memory_gb=cfg.get("max_memory_gb"))
    start = time.perf_counter()
    log.info("sampling %d points on %s (seed %d)", cfg.n_points, surface, cfg.seed)
    points = sample_manifold(surface, int(cfg.n_points), seed=int(cfg.seed), device=device)
    t_sample = time.perf_counter() - start
    log.info("sampled in %.2f s; measuring (curvature on %s points)", t_sample, cfg.curvature_points)
    options = {"curvature_points": cfg.curvature_points, "chunk_size": int(cfg.chunk_size)}
    if loaded:
        from nnflow.training.measure_run import measure_learned

        result = measure_learned(loaded.model, points, float(loaded.cfg.kahler_t), route=str(cfg.curvature_route),
                                 per_point=True, **options)
        figures = write_histograms(result, out_dir, f"{surface.name}:")
        log.info("learned σ = %.5g ± %.2g (FS %.5g), χ = %.4g ± %.2g (FS %.4g)", result["sigma"], result["sigma_err"],
                 result["fubini_study"]["sigma"], result["euler"], result["euler_err"], result["fubini_study"]["euler"])
        summary = loaded.summary
        result.update(run=str(cfg.run), kind=str(loaded.cfg.model.kind), checkpoint=str(loaded.checkpoint),
                      checkpoint_step=summary.get("checkpoint_step"), sigma_test=summary.get("sigma_test"),
                      figures=figures)
    else:
        result = measure_fubini_study(points, t=kahler_t, **options)
    result.update(
        manifold=surface.name,
        **cicy_topology(surface, kahler_t),
        seed=int(cfg.seed),
        kahler_t=kahler_t,
        seconds_sampling=t_sample,
        seconds=time.perf_counter() - start,
        device=str(device),
        provenance=provenance(device),
    )
    return result, points


def cicy_topology(surface, kahler_t: float = 1.0) -> dict:
    """The smoothness record of a hypersurface; for a CICY the exact χ and volume of its configuration
    (smoothness is checked at the sampled points only: the chart refuses a singular one)."""
    if not isinstance(surface, CompleteIntersection):
        return {"smoothness": smoothness(surface.check_smooth())}  # memoized by sampling: free
    return {"smoothness": "checked at the sampled points (no global proof for complete intersections)",
            "configuration": surface.configuration.tolist(), "euler_expected": surface.euler_characteristic(),
            "volume_expected": surface.volume(kahler_t)}


def write_histograms(result: dict, out_dir, title: str) -> list[str]:
    """The η and Ricci-scalar histograms (report.geometry) of a measure_learned result in ``out_dir``
    (none if it is None); removes the per-point values from ``result`` (they are not JSON)."""
    from nnflow.report.geometry import plot_metric_histograms

    fs = result["fubini_study"]
    figures = plot_metric_histograms(result, fs, out_dir, title) if out_dir is not None else []
    result.pop("per_point")
    fs.pop("per_point")
    if figures:
        log.info("histograms: %s", ", ".join(figures))
    return figures


def load(run: str, device):
    """nnflow.load_run of config value ``run`` on ``device``, logged."""
    from nnflow import load_run

    loaded = load_run(run, device=device)
    log.info("loaded %s (model.kind=%s, step %s, σ_test %.5g)", loaded.checkpoint, loaded.cfg.model.kind,
             loaded.summary.get("checkpoint_step"), loaded.summary.get("sigma_test", float("nan")))
    return loaded


def smoothness(report) -> dict:
    """The singularity check's outcome for measure.json; near a singular member σ and χ mean little."""
    out = {"method": report.method, "distance": report.distance, "near_singular": report.near_singular}
    if report.near_singular:
        out["meaning"] = "close to a singular member: σ and χ converge slowly, expect large errors at this n_points"
    return out


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="measure")
def main(cfg: DictConfig) -> float:
    from nnflow import tracking

    run = tracking.start(cfg, "measure", f"measure_{cfg.manifold.name}_s{cfg.seed}", run_dir())
    result, points = measure(cfg, run_dir())
    if cfg.save_points:
        points.save(run_dir() / "points.pt")
    tracking.finish(run, result)  # before the summary line: it stays the last line of stdout
    write_summary(run_dir(), "measure.json", result)
    return result["sigma"]
