#!/usr/bin/env bash
# Nsight Compute profiles of the CUDA kernels on the GPU machine (one call), through the test
# shims built here (tests/gpu/build_shims.sh) and carried in .device/shims. Writes one text report
# per case into $OUT (ncu --print-details all of the sections below) and a one-line summary each.
# Cases: benchmarks/profile_kernels.py arguments, one per line in $CASES (default: the list below).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ncu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
SECTIONS=(--section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis
          --section Occupancy --section SchedulerStats --section WarpStateStats --section LaunchStats
          ${EXTRA_SECTIONS:-})  # e.g. "--section SourceCounters --section InstructionStats"
CASES=${CASES:-"tsvd 4096 4096 1024 4 128 2
tsvd 4096 4096 1 4 128 0
attention 1 4096 8 first
attention 1 16384 8 first"}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
i=0
while IFS= read -r c; do
  [ -z "$c" ] && continue
  i=$((i + 1)); name=$(echo "$c" | tr ' ' '_')
  timeout ${NCU_TIMEOUT:-150} ncu --clock-control none -k regex:"${KERNELS:-tsvd|flash|compact|attention}" --launch-count ${COUNT:-4} \
    "${SECTIONS[@]}" python3 benchmarks/profile_kernels.py $c > "$OUT/ncu_$name.txt" 2>&1
  echo "== $c (rc=$?)"
  grep -E '^  [a-zA-Z_].*\(|Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|L2 Cache Throughput|Achieved Occupancy|Registers Per|No Eligible|Issued Warp' "$OUT/ncu_$name.txt" | head -60
done <<< "$CASES"
