"""The algebraic baseline: Donaldson's balanced metrics and optimized Bergman metrics (pure torch).

sections.py: monomial bases of H^0(X, O(k)) modulo p, charge sectors, values and derivatives;
balanced.py: the T-operator, the balanced iteration, BalancedMetric (potential, metric, measures);
bergman.py: BergmanPotential (H = L L^† trained on the Monge–Ampère loss) and ``model=bergman``.
"""

from nnflow.algebraic.balanced import (
    BalancedMetric,
    TOperator,
    balanced_metric,
    bergman_metric,
    bergman_potential,
)
from nnflow.algebraic.bergman import BergmanPotential, build_bergman
from nnflow.algebraic.sections import (
    SectionBasis,
    charge_sectors,
    hilbert_dimension,
    projective_basis,
    section_basis,
)

__all__ = [
    "BalancedMetric",
    "BergmanPotential",
    "SectionBasis",
    "TOperator",
    "balanced_metric",
    "bergman_metric",
    "bergman_potential",
    "build_bergman",
    "charge_sectors",
    "hilbert_dimension",
    "projective_basis",
    "section_basis",
]
