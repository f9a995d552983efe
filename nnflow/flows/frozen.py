"""The frozen-NTK Kähler flow: gradient descent in the infinite-width limit, with no network.

With a frozen metric kernel Θ (real components r = hermitian_to_real(g), m = n² of them) and
a loss L = Σ_x (w(x)/Σw)·ℓ(g(x)) over the training points, gradient descent in NTK time
t = η·steps moves the metric by

    dr(x)/dt = −Σ_{x'} Θ(x, x') ∂L/∂r(x'),          x' over the training points.

Writing r_t(x) = r_0(x) − Σ_{x'} Θ(x, x') c_t(x'), the state is a coefficient field c on the
training points with

    dc/dt = ∂L/∂r(r_t(train)),    c_0 = 0,

and the metric anywhere — held-out points included — follows from the kernel. r_0 is the
starting metric (g_FS, or a network's g at θ0, which is g_FS for a centered network).

Θ(train, train) is either stored (dense: (N·m)² numbers), applied blockwise from a kernel
function (matrix-free: never stored; memory set by the block size), or replaced by its
Nyström approximation on p landmark training points L (low rank, ``nystrom_factor``):

    Θ(x, x') ≈ Θ(x, L) W⁺ Θ(L, x'),   W = Θ(L, L) = V Λ Vᵀ,   Θ(train, train) ≈ U Uᵀ,
    U = Θ(train, L) V Λ^{−1/2}   ((N·m) × r, r ≤ p·m: the eigenvalues above rtol·λ_max),

so a step costs O(N m r) and the memory is U; the metric anywhere uses Θ(x, L) V Λ^{−1/2} Uᵀc,
the same approximation. Under torch.distributed the rows of Θ (training points) are sharded
across ranks (dense and matrix-free): each rank stores or computes its rows only and the
products are all-gathered (same result as one process).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch import nn

from nnflow.distributed import gather_rows, row_range, world
from nnflow.feasibility import check_feasible
from nnflow.feasibility import frozen_flow as frozen_flow_memory
from nnflow.flows.losses import monge_ampere_loss
from nnflow.geometry.fubini_study import fs_metric, pullback
from nnflow.geometry.hermitian import hermitian_to_real, real_to_hermitian
from nnflow.geometry.linalg import hermitian_det
from nnflow.geometry.pointset import PointSet

log = logging.getLogger("nnflow")

# kernel(z1, jac1, z2, jac2) -> (B1, B2, m, m) real metric kernel in r-components
MetricKernelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class FlowDivergedError(RuntimeError):
    """The flow produced NaN/inf or a metric that is not positive definite."""


def fs_start(t: float = 1.0, surface=None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """g_0 = pulled-back Fubini–Study metric of class t: (z, jac) → (B, n, n).

    On a complete intersection (``surface`` a CompleteIntersection) the ambient metric is the
    block sum ⊕_i t g_FS,i of its factors (``geometry.cicy_points.cicy_fs_metric``)."""
    from nnflow.geometry.cicy import CompleteIntersection

    if isinstance(surface, CompleteIntersection):
        from nnflow.geometry.cicy_points import cicy_fs_metric

        return lambda z, jac: pullback(jac, cicy_fs_metric(surface, z, t))
    return lambda z, jac: pullback(jac, fs_metric(z, t))


def assemble_dense(
    kernel: MetricKernelFn, z: torch.Tensor, jac: torch.Tensor, block: int, rows: slice | None = None
) -> torch.Tensor:
    """Rows ``rows`` (default all) of Θ(train, train) as a (|rows|·m, N·m) matrix.

    Row (i, s) is i·m + s; built block by block. For all rows only the blocks on and above
    the diagonal are computed and the rest mirrored (Θ(x', x)_ts = Θ(x, x')_st, i.e. the
    matrix is symmetric). Ranks of a process group each assemble their own rows
    (nnflow.distributed.row_range), so the matrix is split across them.
    """
    N = z.shape[0]
    rows = rows or slice(0, N)
    if rows == slice(0, N):
        out = None
        for i in range(0, N, block):
            for j in range(i, N, block):
                K = kernel(z[i : i + block], jac[i : i + block], z[j : j + block], jac[j : j + block])
                b1, b2, m, _ = K.shape
                if out is None:
                    out = torch.empty(N * m, N * m, dtype=K.dtype, device=K.device)
                blk = K.permute(0, 2, 1, 3).reshape(b1 * m, b2 * m)
                out[i * m : (i + b1) * m, j * m : (j + b2) * m] = blk
                if j != i:
                    out[j * m : (j + b2) * m, i * m : (i + b1) * m] = blk.T
        return out
    return cross_matrix(kernel, z[rows], jac[rows], z, jac, block)


def cross_matrix(kernel: MetricKernelFn, z1, jac1, z2, jac2, block: int) -> torch.Tensor:
    """Θ(x1, x2) as a (B1·m, B2·m) matrix, row (i, s) = i·m + s, built block by block."""
    out = []
    for i in range(0, z1.shape[0], block):
        cols = [
            kernel(z1[i : i + block], jac1[i : i + block], z2[j : j + block], jac2[j : j + block])
            for j in range(0, z2.shape[0], block)
        ]
        blk = torch.cat(cols, 1)  # (b, B2, m, m)
        out.append(blk.permute(0, 2, 1, 3).reshape(blk.shape[0] * blk.shape[2], -1))
    return torch.cat(out, 0)


def nystrom_factor(
    kernel: MetricKernelFn, z, jac, landmarks: torch.Tensor, block: int, rtol: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Nyström factors (module doc) of Θ(train, train) on the landmark rows ``landmarks``.

    Args:
        z, jac: the training points (N, N+1), (N, n, N+1); landmarks: (p,) long indices into them.
        rtol: eigenvalues of W below rtol·λ_max are dropped (W⁺ is the pseudo-inverse).
    Returns:
        (U, P): U (N·m, r) with Θ(train, train) ≈ U Uᵀ, and P = V Λ^{−1/2} (p·m, r), so that
        Θ(x, train) c ≈ Θ(x, L) P (Uᵀ c). U is built block by block (Θ(train, L) is never stored whole).
    """
    start = time.perf_counter()
    zl, jl = z[landmarks], jac[landmarks]
    log.info("Nyström: Θ(L, L) on %d landmarks of %d training points", len(landmarks), len(z))
    W = assemble_dense(kernel, zl, jl, block)
    evals, evecs = torch.linalg.eigh(0.5 * (W + W.T))
    keep = evals > rtol * evals.max()
    P = evecs[:, keep] / evals[keep].sqrt()
    rows = []
    for i in range(0, len(z), block):
        rows.append(cross_matrix(kernel, z[i : i + block], jac[i : i + block], zl, jl, block) @ P)
        done = min(i + block, len(z))
        log.info("Nyström: Θ(train, L) rows %d/%d (%.0f s)", done, len(z), time.perf_counter() - start)
    log.info("Nyström: rank %d of %d (eigenvalues above %.0e·λ_max)", P.shape[1], W.shape[0], rtol)
    return torch.cat(rows), P


