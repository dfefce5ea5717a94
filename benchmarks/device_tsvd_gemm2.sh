#!/usr/bin/env bash
# One GPU call for TSVDMatMul's two-stage Hopper GEMMs (tsvd_cuda_wgmma_gemm.cuh): their kernel tests
# on the default shim and on every experiment build in .device/tsvd_var/*.so (fail-fast, pytest -k
# wgmma_gemm), then the kernel-level timings of each build (gpu_tsvd.py --variants hopper2: the fused
# Hopper kernel, the two-stage GEMMs, each stage alone; CUDA graphs, fp16), then optionally Nsight
# Compute on both stage kernels of one case (NCU_CASE="K N M c tile", default none).
# Carry .device/shims and .device/tsvd_var. BENCH_MS / BENCH_SHAPES set the grid. Logs in $OUT.
set -u
export PYTHONPATH=$PWD:$PWD/tests/gpu:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for so in .device/shims/libtsvd_shim.so .device/tsvd_var/*.so; do
  [ -f "$so" ] || continue
  name=$(basename "$so" .so)
  ORTOPS_TSVD_SHIM=$so timeout 120 python3 -m pytest -q -p no:cacheprovider -x tests/gpu/test_tsvd_cuda.py \
    -k "${TEST_K:-wgmma_gemm}" > "$out/pytest_$name.log" 2>&1
  echo "== $name tests rc=$?: $(tail -1 "$out/pytest_$name.log")"
  grep -E "^(FAILED|ERROR)|Error|assert" "$out/pytest_$name.log" | head -5
  timeout 150 python3 benchmarks/gpu_tsvd.py --shim "$so" --label "_$name" --ms "${BENCH_MS:-1024,8192}" \
    --shapes "${BENCH_SHAPES:-4096x4096,4096x14336}" --variants "${BENCH_VARIANTS:-hopper2}" --out "$out" \
    > "$out/bench_$name.log" 2>&1
  echo "== $name bench rc=$?"
  grep -E "^K" "$out/bench_$name.log" | sed -E 's/ *\| *lowrank[^|]*\|/ |/; s/ \(target[^)]*\)//; s/ err [0-9.e+-na]+//g; s/vs-lr x[0-9.]+ //' | cut -c1-200
done
[ -z "${NCU_CASE:-}" ] && exit 0
M=smsp__inst_executed.sum,smsp__cycles_active.avg,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active
M=$M,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,lts__throughput.avg.pct_of_peak_sustained_elapsed
M=$M,l1tex__throughput.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum
for st in barrier long_scoreboard wait math_pipe_throttle mio_throttle selected no_instruction lg_throttle sleeping; do
  M=$M,smsp__average_warps_issue_stalled_${st}_per_issue_active.ratio
done
timeout 150 ncu --clock-control none -k regex:wgmma_gemm -c 2 --metrics $M \
  python3 benchmarks/profile_kernels.py tsvd $NCU_CASE 5 > "$out/ncu_gemm2.txt" 2>&1
echo "ncu rc=$?"; grep -E "wgmma_gemm_kernel|inst_executed|cycles_active|gmma|wavefronts|throughput|stalled|duration" "$out/ncu_gemm2.txt" | \
  sed -E 's/void ortops::cuda::tsvd::tsvd_wgmma_gemm_kernel<__half, ortops::cuda::tsvd::WgmmaGemmCfg<([0-9, ]+)>>.*/STAGE CFG \1/' | awk '{print $1, $2, $NF}' | head -50
