#!/usr/bin/env bash
# One GPU call for TSVDMatMul's fused Hopper kernel (tsvd_cuda_wgmma.cuh): the warpgroup-MMA probe
# (descriptor layouts, incl. the narrow MN-major products of stage 1), the TSVD kernel tests,
# compute-sanitizer memcheck and racecheck on tsvd_sanitize, then the kernel-level A/B
# (benchmarks/gpu_tsvd.py --variants hopper: the default launcher, the Hopper kernel forced, the
# two-stage path and the fused mma.sync kernel; CUDA graphs, fp16) at large M.
# Carry .device/shims. Logs and tables in $OUT. BENCH_MS / BENCH_SHAPES override the grid,
# BENCH_VARIANTS the variant set (gpu_tsvd.py --variants); BASE_SHIM=path adds an A/B against another
# build of the launcher, timed row by row in the same run (variant "base"); PARTS=tests or bench runs
# only that half; NCU_LINES=0 skips the profile. TEST_K: the first (fail-fast) test selection (pytest -k,
# default wgmma); ALL_TESTS=0 skips the whole TSVD and attention suites; SANITIZERS: the tools run (default
# memcheck racecheck; empty: none).
set -u
export PYTHONPATH=$PWD:$PWD/tests/gpu:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
parts=${PARTS:-tests bench}
if [[ " $parts " == *" tests "* ]]; then
timeout 30 .device/shims/wgmma_probe > "$out/probe.log" 2>&1; echo "probe rc=$?"; cat "$out/probe.log"
timeout 180 python3 -m pytest -q -p no:cacheprovider -x tests/gpu/test_tsvd_cuda.py -k "${TEST_K:-wgmma}" > "$out/pytest_wgmma.log" 2>&1
echo "wgmma tests rc=$?: $(tail -1 "$out/pytest_wgmma.log")"
grep -E "^(FAILED|ERROR)|Error|assert" "$out/pytest_wgmma.log" | head -20
if [ "${ALL_TESTS:-1}" = 1 ]; then
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py > "$out/pytest_tsvd.log" 2>&1
echo "all TSVD kernel tests rc=$?: $(tail -1 "$out/pytest_tsvd.log")"
grep -E "^(FAILED|ERROR)" "$out/pytest_tsvd.log" | head -20
fi
if [ -f .device/shims/libattention_shim.so ] && [ "${ALL_TESTS:-1}" = 1 ]; then  # the warpgroup-MMA header is shared with the attention band
  timeout 120 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_attention_cuda.py > "$out/pytest_attention.log" 2>&1
  echo "attention kernel tests rc=$?: $(tail -1 "$out/pytest_attention.log")"
fi
for tool in ${SANITIZERS-memcheck racecheck}; do
  timeout 90 compute-sanitizer --tool $tool --error-exitcode 7 .device/shims/tsvd_sanitize > "$out/$tool.log" 2>&1
  echo "$tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/$tool.log" | tail -1)"
done
[ -f "$out/memcheck.log" ] && grep -E "path [35]|FAIL|OK" "$out/memcheck.log" | tail -6
fi
[[ " $parts " == *" bench "* ]] || exit 0
timeout ${BENCH_TIMEOUT:-200} python3 benchmarks/gpu_tsvd.py --ms "${BENCH_MS:-256,1024,8192}" \
  --shapes "${BENCH_SHAPES:-4096x4096,4096x14336}" --variants "${BENCH_VARIANTS:-hopper}" \
  ${BASE_SHIM:+--ab-shim "$BASE_SHIM"} --out "$out" --label _hopper > "$out/bench.log" 2>&1
echo "bench rc=$?"; grep -E "^(#|K)" "$out/bench.log" | sed -E 's/ err [0-9.e+-]+//g; s/\| *[0-9.]+ TB\/s .*TF\/s *//' | cut -c1-230
[ "${NCU_LINES:-110}" = 0 ] && exit 0
# Where the Hopper kernel's time goes: Nsight Compute warp states and stall sources, one case.
timeout 120 ncu --clock-control none -k regex:tsvd_wgmma --launch-count 1 --section SpeedOfLight --section WarpStateStats \
  --section SourceCounters python3 benchmarks/profile_kernels.py tsvd 4096 4096 1024 4 128 3 > "$out/ncu.txt" 2>&1
echo "ncu rc=$?"
sed -n '/Section: GPU Speed Of Light/,$p' "$out/ncu.txt" | grep -vE "^ +-+ +-+" | cut -c1-150 | head -${NCU_LINES:-110}
