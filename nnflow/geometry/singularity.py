"""Singular points of X = {p = 0} ⊂ P^N, searched on the whole of P^N before any sampling.

Why: on a singular X the sampler still returns points (a line misses the singular points with
probability one) and every measure still returns a number with a small error bar, but σ, the
volume's convergence and χ (which is −200 only for a *smooth* quintic) are then meaningless.
So work on X starts by proving, to working precision, that X has no singular point.

Singular points are the common zeros on P^N of the N+1 partials ∂_i p (Euler's relation
d·p = Σ_i z_i ∂_i p gives p = 0 there too). Two routes:

Diagonal (Fermat/Dwork) form, by formula
----------------------------------------
p = Σ_i a_i z_i^d + b Π_i z_i (d = N+1, every a_i ≠ 0, b possibly absent). Rescaling
y_i = α_i z_i with α_i = a_i^{1/d} gives the Dwork member Σ y_i^d − dψ Π y_i with
ψ = −b / (d Π α_i), so ψ^d = (−b/d)^d / Π a_i. Its critical points satisfy
y_i ∂p/∂y_i = d(y_i^d − ψ Π y) = 0, so every y_i^d equals λ = ψ Π y; λ = 0 forces y = 0 (not a
point), and otherwise Π y_i^d = λ^d = (λ/ψ)^d gives ψ^d = 1. Conversely for ψ^d = 1 the point
y = (1/ψ, 1, …, 1) is singular. So X is singular iff ψ^d = 1 — exactly; the presets
fermat_* (b = 0) and dwork_quintic take this route, and |ψ^d − 1| is their distance to the
singular members. "ψ^d = 1" is tested in floating point the same way as below: δ < 1e-8 at that
point (δ ≈ 0.008 |ψ^5 − 1| there, so |ψ^5 − 1| ≲ 1e-6 counts as singular).

Any other polynomial, numerically: total-degree homotopy continuation
-------------------------------------------------------------------
1. A square system. G(z) = A ∇p(z) with A a random complex N × (N+1) matrix: N equations of
   degree d−1. Every singular point solves it; with probability one its other solutions are the
   finitely many points where ∇p is parallel to the kernel vector of A (a generic fibre of the
   Gauss map, which is a finite map of degree (d−1)^N when X is smooth).
2. A random affine chart ℓ(z) = 1 (z = z₀ + V w, w ∈ C^N, V an orthonormal basis of ker ℓ):
   with probability one no solution lies on ℓ = 0, so by Bézout G has (d−1)^N solutions in C^N
   counted with multiplicity (256 for a quintic, 27 for a quartic, 4 for a cubic).
3. The homotopy H(w, t) = (1−t) γ g(w) + t G(w)/s from the start system g_j(w) = w_j^{d−1} − 1
   (its (d−1)^N solutions are tuples of roots of unity), with a random unit γ (the γ-trick: for
   all but finitely many arg γ no path meets a singular H_w for t < 1, and the path end points
   include every isolated solution of G). s = d Σ_m |c_m| puts G on the scale of g.
4. All paths are tracked at once in complex128 (no per-path Python loop): each path keeps its own
   t and step h; an RK4 predictor on dw/dt = −H_w⁻¹ H_t, then three Newton corrector steps at the
   new t; the step is accepted when the first correction is small (no path jumping) and the last
   converged, and h grows ×1.5 after an accepted step and halves after a rejected one.
5. End points are refined by Gauss–Newton on the full system ∇p(z₀ + V w) = 0 (N+1 equations, N
   unknowns; Levenberg–Marquardt steps with a 1e-12 relative damping, kept only when they lower
   δ below by 1 %): a node converges quadratically, worse singularities (a cone, a singular
   curve) linearly, and on a smooth X the points move towards local minima of |∇p|.
6. Each end point is tested against all N+1 partials by the relative distance

       δ(z)² = (‖∇p(z)‖² / d − (d−1) |p(z)|²) / ‖p‖_B²,   ‖z‖ = 1,   ‖p‖_B² = Σ_m |c_m|² e_m!/d!

   from p to the polynomials singular at z in the unitarily invariant Bombieri–Weyl norm
   (derivation in :func:`singular_distance`). δ < ``SINGULAR_TOLERANCE`` (1e-8) means singular
   to working precision: rounding alone gives δ ≲ 1e-15 at a singular point, and a linearly
   converging end point is far below 1e-8 after refinement. The smallest δ over the end points
   (an upper bound on min over P^N of δ, the relative distance from p to the nearest singular
   hypersurface of degree d) is the measure used for the near-singular warning.

Warning thresholds. On the Dwork family the homotopy's min δ is 0.008 |ψ^5 − 1| near ψ = 1
(0.0078 at ψ = 0.999, 0.0082 at 0.98), so both thresholds describe the same closeness:
|ψ^d − 1| < 0.02 (ψ ≳ 0.996 on the real line) for the formula route and min δ < 1.6e-4 for the
homotopy. Random dense quintics (seeds 0–7) have min δ between 1.1e-3 and 3.6e-3, the Fermat
quintic 0.05, so they do not warn.

A positive-dimensional singular locus also shows up: it is a component of {G = 0}, and its
contribution to the Bézout number (the paths that end on it) is positive; the tests' singular
line and singular surface each receive several end points. What it can miss: with probability
zero, a singular point on ℓ = 0 or a path through a singular H_w; and, as with any path tracker,
a path jumping onto a neighbouring one (the step control's first-correction bound makes that
unlikely, and the tests check that all 256 end points are distinct on smooth quintics and that
all 125 conifold nodes are found). A path that fails to reach t = 1 is counted; when some fail
and no singular point was found, the search is repeated with another seed, then warned about.

Cost (bench/bench_singularity.py, on the 2-core CPU while other jobs shared it, load ≈ 10, so
upper bounds): the whole check takes 0.78 s (median of 3 seeds, max 0.88 s) for a dense random
quintic (256 paths, ~130 tracker iterations), 0.19 s for a random quartic K3 (27 paths), 1.2 s
for the singular four-monomial cone (all 256 paths end at one point of multiplicity 256 and
stall), and under 1 ms for the formula route. The check runs single-threaded: its tensors are tiny
(256 paths), and intra-op threads only add synchronisation (on the loaded machine two threads
made it 10–60× slower).

One module of ~530 lines, a third of them this derivation: the formula route, the path tracker,
the refinement and the distance δ are one algorithm, used through check_smooth and singular_points.
"""

