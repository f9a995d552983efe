"""Reports written from results: tables, figures and files (matplotlib is imported lazily).

- ``nnflow.report.sweep``: the finite-versus-infinite report of a width sweep (``nnflow-report``);
  its API is re-exported here (``write_report``, ``collect``, ``summarize``, ``FIGURES``, ...).
- ``nnflow.report.ricci``: summary.json, metrics.csv and the figures of the Ricci/torus study
  (``nnflow-ricci``, experiments/ricci).
"""

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
    "fit_slope",
    "make_figures",
    "slope_error",
    "summarize",
    "write_report",
]
