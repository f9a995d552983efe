#!/usr/bin/env bash
# A short GPU lease (about 3.5 min) that measures where a compiled training step's time goes:
#   1. bench_step.py, compiled route only, at batch 16,384 (the batch-size cost of the device work);
#   2. a 60-s quintic_mlp_gpu training, unprofiled: the step rate inside Lightning, from the
#      intervals between validations in metrics.csv (the first, with the compile, left out);
#   3. the same run under cProfile for 30 s (bench/profile_train.py): the host-side shares.
# Results land in $OUT (default bench/results/gpu_overhead).
#
#   bash bench/gpu_overhead.sh                      # on the GPU machine
#   DEVICE=cpu DEADLINE_S=200 bash bench/gpu_overhead.sh   # dry run here (tiny sizes)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-bench/results/gpu_overhead}
DEADLINE=$(( $(date +%s) + ${DEADLINE_S:-225} ))
mkdir -p "$OUT"
export WANDB_MODE=offline PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
left() { echo $(( DEADLINE - $(date +%s) )); }
capped() { local cap=$1; shift; local t; t=$(left); [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt 15 ]; then echo "skipped (no time left): $*"; return 0; fi
  echo "== $* (at most ${t}s)"; timeout "$t" "$@" || echo "exit $? : $*"; }
SIZES=(); BATCH=16384; [ "$DEVICE" = cpu ] && { SIZES=(trainer=cpu data.n_train=4096 data.n_val=1024 model.width=32); BATCH=512; }

capped 40 $PY bench/bench_step.py --device "$DEVICE" --batch $BATCH --steps 30 --routes compiled \
  --out "$OUT/step_float32_b$BATCH.json" 2>&1 | grep -v -i warn
capped 90 $PY -c "from nnflow.cli.train import main; main()" experiment=quintic_mlp_gpu logger=csv dtype=float32 \
  trainer.enable_progress_bar=false trainer.max_time=00:00:01:00 data.n_test=10000 hydra.run.dir=outputs/gpu_overhead \
  "${SIZES[@]}" > "$OUT/train.log" 2>&1
cp outputs/gpu_overhead/metrics.csv "$OUT/metrics.csv" 2>/dev/null
$PY - "$OUT/metrics.csv" <<'PYEOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[2:]
ms = [1e3 * (float(b["seconds"]) - float(a["seconds"])) / (int(b["step"]) - int(a["step"])) for a, b in zip(rows, rows[1:])
      if int(b["step"]) > int(a["step"])]
print(f"in Lightning: {len(ms)} intervals, ms/step median {statistics.median(ms):.2f}, min {min(ms):.2f}, max {max(ms):.2f}")
PYEOF
capped 60 $PY bench/profile_train.py experiment=quintic_mlp_gpu dtype=float32 trainer.max_time=00:00:00:30 \
  data.n_test=10000 "${SIZES[@]}" --top 40 --out "$OUT/profile.txt" > /dev/null 2>&1
head -3 "$OUT/profile.txt"; sed -n '/by tottime/,/by cumulative/p' "$OUT/profile.txt" | head -45 | cut -c1-170
echo "done with $(left) s to spare"
