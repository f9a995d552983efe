"""Calabi–Yau hypersurfaces in projective space: sampling, metrics and measures (pure torch)."""

from nnflow.geometry.charts import choose_chart, embedding_jacobian, local_indices
from nnflow.geometry.fubini_study import fs_metric, fs_potential, pullback
from nnflow.geometry.hermitian import hermitian_to_real, real_hermitian_det, real_to_hermitian
from nnflow.geometry.hypersurface import (
    PRESETS,
    Hypersurface,
    dwork_quintic,
    expected_euler_characteristic,
    fermat_cubic,
    fermat_quartic,
    fermat_quintic,
    make_hypersurface,
    random_quintic,
)
from nnflow.geometry.pointset import PointSet
from nnflow.geometry.sampling import sample_points

__all__ = [
    "PRESETS",
    "Hypersurface",
    "PointSet",
    "choose_chart",
    "dwork_quintic",
    "embedding_jacobian",
    "expected_euler_characteristic",
    "fermat_cubic",
    "fermat_quartic",
    "fermat_quintic",
    "fs_metric",
    "fs_potential",
    "hermitian_to_real",
    "local_indices",
    "make_hypersurface",
    "pullback",
    "random_quintic",
    "real_hermitian_det",
    "real_to_hermitian",
    "sample_points",
]
