#!/usr/bin/env bash
# One GPU call for TSVDMatMul's decode kernel (tsvd_cuda_decode.cuh, M <= 16): its tests first (so a
# wrong TMA layout shows at once), then every TSVD kernel test, compute-sanitizer memcheck and
# racecheck on tsvd_sanitize, then the kernel-level timing (benchmarks/gpu_tsvd.py --variants
# decode: the default launcher, now the decode kernel, beside the fused mma.sync kernel it replaces,
# row by row in one run; CUDA graphs, fp16) and one Nsight Compute profile.
# Carry .device/shims. Logs and tables in $OUT. BENCH_MS / BENCH_SHAPES override the grid;
# PARTS=tests or bench runs only that half; NCU_LINES=0 skips the profile; SWEEP_SHAPES= (empty)
# skips the cluster-size / ring-depth sweep.
set -u
export PYTHONPATH=$PWD:$PWD/tests/gpu:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
parts=${PARTS:-tests bench}
if [[ " $parts " == *" tests "* ]]; then
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py -k "decode or ignored" \
  > "$out/pytest_decode.log" 2>&1
echo "decode tests rc=$?: $(tail -1 "$out/pytest_decode.log")"
grep -E "^(FAILED|ERROR)|Error|assert" "$out/pytest_decode.log" | head -20
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py -k "not decode and not ignored" \
  > "$out/pytest_tsvd.log" 2>&1
echo "other TSVD kernel tests rc=$?: $(tail -1 "$out/pytest_tsvd.log")"
grep -E "^(FAILED|ERROR)" "$out/pytest_tsvd.log" | head -20
for tool in memcheck racecheck; do
  timeout 90 compute-sanitizer --tool $tool --error-exitcode 7 .device/shims/tsvd_sanitize > "$out/$tool.log" 2>&1
  echo "$tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/$tool.log" | tail -1)"
done
grep -E "path 4|FAIL|OK" "$out/memcheck.log" | tail -4
fi
[[ " $parts " == *" bench "* ]] || exit 0
python3 - <<'PY' 2>&1 | tee "$out/plans.txt"  # the decode kernel's cluster size and ring on this device
import ctypes
lib = ctypes.CDLL(".device/shims/libtsvd_shim.so")
lib.ortops_test_tsvd_decode_plan.argtypes = [ctypes.c_int64] * 6 + [ctypes.POINTER(ctypes.c_int64)]
for K, N in ((768, 3072), (3072, 768), (4096, 4096), (4096, 14336)):
    for t in (128, 256):
        for c in (2, 4, 8):
            out = (ctypes.c_int64 * 4)()
            lib.ortops_test_tsvd_decode_plan(1, K, N, t, t, t // (2 * c), out)
            print(f"plan K{K} N{N} t{t} c{c}: {out[0]} CTAs a cluster, {out[1]} slots, {out[2]} consumers, {out[3] // 1024} KB")
PY
timeout ${BENCH_TIMEOUT:-200} python3 benchmarks/gpu_tsvd.py --ms "${BENCH_MS:-1,16}" \
  --shapes "${BENCH_SHAPES:-768x3072,3072x768,4096x4096,4096x14336}" --variants decode \
  --out "$out" --label _decode > "$out/bench.log" 2>&1
echo "bench rc=$?"; grep -E "^(#|K)" "$out/bench.log" | sed -E 's/ err [0-9.e+-]+//g; s/\| *[0-9.]+ TB\/s .*TF\/s *//' | cut -c1-230
grep -E "Error|error" "$out/bench.log" | head -5
if [ -n "${SWEEP_SHAPES-4096x4096,4096x14336}" ]; then  # cluster size and ring depth, forced one at a time
  timeout ${SWEEP_TIMEOUT:-150} python3 benchmarks/gpu_tsvd.py --ms "${SWEEP_MS:-1,16}" --shapes "${SWEEP_SHAPES:-4096x4096,4096x14336}" \
    --variants decode_sweep --out "$out" --label _decode_sweep > "$out/sweep.log" 2>&1
  echo "sweep rc=$?"; grep -E "^K" "$out/sweep.log" | sed -E 's/ err [0-9.e+-]+//g; s/\| *[0-9.]+ TB\/s .*TF\/s *//; s/dense .*tsvd/tsvd/' | cut -c1-230
  grep -E "Error|error" "$out/sweep.log" | head -5
fi
[ "${NCU_LINES:-80}" = 0 ] && exit 0
# Where the decode kernel's time goes: one case, DRAM throughput and warp states.
timeout 120 ncu --clock-control none -k regex:tsvd_decode --launch-count 1 --section SpeedOfLight --section WarpStateStats \
  --section MemoryWorkloadAnalysis --section SourceCounters python3 benchmarks/profile_kernels.py tsvd 4096 14336 1 4 128 4 > "$out/ncu.txt" 2>&1
echo "ncu rc=$?"
sed -n '/Section: GPU Speed Of Light/,$p' "$out/ncu.txt" | grep -vE "^ +-+ +-+" | cut -c1-150 | head -${NCU_LINES:-80}
