#!/usr/bin/env bash
# The Hopper band kernel's instruction count and issue-stall reasons (Nsight Compute), band only,
# B = 1, S = 4096 and 16384 (benchmarks/ncu_band_call.py through the test shim). Logs in $OUT.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
export PYTHONPATH=$PWD/tests/gpu:$PWD:${PYTHONPATH:-}
M=smsp__inst_executed.sum,smsp__cycles_active.avg,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active
for st in barrier long_scoreboard short_scoreboard wait math_pipe_throttle mio_throttle not_selected selected no_instruction branch_resolving dispatch_stall lg_throttle membar sleeping; do
  M=$M,smsp__average_warps_issue_stalled_${st}_per_issue_active.ratio
done
for S in 4096 16384; do
  NCU_S=$S timeout 150 ncu --clock-control none -k regex:"band_kernel" -c 1 --metrics $M \
    python3 benchmarks/ncu_band_call.py > "$out/ncu_band_$S.txt" 2>&1
  echo "ncu S=$S rc=$?"; grep -E "inst_executed|cycles_active|gmma|warps_active|stalled" "$out/ncu_band_$S.txt" | \
    awk '{print $1, $NF}' | sort -k2 -g -r | head -20
done
# Per-SASS-instruction stall samples of the band kernel at S = 16384 (CSV, parsed off the device).
if [ "${NCU_SOURCE:-1}" = 1 ]; then
  NCU_S=16384 timeout 200 ncu --clock-control none -k regex:"band_kernel" -c 1 --section SourceCounters \
    --section WarpStateStats --import-source no -o "$out/band_src" python3 benchmarks/ncu_band_call.py > /dev/null 2>&1
  ncu -i "$out/band_src.ncu-rep" --page source --print-source sass --csv > "$out/band_sass.csv" 2>&1
  echo "ncu source rc=$? $(wc -l < "$out/band_sass.csv") lines"; rm -f "$out/band_src.ncu-rep"
fi
