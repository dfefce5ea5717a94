#!/usr/bin/env bash
# One device call after onnxruntime-gpu was staged: MultigrainAttention through ORT (tests and the
# LongformerAttention comparison) with the carried library, then the kernel-level quick row with
# an A/B option (shim option bits, default 64 = the band as an ordinary launch) and the band
# kernel's issue-stall profile (ncu) at S = 4096 and 16384. Logs in $OUT.
# Usage: [AB_BITS=64] bash benchmarks/device_attention_ort_ab.sh
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
ATTENTION=1 TSVD=0 OUT="$out" bash benchmarks/device_ort_suite.sh
export PYTHONPATH=$PWD/tests/gpu:$PWD:${PYTHONPATH:-}
for i in 1 2; do
  timeout 120 python3 benchmarks/gpu_attention.py --quick --no-flex --no-hf --extra-parts "${AB_BITS:-64}" 2>&1 \
    | tee "$out/quick_ab_$i.log" | tail -9
done
M=smsp__inst_executed.sum,smsp__cycles_active.avg,smsp__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active
for st in barrier long_scoreboard short_scoreboard wait math_pipe_throttle mio_throttle not_selected selected no_instruction branch_resolving dispatch_stall lg_throttle membar sleeping; do
  M=$M,smsp__average_warps_issue_stalled_${st}_per_issue_active.ratio
done
for S in 4096 16384; do
  NCU_S=$S timeout 150 ncu --clock-control none -k regex:"band_kernel" -c 1 --metrics $M \
    python3 benchmarks/ncu_band_call.py > "$out/ncu_band_$S.txt" 2>&1
  echo "ncu S=$S rc=$?"; grep -E "inst_executed|cycles_active|gmma|warps_active|stalled" "$out/ncu_band_$S.txt" | \
    awk '{print $1, $NF}' | sort -k2 -g -r | head -20
done
