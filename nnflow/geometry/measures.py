"""Monte Carlo measures of a Kähler metric on X: σ, volume, Euler characteristic, Ricci.

Every estimate returns (value, standard error). Points come with weights
w = |Ω|²/det g_FS,X, so for a metric g with η = det g / |Ω|² (B values):

    κ      = Σ w η / Σ w                               (η is constant = κ iff g is Ricci-flat)
    σ      = Σ w |1 − η/κ| / Σ w                        (design.md §2)
    Vol(g) = ∫ ω_g^n = Vol_FS · mean(w η)               (= deg·t^n for any g in the class t)
    χ      = ∫ c_n = (Vol_FS/n!) · mean(w C/|Ω|²) / π^n  (curvature.py defines C)
    ricci  = Vol(g)^{1/n} · ⟨|R|⟩_g                     (dimensionless; 0 iff Ricci-flat)

Standard errors treat the points as independent (points on one random line are weakly
correlated) and ratios by the delta method.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from nnflow.geometry.bijets import fs_derivatives
from nnflow.geometry.curvature import curvature
from nnflow.geometry.linalg import hermitian_det, hermitian_positive
from nnflow.geometry.pointset import PointSet

Estimate = tuple[float, float]


def mean_estimate(values: torch.Tensor) -> Estimate:
    """Sample mean and its standard error: (B,) → (mean, se)."""
    n = values.numel()
    return values.mean().item(), (values.std().item() / math.sqrt(n)) if n > 1 else math.inf


def ratio_estimate(num: torch.Tensor, den: torch.Tensor) -> Estimate:
    """Σ num / Σ den with its delta-method standard error."""
    r = (num.sum() / den.sum()).item()
    n = num.numel()
    resid = num - r * den
    se = math.sqrt(resid.square().sum().item() * n / (n - 1)) / abs(den.sum().item()) if n > 1 else math.inf
    return r, se


def check_metric(det_g: torch.Tensor, what: str = "metric") -> None:
    """Raise ValueError if any det g is NaN or not positive (the metric is not Kähler there)."""
    bad = ~(det_g > 0)
    if bad.any():
        raise ValueError(
            f"{what} is not positive definite (or NaN) at {int(bad.sum())} of {det_g.numel()} "
            f"points; min det g = {det_g.nan_to_num(-math.inf).min().item():.3e}"
        )


def kappa(points: PointSet, det_g: torch.Tensor) -> float:
    """κ = Σ w det g/|Ω|² / Σ w."""
    return ((points.weights * det_g / points.omega2).sum() / points.weights.sum()).item()


def sigma_measure(points: PointSet, det_g: torch.Tensor) -> Estimate:
    """σ = Σ w |1 − det g/(κ|Ω|²)| / Σ w (0 iff det g ∝ |Ω|², i.e. Ricci-flat)."""
    eta = det_g / points.omega2
    k = (points.weights * eta).sum() / points.weights.sum()
    return ratio_estimate(points.weights * (1 - eta / k).abs(), points.weights)


def volume(points: PointSet, det_g: torch.Tensor) -> Estimate:
    """∫_X ω_g^n = Vol_FS · mean(w det g/|Ω|²)."""
    value, se = mean_estimate(points.weights * det_g / points.omega2)
    return points.fs_volume() * value, points.fs_volume() * se


def euler_characteristic(points: PointSet, chern_density: torch.Tensor) -> Estimate:
    """χ = ∫ c_n = (Vol_FS/n!) mean(w C/|Ω|²)/π^n."""
    factor = points.integral_factor() / math.pi**points.dim
    value, se = mean_estimate(points.weights * chern_density / points.omega2)
    return factor * value, factor * se


def ricci_measure(points: PointSet, det_g: torch.Tensor, ricci_scalar: torch.Tensor) -> Estimate:
    """Vol(g)^{1/n}·⟨|R|⟩_g, the volume-weighted mean |R| made scale-free."""
    vol = volume(points, det_g)[0]
    mu = points.weights * det_g / points.omega2
    value, se = ratio_estimate(mu * ricci_scalar.abs(), mu)
    s = vol ** (1.0 / points.dim)
    return s * value, s * se


def metric_summary(points: PointSet, det_g: torch.Tensor, positive: torch.Tensor) -> dict[str, float]:
    """σ and volume (with standard errors) and the positive-definite fraction of one metric.

    Args:
        points: the B points; det_g: (B,) real det g; positive: (B,) bool, g > 0 there.
    Returns:
        positive_fraction, sigma, sigma_err, volume, volume_err; σ and the volume are NaN
        unless g is positive definite with finite det g at every point (they would mean nothing).
    """
    out = {"positive_fraction": positive.double().mean().item()}
    if positive.all() and torch.isfinite(det_g).all():
        out["sigma"], out["sigma_err"] = sigma_measure(points, det_g)
        out["volume"], out["volume_err"] = volume(points, det_g)
    else:
        out.update(sigma=math.nan, sigma_err=math.nan, volume=math.nan, volume_err=math.nan)
    return out


@torch.no_grad()
def evaluate_metric(
    points: PointSet, metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batch_size: int = 8192
) -> dict[str, float]:
    """``metric_summary`` of g = metric(z, jac) ((B, N+1), (B, n, N+1) → (B, n, n) complex, e.g.
    a model's ``metric``) on ``points``, evaluated in batches of ``batch_size`` points."""
    dets, positive = [], []
    for start in range(0, len(points), batch_size):
        sl = slice(start, start + batch_size)
        g = metric(points.z[sl], points.jac[sl])
        dets.append(hermitian_det(g))
        positive.append(hermitian_positive(g))
    return metric_summary(points, torch.cat(dets), torch.cat(positive))


def fs_det(points: PointSet, t: float = 1.0) -> torch.Tensor:
    """det of the pulled-back FS metric: (B,) real (``points.fs_det``: one P^N or a product)."""
    return points.fs_det(t)


@torch.no_grad()
def measure_metric(
    points: PointSet,
    det_fn: Callable[[PointSet], torch.Tensor],
    potential: Callable[[torch.Tensor], torch.Tensor],
    curvature_points: int | None = 20000,
    chunk_size: int = 1024,
    derivatives=None,
    per_point: bool = False,
) -> dict[str, float]:
    """All measures of one metric on one point set (values only: no autograd graph is kept).

    Args:
        points: where σ and the volume are estimated.
        det_fn: det of the pulled-back metric on a PointSet.
        potential: the same metric's Kähler potential K(z) for one point, (N+1,) → (),
            for curvature (Euler characteristic, Ricci scalar).
        curvature_points: size of the leading subsample used for curvature (None: all).
        derivatives: optional exact route of the metric's derivatives for curvature
            (curvature.curvature's ``derivatives``; None: nested autodiff of ``potential``).
        per_point: also return ``per_point``: {"eta": (B,) η/κ = det g/(κ|Ω|²), "weights": (B,) w,
            "ricci_scalar": (C,) R·Vol^{1/n} (scale-free, as the Ricci measure), "ricci_weights":
            (C,) w η, the metric's volume form} (CPU tensors, for histograms).
    Returns:
        dict with sigma, sigma_err, volume, volume_err, euler, euler_err, ricci, ricci_err,
        n_points, curvature_points and timings (and ``per_point``).
    """
    t0 = time.perf_counter()
    det_g = det_fn(points)
    check_metric(det_g)
    sigma, sigma_err = sigma_measure(points, det_g)
    vol, vol_err = volume(points, det_g)
    t1 = time.perf_counter()
    sub = points if curvature_points is None else points.subset(slice(0, curvature_points))
    curv = curvature(sub, potential, chunk_size=chunk_size, derivatives=derivatives)
    chi, chi_err = euler_characteristic(sub, curv["chern_density"])
    ricci, ricci_err = ricci_measure(sub, curv["det_g"], curv["ricci_scalar"])
    t2 = time.perf_counter()
    out = {
        "sigma": sigma,
        "sigma_err": sigma_err,
        "volume": vol,
        "volume_err": vol_err,
        "euler": chi,
        "euler_err": chi_err,
        "ricci": ricci,
        "ricci_err": ricci_err,
        "kappa": kappa(points, det_g),
        "n_points": len(points),
        "curvature_points": len(sub),
        "seconds_measures": t1 - t0,
        "seconds_curvature": t2 - t1,
    }
    if per_point:
        eta = det_g / points.omega2
        k = out["kappa"]
        out["per_point"] = {
            "eta": (eta / k).cpu(), "weights": points.weights.cpu(),
            "ricci_scalar": (curv["ricci_scalar"] * vol ** (1.0 / points.dim)).cpu(),
            "ricci_weights": (sub.weights * curv["det_g"] / sub.omega2).cpu(),
        }
    return out


def measure_fubini_study(points: PointSet, t: float = 1.0, **kwargs) -> dict[str, float]:
    """measure_metric for the Fubini–Study metric of Kähler class t (curvature by the exact bi-jet
    route, bijets.fs_derivatives, unless ``derivatives`` is given; None: nested autodiff)."""
    kwargs.setdefault("derivatives", lambda z, jac, hess: fs_derivatives(z, jac, hess, t))
    return measure_metric(points, lambda p: fs_det(p, t), points.fs_potential(t), **kwargs)
