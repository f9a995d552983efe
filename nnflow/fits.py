"""Least-squares line fits with standard errors: the one log-log (power-law) fit of the project.

For points (x_i, y_i), i = 1..n, the ordinary least-squares line y = a + b x has

    b = S_xy / S_xx,   a = ȳ − b x̄,   S_xx = Σ (x_i − x̄)²,   S_xy = Σ (x_i − x̄)(y_i − ȳ),
    stderr(b) = √( RSS / ((n − 2) S_xx) ),   RSS = Σ (y_i − a − b x_i)²           (n ≥ 3)

``linear_fit`` is that fit; ``power_law_fit`` applies it to (log x, log y), so y ≈ C x^p with
p = b (``rate``) and C = e^a (``prefactor``). Used by the width-sweep report (slopes against N),
the Ricci study (errors against σ and N) and the mode-rate measurement (log|a(t)| against t).
Computed in float64 torch; pure (no I/O).
"""

from __future__ import annotations

import math

import torch


def linear_fit(xs, ys) -> dict:
    """Least-squares line through (x, y) pairs: {"slope", "intercept", "stderr", "n"}.

    Args: xs, ys: sequences or 1-d tensors of equal length (converted to float64); every pair
    is used (filter first). Returns floats: slope b and intercept a (nan with fewer than two
    points or all x equal), stderr of b from the residuals (nan with fewer than three points),
    and n, the number of points.
    """
    x = torch.as_tensor(xs, dtype=torch.float64).reshape(-1)
    y = torch.as_tensor(ys, dtype=torch.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"xs and ys must have the same length; got {x.numel()} and {y.numel()}")
    n = x.numel()
    nan = {"slope": math.nan, "intercept": math.nan, "stderr": math.nan, "n": n}
    if n < 2:
        return nan
    xc = x - x.mean()
    sxx = xc.square().sum().item()
    if sxx == 0:
        return nan
    slope = (xc * (y - y.mean())).sum().item() / sxx
    intercept = y.mean().item() - slope * x.mean().item()
    stderr = math.nan
    if n >= 3:  # two points leave no residual to estimate the scatter from
        rss = (y - intercept - slope * x).square().sum().item()
        stderr = math.sqrt(rss / (n - 2) / sxx)
    return {"slope": slope, "intercept": intercept, "stderr": stderr, "n": n}


def _positive_finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def power_law_fit(xs, ys) -> dict:
    """Fit y ≈ C x^p by least squares in log-log space over the finite, positive pairs.

    Returns {"rate": p, "stderr": stderr of p, "prefactor": C, "n": points used} (floats; p and
    C nan with fewer than two usable points, stderr nan with fewer than three). Pairs with x or
    y missing (None), non-finite or ≤ 0 are left out (a failed run's nan error, for example).
    """
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if _positive_finite(x) and _positive_finite(y)]
    fit = linear_fit([math.log(x) for x, _ in pts], [math.log(y) for _, y in pts])
    prefactor = math.exp(fit["intercept"]) if math.isfinite(fit["intercept"]) else math.nan
    return {"rate": fit["slope"], "stderr": fit["stderr"], "prefactor": prefactor, "n": fit["n"]}
