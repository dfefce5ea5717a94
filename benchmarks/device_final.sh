#!/usr/bin/env bash
# The closing GPU check of a change to the kernels, in one call after onnxruntime-gpu was staged:
# kernel-level GPU tests (ctypes shims), compute-sanitizer on the TSVD paths, the ORT CUDA-EP
# tests with the carried library, and the quick ORT-session TSVD benchmark. Carry .device/lib
# and .device/shims (built here: cmake build + tests/gpu/build_shims.sh).
set -u
source /tmp/ort-gpu/env.sh
export ORTOPS_LIBRARY=$PWD/.device/lib/libortops.so PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py tests/gpu/test_attention_cuda.py \
  tests/gpu/test_ort_cuda.py > "$out/pytest.log" 2>&1
echo "pytest rc=$?: $(tail -1 "$out/pytest.log")"
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 7 .device/shims/tsvd_sanitize > "$out/sanitizer.log" 2>&1
echo "memcheck rc=$?: $(grep 'ERROR SUMMARY' "$out/sanitizer.log" | tail -1)"
timeout 120 python3 -c "import torch, runpy, sys; sys.argv=['gpu_tsvd_ort.py','--quick','--out','$out']; runpy.run_path('benchmarks/gpu_tsvd_ort.py', run_name='__main__')" > "$out/tsvd_ort.log" 2>&1
echo "tsvd ort bench rc=$?"; tail -12 "$out/tsvd_ort.log"
