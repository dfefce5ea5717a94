#!/usr/bin/env bash
# One GPU call for the in-kernel split sums of TSVDMatMul (small M), after onnxruntime-gpu was
# staged (../shared/device): TSVD kernel tests, compute-sanitizer memcheck, kernel-level A/B of
# in-kernel sums against the finalize kernel (benchmarks/gpu_tsvd.py --variants small, M = 1, 16,
# CUDA graphs), all ORT CUDA-EP tests, and the ORT-session grid at M <= 16 with and without CUDA
# graphs (benchmarks/gpu_tsvd_ort.py); with .device/lib_prev, an ORT-level A/B against that library.
# Carry .device/lib and .device/shims (and .device/lib_prev). Logs/tables in $OUT.
set -u
have_ort=0; [ -f /tmp/ort-gpu/env.sh ] && source /tmp/ort-gpu/env.sh && have_ort=1  # kernel steps run without it
export ORTOPS_LIBRARY=$PWD/.device/lib/libortops.so PYTHONPATH=$PWD:$PWD/tests/gpu:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, ort_ops, json; print(torch.__version__); print(json.dumps(ort_ops.build_info()))" 2>&1 | tee "$out/env.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py > "$out/pytest_kernels.log" 2>&1
echo "kernel tests rc=$?: $(tail -1 "$out/pytest_kernels.log")"
grep -E "^(FAILED|ERROR)" "$out/pytest_kernels.log" | head -20
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 7 .device/shims/tsvd_sanitize > "$out/sanitizer.log" 2>&1
echo "memcheck rc=$?: $(grep 'ERROR SUMMARY' "$out/sanitizer.log" | tail -1)"
if [ -f .device/shims/libattention_shim.so ]; then  # the shared launch helper changed under both ops
  timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_attention_cuda.py > "$out/pytest_attention.log" 2>&1
  echo "attention kernel tests rc=$?: $(tail -1 "$out/pytest_attention.log")"
fi
ms=${SPLIT_MS:-1,4,16,64}
timeout 150 python3 benchmarks/gpu_tsvd.py --ms "$ms" --shapes 4096x4096,4096x14336 --variants small --out "$out" \
  --label _split_sum > "$out/gpu_tsvd_small.log" 2>&1
echo "kernel A/B rc=$?"; grep "^K" "$out/gpu_tsvd_small.log" | sed -E 's/ err [0-9.e+-]+//g; s/\| *[0-9.]+ TB\/s .*TF\/s *//' | cut -c1-200
if [ -f .device/shims/v2/libtsvd_shim.so ]; then  # the previous build, same run (A/B)
  timeout 100 python3 benchmarks/gpu_tsvd.py --ms "$ms" --shapes 4096x4096,4096x14336 --variants none --out "$out" \
    --shim .device/shims/v2/libtsvd_shim.so --label _v2 > "$out/gpu_tsvd_v2.log" 2>&1
  echo "previous build rc=$?"; grep "^K" "$out/gpu_tsvd_v2.log" | sed -E 's/ err [0-9.e+-]+//g; s/\| *[0-9.]+ TB\/s .*TF\/s *//' | cut -c1-120
fi
[ $have_ort = 1 ] || { echo "onnxruntime-gpu not staged: ORT steps skipped"; exit 0; }
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_ort_cuda.py > "$out/pytest_ort.log" 2>&1
echo "ORT tests rc=$?: $(tail -1 "$out/pytest_ort.log")"
timeout 130 python3 -c "import torch, runpy, sys; sys.argv=['gpu_tsvd_ort.py','--ms','1,16','--out','$out']; runpy.run_path('benchmarks/gpu_tsvd_ort.py', run_name='__main__')" > "$out/tsvd_ort_small.log" 2>&1
echo "ORT M<=16 rc=$?"; grep "^|" "$out/tsvd_ort_small.log" | tail -52
timeout 90 python3 -c "import torch, runpy, sys; sys.argv=['gpu_tsvd_ort.py','--graph-only','--shapes','4096x4096,4096x14336','--ms','1,16','--out','$out']; runpy.run_path('benchmarks/gpu_tsvd_ort.py', run_name='__main__')" > "$out/tsvd_ort_graph.log" 2>&1
echo "ORT graph rows rc=$?"; grep "^|" "$out/tsvd_ort_graph.log" | tail -10; grep -v "^[|K]" "$out/tsvd_ort_graph.log" | tail -5
if [ -f .device/lib_prev/libortops.so ]; then  # ORT-level A/B: the previous library (finalize kernel only), then this one again
  for side in prev new; do
    lib=$PWD/.device/lib/libortops.so; [ $side = prev ] && lib=$PWD/.device/lib_prev/libortops.so
    mkdir -p "$out/ab_$side"
    ORTOPS_LIBRARY=$lib timeout 80 python3 -c "import torch, runpy, sys; sys.argv=['gpu_tsvd_ort.py','--shapes','4096x4096,4096x14336','--ms','1,16','--out','$out/ab_$side']; runpy.run_path('benchmarks/gpu_tsvd_ort.py', run_name='__main__')" > "$out/ab_$side.log" 2>&1
    echo "ORT A/B $side rc=$?"; grep "^|" "$out/ab_$side.log" | tail -18
  done
fi
