#!/usr/bin/env bash
# Every benchmark on one CUDA GPU: JSON in bench/results/gpu/ (or $OUT_DIR), then one table.
#
#   bash bench/gpu.sh                         # ~10 min on one H100
#   DEVICE=cpu QUICK=1 bash bench/gpu.sh      # a small dry run of the same commands (no GPU)
#
# Needs torch and the nnflow package importable (pip install -e . or PYTHONPATH=.); no Hydra
# or Weights & Biases (the benchmarks call the library directly).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
OUT=${OUT_DIR:-bench/results/gpu}
mkdir -p "$OUT"
if [ "$DEVICE" = cuda ]; then
  $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench/gpu.sh needs a CUDA GPU (DEVICE=cpu for a dry run)')"
  $PY -c "import torch; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)"
fi
if [ "${QUICK:-0}" = 1 ]; then
  SAMPLING="--points 2000 --naive-points 200 --curvature-points 200"; BATCH="--batch 64"
  KERNELS="--points 16 --widths 32"; FLOW="--n 64 --steps 2 --mf-n 128"
else
  SAMPLING=""; BATCH="--batch 4096"
  KERNELS="--points 256 1024 --widths 512 2048"; FLOW="--n 2000 4000 --steps 50 --mf-n 10000 --mf-full"
fi

run() { echo; echo "== $*"; "$PY" "$@"; }
run bench/bench_sampling.py --device "$DEVICE" $SAMPLING --out "$OUT/sampling.json"
for dt in float64 float32 tf32; do
  run bench/bench_metric.py --device "$DEVICE" $BATCH --width 256 --dtype $dt --out "$OUT/metric_w256_$dt.json"
  run bench/bench_metric.py --device "$DEVICE" $BATCH --width 1024 --dtype $dt --out "$OUT/train_step_w1024_$dt.json"
done
for dt in float64 float32; do
  run bench/bench_step.py --device "$DEVICE" $BATCH --dtype $dt --out "$OUT/step_$dt.json"
done
run bench/bench_kernels.py --device "$DEVICE" $KERNELS --out "$OUT/kernels.json"
for dt in float64 float32; do
  run bench/bench_flow.py --device "$DEVICE" --dtype $dt $FLOW --out "$OUT/flow_$dt.json"
done
echo
"$PY" bench/gpu_table.py "$OUT"
