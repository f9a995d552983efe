"""Truncated Taylor series in three variables (u, v, w), elementwise over tensors (pure torch).

The infinite-width kernels on general features depend on u = x·x', v = |x|² and w = |x'|²
(analytic.py). Their derivative kernels need ∂_u^i ∂_v^j ∂_w^k F at every pair for

    i + j + k ≤ order,   j ≤ jmax,   k ≤ kmax                 (a ``Truncation``)

(v changes only with the first point: jmax = derivatives on side 1, likewise kmax). A series is a
dict {(i, j, k): tensor} of the Taylor coefficients, F(u0 + δu, v0 + δv, w0 + δw) =
Σ a_ijk δu^i δv^j δw^k; a missing key is zero, and tensors broadcast (a per-pair (B1, B2), a
per-point (B1, 1) or (1, B2)), so series of |x|² alone stay per point. Compositions with a
univariate function f use

    f(S) = Σ_m f^(m)(S0)/m! (S − S0)^m        (m ≤ order, since S − S0 has no constant term)

and with a function of three arguments given by its partial derivatives (``compose``)
the same expansion in each argument (a Horner scheme in the first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nnflow.kernels import taylor

Series = dict  # {(i, j, k): tensor}


@dataclass(frozen=True)
class Truncation:
    """Which coefficients a series keeps: i + j + k ≤ order, j ≤ jmax, k ≤ kmax."""

    order: int
    jmax: int
    kmax: int

    def keeps(self, key: tuple[int, int, int]) -> bool:
        i, j, k = key
        return i + j + k <= self.order and j <= self.jmax and k <= self.kmax

    def keys(self) -> list[tuple[int, int, int]]:
        K = self.order
        return [(i, j, k) for i in range(K + 1) for j in range(K + 1) for k in range(K + 1) if self.keeps((i, j, k))]


ZERO = (0, 0, 0)


def variable(value: torch.Tensor, axis: int, trunc: Truncation) -> Series:
    """The coordinate u (axis 0), v (1) or w (2) expanded at ``value``."""
    unit = [0, 0, 0]
    unit[axis] = 1
    unit = tuple(unit)
    out = {ZERO: value}
    if trunc.keeps(unit):
        out[unit] = torch.ones_like(value)
    return out


def affine(a: Series, scale: float, shift: float = 0.0) -> Series:
    """scale·a + shift."""
    out = {key: t * scale for key, t in a.items()}
    out[ZERO] = out[ZERO] + shift
    return out


def add(a: Series, b: Series) -> Series:
    out = dict(a)
    for key, t in b.items():
        out[key] = out[key] + t if key in out else t
    return out


def mul(a: Series, b: Series, trunc: Truncation) -> Series:
    """Product truncated to ``trunc`` (the Leibniz rule)."""
    out: Series = {}
    for ka, ta in a.items():
        for kb, tb in b.items():
            key = (ka[0] + kb[0], ka[1] + kb[1], ka[2] + kb[2])
            if trunc.keeps(key):
                out[key] = out[key] + ta * tb if key in out else ta * tb
    return out


def apply(derivatives: list, a: Series, trunc: Truncation) -> Series:
    """f(a) from f's derivatives [f(a0), f'(a0), …] at the constant term a0 (module doc)."""
    delta = {key: t for key, t in a.items() if key != ZERO}
    out = {ZERO: derivatives[0]}
    power: Series = {ZERO: torch.ones_like(a[ZERO])}
    for m in range(1, trunc.order + 1):
        power = mul(power, delta, trunc)
        if not power:
            break
        coef = derivatives[m] / math.factorial(m)
        out = add(out, {key: coef * t for key, t in power.items()})
    return out


def power(a: Series, p: float, trunc: Truncation) -> Series:
    """a^p."""
    return apply(taylor.power_derivatives(a[ZERO], p, trunc.order), a, trunc)


def exp(a: Series, trunc: Truncation) -> Series:
    e = torch.exp(a[ZERO])
    return apply([e] * (trunc.order + 1), a, trunc)


def sinh_cosh(a: Series, trunc: Truncation) -> tuple[Series, Series]:
    """(sinh a, cosh a): the derivatives alternate between the two."""
    s, c = torch.sinh(a[ZERO]), torch.cosh(a[ZERO])
    ds = [s if m % 2 == 0 else c for m in range(trunc.order + 1)]
    dc = [c if m % 2 == 0 else s for m in range(trunc.order + 1)]
    return apply(ds, a, trunc), apply(dc, a, trunc)


def arcsin(a: Series, trunc: Truncation) -> Series:
    """arcsin a, with arcsin^(m) = h^(m−1) for h(y) = (1 − y²)^{−1/2} (derivatives by taylor.py)."""
    y0 = a[ZERO].clamp(-1, 1)
    K = trunc.order
    w = taylor.affine(taylor.mul(taylor.variable(y0, K), taylor.variable(y0, K)), -1.0, 1.0)
    h = taylor.derivatives(taylor.compose(taylor.power_derivatives(w[0], -0.5, K), w)) if K else []
    return apply([torch.asin(y0)] + h[:K], a, trunc)


def compose(partials: dict, dc: Series, dq1: Series, dq2: Series, trunc: Truncation) -> Series:
    """V(c0 + dc, q10 + dq1, q20 + dq2) from ∂_c^a ∂_1^b ∂_2^e V at (c0, q10, q20).

    Args:
        partials: {(a, b, e): tensor} (missing keys are zero); dc, dq1, dq2: series without
            constant term (dq1 in v only, dq2 in w only).
    Returns the series Σ_a dc^a/a! Σ_{b,e} P_abe/(b! e!) dq1^b dq2^e, by Horner in dc.
    """
    pow1, pow2 = [{ZERO: 1.0}], [{ZERO: 1.0}]
    for _ in range(trunc.jmax):
        pow1.append(mul(pow1[-1], dq1, trunc))
    for _ in range(trunc.kmax):
        pow2.append(mul(pow2[-1], dq2, trunc))
    A = max(a for a, _, _ in partials)
    inner: list[Series] = []
    for a in range(A + 1):
        R: Series = {}
        for (pa, b, e), value in partials.items():
            if pa != a or b >= len(pow1) or e >= len(pow2):
                continue
            term = mul(pow1[b], pow2[e], trunc)
            scale = 1.0 / (math.factorial(b) * math.factorial(e))
            R = add(R, {key: value * t * scale for key, t in term.items()})
        inner.append(R)
    acc = inner[A]
    for a in range(A - 1, -1, -1):
        acc = add(inner[a], {key: t / (a + 1) for key, t in mul(dc, acc, trunc).items()})
    return acc


def without_constant(a: Series) -> Series:
    return {key: t for key, t in a.items() if key != ZERO}


def partial_derivatives(a: Series) -> dict:
    """{(i, j, k): ∂_u^i ∂_v^j ∂_w^k F} = i! j! k! a_ijk."""
    return {key: t * (math.factorial(key[0]) * math.factorial(key[1]) * math.factorial(key[2])) for key, t in a.items()}
