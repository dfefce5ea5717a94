#!/usr/bin/env bash
# Kernel-level A/B of TSVDMatMul launcher builds in one device call: the default shim
# (.device/shims/libtsvd_shim.so) and every experiment build in .device/tsvd_var/*.so, each timed by
# benchmarks/gpu_tsvd.py (CUDA graphs, fp16, cuBLAS in the same process), then Nsight Compute's
# issue-stall reasons and pipe/memory utilisation of the fused Hopper kernel on NCU_CASES.
# Carry .device/shims and .device/tsvd_var. BENCH_MS / BENCH_SHAPES set the grid; NCU_CASES=none skips
# the profile. Logs in $OUT.
set -u
export PYTHONPATH=$PWD:$PWD/tests/gpu:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for so in .device/shims/libtsvd_shim.so .device/tsvd_var/*.so; do
  [ -f "$so" ] || continue
  name=$(basename "$so" .so)
  timeout 150 python3 benchmarks/gpu_tsvd.py --shim "$so" --label "_$name" --ms "${BENCH_MS:-1024,8192}" \
    --shapes "${BENCH_SHAPES:-4096x4096,4096x14336}" --variants none --out "$out" > "$out/bench_$name.log" 2>&1
  echo "== $name rc=$?"
  grep -E "^K" "$out/bench_$name.log" | sed -E 's/ *\| *lowrank[^|]*\|/ |/; s/ \(target[^)]*\)//; s/ err [0-9.e+-]+//g' | cut -c1-110
done
[ "${NCU_CASES:-}" = none ] && exit 0
M=smsp__inst_executed.sum,smsp__cycles_active.avg,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active
M=$M,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,smsp__inst_executed_op_shared_ld.sum,lts__throughput.avg.pct_of_peak_sustained_elapsed
M=$M,l1tex__throughput.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed
for st in barrier long_scoreboard short_scoreboard wait math_pipe_throttle mio_throttle not_selected selected no_instruction branch_resolving dispatch_stall lg_throttle membar sleeping; do
  M=$M,smsp__average_warps_issue_stalled_${st}_per_issue_active.ratio
done
for case in ${NCU_CASES:-"4096 4096 8192 4 256" "4096 4096 8192 4 128"}; do
  tag=$(echo $case | tr ' ' _)
  timeout 120 ncu --clock-control none -k regex:tsvd_wgmma -c 1 --metrics $M \
    python3 benchmarks/profile_kernels.py tsvd $case 3 > "$out/ncu_$tag.txt" 2>&1
  echo "ncu $case rc=$?"; grep -E "inst_executed|cycles_active|gmma|wavefronts|shared_ld|throughput|stalled" "$out/ncu_$tag.txt" | \
    awk '{print $1, $NF}' | sort -k2 -g -r | head -24
done
