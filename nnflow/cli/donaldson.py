"""nnflow-donaldson: Donaldson's balanced metric of degree k on X, measured on fresh points."""

from __future__ import annotations

import json
import logging
import time
import warnings

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from nnflow.cli import CONFIG_DIR, device_from_config, print_summary, run_dir
from nnflow.geometry.cicy import manifold_from_config
from nnflow.validation import check_bool, check_choice, check_int, check_positive

log = logging.getLogger("nnflow")


def validate(cfg: DictConfig) -> None:
    """ValueError naming the key for any bad value, before any work."""
    check_int(cfg, "k", "n_points", "n_test", "max_iterations", "chunk_size")
    check_int(cfg, "seed", minimum=0)
    check_int(cfg, "curvature_points", minimum=0)
    check_int(cfg, "threads", allow_none=("threads",))
    check_positive(cfg, "tolerance", "kahler_t")
    check_choice(cfg, "symmetry", ("phases", "none"))
    check_bool(cfg, "save_h")


def donaldson(cfg: DictConfig) -> tuple[dict, object]:
    """The balanced metric of cfg and its measures: (result dict, BalancedMetric)."""
    from nnflow.algebraic import balanced_metric, section_basis
    from nnflow.algebraic.balanced import check_sample_size
    from nnflow.feasibility import check_feasible, sampling
    from nnflow.geometry.cicy_sampling import sample_manifold
    from nnflow.provenance import provenance
    from nnflow.training.data import (
        SPLIT_SEED_OFFSET,  # the test points are nnflow-train's test split
    )

    validate(cfg)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = device_from_config(cfg.device)
    surface = manifold_from_config(OmegaConf.to_container(cfg.manifold, resolve=True))
    start = time.perf_counter()
    basis = section_basis(surface, int(cfg.k), cfg.symmetry)
    with warnings.catch_warnings():  # only the error here, before sampling; balanced_metric warns
        warnings.simplefilter("ignore")
        check_sample_size(basis, int(cfg.n_points))
    check_feasible(sampling(int(cfg.n_points), surface.n_coords), sampling(int(cfg.n_test), surface.n_coords, "n_test"),
                   device=device, max_memory_gb=cfg.get("max_memory_gb"))
    log.info("%s on %s: %d parameters; sampling %d points", basis, surface.name, basis.n_parameters, cfg.n_points)
    points = sample_manifold(surface, int(cfg.n_points), seed=int(cfg.seed), device=device)
    metric = balanced_metric(
        basis, points, tolerance=float(cfg.tolerance), max_iterations=int(cfg.max_iterations),
        kahler_t=float(cfg.kahler_t), chunk_size=int(cfg.chunk_size),
    )
    log.info("balanced after %d iterations (%.1f s); measuring", metric.info["iterations"], metric.info["seconds"])
    test = sample_manifold(surface, int(cfg.n_test), seed=int(cfg.seed) + SPLIT_SEED_OFFSET["test"], device=device)
    measures = metric.measure(test, curvature_points=int(cfg.curvature_points))
    info = {k: v for k, v in metric.info.items() if k not in ("k", "n_k", "n_points", "seconds")}
    result = {
        "manifold": surface.name, "k": int(cfg.k), "N_k": len(basis), "symmetry": cfg.symmetry,
        **{k: v for k, v in measures.items() if k != "n_points"}, **info,
        "n_points": int(cfg.n_points), "n_test": int(cfg.n_test), "seed": int(cfg.seed),
        "kahler_t": float(cfg.kahler_t), "seconds_balanced": metric.info["seconds"],
        "seconds": time.perf_counter() - start, "provenance": provenance(device),
    }
    return result, metric


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="donaldson")
def main(cfg: DictConfig) -> float:
    from nnflow import tracking

    out = run_dir()
    run = tracking.start(cfg, "donaldson", f"donaldson_{cfg.manifold.name}_k{cfg.k}", out)
    result, metric = donaldson(cfg)
    if cfg.save_h:
        surface = manifold_from_config(OmegaConf.to_container(cfg.manifold, resolve=True))
        metric.save(out / "balanced.pt", surface=surface)
    (out / "donaldson.json").write_text(json.dumps(result, indent=2))
    log.info("wrote %s", out / "donaldson.json")
    summary = {k: result[k] for k in ("manifold", "k", "N_k", "sigma", "sigma_err", "iterations", "seconds")}
    tracking.finish(run, result)  # before the summary line: it stays the last line of stdout
    print_summary(summary)
    return result["sigma"]


if __name__ == "__main__":
    main()
