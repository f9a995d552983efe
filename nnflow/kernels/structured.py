"""Structured empirical tangent kernels of the MLP: per-layer Gram matrices of jets (pure torch).

For layer l, u^l = ω_l W_l h^{l−1} + β_l b_l (h^0 = features, ω, β the parameterization's
scales) and the backpropagated gradient G^l_o(x) = ∂φ/∂u^l_o (G^{L+1} = 1) give

    ∂φ/∂W_l[o, i] = ω_l G^l_o(x) h^{l−1}_i(x),      ∂φ/∂b_l[o] = β_l G^l_o(x),

so each layer's tangent kernel is a product of two Gram kernels,
Θ^{W_l}(x, x') = ω_l² k_G(x, x') k_h(x, x'), and its Kähler and metric kernels follow by the
Leibniz rule from the Gram matrices of the jets (value, ∂_a, ∂_a∂̄_b) of G^l and h^{l−1}. In
real components r_s (geometry/hermitian.py), r_s(∂∂̄(G h)) = Σ_{αβ} E_s[α, β] G_α h_β with a sparse real
E_s (three blocks, ``leibniz_types``) over the "component rows" α = (value, Re ∂_a, Im ∂_a,
r_s(∂∂̄)), so

    Θ^{W_l}_st(x, x') = ω_l² Σ E_s[α, β] E_t[γ, δ] K_G[α, γ] K_H[β, δ]

with K_G, K_H the real Gram matrices of the component rows. The jets of G come from one
backward sweep of jets:

    G^l = σ'(u^l) ⊙ (ω_{l+1} W_{l+1}ᵀ G^{l+1}),

a jet of σ'(u) (from σ'', σ''') times a linear map of a jet. The cost per pair of points is
O(R² Σ_l (fan_in + fan_out)) with R = 1 + 2n + n² instead of the O(n⁴ P) of contracting
Jacobians with P parameters — the "structured derivatives" idea of Novak et al. (2022).
"""

from __future__ import annotations

import math
from functools import cache

import torch

from nnflow.kernels.activations import derivatives as activation_derivatives
from nnflow.models.jets import activation_packed, linear_packed, packed_layout, product_packed
from nnflow.models.networks import ACTIVATIONS

_PAIR_STEP = 512  # pairs per sub-chunk in leibniz_real (its temporaries stay in cache)


def mlp_layer_jets(network, params: dict, rows0: torch.Tensor, n: int) -> list[tuple]:
    """Per layer l: (h^{l−1} jet, G^l jet or None for G ≡ 1, ω_l, β_l) as component rows (B, R, ·).

    Args:
        network: models.networks.MLP (its activation, depth and scales are read).
        params: the network's parameters by name ("weights.0", "biases.0", ...).
        rows0: (B, R, d) packed feature jet (R = 1 for a value-only side, n = 0).
    """
    act = network.activation
    sigma = ACTIVATIONS[act]  # the network's own (σ, σ', σ'')

    def sigma_prime(u):
        return tuple(activation_derivatives(act, u, 3)[1:])

    L = network.depth
    weights = [params[f"weights.{l}"] * network.w_scales[l] for l in range(L + 1)]
    biases = [params[f"biases.{l}"] * network.b_scales[l] for l in range(L + 1)]
    h, inputs, pre = rows0, [], []
    for l in range(L + 1):
        inputs.append(h)
        u = linear_packed(h, weights[l], biases[l])
        if l < L:
            pre.append(u)
            h = activation_packed(u, n, sigma)
    grads = [None] * (L + 1)
    for l in range(L - 1, -1, -1):
        slope = activation_packed(pre[l], n, sigma_prime)  # jet of σ'(u^l)
        if grads[l + 1] is None:  # G^{l+1} ≡ 1: the product is slope · (ω W)_{0,:}
            grads[l] = slope * weights[l + 1][0]
        else:
            grads[l] = product_packed(slope, grads[l + 1] @ weights[l + 1], n)
    rows = [component_rows(t, n) for t in inputs]
    grads = [None if g is None else component_rows(g, n) for g in grads]
    return [(rows[l], grads[l], network.w_scales[l], network.b_scales[l]) for l in range(L + 1)]


def component_rows(T: torch.Tensor, n: int) -> torch.Tensor:
    """Packed jet rows (B, R, W) → "component rows" [value, Re ∂_a, Im ∂_a, r_s(∂∂̄)] (B, R, W).

    r_s are the real components of the Hermitian ∂_a∂̄_b (geometry/hermitian.py), so the Gram of these
    rows holds the metric kernel's blocks directly.
    """
    if n == 0:
        return T
    index, scale = _component_index(n)
    return T[:, index.to(T.device)] * scale.to(T)[:, None]


@cache
def _component_index(n: int):
    """Rows of component_rows in a packed jet (value and ∂ rows, then the Hermitian components)."""
    layout = packed_layout(n)
    index = list(range(1 + 2 * n)) + list(layout.component_rows)
    scale = [1.0] * (1 + 2 * n) + list(layout.component_scale)
    return torch.tensor(index), torch.tensor(scale, dtype=torch.float64)