from __future__ import annotations

import cmath
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from nnflow.geometry.hypersurface import Hypersurface

SINGULAR_TOLERANCE = 1e-8  # δ below this: singular to working precision (module docstring)
NEAR_SINGULAR_PSI = 0.02  # |ψ^d − 1| below this warns, diagonal (Fermat/Dwork) form
NEAR_SINGULAR_DISTANCE = 1.6e-4  # min δ below this warns: the δ of Dwork at |ψ^5 − 1| = 0.02
MAX_STEPS = 2000  # tracker iterations (all paths advance together)
MIN_STEP = 1e-12  # a path whose step falls below this stops; refinement takes it from there
INITIAL_STEP = 0.02
NEWTON_CORRECTOR = 3  # Newton iterations after each predictor step
JUMP = 1e-2  # largest first Newton correction, relative to 1 + |w|, of an accepted step
REFINE_STEPS = 60  # Gauss–Newton iterations on the full system
MAX_TRIES = 2  # seeds tried when some path fails and no singular point was found


class SingularManifoldError(ValueError):
    """X = {p = 0} has a singular point: σ, the volume and χ computed on it would be meaningless.

    Attributes:
        name: the hypersurface's name.
        point: (N+1,) complex128, a singular point scaled so its largest coordinate is 1.
        rule: the family's rule (e.g. "ψ^5 = 1" for Dwork), or None.
        delta: singular_distance at the point (0 up to rounding).
    """

    def __init__(self, name: str, point: torch.Tensor, rule: str | None = None, delta: float = 0.0):
        self.name, self.point, self.rule, self.delta = name, point, rule, delta
        because = f" ({rule})" if rule else ""
        super().__init__(
            f"manifold {name!r} is singular{because}: ∇p = 0 at {format_point(point)} "
            f"(relative distance to a polynomial singular there δ = {delta:.1e}). Sampling and "
            "measures on a singular X give meaningless numbers (χ = −200 etc. hold only for a "
            "smooth X): choose a smooth member, or pass check_smooth=False to sample_points "
            "to sample anyway."
        )


