"""Tangent kernels of Kähler-potential networks: empirical (torch.func) and infinite-width.

Public API (pure torch; gpytorch wrappers in nnflow.kernels.gp):

- ``hermitian_to_real``, ``real_to_hermitian``, ``component_labels``: the one real
  parameterization of Hermitian metrics used by every metric kernel (defined in
  nnflow.geometry.hermitian, re-exported here).
- empirical: ``potential_ntk``, ``kahler_ntk``, ``metric_ntk`` (implementations "jacobian",
  "ntk_vp", "structured", "auto"; ``chunk_size``), ``empirical_ntk_fn``,
  ``empirical_metric_ntk``, ``metric_jacobian``, ``metric_jvp``, ``initial_params``.
- analytic: ``MLPKernel``, ``CosNetKernel``, ``GaussNetKernel``, ``GaussianKernel``, ``analytic_kernel`` with
  ``.potential``, ``.kahler``, ``.metric`` (kind "ntk" or "nngp") in the same shapes.
- diagnostics: ``relative_frobenius``, ``alignment``, ``target_alignment``, ``relative_change``,
  ``leading_eigenvalues``.
"""

from nnflow.geometry.hermitian import component_labels, hermitian_to_real, real_to_hermitian
from nnflow.kernels.analytic import (
    KERNELS,
    AnalyticKernel,
    CosNetKernel,
    GaussianKernel,
    GaussNetKernel,
    MLPKernel,
    analytic_kernel,
)
from nnflow.kernels.diagnostics import (
    alignment,
    as_matrix,
    leading_eigenvalues,
    relative_change,
    relative_frobenius,
    target_alignment,
)
from nnflow.kernels.empirical import (
    IMPLEMENTATIONS,
    KERNEL_ORDERS,
    empirical_kernel,
    empirical_metric_ntk,
    empirical_ntk_fn,
    initial_params,
    kahler_ntk,
    metric_jacobian,
    metric_jvp,
    metric_ntk,
    model_params,
    potential_jacobian,
    potential_jvp,
    potential_ntk,
)

__all__ = [
    "IMPLEMENTATIONS",
    "KERNELS",
    "KERNEL_ORDERS",
    "AnalyticKernel",
    "CosNetKernel",
    "GaussNetKernel",
    "GaussianKernel",
    "MLPKernel",
    "alignment",
    "analytic_kernel",
    "as_matrix",
    "component_labels",
    "empirical_kernel",
    "empirical_metric_ntk",
    "empirical_ntk_fn",
    "hermitian_to_real",
    "initial_params",
    "kahler_ntk",
    "leading_eigenvalues",
    "metric_jacobian",
    "metric_jvp",
    "metric_ntk",
    "model_params",
    "potential_jacobian",
    "target_alignment",
    "potential_jvp",
    "potential_ntk",
    "real_to_hermitian",
    "relative_change",
    "relative_frobenius",
]
