"""Truncated Taylor series of scalar functions, elementwise over tensors (pure torch).

A series is a list [a_0, a_1, ..., a_K] of equally shaped tensors, f(t0 + s) = Σ_k a_k s^k + O(s^{K+1}),
so a_k = f^(k)(t0)/k!. The infinite-width kernels use it to carry d^k/du^k through the layer
recursions exactly (no autodiff, no finite differences): products by Leibniz, compositions by

    g(f(t0 + s)) = Σ_j g^(j)(f(t0))/j! · (f(t0 + s) − f(t0))^j     (truncated at s^K).
"""

from __future__ import annotations

import math

import torch

Series = list  # list[torch.Tensor]


def variable(t0: torch.Tensor, order: int) -> Series:
    """The identity t ↦ t expanded at t0: [t0, 1, 0, ...]."""
    return [t0] + [torch.ones_like(t0)] * min(order, 1) + [torch.zeros_like(t0)] * max(order - 1, 0)


def mul(a: Series, b: Series) -> Series:
    """Cauchy product (Leibniz rule) truncated at the common order."""
    K = min(len(a), len(b)) - 1
    return [sum(a[j] * b[k - j] for j in range(k + 1)) for k in range(K + 1)]


def affine(a: Series, scale: float, shift: float = 0.0) -> Series:
    """scale·f + shift."""
    return [a[0] * scale + shift] + [x * scale for x in a[1:]]


def add(a: Series, b: Series) -> Series:
    return [x + y for x, y in zip(a, b)]


def compose(outer_derivatives: list, inner: Series) -> Series:
    """g∘f from g^(j) at f(t0) (j = 0..K, a list of tensors) and the series of f."""
    K = len(inner) - 1
    if len(outer_derivatives) < K + 1:
        raise ValueError(f"need {K + 1} outer derivatives; got {len(outer_derivatives)}")
    delta = [torch.zeros_like(inner[0])] + list(inner[1:])
    power = [torch.ones_like(inner[0])] + [torch.zeros_like(inner[0])] * K
    out = [outer_derivatives[0] * power[k] for k in range(K + 1)]
    for j in range(1, K + 1):
        power = mul(power, delta)
        coef = outer_derivatives[j] / math.factorial(j)
        out = [o + coef * p for o, p in zip(out, power)]
    return out


def power_derivatives(w0: torch.Tensor, p: float, order: int) -> list:
    """Derivatives of y ↦ y^p at w0: p(p−1)…(p−k+1) w0^{p−k}, k = 0..order."""
    out, coef = [], 1.0
    for k in range(order + 1):
        out.append(coef * w0 ** (p - k))
        coef *= p - k
    return out


def derivatives(a: Series) -> list:
    """f^(k)(t0) = k!·a_k."""
    return [x * math.factorial(k) for k, x in enumerate(a)]
