#!/usr/bin/env bash
# One short GPU lease (about 9 min on one H100) in a single command:
#   0. the training-step routes (bench_step.py: direct, reference, packed, compiled with CUDA graphs);
#   1. the quintic GPU target (issue 3): nnflow-train experiment=quintic_mlp_gpu with a
#      $TRAIN_TIME training budget, in the background;
#   2. meanwhile, the CUDA tests (CPU/CUDA agreement, float32/TF32 against float64, GPU presets);
#   3. after the training, a medium set of benchmarks, each cut to the time that is left.
# Everything lands in $OUT (default bench/results/gpu): the logs, the run's summary.json and
# metrics.csv, and the benchmark JSON as one tarball (a lease brings back at most 8 files).
#
#   bash bench/gpu_lease.sh                                      # on the GPU machine
#   DEVICE=cpu TRAIN_TIME=00:00:00:20 DEADLINE_S=240 bash bench/gpu_lease.sh   # dry run here
#   TRAIN_ARGS="data.batch_size=16384 optim.optimizer.lr=2e-2" bash bench/gpu_lease.sh   # other settings
#
# Needs torch, lightning, gpytorch, hydra-core and omegaconf importable (PYTHONPATH=. for nnflow).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-bench/results/gpu}
TRAIN_TIME=${TRAIN_TIME:-00:00:05:45}
DTYPE=${DTYPE:-float32}
DEADLINE=$(( $(date +%s) + ${DEADLINE_S:-560} ))
mkdir -p "$OUT" "$OUT/bench"
export WANDB_MODE=offline PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
left() { echo $(( DEADLINE - $(date +%s) )); }
capped() { local cap=$1; shift; local t; t=$(left); [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt 15 ]; then echo "skipped (no time left): $*"; return 0; fi
  echo "== $* (at most ${t}s)"; timeout "$t" "$@" || echo "exit $? : $*"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import torch, lightning; print('torch', torch.__version__, '| lightning', lightning.__version__, '| cuda', torch.cuda.is_available())"
  nproc; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

# 0. the training step by route (the compiled one is what the preset trains with)
capped 100 $PY bench/bench_step.py --device "$DEVICE" --batch 4096 --steps 20 --dtype "$DTYPE" --out "$OUT/bench/step_$DTYPE.json" \
  > "$OUT/step.log" 2>&1
cat "$OUT/step.log" | grep -v Warning | tail -8

# 1. the quintic target, in the background
TRAIN_DEVICE=(); [ "$DEVICE" = cpu ] && TRAIN_DEVICE=(trainer=cpu data.n_train=4096 data.n_test=4096)
(
  start=$(date +%s)
  timeout $(( $(left) - 5 )) $PY -c "from nnflow.cli.train import main; main()" experiment=quintic_mlp_gpu logger=csv \
    dtype="$DTYPE" trainer.enable_progress_bar=false trainer.max_time="$TRAIN_TIME" hydra.run.dir=outputs/gpu_lease_quintic \
    "${TRAIN_DEVICE[@]}" ${TRAIN_ARGS:-} > "$OUT/train.log" 2>&1
  echo "exit $? after $(( $(date +%s) - start )) s (whole command: sampling, training, test)" >> "$OUT/train.log"
  cp outputs/gpu_lease_quintic/summary.json "$OUT/quintic_summary.json" 2>/dev/null
  cp outputs/gpu_lease_quintic/metrics.csv "$OUT/quintic_metrics.csv" 2>/dev/null
) &
TRAIN_PID=$!

# 2. the CUDA tests, next to the training (few threads: the training's launch thread keeps a core)
OMP_NUM_THREADS=4 capped 240 $PY -m pytest -q -p no:cacheprovider -k "cuda or gpu or precision or float32 or tf32 or compile or packed or routes" \
  tests/test_kernels_gpu.py tests/test_precision.py tests/test_flows.py tests/test_sampling.py tests/test_training.py \
  > "$OUT/tests.log" 2>&1
tail -3 "$OUT/tests.log"
wait $TRAIN_PID
tail -2 "$OUT/train.log"; cat "$OUT/quintic_summary.json" 2>/dev/null

# 3. benchmarks, most wanted first, each within the time left
{
  capped 60 $PY bench/bench_metric.py --device "$DEVICE" --batch 4096 --width 256 --dtype float64 --out "$OUT/bench/metric_w256_float64.json"
  capped 60 $PY bench/bench_metric.py --device "$DEVICE" --batch 4096 --width 256 --dtype float32 --out "$OUT/bench/metric_w256_float32.json"
  capped 40 $PY bench/bench_sampling.py --device "$DEVICE" --out "$OUT/bench/sampling.json"
  capped 60 $PY bench/bench_flow.py --device "$DEVICE" --dtype float64 --n 2000 --steps 20 --mf-n 0 --out "$OUT/bench/flow_float64.json"
  capped 60 $PY bench/bench_metric.py --device "$DEVICE" --batch 4096 --width 1024 --dtype float64 --out "$OUT/bench/train_step_w1024_float64.json"
  capped 90 $PY bench/bench_kernels.py --device "$DEVICE" --points 256 --widths 2048 --max-seconds 60 --out "$OUT/bench/kernels.json"
  echo; $PY bench/gpu_table.py "$OUT/bench"
} > "$OUT/bench.log" 2>&1
cat "$OUT/bench.log" | tail -30
tar czf "$OUT/bench_json.tar.gz" -C "$OUT" bench && rm -r "$OUT/bench"
echo "done with $(left) s to spare"