@cache
def leibniz_types(n: int, order: int):
    """The three blocks of E: r_s(∂∂̄(G h)) = Σ_types Σ_{i,j} M[s, i, j] G_{g[i]} h_{h[j]}.

    ∂_a∂̄_b(Gh) = G_{ab̄} h + G h_{ab̄} + G_a conj(h_b) + conj(G_b) h_a over component rows
    (value 0, Re ∂_a at 1 + a, Im ∂_a at 1 + n + a, r_s at 1 + 2n + s):
    "rv" (G's r_s row with h's value), "vr" (the reverse), and "dd" (first-derivative rows
    with the real map Q_s of the cross term X_ab). Order 0: one block, G h.
    Returns a tuple of (g rows, h rows, M flattened to (m, |g|·|h|), or None for the identity).
    """
    v = torch.zeros(1, dtype=torch.long)
    if order == 0:
        return ((v, v, None),)
    m = n * n
    r = torch.arange(1 + 2 * n, 1 + 2 * n + m)
    d = torch.arange(1, 1 + 2 * n)
    Q = torch.zeros(m, 2 * n, 2 * n, dtype=torch.float64)
    for a in range(n):  # X_aa = 2 Re(G_a conj h_a)
        Q[a, a, a] = Q[a, n + a, n + a] = 2.0
    strict = [(a, b) for a in range(n) for b in range(a + 1, n)]
    r2 = math.sqrt(2)
    for k, (a, b) in enumerate(strict):
        s = n + k  # √2 Re X_ab
        Q[s, a, b] = Q[s, n + a, n + b] = Q[s, b, a] = Q[s, n + b, n + a] = r2
        s = n + len(strict) + k  # √2 Im X_ab
        Q[s, n + a, b] = Q[s, b, n + a] = r2
        Q[s, a, n + b] = Q[s, n + b, a] = -r2
    return ((r, v, None), (v, r, None), (d, d, Q.reshape(m, -1)))


def gram(T1: torch.Tensor, T2: torch.Tensor) -> torch.Tensor:
    """Real Gram of rows over units: (B1, R1, W), (B2, R2, W) → (B1, B2, R1, R2) contiguous."""
    B1, R1, W = T1.shape
    B2, R2, _ = T2.shape
    K = T1.reshape(B1 * R1, W) @ T2.reshape(B2 * R2, W).T
    return K.reshape(B1, R1, B2, R2).permute(0, 2, 1, 3).contiguous()


def leibniz_real(KG: torch.Tensor, KH: torch.Tensor, types1, types2) -> torch.Tensor:
    """Θ_st = Σ E1_s[α, β] E2_t[γ, δ] KG[α, γ] KH[β, δ] block by block (``leibniz_types``).

    KG, KH: (B1, B2, R1, R2) real Grams → (B1, B2, m1, m2). For each pair of blocks the
    Kronecker product of the two Gram sub-blocks is contracted with the blocks' maps M (two
    small GEMMs); pairs are processed in sub-chunks that stay in cache.
    """
    B1, B2, R1, R2 = KG.shape
    P = B1 * B2
    dev, dt = KG.device, KG.dtype
    kg, kh = KG.reshape(P, R1, R2), KH.reshape(P, KH.shape[2], KH.shape[3])

    def size(g, h, M):
        return len(g) * len(h) if M is None else M.shape[0]

    def move(M):
        return None if M is None else M.to(device=dev, dtype=dt)

    plan = [
        (g1.to(dev), g2.to(dev), h1.to(dev), h2.to(dev), move(M1), move(M2))
        for g1, h1, M1 in types1
        for g2, h2, M2 in types2
    ]
    m1, m2 = size(*types1[0]), size(*types2[0])
    out = torch.empty(P, m1, m2, dtype=dt, device=dev)
    for start in range(0, P, _PAIR_STEP):
        g, h = kg[start : start + _PAIR_STEP], kh[start : start + _PAIR_STEP]
        p = g.shape[0]
        acc = torch.zeros(p, m1, m2, dtype=dt, device=dev)
        for g1, g2, h1, h2, M1, M2 in plan:
            A = g[:, g1][:, :, g2]  # (p, |g1|, |g2|)
            B = h[:, h1][:, :, h2]  # (p, |h1|, |h2|)
            k1, k2 = len(g1) * len(h1), len(g2) * len(h2)
            Z = (A[:, :, None, :, None] * B[:, None, :, None, :]).reshape(p, k1, k2)
            if M2 is not None:
                Z = (Z.reshape(p * k1, k2) @ M2.T).reshape(p, k1, m2)
            if M1 is not None:  # M1 @ (k1, p·m2) as one GEMM
                Z = (M1 @ Z.transpose(0, 1).reshape(k1, p * m2)).reshape(m1, p, m2).transpose(0, 1)
            acc += Z
        out[start : start + p] = acc
    return out.reshape(B1, B2, m1, m2)


def _full_rows(n: int) -> list[int]:
    """Component rows of the full derivative r_s(∂∂̄), or the value row for an order-0 side."""
    return list(range(1 + 2 * n, 1 + 2 * n + n * n)) if n else [0]


def structured_block(layers1: list, layers2: list, n: int, orders) -> torch.Tensor:
    """Σ_l of the per-layer Leibniz products, real (B1, B2, m1, m2) in components.

    layers: ``mlp_layer_jets`` outputs whose jets were mapped by ``component_rows``.
    """
    o1, o2 = orders
    n1, n2 = (n if o1 else 0), (n if o2 else 0)
    E1, E2 = leibniz_types(n1, o1), leibniz_types(n2, o2)
    r1, r2 = _full_rows(n1), _full_rows(n2)
    out = 0
    for (h1, G1, w, b), (h2, G2, _, _) in zip(layers1, layers2):
        if G1 is None:  # output layer: ∂φ/∂W = ω h^L, ∂φ/∂b = β (a constant)
            out = out + w**2 * gram(h1[:, r1], h2[:, r2])
            if o1 == 0 and o2 == 0:
                out = out + b**2
            continue
        KG = gram(G1, G2)
        out = out + w**2 * leibniz_real(KG, gram(h1, h2), E1, E2)
        out = out + b**2 * KG[:, :, r1][:, :, :, r2]
    return out
