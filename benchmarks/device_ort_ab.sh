#!/usr/bin/env bash
# ORT-level A/B of two builds of the op library in one call, after onnxruntime-gpu was staged
# (../shared/device): benchmarks/gpu_tsvd_ort.py (eager, IO binding) on AB_SHAPES x AB_MS, run
# alternately with .device/lib (A) and $LIB_B (B), AB_ROUNDS times each, one process per run (two
# libraries that register the same ops are not loaded into one process). Carry .device/lib and the
# folder of LIB_B. Logs in $OUT/ab_*.log; the tables of each run are at their end.
set -u
source /tmp/ort-gpu/env.sh
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
shapes=${AB_SHAPES:-4096x4096,4096x14336}; ms=${AB_MS:-1,16}
for round in $(seq 1 "${AB_ROUNDS:-2}"); do
  for side in A B; do
    lib=$PWD/.device/lib/libortops.so; [ $side = B ] && lib=$PWD/$LIB_B
    ORTOPS_LIBRARY=$lib timeout ${AB_TIMEOUT:-120} python3 -c "import torch, runpy, sys; sys.argv=['gpu_tsvd_ort.py','--shapes','$shapes','--ms','$ms','--out','/tmp/ab_$side$round']; runpy.run_path('benchmarks/gpu_tsvd_ort.py', run_name='__main__')" > "$out/ab_$side$round.log" 2>&1
    echo "== $side round $round rc=$?"; grep "^K" "$out/ab_$side$round.log" | sed -E 's/MatMul ([0-9.]+) us, low-rank [0-9.]+, //' | cut -c1-110
  done
done
