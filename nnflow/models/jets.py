"""Second-order jets of real functions and their packed real layout (pure torch).

A ``Jet`` holds a real function's value, ∂_a and ∂_a∂̄_b at B points for D components. Inside an
MLP (and the structured kernels) a jet is *packed* into one real tensor T of shape (B, R, D),
R = 1 + 2n + n²; ``PackedLayout`` is the one description of its rows:

    row 0                 value u
    rows 1 .. n           Re ∂_a u
    rows n+1 .. 2n        Im ∂_a u
    then, for ∂_a∂̄_b u = A + iB (Hermitian):
    A_ab for a ≤ b        (``upper`` pairs, torch.triu_indices order; A is symmetric)
    B_ab for a < b        (``strict`` pairs; B is antisymmetric).

A linear layer is then one matrix product T Wᵀ for all rows at once (``linear_packed``), and an
activation acts row by row (``activation_packed``). ``dd_components`` reads the ∂∂̄ rows as the
orthonormal Hermitian components of geometry/hermitian.py (A_aa; √2 A_ab; √2 B_ab).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call


@dataclass
class Jet:
    """A real function's value and Wirtinger derivatives at B points, for D components.

    value: (B, D) real; d: (B, n, D) complex, ∂_a f; dd: (B, n, n, D) complex, ∂_a ∂̄_b f
    (Hermitian in a, b since f is real).
    """

    value: torch.Tensor
    d: torch.Tensor
    dd: torch.Tensor


@dataclass(frozen=True)
class PackedLayout:
    """Row positions of a packed jet with n complex directions (module doc).

    Attributes:
        n: number of directions a.
        upper: pairs (a, b), a ≤ b, of the A rows; strict: pairs a < b of the B rows.
        size: R = 1 + 2n + n².
        a_row, b_row: (a, b) → row of A_ab (a ≤ b), of B_ab (a < b).
        component_rows: rows of A_aa, A_ab, B_ab (a < b): the Hermitian components' order.
        component_scale: their factors 1 (diagonal) and √2 (off-diagonal), as Python floats.
    """

    n: int
    upper: tuple
    strict: tuple
    size: int
    a_row: dict
    b_row: dict
    component_rows: tuple
    component_scale: tuple

    @property
    def first_a(self) -> int:
        return 1 + 2 * self.n

    @property
    def first_b(self) -> int:
        return 1 + 2 * self.n + len(self.upper)


# A plain dict, not functools.lru_cache: torch.compile traces the lookups and warns about lru_cache.
_LAYOUTS: dict[int, PackedLayout] = {}


def packed_layout(n: int) -> PackedLayout:
    """The (cached) PackedLayout for n directions."""
    if n not in _LAYOUTS:
        upper = tuple((a, b) for a in range(n) for b in range(a, n))
        strict = tuple((a, b) for a in range(n) for b in range(a + 1, n))
        first_a, first_b = 1 + 2 * n, 1 + 2 * n + len(upper)
        a_row = {p: first_a + k for k, p in enumerate(upper)}
        b_row = {p: first_b + k for k, p in enumerate(strict)}
        rows = [a_row[(a, a)] for a in range(n)] + [a_row[p] for p in strict] + [b_row[p] for p in strict]
        scale = [1.0] * n + [math.sqrt(2)] * (2 * len(strict))
        _LAYOUTS[n] = PackedLayout(n, upper, strict, 1 + 2 * n + n * n, a_row, b_row, tuple(rows), tuple(scale))
    return _LAYOUTS[n]


def _pair_index(n: int, device):
    ia, ib = torch.triu_indices(n, n, device=device)  # the ``upper`` order
    ja, jb = torch.triu_indices(n, n, offset=1, device=device)  # the ``strict`` order
    return ia, ib, ja, jb


def pack_jet(jet: Jet) -> torch.Tensor:
    """Jet with (B, n, D) derivatives → packed (B, 1 + 2n + n², D) real."""
    n = jet.d.shape[1]
    ia, ib, ja, jb = _pair_index(n, jet.d.device)
    return torch.cat(
        [jet.value[:, None], jet.d.real, jet.d.imag, jet.dd.real[:, ia, ib], jet.dd.imag[:, ja, jb]], 1
    )


def unpack_jet(T: torch.Tensor, n: int) -> Jet:
    """Inverse of pack_jet: (B, 1 + 2n + n², D) real → Jet."""
    ia, ib, ja, jb = _pair_index(n, T.device)
    B, _, D = T.shape
    m = ia.shape[0]
    d = torch.complex(T[:, 1 : 1 + n], T[:, 1 + n : 1 + 2 * n])
    A = T.new_zeros(B, n, n, D)
    A[:, ia, ib] = T[:, 1 + 2 * n : 1 + 2 * n + m]
    A[:, ib, ia] = T[:, 1 + 2 * n : 1 + 2 * n + m]
    Bm = T.new_zeros(B, n, n, D)
    Bm[:, ja, jb] = T[:, 1 + 2 * n + m :]
    Bm[:, jb, ja] = -T[:, 1 + 2 * n + m :]
    return Jet(T[:, 0], d, torch.complex(A, Bm))


def dd_components(T: torch.Tensor, n: int) -> torch.Tensor:
    """The ∂_a∂̄_b rows of a packed jet as orthonormal Hermitian components: (B, R, D) → (B, n², D).

    Components as nnflow.geometry.hermitian.hermitian_to_real: (A_aa; √2 A_ab; √2 B_ab), a < b.
    """
    layout = packed_layout(n)
    return T[:, list(layout.component_rows)] * T.new_tensor(list(layout.component_scale))[:, None]


def linear_packed(T: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x ↦ x Wᵀ + b on a packed jet (B, R, in) → (B, R, out): every row transforms linearly,
    the bias shifts the value row only."""
    out = T @ weight.T
    if bias is None:
        return out
    row0 = torch.zeros(T.shape[1], 1, dtype=T.dtype, device=T.device)
    row0[0] = 1
    return out + row0 * bias  # no slicing: slice backward would zero-fill full-size grads