class NearSingularWarning(UserWarning):
    """X is smooth but close to a singular member: σ and χ converge slowly there."""


@dataclass
class SmoothnessReport:
    """Outcome of :func:`check_smooth` for one hypersurface.

    Attributes:
        smooth: False when a singular point was found.
        method: "diagonal formula" or "homotopy".
        distance: |ψ^d − 1| (diagonal formula) or min δ over the end points (homotopy).
        point: (N+1,) complex128, largest coordinate 1: the singular point when not smooth, else
            the end point of smallest δ (None for a smooth diagonal form).
        delta: δ at ``point`` (None when there is no point).
        rule: the family's rule (diagonal form), else None.
        paths: homotopy paths (0 for the formula); failed: paths that did not reach t = 1.
        seconds: wall time of the check.
    """

    smooth: bool
    method: str
    distance: float
    point: torch.Tensor | None = None
    delta: float | None = None
    rule: str | None = None
    paths: int = 0
    failed: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def near_singular(self) -> bool:
        """Smooth but closer to a singular member than the warning threshold of its method."""
        limit = NEAR_SINGULAR_PSI if self.method == "diagonal formula" else NEAR_SINGULAR_DISTANCE
        return self.smooth and self.distance < limit


def format_point(z: torch.Tensor, digits: int = 4) -> str:
    """[z_0 : … : z_N] with the largest coordinate scaled to 1, each printed to ``digits``."""
    parts = []
    for v in normalize_point(z).tolist():
        re, im = round(v.real, digits) + 0.0, round(v.imag, digits) + 0.0  # +0.0: no "-0"
        if im == 0:
            parts.append(f"{re:g}")
        elif re == 0:
            parts.append(f"{im:g}j")
        else:
            parts.append(f"{re:g}{im:+g}j")
    return "[" + " : ".join(parts) + "]"


def normalize_point(z: torch.Tensor) -> torch.Tensor:
    """Scale (..., N+1) complex points so the coordinate of largest modulus is exactly 1."""
    i = z.abs().argmax(-1, keepdim=True)
    return z / z.gather(-1, i)


def bombieri_norm(surface: Hypersurface) -> float:
    """‖p‖_B = (Σ_m |c_m|² e_m! / d!)^{1/2}, the unitarily invariant (Bombieri–Weyl) norm of p."""
    e = surface.exponents.to(torch.float64)
    weight = torch.exp(torch.lgamma(e + 1).sum(1) - math.lgamma(surface.degree + 1))
    return math.sqrt((surface.coefficients.abs() ** 2 * weight).sum().item())


def singular_distance(surface: Hypersurface, z: torch.Tensor) -> torch.Tensor:
    """δ(z): relative distance from p to the polynomials singular at z. (..., N+1) → (...) float64.

        δ(z)² = (‖∇p(z)‖² / d − (d−1) |p(z)|²) / ‖p‖_B²,   ‖z‖₂ = 1

    The polynomials singular at z, {g : ∇g(z) = 0} (then g(z) = 0 by Euler), form a linear
    space. The norm is unitarily invariant, so take coordinates with z = e₀: the monomials are
    orthogonal with ‖z^e‖² = e!/d!, the space is {coefficients of z₀^d and z₀^{d−1} z_k vanish},
    and the projection of p onto its orthogonal complement is p(z) z₀^d + Σ_{k≥1} ∂_k p(z)
    z₀^{d−1} z_k, of squared norm |p|² + Σ_{k≥1} |∂_k p|²/d; Euler's ∂₀ p(z) = d p(z) gives
    ‖∇p‖² = d²|p|² + Σ_{k≥1} |∂_k p|², which turns it into the formula. So δ ∈ [0, 1], δ = 0 exactly
    at singular points, δ is invariant under unitary changes of coordinates and under scaling
    of z and of p, and min over P^N of δ is the relative distance from p to the nearest
    singular hypersurface of its degree.
    """
    d = surface.degree
    z = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    grad2 = torch.linalg.vector_norm(surface.gradient(z), dim=-1) ** 2
    value2 = surface(z).abs() ** 2
    return (grad2 / d - (d - 1) * value2).clamp_min(0).sqrt() / bombieri_norm(surface)


