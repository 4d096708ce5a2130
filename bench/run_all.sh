#!/bin/bash
# Runs every CPU benchmark in turn (each rewrites its section of BENCHMARKS.md); about 30 minutes on 2 cores.
# The GPU benchmark runs on a machine with JAX + CUDA: see bench/gpu_step.py.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
status=0
for b in input_pipeline train_step inference metrics label_stats; do
  echo "=== $b ($(date +%T))"
  TF_CPP_MIN_LOG_LEVEL=2 "$PYTHON" "bench/$b.py" || status=1
done
exit $status
