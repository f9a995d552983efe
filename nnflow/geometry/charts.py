"""Affine charts on X ⊂ P^N and the Jacobian of the embedding.

Convention (design.md §2): the patch sets the largest |z_i| to 1; of the others, the
coordinate z_j with the largest |∂p/∂z_j| is eliminated (solved for from p = 0); the
remaining n = N − 1 coordinates, in increasing order, are the local coordinates x_a.
"""

from __future__ import annotations

import torch

from nnflow.geometry.hypersurface import Hypersurface

# |∇p|·|z| / (d·Σ|c_m z^m|) below this means a (numerically) singular point of X.
SINGULAR_TOLERANCE = 1e-7


def choose_chart(surface: Hypersurface, z: torch.Tensor):
    """Normalize points into their patch and pick the eliminated coordinate.

    Args:
        z: (B, N+1) complex homogeneous coordinates of points on X (any scaling).

    Returns:
        z: (B, N+1) rescaled so that z[patch] = 1 (the largest |z_i|).
        patch: (B,) long, index of the coordinate set to 1.
        elim: (B,) long, index of the eliminated coordinate.
        grad: (B, N+1) complex, ∂p/∂z at the normalized point.

    Raises:
        ValueError: if X is singular (∇p ≈ 0) at one of the points.
    """
    patch = z.abs().argmax(-1)
    z = z / z.gather(-1, patch[:, None])
    grad = surface.gradient(z)
    size = grad.abs()
    rel = size.norm(dim=-1) * z.norm(dim=-1) / (surface.degree * surface.scale(z))
    bad = rel < SINGULAR_TOLERANCE
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"hypersurface {surface.name!r} is singular at a sampled point: "
            f"|dp|·|z|/(d·scale) = {rel[i].item():.2e} at z = {z[i].tolist()} "
            f"({int(bad.sum())} of {len(z)} points); choose a smooth polynomial"
        )
    size = size.scatter(-1, patch[:, None], -1.0)
    elim = size.argmax(-1)
    return z, patch, elim, grad


def local_indices(patch: torch.Tensor, elim: torch.Tensor, n_coords: int) -> torch.Tensor:
    """Indices of the n local coordinates, increasing: (B,), (B,) → (B, n) long."""
    keep = torch.ones(patch.shape[0], n_coords, dtype=torch.bool, device=patch.device)
    keep.scatter_(-1, patch[:, None], False)
    keep.scatter_(-1, elim[:, None], False)
    idx = torch.arange(n_coords, device=patch.device).expand(patch.shape[0], -1)
    return idx[keep].view(patch.shape[0], n_coords - 2)


def embedding_jacobian(grad: torch.Tensor, patch: torch.Tensor, elim: torch.Tensor) -> torch.Tensor:
    """J_{a k} = ∂z_k/∂x_a of the chart embedding x ↦ z(x) ∈ X.

    J_{a k} = δ_{k, k_a} − δ_{k, j} (∂p/∂z_{k_a}) / (∂p/∂z_j); column ``patch`` is zero.

    Args:
        grad: (B, N+1) complex ∂p/∂z; patch, elim: (B,) long.
    Returns:
        (B, n, N+1) complex.
    """
    B, n_coords = grad.shape
    loc = local_indices(patch, elim, n_coords)
    J = torch.zeros(B, n_coords - 2, n_coords, dtype=grad.dtype, device=grad.device)
    J.scatter_(-1, loc[..., None], 1.0)
    dp_j = grad.gather(-1, elim[:, None])  # (B, 1)
    ratio = -grad.gather(-1, loc) / dp_j  # (B, n)
    J.scatter_(-1, elim[:, None, None].expand(-1, n_coords - 2, 1), ratio[..., None])
    return J


def omega_squared(grad: torch.Tensor, elim: torch.Tensor) -> torch.Tensor:
    """|Ω|² = 1/|∂p/∂z_j|² for Ω = dx_1∧…∧dx_n / (∂p/∂z_j): (B, N+1), (B,) → (B,) real."""
    return grad.gather(-1, elim[:, None]).squeeze(-1).abs().pow(-2)


def embedding_hessian(
    surface: Hypersurface, z: torch.Tensor, jac: torch.Tensor, elim: torch.Tensor
) -> torch.Tensor:
    """H_{cak} = ∂²z_k/∂x_c∂x_a of the chart embedding (only column k = elim is non-zero).

    From ∂_c∂_a p(z(x)) = 0: ∂_c∂_a z_j = −(J_c · ∂²p · J_a) / (∂p/∂z_j).

    Args:
        z: (B, N+1) normalized points; jac: (B, n, N+1); elim: (B,) long.
    Returns:
        (B, n, n, N+1) complex, symmetric in (c, a).
    """
    dp_j = surface.gradient(z).gather(-1, elim[:, None])  # (B, 1)
    curv = -(jac @ surface.hessian(z) @ jac.transpose(-1, -2)) / dp_j[..., None]  # (B, n, n)
    onehot = torch.nn.functional.one_hot(elim, z.shape[-1]).to(z.dtype)  # (B, N+1)
    return curv[..., None] * onehot[:, None, None, :]
