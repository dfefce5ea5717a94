#!/usr/bin/env bash
# TSVDMatMul on the GPU machine in one call, after onnxruntime-gpu was staged (../shared/device):
# kernel-level GPU tests (ctypes shim) + compute-sanitizer memcheck, the ORT CUDA-EP tests of the op,
# and the full ORT-session benchmark grid (benchmarks/gpu_tsvd_ort.py). Carry .device/lib (the
# library built here with CUDA) and .device/shims (tests/gpu/build_shims.sh). Logs/tables in $OUT.
set -u
source /tmp/ort-gpu/env.sh
export ORTOPS_LIBRARY=$PWD/.device/lib/libortops.so PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, onnxruntime as ort, ort_ops, json; print(ort.__version__, ort.get_available_providers()); print(json.dumps(ort_ops.build_info()))" 2>&1 | tee "$out/env.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py > "$out/pytest_kernels.log" 2>&1
echo "kernel tests rc=$?: $(tail -1 "$out/pytest_kernels.log")"
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 7 .device/shims/tsvd_sanitize > "$out/sanitizer.log" 2>&1
echo "memcheck rc=$?: $(grep 'ERROR SUMMARY' "$out/sanitizer.log" | tail -1)"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_ort_cuda.py -k "tsvd or iobinding" > "$out/pytest_ort.log" 2>&1
echo "ORT tests rc=$?: $(tail -1 "$out/pytest_ort.log")"
timeout ${GRID_TIMEOUT:-420} python3 -c "import torch, runpy, sys; sys.argv=['gpu_tsvd_ort.py','--out','$out'] + sys.argv[1:]; runpy.run_path('benchmarks/gpu_tsvd_ort.py', run_name='__main__')" "$@" > "$out/tsvd_ort.log" 2>&1
echo "ORT grid rc=$?"; grep -v "^K" "$out/tsvd_ort.log" | tail -130
