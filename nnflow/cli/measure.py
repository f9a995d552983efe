"""nnflow-measure: sample points on X and measure its Fubini–Study metric; writes measure.json
and prints it as the last line of stdout."""

from __future__ import annotations

import logging
import time

import hydra
from omegaconf import DictConfig, OmegaConf

from nnflow.cli import CONFIG_DIR, device_from_config, run_dir, write_summary
from nnflow.geometry.hypersurface import hypersurface_from_config
from nnflow.provenance import provenance
from nnflow.validation import check_bool, check_int, check_positive

log = logging.getLogger("nnflow")


def measure(cfg: DictConfig) -> tuple[dict, object]:
    """Sample points and measure the Fubini–Study metric; returns (result dict, PointSet)."""
    from nnflow.feasibility import check_feasible, sampling
    from nnflow.geometry import sample_points
    from nnflow.geometry.measures import measure_fubini_study

    check_int(cfg, "n_points", "curvature_points", allow_none=("curvature_points",))
    check_int(cfg, "seed", minimum=-(2**63))  # any integer torch takes as a seed
    check_positive(cfg, "kahler_t")
    check_bool(cfg, "save_points")
    device = device_from_config(cfg.device)
    surface = hypersurface_from_config(OmegaConf.to_container(cfg.manifold, resolve=True))
    check_feasible(sampling(int(cfg.n_points), surface.n_coords), device=device, max_memory_gb=cfg.get("max_memory_gb"))
    start = time.perf_counter()
    log.info("sampling %d points on %s (seed %d)", cfg.n_points, surface, cfg.seed)
    points = sample_points(surface, int(cfg.n_points), seed=int(cfg.seed), device=device)
    t_sample = time.perf_counter() - start
    log.info("sampled in %.2f s; measuring (curvature on %s points)", t_sample, cfg.curvature_points)
    result = measure_fubini_study(points, t=float(cfg.kahler_t), curvature_points=cfg.curvature_points)
    result.update(
        manifold=surface.name,
        smoothness=smoothness(surface.check_smooth()),  # memoized by sampling: free
        seed=int(cfg.seed),
        kahler_t=float(cfg.kahler_t),
        seconds_sampling=t_sample,
        seconds=time.perf_counter() - start,
        device=str(device),
        provenance=provenance(device),
    )
    return result, points


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
    result, points = measure(cfg)
    if cfg.save_points:
        points.save(run_dir() / "points.pt")
    tracking.finish(run, result)  # before the summary line: it stays the last line of stdout
    write_summary(run_dir(), "measure.json", result)
    return result["sigma"]
