#!/usr/bin/env bash
# One device call for MultigrainAttention: GPU tests, compute-sanitizer on a small case, benchmark.
# Expects the shim prebuilt in .device/shims/ (tests/gpu/build_shims.sh attention). Logs in $OUT.
# Usage: tests/gpu/device_attention.sh [tests|sanitize|bench|quick|sass|probe]...  (default: tests sanitize bench)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/attn_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/tests/gpu:${PYTHONPATH:-}"
STEPS=("$@"); [ ${#STEPS[@]} -eq 0 ] && STEPS=(tests sanitize bench)
SUMMARY="$OUT/summary.txt"; : > "$SUMMARY"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader >> "$SUMMARY" 2>&1
for step in "${STEPS[@]}"; do
  case "$step" in
    tests)
      ORTOPS_TEST_RESULTS="$OUT/test_errors.txt" timeout 240 python3 -m pytest -q --timeout 200 \
        tests/gpu/test_attention_cuda.py > "$OUT/pytest.log" 2>&1
      echo "pytest rc=$? $(tail -1 "$OUT/pytest.log")" >> "$SUMMARY"
      grep -E "FAILED|Error|assert" "$OUT/pytest.log" | head -8 >> "$SUMMARY"
      sort -t= -k2 -g -r "$OUT/test_errors.txt" 2>/dev/null | head -3 >> "$SUMMARY" ;;
    sanitize)
      for tool in ${SANITIZE_TOOLS:-memcheck racecheck}; do
        large=""; [ "$tool" = memcheck ] && large=--large  # the 2-slot ring case: too slow for racecheck
        timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 python3 tests/gpu/sanitize_attention.py $large \
          > "$OUT/sanitizer_$tool.log" 2>&1
        echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|not supported' "$OUT/sanitizer_$tool.log" | tail -1)" >> "$SUMMARY"
      done ;;
    bench)
      timeout 300 python3 benchmarks/gpu_attention.py --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1
      echo "bench rc=$?" >> "$SUMMARY"; sed -n '/^NVIDIA\|^ B /,$p' "$OUT/bench.log" | tail -40 >> "$SUMMARY" ;;
    probe)  # the warpgroup-MMA descriptors alone, one 64x64x64 tile per operand layout
      timeout 60 .device/shims/wgmma_probe > "$OUT/probe.log" 2>&1
      echo "wgmma probe rc=$? $(tail -1 "$OUT/probe.log")" >> "$SUMMARY" ;;
    sass)  # which tensor-core instructions the shim's band kernels use (HGMMA = wgmma)
      echo "sass: HGMMA $(cuobjdump --dump-sass .device/shims/libattention_shim.so | grep -c HGMMA)," \
        "HMMA $(cuobjdump --dump-sass .device/shims/libattention_shim.so | grep -c HMMA)" >> "$SUMMARY" ;;
    quick)  # headline shape only, once per shim variant in .device/shims (libattention_shim*.so)
      for so in .device/shims/libattention_shim*.so; do
        v=$(basename "$so" .so)
        ORTOPS_ATTENTION_SHIM="$PWD/$so" timeout 200 python3 benchmarks/gpu_attention.py --quick --no-flex --no-hf \
          > "$OUT/quick_$v.log" 2>&1
        echo "quick $v rc=$?" >> "$SUMMARY"; tail -7 "$OUT/quick_$v.log" >> "$SUMMARY"
      done ;;
  esac
done
cat "$SUMMARY"
