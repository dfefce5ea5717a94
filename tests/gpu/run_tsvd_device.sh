#!/usr/bin/env bash
# One device call for TSVDMatMul: GPU tests, compute-sanitizer, benchmark; logs under $OUT, a
# short summary last. Needs the shim built here first (tests/gpu/build_shims.sh) and carried:
#   run(command="tests/gpu/run_tsvd_device.sh", carry=[".device/shims"])
# BENCH_ARGS (e.g. --quick) is passed to benchmarks/gpu_tsvd.py; SKIP_TESTS=1 skips phases 1-2.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/tsvd_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
git log -1 --format=%H > "$OUT/commit.txt" 2>/dev/null
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout 60 .device/shims/tsvd_sanitize > "$OUT/sanitize_plain.log" 2>&1; echo "plain check rc=$?" >> "$OUT/summary.txt"
  timeout 200 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py -rf > "$OUT/pytest.log" 2>&1
  echo "pytest rc=$?: $(tail -1 "$OUT/pytest.log")" >> "$OUT/summary.txt"
  timeout 120 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 7 .device/shims/tsvd_sanitize \
    > "$OUT/sanitizer.log" 2>&1; echo "memcheck rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)" >> "$OUT/summary.txt"
  timeout 120 compute-sanitizer --tool racecheck --error-exitcode 7 .device/shims/tsvd_sanitize \
    >> "$OUT/sanitizer.log" 2>&1; echo "racecheck rc=$?: $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)" >> "$OUT/summary.txt"
  timeout 60 compute-sanitizer --tool initcheck --error-exitcode 7 .device/shims/tsvd_sanitize \
    >> "$OUT/sanitizer.log" 2>&1; echo "initcheck rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)" >> "$OUT/summary.txt"
fi
timeout "${BENCH_TIMEOUT:-300}" python3 benchmarks/gpu_tsvd.py --out "$OUT" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
echo "bench rc=$?" >> "$OUT/summary.txt"
echo "=== failures ==="; grep -E "FAILED|Error|error" "$OUT/pytest.log" 2>/dev/null | head -15
grep -v "^ok\|rel err" "$OUT/sanitize_plain.log" 2>/dev/null | head; grep FAIL "$OUT/sanitize_plain.log" 2>/dev/null | head
echo "=== bench ==="; grep -E "^K|^#" "$OUT/bench.log" | cut -c1-175 | tail -130
echo "=== summary ==="; cat "$OUT/summary.txt"
