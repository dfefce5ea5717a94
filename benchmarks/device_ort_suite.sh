#!/usr/bin/env bash
# One call on the GPU machine, after onnxruntime-gpu was staged (../shared/device scripts):
# the op library built on the build machine (.device/lib/libortops.so, carried) loaded into
# onnxruntime-gpu; the GPU tests through ORT sessions; the ORT-session benchmarks of both ops.
# Logs and tables go to $OUT. Usage: bash benchmarks/device_ort_suite.sh [quick]
# TSVD_GRID=full: the TSVD benchmark's whole grid plus its CUDA-graph rows instead of --quick;
# TSVD_ARGS="...": gpu_tsvd_ort.py with these arguments instead; ATTENTION=0 skips the attention benchmark;
# TSVD=0 skips the TSVD benchmark.
set -uo pipefail
source /tmp/ort-gpu/env.sh
export ORTOPS_LIBRARY=$PWD/.device/lib/libortops.so PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, onnxruntime as ort, ort_ops, json; print(ort.__version__, ort.get_available_providers()); print(json.dumps(ort_ops.build_info()))" 2>&1 | tee "$out/env.txt"
python3 -m pytest -q -p no:cacheprovider tests/gpu/test_ort_cuda.py 2>&1 | tee "$out/test_ort_cuda.log" | tail -15
quick=${1:-}
[ "${ATTENTION:-1}" = 0 ] || timeout 200 python3 benchmarks/gpu_attention_ort.py ${quick:+--quick} 2>&1 | tee "$out/attention_ort.md"
if [ "${TSVD:-1}" = 0 ]; then
  :
elif [ -n "${TSVD_ARGS:-}" ]; then  # e.g. TSVD_ARGS="--ms 1,16,128 --cuda-graph": a part of the grid
  timeout 400 python3 benchmarks/gpu_tsvd_ort.py $TSVD_ARGS --out "$out" > "$out/tsvd_ort.log" 2>&1
  echo "TSVD ORT rc=$?"; grep -v "^K" "$out/tsvd_ort.log" | tail -75
elif [ "${TSVD_GRID:-quick}" = full ]; then
  timeout 330 python3 benchmarks/gpu_tsvd_ort.py --cuda-graph --out "$out" > "$out/tsvd_ort.log" 2>&1
  echo "TSVD ORT grid rc=$?"; grep -v "^K" "$out/tsvd_ort.log" | tail -75
else
  timeout 240 python3 benchmarks/gpu_tsvd_ort.py --quick --out "$out" 2>&1 | tee "$out/tsvd_ort.log" | tail -20
fi
