"""Where a training run's host time goes: ``nnflow.training.run.train`` under cProfile.

A compiled GPU step is about 2 ms of device work, so the host side (Lightning's loop, the
data loader, hooks, syncs) can decide the step rate. This runs one short training with the
given Hydra overrides and writes the run's step rate and the top functions by own time and
by cumulative time. cProfile slows pure-Python code, so take the step rate from an
unprofiled run (summary.json of ``nnflow-train``) and use this for the shares.

    python bench/profile_train.py experiment=quintic_mlp_gpu trainer.max_time=00:00:00:45 --out prof.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from nnflow.cli import CONFIG_DIR
from nnflow.training.run import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--out", default="profile_train.txt")
    args = parser.parse_args()
    base = ["logger=csv", "trainer.enable_progress_bar=false", "resume=never"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=base + args.overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        profiler = cProfile.Profile()
        profiler.enable()
        summary, _ = train(cfg, Path(run_dir))
        profiler.disable()
    text = io.StringIO()
    steps, seconds = summary.get("steps", 0), summary.get("seconds_train", float("nan"))
    text.write(f"status: {summary.get('status')} {summary.get('message', '')}\n")
    text.write(f"overrides: {' '.join(args.overrides)}\n{steps} steps in {seconds:.1f} s of training under "
               f"cProfile ({1e3 * seconds / max(steps, 1):.2f} ms/step); device {summary.get('device')}\n")
    for key in ("tottime", "cumulative"):
        text.write(f"\n==== by {key}\n")
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(args.top)
    Path(args.out).write_text(text.getvalue())
    print(text.getvalue()[:4000])


if __name__ == "__main__":
    main()