def apply_blockwise(
    kernel: MetricKernelFn, z, jac, train_z, train_jac, c: torch.Tensor, block: int
) -> torch.Tensor:
    """Σ_{x'∈train} Θ(x, x') c(x') without storing Θ: memory O(block² m²). → (B, m)."""
    out = []
    for i in range(0, z.shape[0], block):
        acc = 0
        for j in range(0, train_z.shape[0], block):
            K = kernel(z[i : i + block], jac[i : i + block], train_z[j : j + block], train_jac[j : j + block])
            acc = acc + torch.einsum("abst,bt->as", K, c[j : j + block])
        out.append(acc)
    return torch.cat(out)


class FrozenKernelFlow(nn.Module):
    """The frozen-kernel metric flow on a training PointSet (see module doc).

    Args:
        kernel: metric kernel function in r-components.
        train: training points (copied into buffers, so the flow moves with .to(device)).
        kappa: the class normalization κ of the Monge–Ampère loss.
        power: loss exponent p (2: "ma2", 1: "ma1").
        start: g_0(z, jac) → (B, n, n); default the FS metric (t = 1).
        dense: store Θ(train, train) ((N·m)² numbers, fast steps) or apply it blockwise at every
            step (matrix-free: memory O(block_size² m²)).
        block_size: points per kernel block.
        cache_mb: memory for cross kernels Θ(x, train) of point sets seen before (the
            validation set): the kernel is frozen, so re-evaluating the metric on the same points
            is one matrix-vector product. 0 disables the cache.
        loss_fn: optional loss L(g_train) → scalar replacing Monge–Ampère (e.g. the squared
            distance to a target metric, whose flow has a closed form); g_train is (N, n, n).
        low_rank: None, or the number p of landmark training points of the Nyström route
            (module doc; one process only): overrides ``dense``. rank = kept eigenvalues.
        landmark_seed: which p points (a seeded random subset of the training points).
        low_rank_rtol: eigenvalue cut of W⁺.
    Attributes:
        coefficients: buffer c (N, m), the state.
        time: buffer, NTK time t reached.
    """

    def __init__(
        self,
        kernel: MetricKernelFn,
        train: PointSet,
        kappa: float = 1.0,
        power: float = 2.0,
        start: Callable | None = None,
        dense: bool = True,
        block_size: int = 512,
        loss_fn: Callable | None = None,
        cache_mb: float = 2048,
        low_rank: int | None = None,
        landmark_seed: int = 0,
        low_rank_rtol: float = 1e-12,
    ):
        super().__init__()
        if block_size <= 0:
            raise ValueError(f"block_size must be positive; got {block_size}")
        if low_rank is not None and not (isinstance(low_rank, int) and 0 < low_rank <= len(train)):
            raise ValueError(
                f"model.low_rank (landmark points) must be an integer in 1..{len(train)} (n_train); got {low_rank!r}"
            )
        if low_rank is not None and world()[1] > 1:
            raise ValueError("the low-rank (Nyström) frozen flow runs in one process; use dense or matrix-free for DDP")
        self.kernel = kernel
        self.block = int(block_size)
        self.dense = bool(dense)
        self.kappa, self.power = float(kappa), float(power)
        self.start = start or fs_start()
        self.loss_fn = loss_fn
        for name in ("z", "jac", "weights", "omega2"):
            self.register_buffer(f"train_{name}", getattr(train, name), persistent=False)
        r0 = hermitian_to_real(self.start(train.z, train.jac))
        self.register_buffer("r0_train", r0)
        self.register_buffer("coefficients", torch.zeros_like(r0))
        self.register_buffer("time", torch.zeros((), dtype=r0.dtype))
        # Under torch.distributed each rank owns a block of rows (training points) of Θ.
        self.rows = row_range(len(train))
        self.low_rank = low_rank
        factor = projector = landmarks = None
        if low_rank is not None:
            self.dense = False
            gen = torch.Generator().manual_seed(int(landmark_seed))
            landmarks = torch.randperm(len(train), generator=gen)[:low_rank].sort().values.to(train.z.device)
            factor, projector = nystrom_factor(kernel, train.z, train.jac, landmarks, self.block, low_rank_rtol)
        self.register_buffer("factor", factor, persistent=False)
        self.register_buffer("projector", projector, persistent=False)
        self.register_buffer("landmarks", landmarks, persistent=False)
        self.rank = None if factor is None else factor.shape[1]
        matrix = assemble_dense(kernel, train.z, train.jac, self.block, self.rows) if self.dense else None
        self.register_buffer("matrix", matrix, persistent=False)
        self._r_cache: torch.Tensor | None = None  # r on train for the current state
        if cache_mb < 0:
            raise ValueError(f"cache_mb must be non-negative; got {cache_mb}")
        self.cache_bytes = int(cache_mb * 2**20)
        self._cross: list[tuple[torch.Tensor, torch.Tensor]] = []  # (z, Θ(z, train) matrix)

    def _load_from_state_dict(self, *args, **kwargs):
        self._r_cache = None  # a restored state invalidates the cached metric
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._r_cache = None
        self._cross = []
        return super()._apply(fn, *args, **kwargs)

    # ------------------------------------------------------------------ metric
    def kernel_apply(self, z: torch.Tensor, jac: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Σ_{x'∈train} Θ(x, x') c(x'): (B, N+1), (B, n, N+1), (N, m) → (B, m)."""
        if self.factor is not None:
            return (self.cross_rows(z, jac) @ (self.factor.T @ c.reshape(-1))).reshape(z.shape[0], -1)
        return apply_blockwise(self.kernel, z, jac, self.train_z, self.train_jac, c, self.block)

    def cross_rows(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """What multiplies Uᵀc (low rank): Θ(x, L) P, (B·m, r) (module doc), or Θ(x, train) otherwise."""
        if self.factor is None:
            return cross_matrix(self.kernel, z, jac, self.train_z, self.train_jac, self.block)
        zl, jl = self.train_z[self.landmarks], self.train_jac[self.landmarks]
        return cross_matrix(self.kernel, z, jac, zl, jl, self.block) @ self.projector

    def train_matvec(self, c: torch.Tensor) -> torch.Tensor:
        """Θ(train, train) c: (N, m) → (N, m) (each rank computes its rows, then all-gather)."""
        rows = self.rows
        if self.factor is not None:
            return (self.factor @ (self.factor.T @ c.reshape(-1))).reshape(-1, c.shape[1])
        if self.matrix is not None:
            local = (self.matrix @ c.reshape(-1)).reshape(-1, c.shape[1])
        else:
            local = self.kernel_apply(self.train_z[rows], self.train_jac[rows], c)
        return gather_rows(local, c.shape[0])

    def real_metric_train(self, c: torch.Tensor | None = None) -> torch.Tensor:
        """r on the training points for coefficients c (default: the current state, cached)."""
        if c is None:
            if self._r_cache is None:
                self._r_cache = self.r0_train - self.train_matvec(self.coefficients)
            return self._r_cache
        return self.r0_train - self.train_matvec(c)

    def cross_apply(self, z: torch.Tensor, jac: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """kernel_apply through the cache of cross-kernel matrices (module doc of cache_mb)."""
        # low rank: the cached rows multiply Uᵀc (r numbers), otherwise c itself
        vec = c.reshape(-1) if self.factor is None else self.factor.T @ c.reshape(-1)
        for z_seen, matrix in self._cross:
            if z_seen.shape == z.shape and z_seen.device == z.device and torch.equal(z_seen, z):
                return (matrix @ vec).reshape(z.shape[0], -1)
        N, m = c.shape
        size = z.shape[0] * m * vec.numel() * c.element_size()
        used = sum(mat.numel() * mat.element_size() for _, mat in self._cross)
        if used + size > self.cache_bytes:
            return self.kernel_apply(z, jac, c)
        self._cross.append((z.clone(), self.cross_rows(z, jac)))
        return (self._cross[-1][1] @ vec).reshape(z.shape[0], m)

    def metric(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """g_t at any points: g_0 − Σ Θ(x, train) c, (B, N+1), (B, n, N+1) → (B, n, n)."""
        r = hermitian_to_real(self.start(z, jac)) - self.cross_apply(z, jac, self.coefficients)
        return real_to_hermitian(r)

    # ------------------------------------------------------------------ dynamics
    def loss_and_gradient(self, r_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L and ∂L/∂r on the training points (autograd through det)."""
        r = r_train.detach().requires_grad_(True)
        with torch.enable_grad():
            g = real_to_hermitian(r)
            if self.loss_fn is not None:
                loss = self.loss_fn(g)
            else:
                det_g = hermitian_det(g)
                loss = monge_ampere_loss(det_g, self.train_omega2, self.train_weights, self.kappa, self.power)
            (grad,) = torch.autograd.grad(loss, r)
        return loss.detach(), grad

    def check(self, r_train: torch.Tensor, t: float) -> None:
        """Raise FlowDivergedError on NaN/inf or a non-positive-definite metric at time t."""
        if not torch.isfinite(r_train).all():
            raise FlowDivergedError(f"metric is NaN/inf at t = {t:.4g}")
        low = torch.linalg.eigvalsh(real_to_hermitian(r_train))[..., 0]
        if not (low > 0).all():
            raise FlowDivergedError(
                f"metric not positive definite at {int((low <= 0).sum())} of {len(low)} training "
                f"points at t = {t:.4g} (min eigenvalue {low.min().item():.3e}); "
                "use a smaller step or an adaptive solver"
            )

    def rhs(self, t, c: torch.Tensor) -> torch.Tensor:
        """dc/dt = ∂L/∂r(r_0 − Θc) (the ODE right-hand side)."""
        return self.loss_and_gradient(self.real_metric_train(c))[1]

    @torch.no_grad()
    def step(self, dt: float) -> float:
        """One explicit Euler step of NTK time dt (= one full-batch GD step with lr dt).

        The new state is checked before it is kept: on NaN or a non-positive metric the flow
        raises FlowDivergedError and stays at its last good state. Returns the loss before
        the step.
        """
        loss, grad = self.loss_and_gradient(self.real_metric_train())
        c = self.coefficients + dt * grad
        r_new = self.real_metric_train(c)
        self.check(r_new, self.time.item() + dt)
        self.coefficients.copy_(c)
        self.time += dt
        self._r_cache = r_new
        return loss.item()

    @torch.no_grad()
    def integrate(self, t_end: float, method: str = "dopri5", rtol: float = 1e-7, atol: float = 1e-9) -> float:
        """Advance to NTK time t_end with an adaptive ODE solver (torchdiffeq); returns the loss."""
        from torchdiffeq import odeint

        t0 = self.time.item()
        if t_end <= t0:
            raise ValueError(f"t_end={t_end} must exceed the current time {t0}")
        ts = torch.tensor([t0, t_end], dtype=self.coefficients.dtype, device=self.coefficients.device)
        c = odeint(self.rhs, self.coefficients, ts, method=method, rtol=rtol, atol=atol)[-1]
        r = self.real_metric_train(c)
        self.check(r, t_end)
        self.coefficients.copy_(c)
        self.time.fill_(t_end)
        self._r_cache = r
        return self.loss_and_gradient(r)[0].item()


KERNEL_KINDS = ("analytic", "empirical")
TANGENT_KINDS = ("ntk", "nngp")


def metric_kernel_from_options(
    kind: str,
    n_coords: int,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    kernel_kind: str = "ntk",
    **network,
) -> MetricKernelFn:
    """A metric kernel function (z1, jac1, z2, jac2) → (B1, B2, m, m) from model options.

    Args:
        kind: "analytic" — the infinite-width kernel of the architecture (nnflow.kernels.analytic);
            "empirical" — the metric-NTK of one network of that architecture at its
            initialization θ0 (same seed → same network as a finite run).
        kernel_kind: "ntk" (every layer trained) or "nngp" (only the last layer trained: its
            tangent kernel is the NNGP); analytic only.
        network: the conf/model options (network, width, depth, activation, sigma_*, feature
            options; with feature_symmetry "phases" also phases and phase_order).
    """
    from nnflow.kernels import analytic_kernel, initial_params, metric_ntk
    from nnflow.models.potential import build_potential

    if kernel_kind not in TANGENT_KINDS:
        raise ValueError(f"config value model.kernel_kind={kernel_kind!r} must be one of {TANGENT_KINDS}")
    if kind == "analytic":
        kern = analytic_kernel(network)
        # 64-point chunks keep the fast path's (64², n², n²) complex temporaries in cache; the
        # general route's per-block series work is amortized over 256-point chunks
        chunk = 256 if kern.general else 64
        return lambda z1, j1, z2, j2: kern.metric((z1, j1), (z2, j2), kind=kernel_kind, chunk_size=chunk)
    if kind == "empirical" and kernel_kind != "ntk":
        raise ValueError("model.kernel_kind='nngp' is the infinite-width last-layer kernel: use model.kernel=analytic")
    if kind == "empirical":
        model = build_potential(n_coords=n_coords, seed=seed, **network).to(dtype)
        theta0 = initial_params(model)
        return lambda z1, j1, z2, j2: metric_ntk(model, (z1, j1), (z2, j2), params=theta0)
    raise ValueError(f"unknown kernel kind {kind!r}; choose from {KERNEL_KINDS}")


def build_frozen_flow(
    train: PointSet,
    kappa: float,
    power: float = 2.0,
    kahler_t: float = 1.0,
    kernel: str = "analytic",
    dense: bool | str = "auto",
    dense_limit: int = 4000,
    block_size: int = 512,
    cache_mb: float = 2048,
    seed: int | None = None,
    kernel_kind: str = "ntk",
    low_rank: int | None = None,
    factors: list[int] | None = None,
    **network,
) -> FrozenKernelFlow:
    """The frozen-NTK flow of a network architecture on ``train`` (what conf/model/frozen_ntk builds).

    Args:
        kernel: "analytic" (infinite width) or "empirical" (one network at initialization).
        kernel_kind: "ntk", or "nngp" (the flow of training only the last layer, analytic).
        dense: True, False, or "auto" (dense when len(train) ≤ dense_limit).
        low_rank: None, or the landmark points of the Nyström route (overrides dense; the
            landmarks are a subset drawn with ``seed``).
        factors: (n_1, …, n_m) on a complete intersection: both kernels are then those of the
            network on product features (``models.product_features``).
        network: architecture options for the kernel (network, depth, activation, …).
    """
    if factors is not None:
        network = network | {"factors": list(factors)}
    if dense == "auto":
        dense = len(train) <= dense_limit
    check_feasible(
        frozen_flow_memory(len(train), train.dim, bool(dense), block_size, row_range(len(train)), low_rank=low_rank),
        device=train.device,
    )  # this process's rows of Θ (or the Nyström factor), before any is assembled
    dtype = train.weights.dtype
    fn = metric_kernel_from_options(
        kernel, train.surface.n_coords, seed=seed, dtype=dtype, kernel_kind=kernel_kind, **network
    )
    return FrozenKernelFlow(
        fn, train, kappa=kappa, power=power, start=fs_start(kahler_t, train.surface), dense=bool(dense),
        block_size=block_size, cache_mb=cache_mb, low_rank=None if low_rank is None else int(low_rank),
        landmark_seed=int(seed or 0),
    )
