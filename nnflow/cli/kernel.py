"""nnflow-kernel: Monte Carlo mean of empirical kernels at width N against the analytic kernel
(nnflow.kernels.convergence); writes kernel.json and prints it as the last line of stdout."""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from nnflow.cli import CONFIG_DIR, device_from_config, run_dir, write_summary
from nnflow.geometry.hypersurface import hypersurface_from_config


def compare(cfg: DictConfig) -> tuple[dict, dict]:
    """Validate the config, then run nnflow.kernels.convergence.kernel_convergence.

    Returns (result dict, {"points", "empirical", "analytic"}).
    """
    from nnflow.feasibility import check_feasible, dense_kernels, kernel_components, sampling
    from nnflow.kernels.convergence import kernel_convergence, validate_convergence_config
    from nnflow.kernels.empirical import KERNEL_ORDERS

    options = OmegaConf.to_container(cfg, resolve=True)
    validate_convergence_config(options)  # before anything is set or sampled
    device = device_from_config(cfg.device)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    surface = hypersurface_from_config(options["manifold"])
    n, orders = int(cfg.n_points), KERNEL_ORDERS[cfg.kernel]
    check_feasible(sampling(n, surface.n_coords), dense_kernels(n, kernel_components(orders, surface.dim), copies=3),
                   device=device, max_memory_gb=cfg.get("max_memory_gb"))  # Θ̄, the mean and one network's
    return kernel_convergence(options, surface, device)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="kernel")
def main(cfg: DictConfig) -> float:
    from nnflow import tracking

    name = f"kernel_{cfg.model.network}_w{cfg.model.width}_s{cfg.seed}"
    run = tracking.start(cfg, "kernel", name, run_dir())
    result, objects = compare(cfg)
    if cfg.save_kernels:
        torch.save({k: objects[k].cpu() for k in ("empirical", "analytic")}, run_dir() / "kernels.pt")
    tracking.finish(run, result)  # before the summary line: it stays the last line of stdout
    write_summary(run_dir(), "kernel.json", result)
    return result["rel_frobenius_error"]
