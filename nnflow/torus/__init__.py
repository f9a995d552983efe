"""Metrics and metric flows on the flat torus T^n = R^n/Z^n (pure torch): one home for the torus code.

- ``geometry``: curvature of metrics on T^n (jets, Christoffel symbols, Ricci, invariants), the
  periodic spectral grid ``TorusGrid`` and the test metrics ``FourierMetric``.
- ``networks``: product cos-/gauss-nets on periodic features, ``TorusMetricNet`` (one network per
  metric component).
- ``reference``: the reference Ricci flow (and its n = 2 conformal reduction), the ODE driver
  ``integrate`` (torchdiffeq dopri5), the flat linearization.
- ``kernel_flow``: frozen-kernel, finite-network and linearized flows (the generalized Ricci
  flow), kernel multipliers and mode rates.
- ``study``: the σ → 0 study behind ``nnflow-ricci`` (computes; ``nnflow.report.ricci`` writes).
"""

from nnflow.torus.geometry import (
    FourierMetric,
    MetricFn,
    TorusGrid,
    curvature_invariants,
    grid_curvature,
)
from nnflow.torus.kernel_flow import FIELDS, TORUS_KERNELS, kernel_flow, kernel_multiplier, net_flow
from nnflow.torus.networks import PRODUCT_NETWORKS, TorusMetricNet
from nnflow.torus.reference import (
    FlowResult,
    conformal_flow_2d,
    integrate,
    metric_distance,
    ricci_flow,
)

__all__ = [
    "FIELDS",
    "PRODUCT_NETWORKS",
    "TORUS_KERNELS",
    "FlowResult",
    "FourierMetric",
    "MetricFn",
    "TorusGrid",
    "TorusMetricNet",
    "conformal_flow_2d",
    "curvature_invariants",
    "grid_curvature",
    "integrate",
    "kernel_flow",
    "kernel_multiplier",
    "metric_distance",
    "net_flow",
    "ricci_flow",
]
