#!/usr/bin/env bash
# One device call for TSVDMatMul: GPU tests, compute-sanitizer, benchmark; logs under $OUT, a
# short summary last. Needs the shim built here first (tests/gpu/build_shims.sh) and carried:
#   run(command="tests/gpu/run_tsvd_device.sh", carry=[".device/shims"])
# BENCH_ARGS (e.g. --quick, --large) is passed to benchmarks/gpu_tsvd.py; SKIP_TESTS=1 skips phases 1-2;
# SKIP_V1=1 skips timing the older build in .device/shims/v1 (its shim lacks the --large knobs).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/tsvd_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader | tee "$OUT/summary.txt"
echo "commit $(git log -1 --format=%H 2>/dev/null) $(git status --short ort_ops/csrc/tsvd | wc -l) changed tsvd files" >> "$OUT/summary.txt"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout 60 .device/shims/tsvd_sanitize > "$OUT/sanitizer.log" 2>&1; echo "plain check rc=$?" >> "$OUT/summary.txt"
  timeout "${PYTEST_TIMEOUT:-200}" python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py -rf > "$OUT/pytest.log" 2>&1
  echo "pytest rc=$?: $(tail -1 "$OUT/pytest.log")" >> "$OUT/summary.txt"
  timeout "${SAN_TIMEOUT:-120}" compute-sanitizer --tool memcheck --leak-check full --error-exitcode 7 .device/shims/tsvd_sanitize \
    >> "$OUT/sanitizer.log" 2>&1; echo "memcheck rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)" >> "$OUT/summary.txt"
  timeout "${SAN_TIMEOUT:-120}" compute-sanitizer --tool racecheck --error-exitcode 7 .device/shims/tsvd_sanitize \
    >> "$OUT/sanitizer.log" 2>&1; echo "racecheck rc=$?: $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)" >> "$OUT/summary.txt"
  timeout "${SAN_TIMEOUT:-60}" compute-sanitizer --tool initcheck --error-exitcode 7 .device/shims/tsvd_sanitize \
    >> "$OUT/sanitizer.log" 2>&1; echo "initcheck rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)" >> "$OUT/summary.txt"
fi
timeout "${BENCH_TIMEOUT:-300}" python3 benchmarks/gpu_tsvd.py --out "$OUT" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
echo "bench rc=$?" >> "$OUT/summary.txt"
if [ "${SKIP_V1:-0}" != 1 ] && [ -f .device/shims/v1/libtsvd_shim.so ]; then  # A/B: an earlier build of the launcher, same run
  timeout "${BENCH_TIMEOUT:-300}" python3 benchmarks/gpu_tsvd.py --out "$OUT" --shim .device/shims/v1/libtsvd_shim.so \
    --label _v1 --variants none ${BENCH_ARGS:-} > "$OUT/bench_v1.log" 2>&1
  echo "bench v1 rc=$?" >> "$OUT/summary.txt"
fi
echo "=== failures ==="; grep -E "FAILED|Error|error" "$OUT/pytest.log" 2>/dev/null | head -15
grep FAIL "$OUT/sanitizer.log" 2>/dev/null | head
echo "=== bench (time us: v1 -> now; speedup over cuBLAS now) ==="
python3 - "$OUT" <<'PY'
import json, os, sys
d = sys.argv[1]
now = json.load(open(os.path.join(d, "gpu_tsvd.json")))["rows"]
v1p = os.path.join(d, "gpu_tsvd_v1.json")
old = {(r["K"], r["N"], r["M"], r["c"], r["tile"]): r for r in json.load(open(v1p))["rows"]} if os.path.exists(v1p) else {}
for r in now:
    k = (r["K"], r["N"], r["M"], r["c"], r["tile"]); o = old.get(k)
    v = r.get("variants") or {}
    print(f"{r['K']}x{r['N']} M{r['M']} c{r['c']} t{r['tile']}: dense {r['dense_us']:.1f} lr {r['lowrank_us']:.1f} "
          f"tsvd {o['tsvd_us'] if o else float('nan'):.1f}->{r['tsvd_us']:.1f} x{r['speedup']:.2f} err {r['rel_err']:.0e}"
          + "".join(f" {k} {x['us']:.1f}" for k, x in v.items()))
PY
echo "=== summary ==="; cat "$OUT/summary.txt"
