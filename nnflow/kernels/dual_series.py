"""Dual activations with a variance per input, carried through trivariate series (pure torch).

For a centred Gaussian pair with Var u = q1, Var v = q2, Cov = c,

    V(c, q1, q2) = E[σ(u) σ(v)],     V_c = ∂V/∂c = E[σ'(u) σ'(v)]     (Price).

On features with |x| ≠ 1 (phase-invariant, standardized) the MLP's layer variances differ from
point to point, so the kernels depend on (c, q1, q2), not on c alone (duals.py). Closed forms
(evaluated directly on multiseries.Series, so every derivative is exact):

    erf       V = (2/π) arcsin(2c/√((1 + 2q1)(1 + 2q2))),   V_c = (4/π)((1 + 2q1)(1 + 2q2) − 4c²)^{−1/2}
    sin       V = e^{−(q1+q2)/2} sinh c,    V_c = e^{−(q1+q2)/2} cosh c      (cos: sinh ↔ cosh)
    gaussian  V = D^{−1/2},   V_c = c D^{−3/2},   D = (1 + q1)(1 + q2) − c²
    relu      V = √(q1 q2)/(2π) (sin θ + (π − θ) cos θ),  V_c = (π − θ)/(2π),  cos θ = c/√(q1 q2)  (values only)

Gauss–Hermite route (any activation; ``quadrature=True``): by Price and the heat equation,
∂_c^a ∂_{q1}^b ∂_{q2}^e V = 2^{−b−e} E[σ^(a+2b)(u) σ^(a+2e)(v)], and by Mehler's expansion with
ρ = c/√(q1 q2) and Gaussian integration by parts (E[g'(z) He_k(z)] = E[g(z) He_{k+1}(z)]),

    E[σ^(p1)(u) σ^(p2)(v)] = q1^{−p1/2} q2^{−p2/2} Σ_k ρ^k √((k+p1)!(k+p2)!)/k! · h_{k+p1}(q1) h_{k+p2}(q2),
    h_j(q) = E[σ(√q z) He_j(z)]/√(j!),

so only σ itself is integrated, per point and in one dimension (``HERMITE_NODES`` Gauss–Hermite
nodes), and the pair work is a Horner sum over k in ρ. The sum is cut where its terms at ρ = 1
fall below ``HERMITE_TOL`` of the largest; an activation whose Hermite coefficients decay too
slowly for ``HERMITE_TERMS`` terms at the variances met (tanh at large q) gives a ValueError.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

from nnflow.kernels import multiseries as ms
from nnflow.kernels.activations import NAMES
from nnflow.kernels.activations import derivatives as activation_derivatives
from nnflow.kernels.duals import CLOSED_FORMS

HERMITE_TERMS = 300
HERMITE_NODES = 360
HERMITE_TOL = 1e-16


def dual_series(
    activation: str,
    c: ms.Series,
    q1: ms.Series,
    q2: ms.Series,
    trunc: ms.Truncation,
    slope: bool = True,
    quadrature: bool = False,
) -> tuple[ms.Series, ms.Series | None]:
    """(V, V_c) of the series c (per pair), q1 (side 1), q2 (side 2); V_c None unless ``slope``.

    Args:
        activation: a name from activations.NAMES.
        c, q1, q2: multiseries.Series, with constant terms |c| ≤ √(q1 q2), q > 0.
        trunc: the truncation of every result.
        quadrature: the Gauss–Hermite route even where a closed form exists.
    """
    if activation not in NAMES:
        raise ValueError(f"unknown activation {activation!r}; choose from {NAMES}")
    if quadrature or activation not in CLOSED_FORMS:
        if activation == "relu":
            raise ValueError("relu needs its closed form (its σ'' is a delta function); use quadrature=False")
        return _hermite_series(activation, c, q1, q2, trunc, slope)
    return _closed_series(activation, c, q1, q2, trunc, slope)


def _closed_series(activation, c, q1, q2, trunc, slope):
    T = trunc
    if activation == "erf":
        D = ms.mul(ms.affine(q1, 2.0, 1.0), ms.affine(q2, 2.0, 1.0), T)
        V = ms.affine(ms.arcsin(ms.mul(ms.affine(c, 2.0), ms.power(D, -0.5, T), T), T), 2 / math.pi)
        if not slope:
            return V, None
        Dc = ms.add(D, ms.affine(ms.mul(c, c, T), -4.0))
        return V, ms.affine(ms.power(Dc, -0.5, T), 4 / math.pi)
    if activation in ("sin", "cos"):
        damp = ms.exp(ms.affine(ms.add(q1, q2), -0.5), T)
        sh, ch = ms.sinh_cosh(c, T)
        even, odd = (sh, ch) if activation == "sin" else (ch, sh)
        return ms.mul(damp, even, T), (ms.mul(damp, odd, T) if slope else None)
    if activation == "gaussian":
        D = ms.add(ms.mul(ms.affine(q1, 1.0, 1.0), ms.affine(q2, 1.0, 1.0), T), ms.affine(ms.mul(c, c, T), -1.0))
        V = ms.power(D, -0.5, T)
        return V, (ms.mul(c, ms.power(D, -1.5, T), T) if slope else None)
    # relu: values only (its V'' is infinite at c = q; the callers' smoothness check stops derivatives)
    if T.order > 0:
        raise ValueError("the relu dual activation has values only here: its derivatives are infinite at c = q")
    scale = torch.sqrt(q1[ms.ZERO] * q2[ms.ZERO])
    rho = (c[ms.ZERO] / scale).clamp(-1, 1)
    theta = torch.acos(rho)
    V = scale / (2 * math.pi) * (torch.sqrt(1 - rho * rho) + (math.pi - theta) * rho)
    return {ms.ZERO: V}, ({ms.ZERO: (math.pi - theta) / (2 * math.pi)} if slope else None)


# ---------------------------------------------------------------------- Gauss–Hermite
@cache
def _rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    return z, w / w.sum()


def hermite_coefficients(activation: str, q: torch.Tensor, terms: int = HERMITE_TERMS) -> torch.Tensor:
    """h_j(q) = E[σ(√q z) He_j(z)]/√(j!), j < terms: q (...) → (..., terms), by Gauss–Hermite.

    The normalized polynomials He_j/√(j!) are built by their three-term recurrence times the
    weights (no overflow at the outer nodes).
    """
    z_np, w_np = _rule(HERMITE_NODES)
    z = torch.as_tensor(z_np, dtype=q.dtype, device=q.device)
    w = torch.as_tensor(w_np, dtype=q.dtype, device=q.device)
    basis = [w, z * w]
    for j in range(1, terms - 1):
        basis.append((z * basis[j] - math.sqrt(j) * basis[j - 1]) / math.sqrt(j + 1))
    basis = torch.stack(basis[:terms])  # (terms, nodes)
    values = activation_derivatives(activation, torch.sqrt(q)[..., None] * z, 0)[0]  # (..., nodes)
    return values @ basis.T


def _hermite_partials(activation, c0, q10, q20, keys) -> dict:
    """{(a, b, e): ∂_c^a ∂_{q1}^b ∂_{q2}^e V} at (c0, q10, q20) by the Mehler sums (module doc)."""
    need = {(a + 2 * b, a + 2 * e) for a, b, e in keys}
    pmax = max(max(p) for p in need)
    h1 = hermite_coefficients(activation, q10)
    h2 = h1 if q20 is q10 else hermite_coefficients(activation, q20)
    # cut the sums where the ρ = 1 terms are negligible for every point (the largest derivative order)
    size = h1.abs().flatten(0, -2).amax(0) * h2.abs().flatten(0, -2).amax(0)  # (terms,)
    j = torch.arange(HERMITE_TERMS, dtype=size.dtype, device=size.device)
    weight = size * (j + 1) ** pmax
    try:
        alive = torch.nonzero(weight > HERMITE_TOL * weight.max()).flatten()
        last = int(alive.max()) if alive.numel() else 0
    except RuntimeError:  # under torch.func transforms (vmap has no dynamic shapes): sum every term
        last = None
    if last is None:
        last = HERMITE_TERMS - 1 - pmax
    elif last + 1 >= HERMITE_TERMS - 2:
        raise ValueError(
            f"the Hermite series of the {activation} dual activation has not converged in {HERMITE_TERMS} terms "
            f"at variances up to {float(torch.maximum(q10.max(), q20.max())):.3g}; use a smaller input_scale "
            "or sigma_w, or an activation with a closed form (erf, sin, cos, gaussian)"
        )
    K = last + 1 - min(p for pair in need for p in pair)  # highest k with h_{k+p} alive
    K = max(K, 0)
    rho = (c0 / torch.sqrt(q10 * q20)).clamp(-1, 1)
    sums = {}
    for p1, p2 in need:
        acc = torch.zeros_like(rho)
        for k in range(min(K, HERMITE_TERMS - 1 - max(p1, p2)), -1, -1):
            coef = math.exp(0.5 * (math.lgamma(k + p1 + 1) + math.lgamma(k + p2 + 1)) - math.lgamma(k + 1))
            acc = acc * rho + coef * h1[..., k + p1] * h2[..., k + p2]
        sums[(p1, p2)] = acc * q10 ** (-p1 / 2) * q20 ** (-p2 / 2)
    return {(a, b, e): sums[(a + 2 * b, a + 2 * e)] * 2.0 ** (-b - e) for a, b, e in keys}


def _hermite_series(activation, c, q1, q2, trunc, slope):
    base = trunc.keys()
    keys = set(base)
    if slope:
        keys |= {(a + 1, b, e) for a, b, e in base}
    P = _hermite_partials(activation, c[ms.ZERO], q1[ms.ZERO], q2[ms.ZERO], sorted(keys))
    dc, d1, d2 = ms.without_constant(c), ms.without_constant(q1), ms.without_constant(q2)
    V = ms.compose({key: P[key] for key in base}, dc, d1, d2, trunc)
    if not slope:
        return V, None
    Vc = ms.compose({(a, b, e): P[(a + 1, b, e)] for a, b, e in base}, dc, d1, d2, trunc)
    return V, Vc
