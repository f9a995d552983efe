"""Monte Carlo convergence of empirical tangent kernels to the infinite-width kernel (nnflow-kernel).

For M networks of width N (seeds ``seed + s``, s = 0 … M−1) at initialization θ0,

    Θ̂_M = (1/M) Σ_s Θ_{θ0^(s)}(X, X)     against     Θ̄(X, X)   (nnflow.kernels.analytic)

on n points X sampled on a hypersurface; ‖Θ̂_M − Θ̄‖_F/‖Θ̄‖_F falls like
(single-network error)/√M + O(1/N) (the finite-width bias). Pure torch: the options are a plain
mapping with the keys of conf/kernel.yaml.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping

import torch

from nnflow.geometry import Hypersurface, sample_points
from nnflow.kernels.analytic import analytic_kernel
from nnflow.kernels.diagnostics import alignment, leading_eigenvalues, relative_frobenius
from nnflow.kernels.empirical import IMPLEMENTATIONS, KERNEL_ORDERS, empirical_kernel
from nnflow.models import build_potential
from nnflow.models.potential import phase_options
from nnflow.provenance import provenance
from nnflow.validation import check_choice, check_int, check_positive, select

log = logging.getLogger("nnflow")


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    """Build the networks in ``dtype`` whatever the caller's default (parameters are drawn in it)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def validate_convergence_config(cfg: Mapping) -> None:
    """Raise ValueError naming the first bad key of a conf/kernel.yaml mapping."""
    check_int(cfg, "n_points", "seeds", "model.width", "top_eigenvalues")
    if select(cfg, "model.depth") is not None:  # architectures without depth have no key
        check_int(cfg, "model.depth")
    check_int(cfg, "chunk_size", "threads", allow_none=("chunk_size", "threads"))
    check_positive(cfg, "kahler_t")
    check_choice(cfg, "kernel", tuple(KERNEL_ORDERS))
    check_choice(cfg, "implementation", IMPLEMENTATIONS)
    check_int(cfg, "seed", minimum=-(2**63))  # any integer torch takes as a seed
    if cfg["model"].get("kind", "finite") == "frozen":
        raise ValueError("config value model.kind='frozen' has no network to compare; use finite or linearized")


def kernel_convergence(cfg: Mapping, surface: Hypersurface, device: torch.device) -> tuple[dict, dict]:
    """Sample points, average M empirical kernels (float64), compare with the analytic one.

    Args:
        cfg: plain mapping with the conf/kernel.yaml keys (n_points, seeds, seed, kernel, kahler_t,
            implementation, chunk_size, top_eigenvalues, model: the architecture options).
        surface: the hypersurface the points are sampled on.
        device: where the points and networks live.
    Returns:
        (result, tensors): result has rel_frobenius_error ‖Θ̂_M − Θ̄‖_F/‖Θ̄‖_F, alignment,
        single_seed_error_mean, expected_error_scale (its mean/√M), eigenvalues_* (square
        kernels), timings and a ``provenance`` block; tensors holds "points" (PointSet),
        "empirical" Θ̂_M and "analytic" Θ̄, float64 kernels of the shape the kernel kind gives
        (e.g. (n, n) potential, (n, n, m, m) metric with m = real metric components).
    Raises:
        ValueError: for a bad option (naming the key) or model options without an analytic kernel.
    """
    validate_convergence_config(cfg)
    model_cfg = {k: v for k, v in cfg["model"].items() if k != "kind"}  # kind: how it trains, not the architecture
    model_cfg |= phase_options(surface, model_cfg.get("feature_symmetry", "none"))
    analytic = analytic_kernel(model_cfg)  # validates the model options up front
    orders = KERNEL_ORDERS[cfg["kernel"]]
    analytic.check_smooth(sum(orders), "ntk")  # e.g. relu has no metric kernel
    n_seeds, chunk_size = int(cfg["seeds"]), cfg["chunk_size"]
    start = time.perf_counter()
    points = sample_points(surface, int(cfg["n_points"]), seed=int(cfg["seed"]), device=device)
    log.info("sampled %d points on %s; analytic %s kernel of %r", len(points), surface, cfg["kernel"], analytic)
    t0 = time.perf_counter()
    theta_bar = analytic.kernel(points, None, orders, "ntk", chunk_size)
    t_analytic = time.perf_counter() - t0
    mean, errors = None, []
    t0 = time.perf_counter()
    for s in range(n_seeds):
        with _default_dtype(torch.float64):
            model = build_potential(
                **model_cfg, n_coords=surface.n_coords, kahler_t=float(cfg["kahler_t"]), seed=int(cfg["seed"]) + s
            )
        model = model.to(device=device, dtype=torch.float64)
        theta = empirical_kernel(model, points, None, orders, None, cfg["implementation"], chunk_size)
        errors.append(relative_frobenius(theta, theta_bar))
        mean = theta / n_seeds if mean is None else mean + theta / n_seeds
        log.info("seed %d/%d: single-network relative error %.4f", s + 1, n_seeds, errors[-1])
    t_empirical = time.perf_counter() - t0
    result = {
        "kernel": cfg["kernel"],
        "rel_frobenius_error": relative_frobenius(mean, theta_bar),
        "alignment": alignment(mean, theta_bar),
        "single_seed_error_mean": sum(errors) / len(errors),
        "width": int(model_cfg["width"]),
        "seeds": n_seeds,
        "n_points": len(points),
        "manifold": surface.name,
        "network": model_cfg.get("network", "mlp"),
        "activation": model_cfg.get("activation"),
        "depth": model_cfg.get("depth"),
        "feature_degree": model_cfg.get("feature_degree", 1),
        "feature_symmetry": model_cfg.get("feature_symmetry", "none"),
        "implementation": cfg["implementation"],
        "chunk_size": chunk_size,
        "device": str(device),
        "seconds_analytic": t_analytic,
        "seconds_empirical": t_empirical,
    }
    result["expected_error_scale"] = result["single_seed_error_mean"] / math.sqrt(n_seeds)
    if orders[0] == orders[1]:
        k = int(cfg["top_eigenvalues"])
        result["eigenvalues_analytic"] = leading_eigenvalues(theta_bar, k).tolist()
        result["eigenvalues_empirical"] = leading_eigenvalues(mean, k).tolist()
    result["seconds"] = time.perf_counter() - start
    result["provenance"] = provenance(device)
    return result, {"points": points, "empirical": mean, "analytic": theta_bar}
