#!/usr/bin/env bash
# One-shot benchmark of a study's costs (benchmarks/gpu.py): HF SDPA vs vlens clean forward, LV-K on
# the SDPA and FlexAttention paths, efficient prefill, the whole study of one sample through the run
# API, peak memory. On CUDA: the 7B shape in bfloat16 at 32 frames, within 8 minutes on one H100.
# Without CUDA: small shapes on CPU. Results go to benchmarks/results/gpu-<device>.txt (+ .json).
#
#     benchmarks/gpu.sh                 # extra arguments go to gpu.py, e.g. --frames 16
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  tag=$("$PY" -c "import torch; print(torch.cuda.get_device_name().lower().replace(' ', '-'))")
else
  tag=cpu
fi
mkdir -p benchmarks/results
out=benchmarks/results/gpu-$tag.txt
timeout 480 "$PY" benchmarks/gpu.py --json "${out%.txt}.json" "$@" | tee "$out"
echo "wrote $out"
