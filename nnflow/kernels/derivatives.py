"""Kähler and metric kernels as derivatives of a potential kernel, pulled back to X (pure torch).

For a potential kernel k(x, x') the Kähler kernel is ∂'_c∂̄'_d k and the metric kernel is
∂_a∂̄_b∂'_c∂̄'_d k, all derivatives along the chart directions (pulled back to X). Every result
is returned in real components (geometry/hermitian.py): potential (B1, B2), Kähler (B1, B2, n²),
metric (B1, B2, n², n²); internally a side of order 0 has one component and a side of order 2
has the n² components.

Routes (the Leibniz rule for products of Gram kernels, used by the empirical MLP kernel, is
in structured.py):

* Faà di Bruno (``faa_di_bruno``), for kernels F(u) of u = x·x' with x the projective
  features: u is bilinear in (x, x'), so ∂^B u = (∂^{B∩x} x)·(∂'^{B∩x'} x') for every block B
  of a set partition π of the derivative labels {a, b̄, c', d̄'} (15 partitions), and

      ∂_a∂̄_b∂'_c∂̄'_d F(u) = Σ_π F^(|π|)(u) Π_{B∈π} ∂^B u.

  The dot products ∂^S x·∂'^{S'} x' are one Gram matrix of the two points' feature jets.
* Coordinate sums (``diagonal_sum``, ``separable_sum``), for Σ_j H(x_j, x'_j) and
  (Σ_j f(x_j))(Σ_k g(x'_k)) (cos-net and gauss-net kernels): per coordinate,
  ∂_a∂̄_b f(x_j) = f''·∂_a x_j ∂̄_b x_j + f'·∂_a∂̄_b x_j.
* ``autodiff_kernel``: any potential kernel given as a differentiable function of one pair of
  points, differentiated with torch.func along the linear chart embeddings z0 + x·J (exact for
  ∂∂̄ of a function of a holomorphic embedding, which needs only its first derivatives).

Jet slots: a side of order 2 carries S = 1 + 2n + n² complex slots per feature coordinate,
[x, ∂_a x (a < n), ∂̄_b x (b < n), ∂_a∂̄_b x (a·n + b)]; a side of order 0 carries [x]. They are
stored as the packed real rows of models.jets.pack_jet (R = S real rows) and mapped to slots
by ``slot_matrix``.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import torch

from nnflow.geometry.hermitian import component_matrix
from nnflow.models.jets import packed_layout

ORDERS = (0, 2)


def check_orders(orders) -> tuple[int, int]:
    o1, o2 = (int(o) for o in orders)
    if o1 not in ORDERS or o2 not in ORDERS:
        raise ValueError(f"derivative orders must be 0 or 2 on each side; got {tuple(orders)!r}")
    return o1, o2


def n_components(n: int, order: int) -> int:
    return n * n if order == 2 else 1


# ---------------------------------------------------------------------- slots
@cache
def _slot_matrix_cpu(n: int) -> torch.Tensor:
    """C (S, R) complex: slot = C @ packed rows (module doc); n = 0 for a value-only side."""
    R = 1 + 2 * n + n * n
    C = torch.zeros(R, R, dtype=torch.complex128)
    C[0, 0] = 1
    for a in range(n):
        C[1 + a, 1 + a], C[1 + a, 1 + n + a] = 1, 1j
        C[1 + n + a, 1 + a], C[1 + n + a, 1 + n + a] = 1, -1j
    layout = packed_layout(n)
    row_a, row_b = layout.a_row, layout.b_row
    for a in range(n):
        for b in range(n):
            s = 1 + 2 * n + a * n + b
            C[s, row_a[(min(a, b), max(a, b))]] = 1
            if a < b:
                C[s, row_b[(a, b)]] = 1j
            elif a > b:
                C[s, row_b[(b, a)]] = -1j
    return C


def slot_matrix(n: int, device=None) -> torch.Tensor:
    return _slot_matrix_cpu(n).to(device)


def slot_gram(T1: torch.Tensor, T2: torch.Tensor, n1: int, n2: int) -> torch.Tensor:
    """Complex bilinear Gram of jet slots: (B1, R1, D), (B2, R2, D) packed rows → (B1, B2, S1, S2).

    M[x, y, s, s'] = Σ_j slot_s(x)_j slot_s'(y)_j (no conjugation), R = S = 1 + 2n + n².
    The packed rows are turned into complex slots per point first, so that the pair work is
    one complex GEMM (not a 16×16 matrix sandwich per pair).
    """
    B1, R1, D = T1.shape
    B2, R2, _ = T2.shape
    complex_dtype = torch.complex128 if T1.dtype == torch.float64 else torch.complex64
    S1 = slot_matrix(n1, T1.device).to(complex_dtype) @ T1.to(complex_dtype)
    S2 = slot_matrix(n2, T2.device).to(complex_dtype) @ T2.to(complex_dtype)
    return (S1.reshape(B1 * R1, D) @ S2.reshape(B2 * R2, D).T).reshape(B1, R1, B2, R2).permute(0, 2, 1, 3)


# ---------------------------------------------------------------------- components
def to_real(theta: torch.Tensor, n: int, orders: tuple[int, int]) -> torch.Tensor:
    """(B1, B2, m1, m2) complex over (a·n + b) entries → real components, squeezed by order."""
    o1, o2 = orders
    if o1 or o2:
        P = component_matrix(n, theta.dtype, theta.device)
    if o1 == 2:
        theta = P @ theta  # batched (m, m) products
    if o2 == 2:
        theta = theta @ P.T
    theta = theta.real
    if o2 == 0:
        theta = theta[..., 0]
    if o1 == 0:
        theta = theta[:, :, 0]
    return theta


# ---------------------------------------------------------------------- Faà di Bruno
def set_partitions(items: list) -> list[list[list]]:
    """All set partitions of a list (Bell number many: 15 for four items)."""
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    for part in set_partitions(rest):
        out.append([[first]] + part)
        for i in range(len(part)):
            out.append(part[:i] + [[first] + part[i]] + part[i + 1 :])
    return out


def _labels(orders):
    o1, o2 = orders
    return [(1, "d"), (1, "dbar")][: o1] + [(2, "d"), (2, "dbar")][: o2]


def _slot_block(n: int, derivs) -> tuple[slice, tuple[int, int]]:
    """Slots of ∂^S x for S ⊂ {'d', 'dbar'}: a slice of the slot axis and its (a, b) shape."""
    kinds = set(derivs)
    if not kinds or n == 0:
        return slice(0, 1), (1, 1)
    if kinds == {"d"}:
        return slice(1, 1 + n), (n, 1)
    if kinds == {"dbar"}:
        return slice(1 + n, 1 + 2 * n), (1, n)
    return slice(1 + 2 * n, 1 + 2 * n + n * n), (n, n)


def _block_view(M: torch.Tensor, n1: int, n2: int, block) -> torch.Tensor:
    """∂^B u for all components as a broadcastable (B1, B2, a, b, c, d) view of the slot Gram."""
    s1, shape1 = _slot_block(n1, [k for side, k in block if side == 1])
    s2, shape2 = _slot_block(n2, [k for side, k in block if side == 2])
    return M[:, :, s1, s2].reshape(*M.shape[:2], *shape1, *shape2)


def faa_di_bruno(F: list[torch.Tensor], M: torch.Tensor, n: int, orders) -> torch.Tensor:
    """∂^{o1}∂'^{o2} F(u) in real components (module doc).

    Args:
        F: [F(u), F'(u), ...] up to order o1 + o2, each (B1, B2).
        M: (B1, B2, S1, S2) slot Gram of the feature jets (S = 1 for an order-0 side).
        n: complex dimension of X.
        orders: (o1, o2), each 0 or 2.
    Returns:
        (B1, B2[, m1][, m2]) real.
    """
    o1, o2 = check_orders(orders)
    n1, n2 = (n if o1 else 0), (n if o2 else 0)
    B1, B2 = M.shape[:2]
    out = None
    for part in set_partitions(_labels((o1, o2))):
        term = F[len(part)].to(M.dtype).reshape(B1, B2, 1, 1, 1, 1)
        for block in part:
            term = term * _block_view(M, n1, n2, block)
        term = term.expand(B1, B2, max(n1, 1), max(n1, 1), max(n2, 1), max(n2, 1))
        out = term if out is None else out + term
    out = out.reshape(B1, B2, n_components(n, o1), n_components(n, o2))
    return to_real(out, n, (o1, o2))


def slot_self_gram(T: torch.Tensor, n: int) -> torch.Tensor:
    """Per-point bilinear Gram of one side's jet slots: (B, R, D) packed rows → (B, S, S)."""
    complex_dtype = torch.complex128 if T.dtype == torch.float64 else torch.complex64
    S = slot_matrix(n, T.device).to(complex_dtype) @ T.to(complex_dtype)
    return S @ S.transpose(-1, -2)


def _norm_block(G: torch.Tensor, n: int, derivs) -> torch.Tensor:
    """∂^S |x|² for S ⊂ {'d', 'dbar'} of one side from its self Gram G (B, S, S), shaped (B, a, b).

    |x|² = x·x, so ∂^S |x|² = Σ_{S' ⊂ S} ∂^{S'} x · ∂^{S∖S'} x (each split once per order).
    """
    kinds = set(derivs)
    s, shape = _slot_block(n, derivs)
    x = slice(0, 1)
    if kinds in ({"d"}, {"dbar"}):
        return (G[:, x, s] + G[:, s, x].transpose(-1, -2)).reshape(-1, *shape)
    d, db = _slot_block(n, ["d"])[0], _slot_block(n, ["dbar"])[0]
    both = G[:, x, s] + G[:, s, x].transpose(-1, -2)  # x·∂∂̄x twice
    cross = G[:, d, db] + G[:, db, d].transpose(-1, -2)  # ∂_a x·∂̄_b x twice, (B, a, b)
    return both.reshape(-1, n, n) + cross


def _product(tensors):
    out = None
    for t in tensors:
        out = t if out is None else out * t
    return out


def _side_sums(u_views: list, own_views: list) -> dict:
    """{k: Σ over the ways to give k of a side's blocks to v (or w), the rest to u, of the products}."""
    out: dict = {}
    for mask in itertools.product((0, 1), repeat=len(u_views)):
        term = _product([own if m else u for u, own, m in zip(u_views, own_views, mask)])
        k = sum(mask)
        out[k] = term if k not in out else out[k] + term
    return out


def _side_terms(M, G, n1, n2, side: int, labels) -> list[tuple[int, int, torch.Tensor]]:
    """(|π|, j, Σ of products) for each partition π of one side's labels and j of its blocks on
    v (or w); tensors broadcastable to (B1, B2, a, b, c, d)."""
    out = []
    for part in set_partitions(labels):
        u_views = [_block_view(M, n1, n2, block) for block in part]
        B1, B2 = M.shape[:2]
        own = []
        for block in part:
            derivs = [k for _, k in block]
            if side == 1:
                own.append(_norm_block(G, n1, derivs).reshape(B1, 1, *_slot_block(n1, derivs)[1], 1, 1))
            else:
                own.append(_norm_block(G, n2, derivs).reshape(1, B2, 1, 1, *_slot_block(n2, derivs)[1]))
        for j, t in _side_sums(u_views, own).items():
            out.append((len(part), j, t))
    return out


def _separated_partitions(coef, M, G1, G2, n1, n2, orders) -> torch.Tensor:
    """Σ over the partitions with no block across the sides: Σ_{I,J} A_I F_IJ B_J as one batched
    product, A_I over side-1 partitions and their v assignments, B_J likewise: (B1, B2, m1, m2)."""
    o1, o2 = orders
    B1, B2 = M.shape[:2]
    c1, c2 = max(n1, 1) ** 2, max(n2, 1) ** 2
    labels = _labels(orders)
    t1 = _side_terms(M, G1, n1, n2, 1, [lab for lab in labels if lab[0] == 1])
    t2 = _side_terms(M, G2, n1, n2, 2, [lab for lab in labels if lab[0] == 2])
    shape1, shape2 = (B1, B2, max(n1, 1), max(n1, 1), 1, 1), (B1, B2, 1, 1, max(n2, 1), max(n2, 1))
    ones = torch.ones((), dtype=M.dtype, device=M.device)
    A = torch.stack([(ones if t is None else t).expand(shape1).reshape(B1, B2, c1) for _, _, t in t1], -1)
    B = torch.stack([(ones if t is None else t).expand(shape2).reshape(B1, B2, c2) for _, _, t in t2], -2)
    zero = torch.zeros(B1, B2, dtype=M.dtype, device=M.device)
    Fm = torch.stack(
        [
            torch.stack([coef.get((r1 + r2 - j - k, j, k), zero).reshape(B1, B2) for r2, k, _ in t2], -1)
            for r1, j, _ in t1
        ],
        -2,
    )  # (B1, B2, I, J)
    return A @ Fm @ B


def faa_di_bruno_general(
    F: dict, M: torch.Tensor, G1: torch.Tensor | None, G2: torch.Tensor | None, n: int, orders
) -> torch.Tensor:
    """∂^{o1}∂'^{o2} F(u, v, w) for u = x·x', v = |x|², w = |x'|², in real components.

    The multivariate Faà di Bruno formula: for every set partition π of the derivative labels
    and every assignment of its blocks to u (any block), v (blocks of side-1 labels) or w
    (side 2), the term ∂_u^{#u}∂_v^{#v}∂_w^{#w}F · Π_B ∂^B(its variable). With |x| = 1 the v
    and w blocks vanish and this is ``faa_di_bruno``. Per partition the assignments are summed
    side by side (the side-only blocks have at most n² components), so the full-size
    (B1, B2, n, n, n, n) work is a few products per partition, as on the fast path.

    Args:
        F: {(i, j, k): ∂_u^i ∂_v^j ∂_w^k F}, each broadcastable to (B1, B2).
        M: (B1, B2, S1, S2) slot Gram of the two sides; G1 (B1, S1, S1), G2 (B2, S2, S2) the
            sides' self Grams (``slot_self_gram``; None for an order-0 side).
        n, orders: as in ``faa_di_bruno``.
    Returns:
        (B1, B2[, m1][, m2]) real.
    """
    o1, o2 = check_orders(orders)
    n1, n2 = (n if o1 else 0), (n if o2 else 0)
    B1, B2 = M.shape[:2]
    full = (B1, B2, max(n1, 1), max(n1, 1), max(n2, 1), max(n2, 1))
    coef = {key: value.to(M.dtype).expand(B1, B2).reshape(B1, B2, 1, 1, 1, 1) for key, value in F.items()}
    out = _separated_partitions(coef, M, G1, G2, n1, n2, orders).reshape(full)
    for part in set_partitions(_labels((o1, o2))):
        if all(len({side for side, _ in block}) == 1 for block in part):
            continue  # no block mixes the sides: summed at once by _separated_partitions
        r = len(part)
        one, two, mixed = [], [], []  # (u view, own view) of side-1-only and side-2-only blocks; mixed u views
        for block in part:
            side1 = [k for side, k in block if side == 1]
            side2 = [k for side, k in block if side == 2]
            u = _block_view(M, n1, n2, block)
            if side1 and not side2:
                one.append((u, _norm_block(G1, n1, side1).reshape(B1, 1, *_slot_block(n1, side1)[1], 1, 1)))
            elif side2 and not side1:
                two.append((u, _norm_block(G2, n2, side2).reshape(1, B2, 1, 1, *_slot_block(n2, side2)[1])))
            else:
                mixed.append(u)
        S1 = _side_sums([u for u, _ in one], [v for _, v in one])
        S2 = _side_sums([u for u, _ in two], [w for _, w in two])
        # Full-size (B1, B2, n, n, n, n) work only in the in-place accumulations: a mixed block
        # takes a label of each side, so with one the side sums stay below n² per pair.
        acc = None
        for j, s1 in S1.items():
            inner = None
            for k, s2 in S2.items():
                key = (r - j - k, j, k)
                if key not in coef:
                    continue
                t = coef[key] if s2 is None else coef[key] * s2
                inner = t if inner is None else inner + t
            if inner is None:
                continue
            if not mixed:
                if s1 is None:
                    out.add_(inner)
                else:
                    out.addcmul_(inner, s1)
                continue
            t = inner if s1 is None else inner * s1
            acc = t if acc is None else acc + t
        if acc is not None:
            out.addcmul_(_product([acc] + mixed[:-1]), mixed[-1])
    out = out.reshape(B1, B2, n_components(n, o1), n_components(n, o2))
    return to_real(out, n, (o1, o2))


# ---------------------------------------------------------------------- coordinate sums
def coordinate_jets(value: torch.Tensor, d: torch.Tensor | None, dd: torch.Tensor | None, order: int):
    """Per-coordinate derivative tensors of one side, in real components.

    Args:
        value: (B, D) features; d: (B, n, D) ∂_a x; dd: (B, n, n, D) ∂_a∂̄_b x (order 2 only).
    Returns:
        {p: E_p (B, D, m)} with ∂^{order} f(x_j) = Σ_p f^(p)(x_j) E_p[j]:
        order 0: {0: 1}; order 2: {1: ∂_a∂̄_b x_j, 2: ∂_a x_j ∂̄_b x_j}.
    """
    if order == 0:
        return {0: torch.ones(*value.shape, 1, dtype=value.dtype, device=value.device)}
    n = d.shape[1]
    P = component_matrix(n, d.dtype, d.device)
    e1 = dd.permute(0, 3, 1, 2).reshape(*value.shape, n * n)
    e2 = (d[:, :, None, :] * d.conj()[:, None, :, :]).permute(0, 3, 1, 2).reshape(*value.shape, n * n)
    return {1: (e1 @ P.T).real, 2: (e2 @ P.T).real}


def diagonal_sum(H, E1: dict, E2: dict) -> torch.Tensor:
    """Σ_j Σ_{p,q} H^(p,q)(x_j, x'_j) E1_p[x, j, s] E2_q[y, j, t] → (B1, B2, m1, m2).

    Args:
        H: callable (p, q) → (B1, B2, D) tensor of ∂_s^p ∂_t^q H at (x_j, x'_j).
    """
    out = None
    for p, e1 in E1.items():
        for q, e2 in E2.items():
            h = H(p, q)
            term = torch.einsum("xyj,xjs,yjt->xyst", h, e1, e2)
            out = term if out is None else out + term
    return out


def separable_sum(f1: dict, f2: dict, E1: dict, E2: dict) -> torch.Tensor:
    """(Σ_j f(x_j))(Σ_k g(x'_k)) differentiated: f1[p] (B1, D) = f^(p)(x_j), f2[q] likewise."""
    a1 = sum(torch.einsum("xj,xjs->xs", f1[p], e) for p, e in E1.items())
    a2 = sum(torch.einsum("yj,yjt->yt", f2[q], e) for q, e in E2.items())
    return a1[:, None, :, None] * a2[None, :, None, :]


def hermite_gaussian(t: torch.Tensor, beta: float, order: int) -> list[torch.Tensor]:
    """[g, g', ..., g^(order)] of g(t) = exp(−β t²/2): g^(m) = (−√β)^m He_m(√β t) g."""
    s = math.sqrt(beta)
    g = torch.exp(-0.5 * beta * t * t)
    x = s * t
    he = [torch.ones_like(t), x]
    for m in range(1, order):
        he.append(x * he[m] - m * he[m - 1])
    return [(-s) ** m * he[m] * g for m in range(order + 1)]


# ---------------------------------------------------------------------- autodiff
def autodiff_kernel(pair_fn, z1, jac1, z2, jac2, orders) -> torch.Tensor:
    """Derivatives of any potential kernel by torch.func, pulled back (the generic route).

    Args:
        pair_fn: (z (N+1,) complex, z' (N+1,) complex) → () real, differentiable by
            torch.func (called under vmap).
        z1: (B1, N+1); jac1: (B1, n, N+1) (None if order 0); likewise z2, jac2.
        orders: (o1, o2), each 0 or 2.
    Returns:
        (B1, B2[, n²][, n²]) real components.
    """
    from torch.func import jacfwd, vmap

    from nnflow.geometry.curvature import wirtinger_hessian

    o1, o2 = check_orders(orders)
    n = (jac1 if o1 else jac2).shape[-2] if (o1 or o2) else 0
    real = z1.real.dtype

    def embed(xi, zr, jr):
        z = torch.view_as_complex(zr)
        if jr is None:
            return z
        x = torch.complex(xi[:n], xi[n:])
        return z + x @ torch.view_as_complex(jr)

    def k(xi1, xi2, zr1, jr1, zr2, jr2):
        return pair_fn(embed(xi1, zr1, jr1), embed(xi2, zr2, jr2))

    def one(zr1, jr1, zr2, jr2):
        xi = torch.zeros(2 * n, dtype=real, device=z1.device)
        f = k
        if o2:
            f2 = f
            f = lambda a, b, *r: jacfwd(jacfwd(f2, argnums=1), argnums=1)(a, b, *r)  # noqa: E731
        if o1:
            f1 = f
            f = lambda a, b, *r: jacfwd(jacfwd(f1, argnums=0), argnums=0)(a, b, *r)  # noqa: E731
        D = f(xi, xi, zr1, jr1, zr2, jr2)  # (2n, 2n [xi2], 2n, 2n [xi1]) as present
        if o1:
            D = wirtinger_hessian(D)  # last two dims: xi1
        if o2:
            D = D.movedim((0, 1), (-2, -1)) if o1 else D
            D = wirtinger_hessian(D)
        return D

    j1 = torch.view_as_real(jac1) if (o1 and jac1 is not None) else None
    j2 = torch.view_as_real(jac2) if (o2 and jac2 is not None) else None
    inner = vmap(one, in_dims=(None, None, 0, 0 if j2 is not None else None))
    outer = vmap(inner, in_dims=(0, 0 if j1 is not None else None, None, None))
    D = outer(torch.view_as_real(z1), j1, torch.view_as_real(z2), j2)
    # D: (B1, B2, [n, n (side 1)], [n, n (side 2)]) complex or real
    B1, B2 = D.shape[:2]
    D = D.reshape(B1, B2, n_components(n, o1), n_components(n, o2))
    return to_real(D.to(torch.complex128 if real == torch.float64 else torch.complex64), n, (o1, o2))


__all__ = [
    "autodiff_kernel",
    "check_orders",
    "coordinate_jets",
    "diagonal_sum",
    "faa_di_bruno",
    "faa_di_bruno_general",
    "hermite_gaussian",
    "separable_sum",
    "set_partitions",
    "slot_gram",
    "slot_self_gram",
    "to_real",
]
