"""nnflow-measure: sample points on X and measure its Fubini–Study metric."""

from __future__ import annotations

import json
import logging
import time

import hydra
from omegaconf import DictConfig

from nnflow.cli import CONFIG_DIR, check_positive, device_from_config, manifold_from_config, run_dir

log = logging.getLogger("nnflow")


def measure(cfg: DictConfig) -> dict:
    """Sample points and measure the Fubini–Study metric; returns the result dict."""
    from nnflow.geometry import sample_points
    from nnflow.geometry.measures import measure_fubini_study

    check_positive(cfg, "n_points", "kahler_t", "curvature_points", allow_none=("curvature_points",))
    device = device_from_config(cfg.device)
    surface = manifold_from_config(cfg.manifold)
    start = time.perf_counter()
    log.info("sampling %d points on %s (seed %d)", cfg.n_points, surface, cfg.seed)
    points = sample_points(surface, int(cfg.n_points), seed=int(cfg.seed), device=device)
    t_sample = time.perf_counter() - start
    log.info("sampled in %.2f s; measuring (curvature on %s points)", t_sample, cfg.curvature_points)
    result = measure_fubini_study(
        points, t=float(cfg.kahler_t), curvature_points=cfg.curvature_points
    )
    result.update(
        manifold=surface.name,
        seed=int(cfg.seed),
        kahler_t=float(cfg.kahler_t),
        seconds_sampling=t_sample,
        seconds=time.perf_counter() - start,
        device=str(device),
    )
    return result, points


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="measure")
def main(cfg: DictConfig) -> float:
    result, points = measure(cfg)
    out = run_dir()
    (out / "measure.json").write_text(json.dumps(result, indent=2))
    if cfg.save_points:
        points.save(out / "points.pt")
    log.info("wrote %s", out / "measure.json")
    print(json.dumps(result), flush=True)
    return result["sigma"]
