#!/usr/bin/env bash
# The closing GPU check of a change to the kernels, in one call after onnxruntime-gpu was staged:
# kernel-level GPU tests of both ops (ctypes shims), the ORT CUDA-EP tests with the carried library,
# the ORT-session attention benchmark, and the CUDA-graph rows of the ORT-session TSVD benchmark
# (the full TSVD grid is benchmarks/device_tsvd_ort.sh). Carry .device/lib and .device/shims
# (built here: cmake build + tests/gpu/build_shims.sh). Logs and tables in $OUT.
set -u
source /tmp/ort-gpu/env.sh
export ORTOPS_LIBRARY=$PWD/.device/lib/libortops.so PYTHONPATH=$PWD:$PWD/tests/gpu:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, onnxruntime as ort, ort_ops, json; print(ort.__version__); print(json.dumps(ort_ops.build_info()))" 2>&1 | tee "$out/env.txt"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py tests/gpu/test_attention_cuda.py \
  > "$out/pytest_kernels.log" 2>&1
echo "kernel tests rc=$?: $(tail -1 "$out/pytest_kernels.log")"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_ort_cuda.py > "$out/pytest_ort.log" 2>&1
echo "ORT tests rc=$?: $(tail -1 "$out/pytest_ort.log")"
timeout 200 python3 benchmarks/gpu_attention_ort.py > "$out/attention_ort.md" 2>&1
echo "attention ORT bench rc=$?"; tail -12 "$out/attention_ort.md"
timeout 200 python3 -c "import torch, runpy, sys; sys.argv=['gpu_tsvd_ort.py','--graph-only','--shapes','4096x4096,4096x14336','--ms','1,16','--out','$out']; runpy.run_path('benchmarks/gpu_tsvd_ort.py', run_name='__main__')" > "$out/tsvd_ort_graph.log" 2>&1
echo "TSVD ORT graph rows rc=$?"; grep -v "^K" "$out/tsvd_ort_graph.log" | tail -16