# ---------------------------------------------------------------------- formula route
def diagonal_psi_power(surface: Hypersurface):
    """ψ^d and a candidate singular point for p = Σ a_i z_i^d + b Π z_i (d = N+1, every a_i ≠ 0).

    Returns:
        None when p is not of that form; else (ψ^d complex, point): ψ^d = (−b/d)^d / Π a_i
        (0 for a Fermat polynomial, b = 0) and point (N+1,) complex128, the z with
        y = (1/ψ, 1, …, 1), singular exactly when ψ^d = 1 (module docstring); None when b = 0.
    """
    d, n = surface.degree, surface.n_coords
    rows: dict[tuple, complex] = {}
    for r, c in zip(surface.exponents.tolist(), surface.coefficients.tolist()):
        rows[tuple(r)] = rows.get(tuple(r), 0) + c  # repeated monomials add up, as in p
    diagonal = [tuple(d if j == i else 0 for j in range(n)) for i in range(n)]
    product = (1,) * n
    if not all(rows.get(k, 0) != 0 for k in diagonal) or not set(rows) <= {*diagonal, product}:
        return None
    a = [complex(rows[k]) for k in diagonal]
    b = complex(rows.get(product, 0))
    psi_d = (-b / d) ** d / math.prod(a)
    if b == 0:
        return psi_d, None
    alpha = [ai ** (1.0 / d) for ai in a]  # any choice of the roots gives the same ψ^d
    psi = -b / (d * math.prod(alpha))
    y = [1 / psi] + [1.0] * (n - 1)
    return psi_d, torch.tensor([yi / al for yi, al in zip(y, alpha)], dtype=torch.complex128)


# ---------------------------------------------------------------------- homotopy route
class _System:
    """G(w) = A ∇p(z₀ + V w)/s and the start system, with their Jacobians, batched over paths."""

    def __init__(self, surface: Hypersurface, generator: torch.Generator):
        n1 = surface.n_coords
        n = n1 - 1
        self.surface, self.n, self.d = surface, n, surface.degree

        def gaussian(*shape):
            x = torch.randn(*shape, 2, generator=generator, dtype=torch.float64) / math.sqrt(2)
            return torch.view_as_complex(x)

        ell = gaussian(n1)
        ell = ell / torch.linalg.vector_norm(ell)
        # chart ℓ(z) = Σ ℓ_i z_i = 1: z₀ = conj(ℓ) (ℓ·z₀ = |ℓ|² = 1), V ⊥ ℓ orthonormal
        self.z0 = ell.conj()
        q, _ = torch.linalg.qr(torch.cat([ell.conj()[:, None], gaussian(n1, n)], 1))
        self.V = q[:, 1:]  # (N+1, N), columns orthogonal to conj(ℓ) ⇒ ℓ·V = 0
        A = gaussian(n, n1)
        self.A = A / torch.linalg.vector_norm(A, dim=1, keepdim=True)
        self.s = surface.degree * surface.coefficients.abs().sum().item()
        angle = 2 * math.pi * torch.rand((), generator=generator, dtype=torch.float64).item()
        self.gamma = cmath.exp(1j * angle)
        # One (N+1)² × (N² + N) matrix maps the flattened Hessian to [G_w, A·Hess·z₀]/s: batched
        # 5×5 matmuls cost ~100 µs each on a CPU, one 2-D matmul a few µs.
        K_w = torch.einsum("jk,la->klja", self.A, self.V).reshape(n1 * n1, n * n)
        K_0 = torch.einsum("jk,l->klj", self.A, self.z0).reshape(n1 * n1, n)
        self.K = torch.cat([K_w, K_0], 1) / self.s

    def point(self, w: torch.Tensor) -> torch.Tensor:
        return self.z0 + w @ self.V.T

    def target(self, w: torch.Tensor):
        """G (P, N) and G_w (P, N, N) from one Hessian evaluation.

        Euler's relation Σ_l ∂_k∂_l p(z) z_l = (d−1) ∂_k p(z) with z = z₀ + V w gives
        (d−1) G = A Hess z₀ + G_w w, so the gradient needs no evaluation of its own.
        """
        n = self.n
        out = self.surface.hessian(self.point(w)).flatten(-2) @ self.K  # (P, N² + N)
        Gw = out[:, : n * n].unflatten(-1, (n, n))
        G = (out[:, n * n :] + (Gw * w[:, None, :]).sum(-1)) / (self.d - 1)
        return G, Gw

    def start(self, w: torch.Tensor):
        """g_j = w_j^{d−1} − 1 (P, N) and its diagonal Jacobian (d−1) w_j^{d−2} (P, N)."""
        wk = torch.ones_like(w)
        for _ in range(self.d - 2):  # products, not complex pow (inexact)
            wk = wk * w
        return wk * w - 1, (self.d - 1) * wk

    def start_solutions(self) -> torch.Tensor:
        """All (d−1)^N tuples of (d−1)-th roots of unity: ((d−1)^N, N) complex128."""
        k = self.d - 1
        roots = torch.exp(2j * math.pi * torch.arange(k, dtype=torch.float64) / k)
        return torch.cartesian_prod(*[roots] * self.n).reshape(-1, self.n)

    def homotopy(self, w: torch.Tensor, t: torch.Tensor):
        """H (P, N), H_w (P, N, N), H_t (P, N) at per-path t (P,)."""
        G, Gw = self.target(w)
        g, gw = self.start(w)
        tt = t[:, None].to(w.dtype)
        H = (1 - tt) * self.gamma * g + tt * G
        Hw = tt[..., None] * Gw + torch.diag_embed((1 - tt) * self.gamma * gw)
        return H, Hw, G - self.gamma * g


