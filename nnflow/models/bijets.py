"""Bidegree-(2, 2) Wirtinger jets (nnflow.geometry.bijets) through the features and the MLP:
the exact curvature route of ``KahlerPotential.metric_derivatives`` (values only).

The features x = real coordinates of E_pq = m_p conj(m_q)/|m|² are built from the monomials'
holomorphic jets along the monomial tree; every unit of the MLP is a real function of the point,
carried in half storage through linear maps and activations (Taylor series to 4th order).
"""

from __future__ import annotations

import torch

from nnflow.geometry.bijets import (
    constant,
    embedding_jets,
    hol_mul,
    linear,
    mul,
    outer,
    real_compose,
    real_mul,
    reciprocal_bijet,
    tables,
    to_full,
    to_half,
)


def feature_bijet(features, z0: torch.Tensor, jac: torch.Tensor, hess: torch.Tensor) -> torch.Tensor:
    """Bi-jets of the real features x(z(x)) of ``features`` (ProjectiveFeatures): (B, A², dim) complex.

    x = real coordinates of E_pq = m_p conj(m_q)/S, S = |m|² (models/features.py): monomials
    as holomorphic jets along the monomial tree, E by ``outer`` products times the bi-jet of
    1/S, then the same complex-linear component map and standardization as the features.
    """
    n = jac.shape[1]
    t = features._on(z0)
    zj = embedding_jets(z0, jac, hess)  # (B, A, N+1)
    m = torch.ones_like(zj[..., :1])
    m = torch.cat([m[:, :1], torch.zeros_like(m[:, 1:])], 1)  # the constant 1
    for k in range(1, features.degree + 1):
        m = hol_mul(m[..., t.parents[k]], zj[..., t.variables[k]], n)
    m = m * t.weights.to(m.dtype)
    S = outer(m, m).sum(-1, keepdim=True)  # (B, A², 1): Σ_p m_p conj(m_p)
    E = mul(outer(m[..., t.rows], m[..., t.cols]), reciprocal_bijet(S, n), n)
    x = features._to_real(E)
    if t.scale is None:
        return x
    x = x * t.scale.to(x.dtype)
    x[:, 0] -= (t.shift * t.scale).to(x.dtype)
    return x


def mlp_bijet(network, x: torch.Tensor, params: dict | None = None, tangent: dict | None = None):
    """The MLP (networks.MLP) on bi-jets of its inputs: (B, A², d) → (B, A², 1).

    ``params`` (the network's names "weights.l", "biases.l") evaluates it at other parameters
    (θ0 of a centered potential). ``tangent`` (the same names) also gives the derivative along it,
    ḟ = d/dε f_{θ+εθ̇}, by forward mode written out: (ωWh + βb)˙ = ω(Ẇh + Wḣ) + βḃ and
    σ(u)˙ = σ'(u)·u̇ (σ' composed to 4th order, a bi-jet product). Values only.
    Returns f, or (f, ḟ) with a tangent.
    """
    # imported here: nnflow.kernels (its package init) imports nnflow.models
    from nnflow.kernels.activations import derivatives as activation_derivatives

    n = _directions(x.shape[1])
    x = to_half(x, n)  # every unit is a real function of the point
    dx = None
    for layer in range(network.depth + 1):
        w = params[f"weights.{layer}"] if params else network.weights[layer]
        b = params[f"biases.{layer}"] if params else network.biases[layer]
        ws, bs = network.w_scales[layer], network.b_scales[layer]
        if tangent is not None:
            du = linear(x, tangent[f"weights.{layer}"] * ws, tangent[f"biases.{layer}"] * bs)
            dx = du if dx is None else du + linear(dx, w * ws)
        x = linear(x, w * ws, b * bs)
        if layer < network.depth:
            derivs = activation_derivatives(network.activation, constant(x).real, 4 if tangent is None else 5)
            if tangent is not None:
                dx = real_mul(real_compose(x, derivs[1:], n), dx, n)
            x = real_compose(x, derivs[:5], n)
    return to_full(x, n) if tangent is None else (to_full(x, n), to_full(dx, n))


def _directions(rows: int) -> int:
    for n in range(1, 16):
        if tables(n).A ** 2 == rows:
            return n
    raise ValueError(f"{rows} rows is not the A² of a bi-jet")


