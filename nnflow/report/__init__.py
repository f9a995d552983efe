"""Reports written from results: tables, figures and files (matplotlib is imported lazily).

- ``nnflow.report.sweep``: the finite-versus-infinite report of a width sweep (``nnflow-report``);
  its API is re-exported here (``write_report``, ``collect``, ``summarize``, ``donaldson_rows``,
  ``degree_for_parameters``, ``FIGURES``, ...).
- ``nnflow.report.ricci``: summary.json, metrics.csv and the figures of the Ricci/torus study
  (``nnflow-ricci``, experiments/ricci).
"""

from nnflow.report.sweep import (
    FIGURES,
    by_width,
    collect,
    conclusions,
    degree_for_parameters,
    donaldson_rows,
    fit_slope,
    make_figures,
    params_by_width,
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
