"""nnflow-report SWEEP_DIR: the finite-vs-infinite report of a width sweep (report.md + figures)."""

from __future__ import annotations

import argparse
import json
import sys

from nnflow.report import collect, summarize, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nnflow-report", description=__doc__)
    parser.add_argument("sweep_dir", help="a Hydra multirun directory (e.g. multirun/width_sweep/<time>)")
    parser.add_argument("--out", default=None, help="where to write report.md and figures (default: sweep_dir)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.sweep_dir, args.out)
    except (ValueError, FileNotFoundError) as err:
        print(f"nnflow-report: {err}", file=sys.stderr)
        return 2
    stats = summarize(collect(args.sweep_dir))
    print(f"wrote {path}", file=sys.stderr)
    print(json.dumps({k: v for k, v in stats.items() if k.startswith("slope") or k == "frozen_sigma"} | {"report": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
