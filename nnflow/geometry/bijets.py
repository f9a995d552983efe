"""Wirtinger jets of bidegree (2, 2): the Taylor data of curvature, exact (pure torch, values only).

Curvature of g = ∂∂̄K needs ∂_a∂̄_b K, ∂_a∂_c∂̄_b K and ∂_a∂_c∂̄_b∂̄_d K: derivatives with at most
two holomorphic and two antiholomorphic indices. A *bi-jet* of a function f near a point x0 ∈ C^n
(local chart coordinates) is the array of its Taylor coefficients

    f(x0 + x) = Σ_{|α| ≤ 2, |β| ≤ 2} c_{αβ} x^α x̄^β + (terms of higher bidegree),
    ∂^α ∂̄^β f(x0) = α! β! c_{αβ},

stored as one complex tensor (B, A·A, D) for B points and D components, the key (α, β) at
row i·A + j with α, β the i-th and j-th of the A = C(n+2, 2) multi-indices |α| ≤ 2 (``keys``).
Truncating at bidegree (2, 2) is an ideal of the power-series ring, so sums, products and
compositions with functions of one variable keep the kept coefficients exact:

    product     c(fg)_{αβ} = Σ_{α1+α2=α, β1+β2=β} c(f)_{α1β1} c(g)_{α2β2}     (``mul``)
    σ∘u         σ(u0 + δ) = Σ_{j ≤ 4} σ^(j)(u0)/j! δ^j, δ = u − u0 (no constant term, δ^5 = 0)

A holomorphic function (a coordinate z_i(x) of the chart embedding, a monomial) has β = 0 only and
is held as (B, A, D) (``hol_mul``); m_p·conj(m_q) is an outer product of two of them (``outer``).
The chart embedding enters only through z0, J = ∂z/∂x and H = ∂²z/∂x∂x (holomorphic, so no
coefficient of bidegree ≤ (2, 2) sees a higher derivative of z).

Here: the algebra, the chart embedding's jets, the Fubini–Study potential's (``fs_derivatives``)
and the metric derivatives read off a potential's jet. nnflow.models.bijets carries them through
the features and the MLP: the cost is that of the MLP on A² = 100 rows per point (n = 3; real
functions in half storage, 55) plus elementwise products, against the 6⁴ nested directional
derivatives of autodiff (nnflow.geometry.curvature; bench/bench_curvature.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BiJetTables:
    """Index tables of bi-jets in n directions (module doc).

    Attributes:
        n: directions; A: number of multi-indices |α| ≤ 2; keys: those multi-indices (tuples).
        hol: (i, j, k) long tensors, α_i + α_j = α_k (the holomorphic product's terms).
        full: (fi, gi, oi) long tensors over keys i·A + j: the bi-jet product's terms.
        first, second: k ↦ index of e_k; (a, c) ↦ index of e_a + e_c.
    """

    n: int
    A: int
    keys: tuple
    hol: tuple
    full: tuple
    first: tuple
    second: dict


_TABLES: dict[int, BiJetTables] = {}


def tables(n: int) -> BiJetTables:
    """The (cached) BiJetTables for n directions."""
    if n not in _TABLES:
        keys = [(0,) * n]
        keys += [tuple(int(i == a) for i in range(n)) for a in range(n)]
        keys += [tuple(int(i == a) + int(i == c) for i in range(n)) for a in range(n) for c in range(a, n)]
        index = {k: i for i, k in enumerate(keys)}
        hol = [(i, j, index[s]) for i, a in enumerate(keys) for j, b in enumerate(keys)
               if (s := tuple(x + y for x, y in zip(a, b))) in index]
        A = len(keys)
        full = [(i1 * A + i2, j1 * A + j2, k1 * A + k2) for i1, j1, k1 in hol for i2, j2, k2 in hol]
        second = {(a, c): index[tuple(int(i == a) + int(i == c) for i in range(n))]
                  for a in range(n) for c in range(n)}
        _TABLES[n] = BiJetTables(
            n, A, tuple(keys), tuple(torch.tensor(col) for col in zip(*hol)),
            tuple(torch.tensor(col) for col in zip(*full)), tuple(1 + a for a in range(n)), second,
        )
    return _TABLES[n]


def _on(index: tuple, ref: torch.Tensor) -> tuple:
    return tuple(t.to(ref.device) for t in index)


def hol_mul(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """Product of two holomorphic jets (B, A, D) → (B, A, D) (the terms α_i + α_j = α_k)."""
    i, j, k = _on(tables(n).hol, a)
    return torch.zeros_like(a).index_add_(1, k, a[:, i] * b[:, j])


_PRODUCTS: dict[tuple, tuple] = {}


def _product_table(n: int, p: int, q: int, square: bool) -> tuple:
    """The terms (fi, gi, oi, weight) of a product, out[oi] += f[fi]·g[gi]·weight, whose factors
    have no coefficients of total degree |α| + |β| below p and q; ``square``: f = g, so the terms
    (i, j) and (j, i) are merged (j ≥ i, weight 2 off the diagonal; weight None otherwise)."""
    key = (n, p, q, square)
    if key not in _PRODUCTS:
        t = tables(n)
        degree = [sum(t.keys[i // t.A]) + sum(t.keys[i % t.A]) for i in range(t.A * t.A)]
        terms = [(i, j, k) for i, j, k in zip(*(c.tolist() for c in t.full))
                 if degree[i] >= p and degree[j] >= q and (not square or j >= i)]
        fi, gi, oi = (torch.tensor(c) for c in zip(*terms))
        weight = torch.tensor([[1.0 if i == j else 2.0] for i, j, _ in terms]) if square else None
        _PRODUCTS[key] = (fi, gi, oi, weight)
    return _PRODUCTS[key]


def _product(f: torch.Tensor, g: torch.Tensor, table: tuple) -> torch.Tensor:
    fi, gi, oi, w = (None if x is None else x.to(f.device) for x in table)
    prod = f.index_select(1, fi) * g.index_select(1, gi)
    if w is not None:
        prod = prod * w.to(f.real.dtype)
    return torch.zeros_like(f).index_add_(1, oi, prod)


def mul(f: torch.Tensor, g: torch.Tensor, n: int, degrees: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Product of two bi-jets (B, A², D) → (B, A², D) (module doc).

    ``degrees`` (p, q): f has no coefficients of total degree below p, g none below q (e.g. (1, 1)
    for the square of a jet without constant term): only the terms that can be non-zero are formed.
    """
    return _product(f, g, _product_table(n, *degrees, False))


def _square(f: torch.Tensor, n: int, degree: int) -> torch.Tensor:
    """f·f for a bi-jet without coefficients of total degree below ``degree`` (half the terms of mul)."""
    return _product(f, f, _product_table(n, degree, degree, True))


# Real functions (everything inside the MLP) have Hermitian coefficient matrices, c_{βα} = conj(c_{αβ}):
# they are carried in *half storage*, the keys (i, j) with i ≤ j only (55 of 100 for n = 3), which
# halves the linear layers and the products (``to_half``, ``to_full``, ``real_mul``).
_HALVES: dict[int, tuple] = {}


def _half(n: int) -> tuple:
    """(upper, gather, lower): the full keys i·A + j with i ≤ j; for each full key the half index
    of (min, max); the full keys with i > j (read as the conjugate)."""
    if n not in _HALVES:
        A = tables(n).A
        upper = [i * A + j for i in range(A) for j in range(i, A)]
        where = {k: h for h, k in enumerate(upper)}
        gather = [where[min(i, j) * A + max(i, j)] for i in range(A) for j in range(A)]
        lower = [i > j for i in range(A) for j in range(A)]
        _HALVES[n] = (torch.tensor(upper), torch.tensor(gather), torch.tensor(lower))
    return _HALVES[n]


def to_half(f: torch.Tensor, n: int) -> torch.Tensor:
    """The half storage (B, A(A+1)/2, D) of the bi-jet f (B, A², D) of a real function."""
    return f.index_select(1, _half(n)[0].to(f.device))


def to_full(h: torch.Tensor, n: int) -> torch.Tensor:
    """The full bi-jet (B, A², D) of a real function from its half storage."""
    _, gather, lower = (x.to(h.device) for x in _half(n))
    f = h.index_select(1, gather)
    return torch.where(lower[:, None], f.conj(), f)


_REAL_PRODUCTS: dict[tuple, tuple] = {}


def _real_product_table(n: int, p: int, q: int, square: bool) -> tuple:
    """``_product_table`` restricted to the upper output keys, the outputs as half indices."""
    key = (n, p, q, square)
    if key not in _REAL_PRODUCTS:
        fi, gi, oi, w = _product_table(n, p, q, square)
        upper = _half(n)[0].tolist()
        where = {k: h for h, k in enumerate(upper)}
        keep = torch.tensor([k in where for k in oi.tolist()])
        half_oi = torch.tensor([where[k] for k in oi[keep].tolist()])
        _REAL_PRODUCTS[key] = (fi[keep], gi[keep], half_oi, None if w is None else w[keep], len(upper))
    return _REAL_PRODUCTS[key]


def _real_product(f: torch.Tensor, g: torch.Tensor, table: tuple) -> torch.Tensor:
    """The half storage of f·g for full bi-jets f, g of real functions."""
    fi, gi, oi, w = (None if x is None else x.to(f.device) for x in table[:4])
    prod = f.index_select(1, fi) * g.index_select(1, gi)
    if w is not None:
        prod = prod * w.to(f.real.dtype)
    return f.new_zeros(f.shape[0], table[4], f.shape[2]).index_add_(1, oi, prod)


def real_mul(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """The product of two half-stored bi-jets of real functions, half-stored."""
    return _real_product(to_full(a, n), to_full(b, n), _real_product_table(n, 0, 0, False))


def real_compose(h: torch.Tensor, derivs: list, n: int) -> torch.Tensor:
    """``compose`` in half storage: σ∘f for the half-stored bi-jet h (B, A(A+1)/2, D) of a real f."""
    if len(derivs) < 5:
        raise ValueError(f"a bidegree-(2, 2) composition needs 5 derivatives; got {len(derivs)}")
    d = [x.to(h.dtype)[:, None] for x in derivs]
    delta = h.clone()
    delta[:, 0] = 0
    full = to_full(delta, n)
    delta2 = _real_product(full, full, _real_product_table(n, 1, 1, True))
    full2 = to_full(delta2, n)
    out = d[1] * delta + (d[2] / 2) * delta2
    out += (d[3] / 6) * _real_product(full2, full, _real_product_table(n, 2, 1, False))
    out += (d[4] / 24) * _real_product(full2, full2, _real_product_table(n, 2, 2, True))
    out[:, 0] += d[0][:, 0]
    return out


def outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The bi-jet of a·conj(b) for holomorphic jets a, b (B, A, D): c_{αβ} = a_α conj(b_β), (B, A², D)."""
    B, A, D = a.shape
    return (a[:, :, None] * b.conj()[:, None, :]).reshape(B, A * A, D)


def constant(f: torch.Tensor) -> torch.Tensor:
    """The value f(x0): (B, A², D) → (B, D) complex (real for a real function)."""
    return f[:, 0]


def compose(f: torch.Tensor, derivs: list, n: int) -> torch.Tensor:
    """σ∘f from σ^(j)(f(x0)), j = 0..4 (each (B, D)), and the bi-jet f of a real function.

    σ(f) = Σ_{j ≤ 4} σ^(j)/j! δ^j with δ = f − f(x0): δ^j has no coefficient of total degree
    below j (δ^5 none of bidegree ≤ (2, 2)), so δ², δ³ = δ²δ and δ⁴ = (δ²)² need only the
    terms that reach degree ≤ 4 (``mul``'s ``degrees``).
    """
    if len(derivs) < 5:
        raise ValueError(f"a bidegree-(2, 2) composition needs 5 derivatives; got {len(derivs)}")
    d = [x.to(f.dtype)[:, None] for x in derivs]
    delta = f.clone()
    delta[:, 0] = 0
    delta2 = _square(delta, n, 1)
    out = d[1] * delta + (d[2] / 2) * delta2 + (d[3] / 6) * mul(delta2, delta, n, (2, 1))
    out += (d[4] / 24) * _square(delta2, n, 2)
    out[:, 0] += d[0][:, 0]
    return out


def linear(f: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x ↦ W x + b on a bi-jet (B, K, in) → (B, K, out), full or half storage; the bias shifts the value only."""
    wt = weight.T.to(f.real.dtype)
    out = torch.complex(f.real @ wt, f.imag @ wt)
    if bias is not None:
        out[:, 0] += bias.to(out.dtype)
    return out


def embedding_jets(z0: torch.Tensor, jac: torch.Tensor, hess: torch.Tensor) -> torch.Tensor:
    """Holomorphic jets of the chart embedding z(x) = z0 + x·J + ½ x x·H: (B, A, N+1).

    Args:
        z0: (B, N+1) complex; jac: (B, n, N+1) J_a = ∂z/∂x_a; hess: (B, n, n, N+1) ∂²z/∂x_c∂x_a.
    The coefficient of x_a x_c is H_ac for a < c and ½ H_aa.
    """
    n = jac.shape[1]
    rows = [z0[:, None]] + [jac[:, a, None] for a in range(n)]
    for a in range(n):
        for c in range(a, n):
            rows.append(hess[:, a, c, None] * (0.5 if a == c else 1.0))
    return torch.cat(rows, 1)


def real_bijet(value: torch.Tensor, n: int) -> torch.Tensor:
    """A constant bi-jet (B, D) → (B, A², D) (value in the constant coefficient)."""
    A = tables(n).A
    dtype = torch.promote_types(value.dtype, torch.complex64)
    out = value.new_zeros(value.shape[0], A * A, value.shape[-1], dtype=dtype)
    out[:, 0] = value
    return out


def log_bijet(s: torch.Tensor, n: int) -> torch.Tensor:
    """log∘s for the bi-jet s of a positive real function: derivatives (−1)^{j−1}(j−1)!/s^j."""
    s0 = constant(s).real
    derivs = [torch.log(s0)] + [(-1) ** (j - 1) * math.factorial(j - 1) / s0**j for j in range(1, 5)]
    return compose(s, derivs, n)


def reciprocal_bijet(s: torch.Tensor, n: int) -> torch.Tensor:
    """1/s for the bi-jet s of a positive real function: derivatives (−1)^j j!/s^{j+1}."""
    s0 = constant(s).real
    return compose(s, [(-1) ** j * math.factorial(j) / s0 ** (j + 1) for j in range(5)], n)


def metric_derivatives(k: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g, ∂_c g, ∂̄_d g, ∂_c∂̄_d g) from the bi-jet of K (B, A², 1), as curvature.curvature_form wants.

    g_{ab̄} = c_{e_a, e_b};  ∂_c g_{ab̄} = (e_a+e_c)! c_{e_a+e_c, e_b};  ∂̄_d g_{ab̄} = (e_b+e_d)! c_{e_a, e_b+e_d};
    ∂_c∂̄_d g_{ab̄} = (e_a+e_c)!(e_b+e_d)! c_{e_a+e_c, e_b+e_d}.
    Returns (B, n, n), (B, n, n, n) [a, b, c], (B, n, n, n) [a, b, d], (B, n, n, n, n) [a, b, c, d].
    """
    t = tables(n)
    c = k[..., 0].reshape(k.shape[0], t.A, t.A)
    e = torch.tensor(t.first, device=k.device)
    two = torch.tensor([[t.second[(a, b)] for b in range(n)] for a in range(n)], device=k.device)  # (a, c)
    fact = 1.0 + torch.eye(n, dtype=c.real.dtype, device=k.device)  # (e_a + e_c)!: 2 if a = c
    g = c[:, e][:, :, e]
    dz = c[:, two][:, :, :, e].permute(0, 1, 3, 2) * fact[:, None, :]  # [a, c, b] → [a, b, c]
    dzbar = c[:, e][:, :, two] * fact  # [a, b, d]
    dd = c[:, two][:, :, :, two]  # [a, c, b, d]
    ddbar = dd.permute(0, 1, 3, 2, 4) * fact[:, None, :, None] * fact[None, :, None, :]
    return g, dz, dzbar, ddbar


@torch.no_grad()
def fs_derivatives(z: torch.Tensor, jac: torch.Tensor, hess: torch.Tensor, t: float = 1.0) -> tuple:
    """(g, ∂g, ∂̄g, ∂∂̄g) of the Fubini–Study metric of class t at points of X, exactly:
    K_FS = (t/π) log Σ z_i z̄_i as a bi-jet. The ``derivatives`` of curvature.curvature; shapes as
    ``metric_derivatives``."""
    n = jac.shape[1]
    zj = embedding_jets(z, jac, hess)
    return metric_derivatives(log_bijet(outer(zj, zj).sum(-1, keepdim=True), n) * (t / math.pi), n)
