"""Riemannian metrics on the flat torus T^n = R^n/Z^n: Christoffel symbols, Ricci tensor and
scalar curvature, by automatic differentiation (torch.func) and on a periodic grid (spectral).

Conventions. Coordinates θ ∈ [0, 1)^n (period 1, so a Fourier mode is e^{2πi k·θ}, k ∈ Z^n,
with wavevector q = 2πk). A metric is a symmetric positive-definite g_ij(θ), float64.
Jets carry derivative indices last:

    dg[..., i, j, m]     = ∂_m g_ij,        ddg[..., i, j, m, l] = ∂_m ∂_l g_ij.

    Γ^k_ij = ½ g^{kl} (∂_i g_jl + ∂_j g_il − ∂_l g_ij)                stored as gamma[..., k, i, j]
    R_ij   = ∂_k Γ^k_ij − ∂_j Γ^k_ik + Γ^k_kl Γ^l_ij − Γ^k_jl Γ^l_ik
    R      = g^{ij} R_ij              (round 2-sphere of radius r: R = 2/r²)
    dV     = √det g dⁿθ.

Routes: ``ricci`` is the closed formula in the 2-jet (g, ∂g, ∂∂g), which ``TorusGrid.jets``
supplies spectrally on a grid, ``metric_jets`` (torch.func.jacfwd under vmap, per point) and
``tensor_grid_jets`` (torch.func.jvp over a whole tensor grid) by autodiff;
``ricci_autodiff`` instead differentiates the Christoffel symbols with jacfwd. Tests check
them against each other, against closed forms (flat metrics in curvilinear coordinates,
conformally flat metrics, warped products) and against identities (Ric = (R/2)g and
Gauss–Bonnet in n = 2, the contracted Bianchi identity in n = 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.func import jacfwd, jvp, vmap

MetricFn = Callable[[torch.Tensor], torch.Tensor]  # θ (..., n) → g (..., n, n): batched, or one point under torch.func


# ---------------------------------------------------------------------- formulas in the jets
def christoffel(g: torch.Tensor, dg: torch.Tensor) -> torch.Tensor:
    """Γ^k_ij from g (..., n, n) and ∂g (..., n, n, n): → (..., n, n, n) indexed [k, i, j]."""
    return torch.einsum("...kl,...lij->...kij", torch.linalg.inv(g), _first_kind(dg))


def _first_kind(dg: torch.Tensor) -> torch.Tensor:
    """Γ_lij = ½(∂_i g_jl + ∂_j g_il − ∂_l g_ij) as [..., l, i, j] from dg[..., a, b, m] = ∂_m g_ab."""
    return 0.5 * (
        torch.einsum("...jli->...lij", dg) + torch.einsum("...ilj->...lij", dg) - torch.einsum("...ijl->...lij", dg)
    )


def ricci(g: torch.Tensor, dg: torch.Tensor, ddg: torch.Tensor) -> torch.Tensor:
    """Ricci tensor R_ij from the 2-jet of g: (..., n, n), (..., n, n, n), (..., n, n, n, n) → (..., n, n).

    Uses ∂_m Γ^k_ij = −g^{ka} ∂_m g_ab g^{bl} Γ_lij + g^{kl} ∂_m Γ_lij with
    ∂_m Γ_lij = ½(∂_m∂_i g_jl + ∂_m∂_j g_il − ∂_m∂_l g_ij).
    """
    ginv = torch.linalg.inv(g)
    first = _first_kind(dg)  # [l, i, j]
    gamma = torch.einsum("...kl,...lij->...kij", ginv, first)
    dfirst = 0.5 * (
        torch.einsum("...jlim->...lijm", ddg)
        + torch.einsum("...iljm->...lijm", ddg)
        - torch.einsum("...ijlm->...lijm", ddg)
    )  # [l, i, j, m] = ∂_m Γ_lij
    dginv = -torch.einsum("...ka,...abm,...bl->...klm", ginv, dg, ginv)  # ∂_m g^{kl}
    dgamma = torch.einsum("...klm,...lij->...kijm", dginv, first) + torch.einsum(
        "...kl,...lijm->...kijm", ginv, dfirst
    )  # [k, i, j, m] = ∂_m Γ^k_ij
    return _ricci_from_gamma(gamma, dgamma)


def _ricci_from_gamma(gamma: torch.Tensor, dgamma: torch.Tensor) -> torch.Tensor:
    """R_ij = ∂_kΓ^k_ij − ∂_jΓ^k_ik + Γ^k_kl Γ^l_ij − Γ^k_jl Γ^l_ik (dgamma[..., k, i, j, m] = ∂_mΓ^k_ij)."""
    ric = torch.einsum("...kijk->...ij", dgamma) - torch.einsum("...kikj->...ij", dgamma)
    ric = ric + torch.einsum("...kkl,...lij->...ij", gamma, gamma)
    ric = ric - torch.einsum("...kjl,...lik->...ij", gamma, gamma)
    return 0.5 * (ric + ric.transpose(-1, -2))  # symmetric exactly; removes round-off asymmetry


def scalar_curvature(g: torch.Tensor, ric: torch.Tensor) -> torch.Tensor:
    """R = g^{ij} R_ij: (..., n, n), (..., n, n) → (...)."""
    return torch.einsum("...ij,...ij->...", torch.linalg.inv(g), ric)


def volume_density(g: torch.Tensor) -> torch.Tensor:
    """√det g: (..., n, n) → (...). Raises ValueError if g is not positive definite somewhere."""
    det = torch.linalg.det(g)
    bad = ~(det > 0)
    if bad.any():
        raise ValueError(
            f"metric is not positive definite at {int(bad.sum())} of {det.numel()} points; "
            f"min det g = {det.nan_to_num(-math.inf).min().item():.3e}"
        )
    return det.sqrt()


# ---------------------------------------------------------------------- autodiff (torch.func)
def metric_jets(metric_fn: MetricFn, theta: torch.Tensor):
    """(g, ∂g, ∂∂g) of a metric function at points θ (P, n), by nested ``jacfwd`` under ``vmap``.

    Returns (P, n, n), (P, n, n, n), (P, n, n, n, n) with derivative indices last.
    """

    def first(x):
        d = jacfwd(metric_fn)(x)
        return d, d

    def second(x):
        dd, d = jacfwd(first, has_aux=True)(x)
        return dd, d

    def jets(x):
        dd, d = second(x)
        return metric_fn(x), d, dd

    return vmap(jets)(theta)


def christoffel_fn(metric_fn: MetricFn) -> Callable[[torch.Tensor], torch.Tensor]:
    """θ (n,) ↦ Γ^k_ij(θ) (n, n, n), with ∂g from ``jacfwd`` (compose with vmap/jacfwd freely)."""

    def gamma(x):
        return christoffel(metric_fn(x), jacfwd(metric_fn)(x))

    return gamma


def ricci_autodiff(metric_fn: MetricFn, theta: torch.Tensor) -> torch.Tensor:
    """Ricci tensor at points θ (P, n) → (P, n, n), differentiating Γ(θ) itself with jacfwd."""
    gamma_fn = christoffel_fn(metric_fn)

    def one(x):
        dgamma = jacfwd(gamma_fn)(x)  # [k, i, j, m] = ∂_m Γ^k_ij
        return _ricci_from_gamma(gamma_fn(x), dgamma)

    return vmap(one)(theta)


def tensor_grid_jets(fn: Callable[..., torch.Tensor], axes: tuple[torch.Tensor, ...]):
    """(f, ∂f, ∂∂f) of a field evaluated on a tensor-product grid, by nested ``torch.func.jvp``.

    ``fn(*axes)`` maps n axis vectors (M_l,) to a field (M_1, …, M_n) + rest whose entry
    [a_1, …, a_n] depends on axis l only through axes[l][a_l] (a pointwise function of θ on
    the grid θ = (axes[0][a_1], …)). Then the jvp with an all-ones tangent on axis l is ∂_l f
    at every grid point at once: n + n² forward-mode passes over the whole grid, exact (no
    spectral truncation). Derivative indices are appended last, as in ``metric_jets``.
    """
    n = len(axes)
    zeros = tuple(torch.zeros_like(a) for a in axes)

    def tangent(m):
        return tuple(torch.ones_like(a) if l == m else z for l, (a, z) in enumerate(zip(axes, zeros)))

    def first(*ax):
        return torch.stack([jvp(fn, ax, tangent(m))[1] for m in range(n)], -1)

    d = first(*axes)
    dd = torch.stack([jvp(first, axes, tangent(m))[1] for m in range(n)], -1)
    return fn(*axes), d, dd


# ---------------------------------------------------------------------- periodic grid
class TorusGrid:
    """The uniform grid θ_a = a/M (a = 0..M−1) on each axis of T^n, with spectral derivatives.

    Fields are tensors whose first n dimensions are the grid, (M,)*n + rest. Derivatives are
    exact for trigonometric polynomials of degree < M/2; the Nyquist mode's derivative is set
    to zero, so ∂_i∂_j is exactly the composition of first derivatives and the discrete
    derivative is antisymmetric (exact summation by parts on the grid).

    Args:
        n: dimension (≥ 1). size: M points per axis (≥ 4). dtype, device: of the grid.
    Attributes:
        axes: n copies of the axis coordinates (M,), for ``tensor_grid_jets``.
        points: (M,)*n + (n,) coordinates θ; flat_points: (M^n, n).
        q: (M,)*n + (n,) wavevectors 2πk of the FFT layout (Nyquist zeroed); k: integer modes.
        cell: the quadrature weight 1/M^n (the torus has volume 1 in the flat metric).
    """

    def __init__(self, n: int, size: int, dtype=torch.float64, device=None):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"torus dimension n must be a positive integer; got {n!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 4:
            raise ValueError(f"grid size must be an integer ≥ 4; got {size!r}")
        self.n, self.size, self.dtype, self.device = n, size, dtype, device
        axis = torch.arange(size, dtype=dtype, device=device) / size
        self.axes = (axis,) * n
        self.points = torch.stack(torch.meshgrid(*([axis] * n), indexing="ij"), -1)
        self.flat_points = self.points.reshape(-1, n)
        k1 = torch.fft.fftfreq(size, d=1.0 / size, dtype=dtype, device=device).round()
        self.k = torch.stack(torch.meshgrid(*([k1] * n), indexing="ij"), -1)
        k1d = k1.clone()
        if size % 2 == 0:
            k1d[size // 2] = 0.0
        self.q = 2 * math.pi * torch.stack(torch.meshgrid(*([k1d] * n), indexing="ij"), -1)
        self.cell = 1.0 / size**n
        self.dims = tuple(range(n))

    def __repr__(self) -> str:
        return f"TorusGrid(n={self.n}, size={self.size})"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,) * self.n

    def evaluate(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """A batched function of θ (..., n) → (..., rest) evaluated on the grid: (M,)*n + rest."""
        return fn(self.points)

    def from_axes(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
        """A batched θ-function as a function of the axis vectors (for ``tensor_grid_jets``)."""
        return lambda *ax: fn(torch.stack(torch.meshgrid(*ax, indexing="ij"), -1))

    def fft(self, f: torch.Tensor) -> torch.Tensor:
        return torch.fft.fftn(f, dim=self.dims)

    def ifft(self, f_hat: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifftn(f_hat, dim=self.dims).real

    def _bcast(self, t: torch.Tensor, extra: int) -> torch.Tensor:
        return t.reshape(t.shape + (1,) * extra)

    def derivative(self, f: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
        """∂_{axes[0]} ∂_{axes[1]} … f for a field f (M,)*n + rest."""
        mult = torch.ones(self.shape, dtype=torch.complex128 if self.dtype == torch.float64 else torch.complex64,
                          device=self.device)
        for a in axes:
            mult = mult * (1j * self.q[..., a])
        extra = f.dim() - self.n
        return self.ifft(self.fft(f) * self._bcast(mult, extra))

    def jets(self, f: torch.Tensor):
        """(f, ∂f, ∂∂f) of a field (M,)*n + rest: derivative indices appended last."""
        n = self.n
        extra = f.dim() - n
        F = self.fft(f)
        iq = 1j * self.q.to(F.dtype)
        d = torch.stack([self.ifft(F * self._bcast(iq[..., m], extra)) for m in range(n)], -1)
        dd = torch.empty(f.shape + (n, n), dtype=f.dtype, device=f.device)
        for m in range(n):
            for l in range(m, n):
                v = self.ifft(F * self._bcast(iq[..., m] * iq[..., l], extra))
                dd[..., m, l] = v
                dd[..., l, m] = v
        return f, d, dd

    def gradient(self, f: torch.Tensor) -> torch.Tensor:
        """∂_m f of a field, m appended last."""
        F = self.fft(f)
        extra = f.dim() - self.n
        iq = 1j * self.q.to(F.dtype)
        return torch.stack([self.ifft(F * self._bcast(iq[..., m], extra)) for m in range(self.n)], -1)

    def convolve(self, f: torch.Tensor, multiplier: torch.Tensor) -> torch.Tensor:
        """Apply a Fourier multiplier (M,)*n (real, in FFT layout) to a field (M,)*n + rest."""
        F = self.fft(f)
        return self.ifft(F * self._bcast(multiplier.to(F.dtype), f.dim() - self.n))

    def integrate(self, f: torch.Tensor) -> torch.Tensor:
        """∫_{T^n} f dⁿθ (flat measure): sums the grid dimensions. Spectrally accurate."""
        return f.sum(dim=self.dims) * self.cell


def grid_curvature(grid: TorusGrid, g: torch.Tensor) -> dict[str, torch.Tensor]:
    """Christoffel symbols, Ricci tensor and scalar curvature of a grid metric (M,)*n + (n, n)."""
    g, dg, ddg = grid.jets(g)
    ric = ricci(g, dg, ddg)
    return {"gamma": christoffel(g, dg), "ricci": ric, "scalar": scalar_curvature(g, ric)}


def curvature_invariants(grid: TorusGrid, g: torch.Tensor) -> dict[str, float]:
    """Diffeomorphism-invariant integrals of a grid metric (spectrally accurate on the grid).

    volume = ∫dV, R2 = ∫R² dV, R3 = ∫R³ dV, ric2 = ∫|Ric|²_g dV, dR2 = ∫|∇R|²_g dV. Two metrics
    that differ by a diffeomorphism isotopic to the identity have the same values; used to
    compare flows that agree only up to a gauge (Perelman's).
    """
    c = grid_curvature(grid, g)
    ginv = torch.linalg.inv(g)
    dv = volume_density(g)
    R, ric = c["scalar"], c["ricci"]
    dR = grid.gradient(R)
    dens = {
        "volume": torch.ones_like(R),
        "R2": R.square(),
        "R3": R**3,
        "ric2": torch.einsum("...ia,...jb,...ij,...ab->...", ginv, ginv, ric, ric),
        "dR2": torch.einsum("...ij,...i,...j->...", ginv, dR, dR),
    }
    return {k: grid.integrate(v * dv).item() for k, v in dens.items()}


# ---------------------------------------------------------------------- test metrics
class FourierMetric:
    """g(θ) = δ + Σ_k [A_k cos(2π k·θ) + B_k sin(2π k·θ)] with symmetric n×n A_k, B_k.

    A smooth metric on T^n made of a few Fourier modes; callable on θ of shape (..., n)
    (a grid, a batch of points, or a single point under torch.func). ``random`` draws one whose
    perturbation has Σ_k (‖A_k‖₂ + ‖B_k‖₂) = amplitude < 1, which guarantees g > 0.

    Args:
        modes: (K, n) integer wavevectors; A, B: (K, n, n) symmetric coefficient matrices.
    """

    def __init__(self, modes, A, B):
        self.modes = torch.as_tensor(modes, dtype=torch.float64)
        self.A = torch.as_tensor(A, dtype=torch.float64)
        self.B = torch.as_tensor(B, dtype=torch.float64)
        K, n = self.modes.shape
        if self.A.shape != (K, n, n) or self.B.shape != (K, n, n):
            raise ValueError(f"A and B must have shape {(K, n, n)}; got {tuple(self.A.shape)}, {tuple(self.B.shape)}")
        for name, M in (("A", self.A), ("B", self.B)):
            if not torch.allclose(M, M.transpose(-1, -2)):
                raise ValueError(f"coefficients {name} must be symmetric matrices")
        self.n = n

    @classmethod
    def random(cls, n: int, max_mode: int = 1, amplitude: float = 0.2, seed: int = 0) -> FourierMetric:
        """All modes k ≠ 0 with |k_i| ≤ max_mode (one of each ±k pair), Gaussian symmetric coefficients."""
        if not 0 < amplitude < 1:
            raise ValueError(f"amplitude must be in (0, 1) so that g stays positive definite; got {amplitude!r}")
        if not isinstance(max_mode, int) or max_mode < 1:
            raise ValueError(f"max_mode must be a positive integer; got {max_mode!r}")
        rng = torch.Generator().manual_seed(seed)
        ks = torch.cartesian_prod(*([torch.arange(-max_mode, max_mode + 1)] * n)).reshape(-1, n)
        keep = [bool((k != 0).any()) and bool(k[k != 0][0] > 0) for k in ks]  # one of ±k, k ≠ 0
        ks = ks[torch.tensor(keep)].to(torch.float64)
        K = ks.shape[0]
        raw = torch.randn(2, K, n, n, generator=rng, dtype=torch.float64)
        raw = 0.5 * (raw + raw.transpose(-1, -2))
        raw = raw / (1.0 + ks.square().sum(-1))[None, :, None, None]  # smoother: higher k smaller
        norm = torch.linalg.matrix_norm(raw, ord=2).sum()
        raw = raw * (amplitude / norm)
        return cls(ks, raw[0], raw[1])

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """θ (..., n) → g (..., n, n)."""
        phase = 2 * math.pi * theta @ self.modes.to(theta).T  # (..., K)
        pert = torch.einsum("...k,kij->...ij", torch.cos(phase), self.A.to(theta)) + torch.einsum(
            "...k,kij->...ij", torch.sin(phase), self.B.to(theta)
        )
        return torch.eye(self.n, dtype=theta.dtype, device=theta.device) + pert
