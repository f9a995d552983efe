"""Activations and their derivatives of any order, in closed form.

``derivatives(name, u, order)`` returns [σ(u), σ'(u), ..., σ^(order)(u)] for the activations of
models/networks.py. Each family is a fixed function times a polynomial whose recurrence is exact:

    gelu      σ = uΦ(u),  σ' = Φ + uφ,  σ^(k) = φ(u)·p_k(u) for k ≥ 2,  p_2 = 2 − u²,  p_{k+1} = p_k' − u p_k
    erf       σ^(k) = (2/√π) e^{−u²} q_k(u),  q_1 = 1,  q_{k+1} = q_k' − 2u q_k
    gaussian  σ = e^{−u²/2},  σ^(k) = e^{−u²/2} h_k(u),  h_0 = 1,  h_{k+1} = h_k' − u h_k
    tanh      σ^(k) = T_k(t),  t = tanh u,  T_0 = t,  T_{k+1} = T_k'(t)(1 − t²)
    softplus  σ^(k) = S_k(s),  s = sigmoid u,  S_1 = s,  S_{k+1} = S_k'(s) s(1 − s)
    sin, cos  the derivatives cycle;  relu: σ' = step, σ^(k) = 0 for k ≥ 2 (almost everywhere).

The MLP kernels need σ''' (metric jets of the backpropagated gradient, structured.py) and up to
σ^(5) (Price's theorem for the NTK's fourth u-derivative, duals.py).
"""

from __future__ import annotations

import math
from functools import cache

import torch

SQRT2PI = math.sqrt(2 * math.pi)
NAMES = ("gelu", "tanh", "erf", "softplus", "relu", "sin", "cos", "gaussian")


def _pder(p: tuple) -> tuple:
    return tuple(k * c for k, c in enumerate(p))[1:] or (0.0,)


def _padd(p: tuple, q: tuple) -> tuple:
    n = max(len(p), len(q))
    return tuple((p[i] if i < len(p) else 0.0) + (q[i] if i < len(q) else 0.0) for i in range(n))


def _pmul(p: tuple, q: tuple) -> tuple:
    out = [0.0] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return tuple(out)


@cache
def _family(name: str, order: int) -> tuple:
    """Polynomial coefficients (ascending) of each derivative, per the module doc."""
    polys = []
    if name == "gelu":
        p = (2.0, 0.0, -1.0)
        for _ in range(2, order + 1):
            polys.append(p)
            p = _padd(_pder(p), _pmul((0.0, -1.0), p))
    elif name == "erf":
        p = (1.0,)
        for _ in range(1, order + 1):
            polys.append(p)
            p = _padd(_pder(p), _pmul((0.0, -2.0), p))
    elif name == "gaussian":
        p = (1.0,)
        for _ in range(order + 1):
            polys.append(p)
            p = _padd(_pder(p), _pmul((0.0, -1.0), p))
    elif name == "tanh":
        p = (0.0, 1.0)
        for _ in range(order + 1):
            polys.append(p)
            p = _pmul(_pder(p), (1.0, 0.0, -1.0))
    elif name == "softplus":
        p = (0.0, 1.0)
        for _ in range(1, order + 1):
            polys.append(p)
            p = _pmul(_pder(p), (0.0, 1.0, -1.0))
    return tuple(polys)


def _horner(p: tuple, x: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(x, p[-1])
    for c in reversed(p[:-1]):
        out = out * x + c
    return out


def derivatives(name: str, u: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[σ(u), σ'(u), ..., σ^(order)(u)], each shaped like u (real)."""
    if name not in NAMES:
        raise ValueError(f"unknown activation {name!r}; choose from {NAMES}")
    if order < 0:
        raise ValueError(f"order must be ≥ 0; got {order}")
    polys = _family(name, order)
    if name == "gelu":
        pdf = torch.exp(-0.5 * u * u) / SQRT2PI
        cdf = 0.5 * (1 + torch.erf(u / math.sqrt(2)))
        out = [u * cdf, cdf + u * pdf] + [pdf * _horner(p, u) for p in polys]
    elif name == "erf":
        e = torch.exp(-u * u) * (2 / math.sqrt(math.pi))
        out = [torch.erf(u)] + [e * _horner(p, u) for p in polys]
    elif name == "gaussian":
        e = torch.exp(-0.5 * u * u)
        out = [e * _horner(p, u) for p in polys]
    elif name == "tanh":
        t = torch.tanh(u)
        out = [_horner(p, t) for p in polys]
    elif name == "softplus":
        s = torch.sigmoid(u)
        out = [torch.nn.functional.softplus(u)] + [_horner(p, s) for p in polys]
    elif name == "relu":
        step = (u > 0).to(u.dtype)
        out = [u * step, step] + [torch.zeros_like(u)] * max(order - 1, 0)
    else:  # sin, cos: the derivatives cycle with period 4
        s, c = torch.sin(u), torch.cos(u)
        cycle = [s, c, -s, -c] if name == "sin" else [c, -s, -c, s]
        out = [cycle[k % 4] for k in range(order + 1)]
    return out[: order + 1]
