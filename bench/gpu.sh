#!/usr/bin/env bash
# Every benchmark on one CUDA GPU: JSON in bench/results/gpu/ (or $OUT_DIR), then one table.
#
#   bash bench/gpu.sh                 # ~10 min on one H100
#
# Needs torch with CUDA and the nnflow package importable (pip install -e . or PYTHONPATH=.);
# no Hydra or Weights & Biases (the benchmarks call the library directly).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT_DIR:-bench/results/gpu}
mkdir -p "$OUT"
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench/gpu.sh needs a CUDA GPU')"
$PY -c "import torch; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)"

run() { echo; echo "== $*"; "$PY" "$@"; }
run bench/bench_sampling.py --device cuda --out "$OUT/sampling.json"
for dt in float64 float32 tf32; do
  run bench/bench_metric.py --device cuda --width 256 --dtype $dt --out "$OUT/metric_w256_$dt.json"
  run bench/bench_metric.py --device cuda --width 1024 --dtype $dt --out "$OUT/train_step_w1024_$dt.json"
done
run bench/bench_kernels.py --device cuda --points 256 1024 --widths 512 2048 --out "$OUT/kernels.json"
run bench/bench_flow.py --device cuda --n 2000 4000 --steps 50 --mf-n 10000 --mf-full --out "$OUT/flow_float64.json"
run bench/bench_flow.py --device cuda --dtype float32 --n 2000 4000 --steps 50 --mf-n 10000 --mf-full --out "$OUT/flow_float32.json"
echo
"$PY" bench/gpu_table.py "$OUT"
