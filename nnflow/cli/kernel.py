"""nnflow-kernel: Monte Carlo mean of empirical kernels at width N against the analytic kernel."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from nnflow.cli import CONFIG_DIR, check_positive, device_from_config, manifold_from_config, run_dir

log = logging.getLogger("nnflow")
KERNEL_NAMES = ("potential", "kahler", "metric")


@contextlib.contextmanager
def _default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _check_int(cfg: DictConfig, *keys: str, allow_none: tuple[str, ...] = ()) -> None:
    for key in keys:
        value = OmegaConf.select(cfg, key)
        if value is None and key in allow_none:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"config value {key}={value!r} must be a positive integer")


def validate(cfg: DictConfig) -> None:
    """Raise ValueError naming the first bad config value."""
    from nnflow.kernels import IMPLEMENTATIONS

    _check_int(cfg, "n_points", "seeds", "model.width", "top_eigenvalues")
    _check_int(cfg, "chunk_size", "threads", allow_none=("chunk_size", "threads"))
    check_positive(cfg, "kahler_t")
    if cfg.kernel not in KERNEL_NAMES:
        raise ValueError(f"config value kernel={cfg.kernel!r} must be one of {KERNEL_NAMES}")
    if cfg.implementation not in IMPLEMENTATIONS:
        raise ValueError(f"config value implementation={cfg.implementation!r} must be one of {IMPLEMENTATIONS}")
    if not isinstance(cfg.seed, int):
        raise ValueError(f"config value seed={cfg.seed!r} must be an integer")


def compare(cfg: DictConfig) -> tuple[dict, dict]:
    """Sample points, average M empirical kernels, compare with the analytic one.

    Returns (result dict, {"points", "empirical", "analytic"}).
    """
    from nnflow.geometry import sample_points
    from nnflow.kernels import (
        KERNEL_ORDERS,
        alignment,
        analytic_kernel,
        empirical_kernel,
        leading_eigenvalues,
        relative_frobenius,
    )

    validate(cfg)
    device = device_from_config(cfg.device)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    surface = manifold_from_config(cfg.manifold)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    analytic = analytic_kernel(model_cfg)  # validates the model options up front
    orders = KERNEL_ORDERS[cfg.kernel]
    analytic.check_smooth(sum(orders), "ntk")  # e.g. relu has no metric kernel
    start = time.perf_counter()
    points = sample_points(surface, int(cfg.n_points), seed=int(cfg.seed), device=device)
    log.info("sampled %d points on %s; analytic %s kernel of %r", len(points), surface, cfg.kernel, analytic)
    t0 = time.perf_counter()
    theta_bar = analytic.kernel(points, None, orders, "ntk", cfg.chunk_size)
    t_analytic = time.perf_counter() - t0
    mean, errors = None, []
    t0 = time.perf_counter()
    for s in range(int(cfg.seeds)):
        with _default_dtype(torch.float64):
            model = hydra.utils.instantiate(
                cfg.model, n_coords=surface.n_coords, kahler_t=float(cfg.kahler_t), seed=int(cfg.seed) + s
            )
        model = model.to(device=device, dtype=torch.float64)
        theta = empirical_kernel(model, points, None, orders, None, cfg.implementation, cfg.chunk_size)
        errors.append(relative_frobenius(theta, theta_bar))
        mean = theta / cfg.seeds if mean is None else mean + theta / cfg.seeds
        log.info("seed %d/%d: single-network relative error %.4f", s + 1, cfg.seeds, errors[-1])
    t_empirical = time.perf_counter() - t0
    result = {
        "kernel": cfg.kernel,
        "rel_frobenius_error": relative_frobenius(mean, theta_bar),
        "alignment": alignment(mean, theta_bar),
        "single_seed_error_mean": sum(errors) / len(errors),
        "width": int(cfg.model.width),
        "seeds": int(cfg.seeds),
        "n_points": len(points),
        "manifold": surface.name,
        "network": model_cfg.get("network", "mlp"),
        "activation": model_cfg.get("activation"),
        "depth": model_cfg.get("depth"),
        "implementation": cfg.implementation,
        "chunk_size": cfg.chunk_size,
        "device": str(device),
        "seconds_analytic": t_analytic,
        "seconds_empirical": t_empirical,
    }
    result["expected_error_scale"] = result["single_seed_error_mean"] / math.sqrt(cfg.seeds)
    if orders[0] == orders[1]:
        k = int(cfg.top_eigenvalues)
        result["eigenvalues_analytic"] = leading_eigenvalues(theta_bar, k).tolist()
        result["eigenvalues_empirical"] = leading_eigenvalues(mean, k).tolist()
    result["seconds"] = time.perf_counter() - start
    return result, {"points": points, "empirical": mean, "analytic": theta_bar}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="kernel")
def main(cfg: DictConfig) -> float:
    result, objects = compare(cfg)
    out = run_dir()
    (out / "kernel.json").write_text(json.dumps(result, indent=2))
    if cfg.save_kernels:
        torch.save({k: objects[k].cpu() for k in ("empirical", "analytic")}, out / "kernels.pt")
    log.info("wrote %s", out / "kernel.json")
    print(json.dumps(result), flush=True)
    return result["rel_frobenius_error"]
