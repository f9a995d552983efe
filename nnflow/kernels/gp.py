"""gpytorch ``Kernel`` wrappers of the potential and metric kernels, usable in an ExactGP.

gpytorch passes real (..., B, D) inputs, so points are encoded as real rows
(``encode_points``): x = [Re z, Im z, Re J, Im J] (flattened; D = 2(N+1)(n+1)).

    PotentialKernel:  K(x, x') = Θ(x, x')                              (... × B1 × B2)
    MetricKernel:     K[(x, s), (x', t)] = Θ_{st}(x, x'), s, t < n²    (... × B1·n² × B2·n²)

MetricKernel is a multi-output kernel in gpytorch's interleaved layout (row = point·n² +
component, ``num_outputs_per_input`` = n²): use it with a ``MultitaskMultivariateNormal`` and a
``MultitaskGaussianLikelihood(num_tasks=n²)`` to regress metrics in the real components of
geometry/hermitian.py.
"""

from __future__ import annotations

import gpytorch
import torch

from nnflow.kernels.diagnostics import as_matrix
from nnflow.kernels.points import as_points


def encode_points(points) -> torch.Tensor:
    """PointSet or (z, jac) → (B, 2(N+1)(n+1)) real rows [Re z, Im z, Re J, Im J]."""
    z, jac = as_points(points, need_jac=True)
    B = z.shape[0]
    return torch.cat([torch.view_as_real(z).transpose(-1, -2).reshape(B, -1),
                      torch.view_as_real(jac).movedim(-1, 1).reshape(B, -1)], -1)


def decode_points(x: torch.Tensor, n_coords: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of ``encode_points``: (B, D) → z (B, N+1), jac (B, n, N+1) complex."""
    expected = 2 * n_coords * (dim + 1)
    if x.shape[-1] != expected:
        raise ValueError(f"encoded points must have {expected} columns for N+1={n_coords}, n={dim}; got {x.shape[-1]}")
    B = x.shape[0]
    zr = x[:, : 2 * n_coords].reshape(B, 2, n_coords)
    jr = x[:, 2 * n_coords :].reshape(B, 2, dim, n_coords)
    return torch.complex(zr[:, 0], zr[:, 1]), torch.complex(jr[:, 0], jr[:, 1])


class PotentialKernel(gpytorch.kernels.Kernel):
    """Θ(x, x') of an analytic kernel (or any ``fn(points1, points2 | None) → (B1, B2)``).

    .. math:: K(x, x') = \\Theta(x, x')

    Args:
        kernel: an AnalyticKernel, or a callable as above.
        n_coords, dim: N + 1 and n of the encoded points.
        kind: "ntk" or "nngp" (AnalyticKernel only).
        chunk_size: passed to the kernel.
    """

    is_stationary = False
    _orders = (0, 0)

    def __init__(self, kernel, n_coords: int, dim: int, kind: str = "ntk", chunk_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_coords, self.dim = int(n_coords), int(dim)
        if hasattr(kernel, "kernel"):
            self._fn = lambda p1, p2: kernel.kernel(p1, p2, self._orders, kind, chunk_size)
        elif callable(kernel):
            self._fn = kernel
        else:
            raise TypeError(f"kernel must be an AnalyticKernel or a callable; got {type(kernel).__name__}")

    def _matrix(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        p1 = decode_points(x1, self.n_coords, self.dim)
        p2 = None if (x1 is x2 or torch.equal(x1, x2)) else decode_points(x2, self.n_coords, self.dim)
        return as_matrix(self._fn(p1, p2))

    def forward(self, x1, x2, diag: bool = False, last_dim_is_batch: bool = False, **params):
        if last_dim_is_batch:
            raise ValueError("last_dim_is_batch is not supported: the last dimension encodes a point")
        batch = x1.shape[:-2]
        f1 = x1.reshape(-1, *x1.shape[-2:])
        f2 = x2.expand(*batch, *x2.shape[-2:]).reshape(-1, *x2.shape[-2:]) if batch else x2[None]
        out = torch.stack([self._matrix(a, b) for a, b in zip(f1, f2)])
        out = out.reshape(*batch, *out.shape[-2:])
        return out.diagonal(dim1=-2, dim2=-1) if diag else out


class MetricKernel(PotentialKernel):
    """Θ_{st}(x, x') of the metric kernel as a multi-output kernel (n² outputs per point).

    .. math:: K[(x, s), (x', t)] = \\partial_i\\bar\\partial_j\\partial'_k\\bar\\partial'_l \\Theta(x, x')

    Rows and columns are interleaved: index = point·n² + component (geometry/hermitian.py order).
    """

    _orders = (2, 2)

    def num_outputs_per_input(self, x1, x2) -> int:
        return self.dim * self.dim
