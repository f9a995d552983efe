"""Reports written from results: tables, figures and files (matplotlib is imported lazily).

- ``nnflow.report.sweep``: the finite-versus-infinite report of a width sweep (``nnflow-report``);
  its API is re-exported here (``write_report``, ``collect``, ``summarize``, ``FIGURES``, ...).
- ``nnflow.report.donaldson``: the Donaldson rows beside each width (``donaldson_rows``,
  ``degree_for_parameters``), computed, not written.
- ``nnflow.report.ricci``: summary.json, metrics.csv and the figures of the Ricci/torus study
  (``nnflow-ricci``, experiments/ricci).
"""

from nnflow.report.donaldson import degree_for_parameters, donaldson_rows, params_by_width
from nnflow.report.sweep import (
    FIGURES,
    by_width,
    collect,
    conclusions,
    fit_slope,
    make_figures,
    slope_error,
    summarize,
    write_report,
)

__all__ = [
    "FIGURES",
    "by_width",
    "collect",
    "conclusions",
    "degree_for_parameters",
    "donaldson_rows",
    "fit_slope",
    "make_figures",
    "params_by_width",
    "slope_error",
    "summarize",
    "write_report",
]
