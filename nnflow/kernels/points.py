"""How kernels receive points, and the feature jets they need of them (pure torch).

Every kernel function takes points as a ``PointSet`` or a pair ``(z, jac)``:
z (B, N+1) complex homogeneous coordinates (any scaling) and jac (B, n, N+1) complex chart
Jacobians (rows J_a = ∂z/∂x_a; may be None where no derivative is taken, i.e. potential kernels).
``points2=None`` means "the same points as points1" everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nnflow.models.features import ProjectiveFeatures
from nnflow.models.jets import Jet, pack_jet


def as_points(points, need_jac: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(z, jac) from a PointSet or a (z, jac) pair; ValueError if jac is needed and missing."""
    if hasattr(points, "z") and hasattr(points, "jac"):
        z, jac = points.z, points.jac
    elif isinstance(points, (tuple, list)) and len(points) == 2:
        z, jac = points
    elif isinstance(points, torch.Tensor):
        z, jac = points, None
    else:
        raise TypeError(f"points must be a PointSet or a (z, jac) pair; got {type(points).__name__}")
    if not (isinstance(z, torch.Tensor) and z.is_complex() and z.ndim == 2):
        raise ValueError(f"z must be a complex (B, N+1) tensor; got {getattr(z, 'shape', z)!r}")
    if need_jac:
        if jac is None:
            raise ValueError("this kernel differentiates along X: pass a PointSet or (z, jac) with jac")
        if jac.ndim != 3 or jac.shape[0] != z.shape[0] or jac.shape[2] != z.shape[1]:
            raise ValueError(f"jac must be (B, n, N+1) = (B, n, {z.shape[1]}); got {tuple(jac.shape)}")
    return z, jac


def subset(points: tuple, index) -> tuple:
    z, jac = points
    return z[index], (None if jac is None else jac[index])


@dataclass
class Side:
    """One side of a kernel: features, their jets and packed rows at B points.

    value: (B, d) features x; jet: Jet (order 2 only); rows: (B, R, d) packed real jet rows
    (R = 1 + 2n + n², or R = 1 for order 0); n: complex dimension (0 for order 0); order.
    """

    value: torch.Tensor
    jet: Jet | None
    rows: torch.Tensor
    n: int
    order: int

    def __len__(self) -> int:
        return self.value.shape[0]

    def subset(self, index) -> Side:
        jet = None if self.jet is None else Jet(self.jet.value[index], self.jet.d[index], self.jet.dd[index])
        return Side(self.value[index], jet, self.rows[index], self.n, self.order)


def feature_side(features: ProjectiveFeatures, points, order: int) -> Side:
    """Features (order 0) or feature jets (order 2) of the points."""
    z, jac = as_points(points, need_jac=order > 0)
    if order == 0:
        x = features(z)
        return Side(x, None, x[:, None, :], 0, 0)
    jet = features.jet(z, jac)
    return Side(jet.value, jet, pack_jet(jet), jac.shape[1], order)


def blocks(B1: int, B2: int, chunk_size: int | None, symmetric: bool):
    """(slice1, slice2) blocks covering a B1 × B2 kernel; upper blocks only if symmetric."""
    c1 = chunk_size or B1
    c2 = chunk_size or B2
    for i, s1 in enumerate(range(0, B1, c1)):
        for j, s2 in enumerate(range(0, B2, c2)):
            if symmetric and j < i:
                continue
            yield slice(s1, min(s1 + c1, B1)), slice(s2, min(s2 + c2, B2))


def check_chunk_size(chunk_size) -> None:
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or a positive integer; got {chunk_size!r}")


def assemble(B1: int, B2: int, trailing: tuple, chunk_size, symmetric: bool, block_fn, like: torch.Tensor):
    """Fill a (B1, B2, *trailing) kernel block by block; mirror the upper blocks if symmetric.

    block_fn(s1, s2) → (|s1|, |s2|, *trailing). Symmetric means K(x, y)_{st} = K(y, x)_{ts}.
    """
    check_chunk_size(chunk_size)
    out = torch.empty(B1, B2, *trailing, dtype=like.dtype, device=like.device)
    for s1, s2 in blocks(B1, B2, chunk_size, symmetric):
        block = block_fn(s1, s2)
        out[s1, s2] = block
        if symmetric and s1 != s2:
            perm = (1, 0) + tuple(range(2, block.ndim))[::-1]
            out[s2, s1] = block.permute(*perm)
    return out
