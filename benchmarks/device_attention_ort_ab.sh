#!/usr/bin/env bash
# One device call after onnxruntime-gpu was staged: MultigrainAttention through ORT (tests and the
# LongformerAttention comparison) with the carried library, then the kernel-level quick row with
# an A/B option (shim option bits, default 64 = the band as an ordinary launch) and the band
# kernel's issue-stall profile (benchmarks/device_ncu_band.sh). Logs in $OUT.
# Usage: [AB_BITS=64] bash benchmarks/device_attention_ort_ab.sh
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
ATTENTION=1 TSVD=0 OUT="$out" bash benchmarks/device_ort_suite.sh
export PYTHONPATH=$PWD/tests/gpu:$PWD:${PYTHONPATH:-}
for i in 1 2; do
  timeout 120 python3 benchmarks/gpu_attention.py --quick --no-flex --no-hf --extra-parts "${AB_BITS:-64}" 2>&1 \
    | tee "$out/quick_ab_$i.log" | tail -9
done
OUT="$out" bash benchmarks/device_ncu_band.sh
