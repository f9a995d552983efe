"""PointSet: points on X with everything needed to integrate over X.

Sample means of ``weights · f`` are integrals against |Ω|² d^{2n}x:

    ∫_X f |Ω|² d^{2n}x ≈ (Vol_FS / n!) · mean(w · f),    w = |Ω|² / det g_FS,X (t = 1),

because the points are distributed by the normalized FS volume form ω_FS^n / Vol_FS with
Vol_FS = ∫_X ω_FS^n = deg(X) (design.md §2; fubini_study.py gives the normalization).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nnflow.geometry.charts import choose_chart, embedding_hessian, embedding_jacobian, omega_squared
from nnflow.geometry.fubini_study import fs_metric, fs_potential, pullback
from nnflow.geometry.hypersurface import Hypersurface

FORMAT_VERSION = 1


@dataclass
class PointSet:
    """Points on a hypersurface with integration data (all tensors share B = len(self)).

    Attributes:
        surface: the hypersurface the points lie on.
        z: (B, N+1) complex, normalized so that z[patch] = 1.
        weights: (B,) real, w = |Ω|² / det g_FS,X with t = 1.
        omega2: (B,) real, |Ω|² = 1/|∂p/∂z_elim|².
        patch: (B,) long, coordinate set to 1.
        elim: (B,) long, eliminated coordinate.
        jac: (B, n, N+1) complex, J_{ak} = ∂z_k/∂x_a.
        meta: provenance (seed, sampler), stored with the points.
    """

    surface: Hypersurface
    z: torch.Tensor
    weights: torch.Tensor
    omega2: torch.Tensor
    patch: torch.Tensor
    elim: torch.Tensor
    jac: torch.Tensor
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_points(cls, surface: Hypersurface, z: torch.Tensor, meta: dict | None = None):
        """Charts, Jacobians, |Ω|² and weights for points on X given in any scaling.

        Args:
            z: (B, N+1) complex points with p(z) ≈ 0.
        """
        if z.ndim != 2 or z.shape[-1] != surface.n_coords:
            raise ValueError(
                f"points must have shape (B, {surface.n_coords}); got {tuple(z.shape)}"
            )
        z, patch, elim, grad = choose_chart(surface, z)
        jac = embedding_jacobian(grad, patch, elim)
        omega2 = omega_squared(grad, elim)
        det_fs = torch.linalg.det(pullback(jac, fs_metric(z))).real
        return cls(surface, z, omega2 / det_fs, omega2, patch, elim, jac, dict(meta or {}))

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return self.z.shape[0]

    @property
    def dim(self) -> int:
        return self.surface.dim

    @property
    def device(self) -> torch.device:
        return self.z.device

    def fs_volume(self, t: float = 1.0) -> float:
        """∫_X ω_FS^n = deg(X)·t^n."""
        return self.surface.degree * t**self.dim

    def integral_factor(self) -> float:
        """Vol_FS / n!: ∫ f |Ω|² d^{2n}x ≈ integral_factor · mean(w f)."""
        return self.fs_volume() / math.factorial(self.dim)

    def embedding_hessian(self, index=slice(None)) -> torch.Tensor:
        """∂²z/∂x∂x of the chart embedding for the points ``index``: (b, n, n, N+1) (charts.py)."""
        return embedding_hessian(self.surface, self.z[index], self.jac[index], self.elim[index])

    def fs_det(self, t: float = 1.0) -> torch.Tensor:
        """det of the pulled-back FS metric of class t at every point: (B,) real."""
        return torch.linalg.det(pullback(self.jac, fs_metric(self.z, t))).real

    def fs_potential(self, t: float = 1.0):
        """K_FS of class t as a function of one point (N+1,) → () (vmap-safe)."""
        return lambda z: fs_potential(z, t)

    def _map(self, fn) -> PointSet:
        return type(self)(
            self.surface,
            fn(self.z),
            fn(self.weights),
            fn(self.omega2),
            fn(self.patch),
            fn(self.elim),
            fn(self.jac),
            dict(self.meta),
        )

    def to(self, device=None, dtype=None) -> PointSet:
        """Move to a device; ``dtype`` (complex64 or complex128) sets the precision."""
        real = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype)

        def move(x):
            if dtype is not None and x.is_complex():
                return x.to(device=device, dtype=dtype)
            if real is not None and x.is_floating_point():
                return x.to(device=device, dtype=real)
            return x.to(device=device)

        return self._map(move)

    def subset(self, index) -> PointSet:
        """Rows selected by a slice, index tensor or boolean mask."""
        return self._map(lambda x: x[index])

    @staticmethod
    def cat(parts: list[PointSet]) -> PointSet:
        """Concatenate point sets of one surface (metadata of the first)."""
        first = parts[0]
        return type(first)(
            first.surface, *(torch.cat([getattr(p, k) for p in parts]) for k in _TENSORS),
            meta=dict(first.meta),
        )

    def split(self, sizes: list[int]) -> list[PointSet]:
        """Consecutive subsets of the given sizes."""
        out, start = [], 0
        for s in sizes:
            out.append(self.subset(slice(start, start + s)))
            start += s
        return out

    # ------------------------------------------------------------------ disk
    def save(self, path: str | Path) -> Path:
        """Write tensors and metadata (surface, seed, format) to one ``.pt`` file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # unique per writer
        torch.save(
            {
                "format_version": FORMAT_VERSION,
                "kind": self.KIND,
                "surface": self.surface.to_dict(),
                "meta": self.meta,
                **{k: getattr(self, k).cpu() for k in _TENSORS},
            },
            tmp,
        )
        tmp.replace(path)  # atomic: a killed writer never leaves a half file
        return path

    @classmethod
    def load(cls, path: str | Path, device=None) -> PointSet:
        """Read a file written by ``save``.

        Raises:
            UnreadablePointSetError: the file is truncated, corrupt or not a PointSet (the
                message names the file and the remedy; torch's own error is chained).
            ValueError: an unsupported format version.
        """
        try:
            d = torch.load(Path(path), map_location=device, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, … by cause
            raise UnreadablePointSetError(
                f"{path} is not a readable PointSet file (truncated or corrupt: {type(err).__name__}); "
                "delete it to re-sample the points"
            ) from err
        if not isinstance(d, dict) or not set(_TENSORS) <= set(d):
            raise UnreadablePointSetError(f"{path} holds no PointSet (missing tensors); delete it to re-sample")
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported PointSet format {d.get('format_version')!r}")
        kind = d.get("kind", "hypersurface")
        if kind != cls.KIND:
            raise UnreadablePointSetError(f"{path} holds {kind} points, not {cls.KIND} points; load it with the "
                                          "matching class (or delete it to re-sample)")
        surface = cls.surface_from_dict(d["surface"])
        return cls(surface, *(d[k] for k in _TENSORS), meta=d["meta"])

    KIND = "hypersurface"

    @staticmethod
    def surface_from_dict(d: dict):
        return Hypersurface.from_dict(d)


class UnreadablePointSetError(ValueError):
    """A PointSet file that cannot be read (truncated, corrupt, or another kind of file)."""


_TENSORS = ("z", "weights", "omega2", "patch", "elim", "jac")
