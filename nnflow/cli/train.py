"""nnflow-train: train a metric model; prints the run's summary as the last line of stdout."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from nnflow.cli import CONFIG_DIR, print_summary, run_dir

log = logging.getLogger("nnflow")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float:
    from nnflow.training.run import train

    summary, _ = train(cfg, run_dir())  # writes summary.json itself (tests and sweeps call it directly)
    if "rank" in summary:  # a data-parallel worker: rank 0 reports
        return float("nan")
    log.info("run directory: %s", run_dir())
    print_summary(summary)
    return summary.get("sigma_test", float("nan"))  # what a sweeper would minimize
