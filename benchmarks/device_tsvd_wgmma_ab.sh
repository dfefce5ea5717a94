#!/usr/bin/env bash
# One GPU call: A/B of build variants of TSVDMatMul's fused Hopper kernel (shims built with
# -DORTOPS_TSVD_WG_WGS / -DORTOPS_TSVD_WG_LAZY into .device/shims/<variant>/), kernel-level CUDA-graph
# timing (benchmarks/gpu_tsvd.py, fp16) in one run, then the default build's Hopper-kernel tests, its
# SASS around the warpgroup MMAs and an Nsight Compute profile of one case. Carry .device/shims.
set -u
export PYTHONPATH=$PWD:$PWD/tests/gpu:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
ms=${BENCH_MS:-1024,8192}; shapes=${BENCH_SHAPES:-4096x4096}
strip() { grep -E "^K" | sed -E 's/ err [0-9.e+-]+//g; s/\| *[0-9.]+ TB\/s .*TF\/s *//' | cut -c1-200; }
timeout 90 python3 benchmarks/gpu_tsvd.py --ms "$ms" --shapes "$shapes" --variants hopper --out "$out" --label _default > "$out/bench_default.log" 2>&1
echo "== default build (w2 lazy) rc=$?"; strip < "$out/bench_default.log"
for v in ${VARIANTS:-w2l0 w1l1 w1l0}; do
  [ -f .device/shims/$v/libtsvd_shim.so ] || continue
  timeout 60 python3 benchmarks/gpu_tsvd.py --ms "$ms" --shapes "$shapes" --variants none --shim .device/shims/$v/libtsvd_shim.so --out "$out" --label _$v > "$out/bench_$v.log" 2>&1
  echo "== $v rc=$?"; strip < "$out/bench_$v.log"
done
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_tsvd_cuda.py -k wgmma > "$out/pytest_wgmma.log" 2>&1
echo "wgmma tests rc=$?: $(tail -1 "$out/pytest_wgmma.log")"
cuobjdump -sass -fun '_ZN6ortops4cuda4tsvd17tsvd_wgmma_kernelI6__halfNS1_8WgmmaCfgILi128ELi16ELi2EEEEEvNS1_4ArgsE' .device/shims/libtsvd_shim.so > "$out/sass.txt" 2>&1
echo "sass lines $(wc -l < "$out/sass.txt"), HGMMA $(grep -c HGMMA "$out/sass.txt"), WARPGROUP $(grep -c WARPGROUP "$out/sass.txt")"
CASES="tsvd 4096 4096 1024 4 128 3" KERNELS=tsvd_wgmma COUNT=1 OUT=$out bash benchmarks/device_ncu.sh 2>&1 | tail -30
grep -E "Stall|stall" "$out"/ncu_tsvd*.txt | head -30