def _solve(M: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched M⁻¹ b that returns inf (not an exception) for a singular matrix."""
    x, info = torch.linalg.solve_ex(M, b[..., None])
    x = x.squeeze(-1)
    return torch.where((info == 0)[:, None], x, torch.full_like(x, float("inf")))


def track_paths(system: _System):
    """Track all start solutions from t = 0 to 1 (module docstring, 4).

    Returns:
        w (P, N) complex128 end points (where each path stopped), t (P,) float64 where it
        stopped, ok (P,) bool: reached t = 1.
    """
    w = system.start_solutions()
    P = w.shape[0]
    t = torch.zeros(P, dtype=torch.float64)
    h = torch.full((P,), INITIAL_STEP, dtype=torch.float64)
    idx = torch.arange(P)  # the paths still moving

    def velocity(x, s):
        _, Hw, Ht = system.homotopy(x, s)
        return -_solve(Hw, Ht)

    for _ in range(MAX_STEPS):
        if idx.numel() == 0:
            break
        wa, ta, ha = w[idx], t[idx], torch.minimum(h[idx], 1 - t[idx])
        hc = ha[:, None].to(w.dtype)
        k1 = velocity(wa, ta)
        k2 = velocity(wa + 0.5 * hc * k1, ta + 0.5 * ha)
        k3 = velocity(wa + 0.5 * hc * k2, ta + 0.5 * ha)
        k4 = velocity(wa + hc * k3, ta + ha)
        x = wa + hc * (k1 + 2 * k2 + 2 * k3 + k4) / 6
        tn = ta + ha
        size = 1 + torch.linalg.vector_norm(wa, dim=1)
        corrections = []
        for _ in range(NEWTON_CORRECTOR):
            H, Hw, _ = system.homotopy(x, tn)
            dx = _solve(Hw, H)
            x = x - dx
            corrections.append(torch.linalg.vector_norm(dx, dim=1))
        first, norm = corrections[0], corrections[-1]
        # accept: the prediction was close (no jump to a neighbouring path) and Newton converged
        ok = (first < JUMP * size) & (norm < 1e-9 * size) & torch.isfinite(x).all(1)
        w[idx] = torch.where(ok[:, None], x, wa)
        t[idx] = torch.where(ok, tn, ta)
        h[idx] = torch.where(ok, 1.5 * ha, 0.5 * ha)
        idx = idx[(t[idx] < 1.0) & (h[idx] >= MIN_STEP)]
    return w, t, t >= 1.0


def refine(system: _System, w: torch.Tensor, steps: int = REFINE_STEPS):
    """Gauss–Newton on ∇p(z₀ + V w) = 0 (N+1 equations, N unknowns), steps kept only if δ drops.

    Args:
        w: (P, N) complex128 chart coordinates of end points.
    Returns:
        (w (P, N), δ (P,) float64): refined points and their singular_distance (inf if not finite).
    """
    surface = system.surface
    delta = singular_distance(surface, system.point(w))
    delta = torch.where(torch.isfinite(delta), delta, torch.full_like(delta, math.inf))
    eye = torch.eye(system.n, dtype=w.dtype)
    for _ in range(steps):
        z = system.point(w)
        F = surface.gradient(z) / system.s
        J = surface.hessian(z) @ system.V / system.s  # (P, N+1, N)
        # Levenberg–Marquardt with a tiny damping ≈ the minimum-norm least-squares step (J is
        # rank-deficient along a singular curve); 4× cheaper than a batched pinv
        JhJ = (J.conj()[..., :, None] * J[..., None, :]).sum(-3)  # (P, N, N)
        rhs = (J.conj() * F[..., None]).sum(-2)  # (P, N)
        damping = 1e-12 * JhJ.diagonal(dim1=-2, dim2=-1).real.sum(-1)
        dw = _solve(JhJ + damping[:, None, None] * eye, rhs)
        candidate = w - dw
        dc = singular_distance(surface, system.point(candidate))
        # keep a step only if it gains 1%: converged points stop the loop instead of creeping
        better = torch.isfinite(dc) & (dc < 0.99 * delta)
        if not better.any():
            break
        w = torch.where(better[:, None], candidate, w)
        delta = torch.where(better, dc, delta)
    return w, delta


@contextmanager
def _single_thread():
    """Run tiny batched ops on one intra-op thread (module docstring, Cost), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def homotopy_end_points(surface: Hypersurface, seed: int = 0):
    """End points of the total-degree homotopy for A ∇p = 0, refined (module docstring, 1–5).

    Args:
        seed: draws A, the chart ℓ and γ (a CPU generator: the same end points everywhere).
    Returns:
        z: (P, N+1) complex128, P = (d−1)^N, each scaled so its largest coordinate is 1;
        δ: (P,) float64 singular_distance of each (inf where a path diverged), ascending;
        failed: number of paths that did not reach t = 1.
    """
    with _single_thread():
        system = _System(surface, torch.Generator().manual_seed(int(seed)))
        w, _, ok = track_paths(system)
        w, delta = refine(system, w)
        z = normalize_point(system.point(w))
    bad = ~torch.isfinite(z).all(1) | ~torch.isfinite(delta)
    delta = torch.where(bad, torch.full_like(delta, math.inf), delta)
    order = delta.argsort()
    return z[order], delta[order], int((~ok).sum())


def singular_points(surface: Hypersurface, seed: int = 0, tol: float = SINGULAR_TOLERANCE):
    """Distinct singular points found by the homotopy: (S, N+1) complex128, largest coordinate 1.

    End points with δ < tol; points at Fubini–Study distance below 1e-6 (sin of the angle
    between the lines, (1 − |⟨p, q⟩|²/|p|²|q|²)^{1/2}) are merged, which compares points, not
    their scalings. A singular curve gives several points on it; S = 0 for a smooth X. (Always
    the numerical route, also for the diagonal form.)
    """
    z, delta, _ = homotopy_end_points(surface, seed)
    z = z[delta < tol]
    unit = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    kept: list[int] = []
    for i in range(len(z)):
        if not kept:
            kept.append(i)
            continue
        overlap = (unit[kept].conj() @ unit[i]).abs().clamp(max=1.0)
        if (1 - overlap**2).clamp_min(0).sqrt().min() > 1e-6:
            kept.append(i)
    return z[kept]


# ---------------------------------------------------------------------- the check
def check_smooth(surface: Hypersurface, seed: int = 0) -> SmoothnessReport:
    """Prove X smooth to working precision, or raise; warn when X is close to a singular member.

    The diagonal (Fermat/Dwork) form is decided by the formula ψ^d = 1, any other polynomial by
    the homotopy (module docstring). The result is memoized on the surface
    (``surface._smoothness``): repeated sampling of one Hypersurface checks (and warns) once, and
    a singular surface raises again from the memo. Editing a surface's coefficients in place
    after a check is not supported (build a new Hypersurface).

    Args:
        seed: seed of the homotopy's random choices (ignored by the formula route).
    Returns:
        SmoothnessReport of a smooth X.
    Raises:
        SingularManifoldError: with the name, a singular point and (diagonal form) the rule.
    Warns:
        NearSingularWarning: |ψ^d − 1| < NEAR_SINGULAR_PSI (diagonal form) or min δ <
            NEAR_SINGULAR_DISTANCE (homotopy), with the distance in the message; also when some
            homotopy paths failed on two seeds and no singular point was found.
    """
    report = getattr(surface, "_smoothness", None)
    if report is None:
        report = _check(surface, seed)
        surface._smoothness = report
        if report.smooth:
            _warn_if_near(surface, report)
    if not report.smooth:
        raise SingularManifoldError(surface.name, report.point, report.rule, report.delta)
    return report


def _check(surface: Hypersurface, seed: int) -> SmoothnessReport:
    start = time.perf_counter()
    diagonal = diagonal_psi_power(surface)
    if diagonal is not None:
        psi_d, point = diagonal
        d = surface.degree
        rule = f"Σ z_i^{d} − {d}ψ Π z_i is singular iff ψ^{d} = 1; here ψ^{d} = {_short(psi_d)}"
        delta = None if point is None else singular_distance(surface, point).item()
        # the same test as the homotopy's: ψ^d = 1 up to rounding makes δ vanish at the point
        smooth = delta is None or delta >= SINGULAR_TOLERANCE
        return SmoothnessReport(
            smooth, "diagonal formula", abs(psi_d - 1),
            None if point is None else normalize_point(point), delta, rule,
            seconds=time.perf_counter() - start, extra={"psi_power": [psi_d.real, psi_d.imag]},
        )
    for attempt in range(MAX_TRIES):
        z, delta, failed = homotopy_end_points(surface, seed + attempt)
        if delta[0] < SINGULAR_TOLERANCE or failed == 0:
            break
    smooth = bool(delta[0] >= SINGULAR_TOLERANCE)
    if smooth and failed:
        warnings.warn(
            f"singularity check on {surface.name!r}: {failed} of {len(delta)} homotopy paths did "
            "not converge (two seeds); no singular point was found at the others",
            NearSingularWarning,
            stacklevel=4,
        )
    return SmoothnessReport(
        smooth, "homotopy", float(delta[0]), z[0], float(delta[0]), None, len(delta), failed,
        time.perf_counter() - start,
    )


def _warn_if_near(surface: Hypersurface, report: SmoothnessReport) -> None:
    if report.method == "diagonal formula":
        if report.distance >= NEAR_SINGULAR_PSI:
            return
        d = surface.degree
        what = (
            f"|ψ^{d} − 1| = {report.distance:.2g} (singular at ψ^{d} = 1; warned below "
            f"{NEAR_SINGULAR_PSI:g})"
        )
    else:
        if report.distance >= NEAR_SINGULAR_DISTANCE:
            return
        what = (
            f"relative distance to a singular polynomial δ = {report.distance:.2g} near "
            f"{format_point(report.point)} (0 when singular; warned below "
            f"{NEAR_SINGULAR_DISTANCE:g})"
        )
    warnings.warn(
        f"manifold {surface.name!r} is close to a singular one: {what}. It is smooth, but σ and χ "
        "converge slowly there (curvature concentrates near the would-be singular point): "
        "expect large errors at a given number of points.",
        NearSingularWarning,
        stacklevel=4,
    )


def _short(x: complex) -> str:
    return f"{x.real:.6g}" if x.imag == 0 else f"{x.real:.6g}{x.imag:+.6g}j"