def activation_packed(T: torch.Tensor, n: int, act) -> torch.Tensor:
    """σ on a packed jet (B, R, W) → (B, R, W): ∂σ = σ'∂u, ∂_a∂̄_bσ = σ''·∂_a u·conj(∂_b u) + σ'·∂_a∂̄_b u.

    ``act(u)`` returns (σ(u), σ'(u), σ''(u)). Works row by row on ``unbind`` views, whose
    backward is one stack (cheap), rather than on slices or gathers, whose backward zero-fills
    and scatters.
    """
    layout = packed_layout(n)
    rows = T.unbind(1)
    re, im = rows[1 : 1 + n], rows[1 + n : 1 + 2 * n]
    A, Bm = rows[layout.first_a : layout.first_b], rows[layout.first_b :]
    s0, s1, s2 = act(rows[0])
    out = [s0] + [s1 * r for r in re] + [s1 * i for i in im]
    out += [s2 * (re[a] * re[b] + im[a] * im[b]) + s1 * A[k] for k, (a, b) in enumerate(layout.upper)]
    out += [s2 * (im[a] * re[b] - re[a] * im[b]) + s1 * Bm[k] for k, (a, b) in enumerate(layout.strict)]
    return torch.stack(out, 1)


def product_packed(F: torch.Tensor, G: torch.Tensor, n: int) -> torch.Tensor:
    """Jet of the product of two real functions, both packed (B, R, W) → (B, R, W).

    ∂_a(fg) = f_a g + f g_a;  ∂_a∂̄_b(fg) = f_{ab̄} g + f g_{ab̄} + f_a ḡ_b + f̄_b g_a.
    """
    layout = packed_layout(n)
    f, g = F.unbind(1), G.unbind(1)
    f0, g0 = f[0], g[0]
    fr, fi, gr, gi = f[1 : 1 + n], f[1 + n : 1 + 2 * n], g[1 : 1 + n], g[1 + n : 1 + 2 * n]
    fA, gA = f[layout.first_a : layout.first_b], g[layout.first_a : layout.first_b]
    fB, gB = f[layout.first_b :], g[layout.first_b :]
    out = [f0 * g0]
    out += [fr[a] * g0 + f0 * gr[a] for a in range(n)]
    out += [fi[a] * g0 + f0 * gi[a] for a in range(n)]
    out += [
        fA[k] * g0 + f0 * gA[k] + fr[a] * gr[b] + fi[a] * gi[b] + fr[b] * gr[a] + fi[b] * gi[a]
        for k, (a, b) in enumerate(layout.upper)
    ]
    out += [
        fB[k] * g0 + f0 * gB[k] + fi[a] * gr[b] - fr[a] * gi[b] + fr[b] * gi[a] - fi[b] * gr[a]
        for k, (a, b) in enumerate(layout.strict)
    ]
    return torch.stack(out, 1)


class _JetCall(nn.Module):
    """Exposes ``network.jet`` as ``forward`` so that functional_call can swap parameters."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.net = network

    def forward(self, jet: Jet) -> Jet:
        return self.net.jet(jet)


def functional_jet(network: nn.Module, params: dict[str, torch.Tensor], jet: Jet) -> Jet:
    """``network.jet(jet)`` evaluated at other parameters ``params`` (the network's names,
    e.g. "weights.0"), differentiable in them and vmap-able (torch.func.functional_call)."""
    return functional_call(_JetCall(network), {"net." + k: v for k, v in params.items()}, (jet,))
