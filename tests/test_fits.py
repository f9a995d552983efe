"""The one least-squares line fit (nnflow.fits): closed forms and the textbook standard error."""

import math

import pytest
import torch
from scipy.stats import linregress

from nnflow.fits import linear_fit, power_law_fit


def test_exact_power_law_gives_exact_rate_and_zero_stderr():
    xs = [0.16, 0.08, 0.04, 0.02, 0.01]
    fit = power_law_fit(xs, [0.7 * x**2.5 for x in xs])
    assert fit["rate"] == pytest.approx(2.5, abs=1e-12) and fit["prefactor"] == pytest.approx(0.7, rel=1e-12)
    assert fit["stderr"] < 1e-12 and fit["n"] == 5


def test_noisy_power_law_stderr_is_the_textbook_one():
    # log y = a + b log x + noise: b, a and stderr(b) = sqrt(RSS/((n−2) Sxx)) as scipy's linregress gives them
    xs = [64, 256, 1024, 4096, 16384]
    ys = [3.0 * x**-0.5 * f for x, f in zip(xs, (1.1, 0.93, 1.04, 0.97, 1.02))]
    ref = linregress([math.log(x) for x in xs], [math.log(y) for y in ys])
    fit = power_law_fit(xs, ys)
    assert fit["rate"] == pytest.approx(ref.slope, abs=1e-12)
    assert fit["stderr"] == pytest.approx(ref.stderr, rel=1e-10) and fit["stderr"] > 0.01
    assert math.log(fit["prefactor"]) == pytest.approx(ref.intercept, abs=1e-12)


def test_power_law_fit_leaves_out_unusable_pairs():
    xs = [0.1, 0.05, 0.025, 0.0125, -1.0, 0.2]
    ys = [2.0 * x for x in xs[:4]] + [1.0, math.nan]  # x ≤ 0 and y = nan are dropped
    fit = power_law_fit(xs, ys)
    assert fit["n"] == 4 and fit["rate"] == pytest.approx(1.0, abs=1e-12)
    two = power_law_fit([0.1, 0.05, 0.02], [1.0, 0.5, None])
    assert two["n"] == 2 and two["rate"] == pytest.approx(1.0, abs=1e-12) and math.isnan(two["stderr"])
    one = power_law_fit([0.1, 0.05], [1.0, math.nan])
    assert one["n"] == 1 and math.isnan(one["rate"]) and math.isnan(one["prefactor"])


def test_linear_fit_of_an_exponential_is_its_rate():
    # the mode-rate use: log a(t) = log a0 + λ t
    t = torch.linspace(0, 0.05, 6, dtype=torch.float64)
    fit = linear_fit(t, torch.log(1e-4 * torch.exp(-39.5 * t)))
    assert fit["slope"] == pytest.approx(-39.5, rel=1e-12) and fit["intercept"] == pytest.approx(math.log(1e-4))
    assert math.isnan(linear_fit([1.0, 1.0, 1.0], [0.0, 1.0, 2.0])["slope"])  # all x equal: no line
    with pytest.raises(ValueError, match="same length"):
        linear_fit([1.0, 2.0], [1.0])
