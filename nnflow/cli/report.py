"""nnflow-report SWEEP_DIR: the finite-vs-infinite report of a width sweep (report.md + figures).

Beside each width it puts Donaldson's balanced metric at the closest parameter count (a few
seconds on the CPU sweep; --no-donaldson skips it, --donaldson-max-k / --donaldson-max-params set
its budget). The last line of stdout is one JSON object: the fitted slopes, the frozen flow's σ,
the Donaldson rows in brief and the path of report.md. A study (experiment=quintic_width_sweep:
runs with arm labels) gets the multi-arm report (nnflow.report.study); its JSON line holds the
best finite cell, the limit flows' σ and the verdict. A moduli scan (experiment=dwork_scan:
Dwork-family runs at several ψ) gets σ_FS and σ_test against ψ (nnflow.report.moduli); its JSON
line holds ψ, σ_FS and σ_test by ψ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nnflow.report.sweep import DONALDSON_MAX_K, DONALDSON_MAX_PARAMS, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nnflow-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", help="a Hydra multirun directory (e.g. multirun/width_sweep/<time>)")
    parser.add_argument("--out", default=None, help="where to write report.md and figures (default: sweep_dir)")
    parser.add_argument("--no-donaldson", dest="donaldson", action="store_false",
                        help="skip the Donaldson balanced-metric rows (faster)")
    parser.add_argument("--donaldson-max-k", type=int, default=DONALDSON_MAX_K,
                        help=f"largest degree k of the Donaldson rows (default {DONALDSON_MAX_K})")
    parser.add_argument("--donaldson-max-params", type=int, default=DONALDSON_MAX_PARAMS,
                        help=f"most real parameters of H in the Donaldson rows (default {DONALDSON_MAX_PARAMS})")
    parser.add_argument("--no-ensemble", dest="ensemble", action="store_false",
                        help="skip the seed-ensemble rows (they rebuild every finite run from its checkpoint)")
    parser.add_argument("--wandb", action="store_true",
                        help="also log the report to Weights & Biases (offline unless WANDB_MODE=online): "
                             "its numbers and figures, in the sweep's group")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.sweep_dir, args.out, donaldson=args.donaldson,
                            donaldson_max_k=args.donaldson_max_k, donaldson_max_params=args.donaldson_max_params,
                            ensemble=args.ensemble)
    except (ValueError, FileNotFoundError) as err:
        print(f"nnflow-report: {err}", file=sys.stderr)
        return 2
    stats = json.loads((Path(path).parent / "report.json").read_text())  # what write_report computed
    print(f"wrote {path}", file=sys.stderr)
    if args.wandb:
        from nnflow.tracking import log_report

        log_report(args.sweep_dir, Path(path).parent, vars(args), stats)
    if stats.get("study"):
        brief = {"best": stats["best"], "limits": stats["limits"], "verdict": stats["verdict"]}
    elif stats.get("moduli_scan"):
        brief = {key: [r[key] for r in stats["rows"]] for key in ("psi", "sigma_fs", "sigma_test")}
    else:
        brief = {k: v for k, v in stats.items() if k.startswith("slope") or k == "frozen_sigma"}
        brief["donaldson"] = [{key: r[key] for key in ("width", "k", "params", "sigma_test", "sigma_err", "capped")}
                              for r in stats["donaldson"]]
    print(json.dumps(brief | {"report": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
