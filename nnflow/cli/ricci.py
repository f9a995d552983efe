"""nnflow-ricci: generalized Ricci flows on T^n from local metric-NTKs, against Ricci flow.

A thin shell: the study is ``nnflow.torus.study.run_study`` (on the resolved config as a plain
dict), the files are ``nnflow.report.ricci.write_outputs`` (summary.json with provenance,
metrics.csv, PNG plots in the run directory); prints one JSON object as the last line of stdout.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from nnflow.cli import CONFIG_DIR, run_dir

log = logging.getLogger("nnflow")


@hydra.main(version_base="1.3", config_path=str(Path(CONFIG_DIR) / "ricci"), config_name="config")
def main(cfg: DictConfig) -> float:
    from nnflow import tracking
    from nnflow.report.ricci import json_default, write_outputs
    from nnflow.torus.study import headline, run_study

    out = run_dir()
    run = tracking.start(cfg, "ricci", f"ricci_{cfg.name}_s{cfg.seed}", out)
    summary, rows, frames = run_study(OmegaConf.to_container(cfg, resolve=True))
    written = write_outputs(out, summary, rows, frames, plots=bool(cfg.plots))
    log.info("wrote %s to %s", ", ".join(written), out)
    images = {Path(name).stem: out / name for name in written if str(name).endswith(".png")}
    tracking.finish(run, summary, tables={"metrics": rows}, images=images)  # before the summary line (last on stdout)
    result = headline(summary) | {"run_dir": str(out)}
    print(json.dumps(result, default=json_default), flush=True)
    values = list(result["narrowest_kernel_error"].values())
    return values[0][summary["primary_error"]] if values else math.nan  # what a sweeper would minimize
