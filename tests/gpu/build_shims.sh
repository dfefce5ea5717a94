#!/usr/bin/env bash
# Builds the test-only shims (ctypes) and standalone sanitizer checks into the git-ignored
# .device/shims/, here (nvcc, no GPU needed); carried to the GPU machine.
#   tsvd:      libtsvd_shim.so + tsvd_sanitize           (TSVDMatMul)
#   attention: libattention_shim.so + wgmma_probe        (MultigrainAttention; the probe checks the
#              sm_90a warpgroup-MMA descriptors on one tile)
# Usage: [SHIM_TARGETS="tsvd attention"] tests/gpu/build_shims.sh [extra nvcc flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.device/shims
mkdir -p "$out"
targets="${SHIM_TARGETS:-tsvd attention}"
flags=(-O3 -std=c++17 --expt-relaxed-constexpr --Werror default-stream-launch -lineinfo
       -gencode arch=compute_90a,code=sm_90a -DORTOPS_CUDA_SM90A=1 -I ort_ops/csrc "$@")
pids=()
if [[ " $targets " == *" tsvd "* ]]; then
  srcs="ort_ops/csrc/common/stream_counters.cu ort_ops/csrc/common/tensor_map.cu ort_ops/csrc/tsvd/tsvd_cuda.cu ort_ops/csrc/tsvd/tsvd_cuda_fp16.cu ort_ops/csrc/tsvd/tsvd_cuda_bf16.cu"
  nvcc "${flags[@]}" -shared -Xcompiler -fPIC tests/gpu/tsvd_shim.cu $srcs -o "$out/libtsvd_shim.so" & pids+=($!)
  nvcc "${flags[@]}" tests/gpu/tsvd_sanitize.cu $srcs -o "$out/tsvd_sanitize" & pids+=($!)
fi
if [[ " $targets " == *" attention "* ]]; then
  nvcc "${flags[@]}" -Xptxas=-warn-spills -shared -Xcompiler -fPIC tests/gpu/attention_shim.cu \
    ort_ops/csrc/multigrain/attention_cuda*.cu ort_ops/csrc/common/tensor_map.cu -o "$out/libattention_shim.so" & pids+=($!)
  nvcc "${flags[@]}" tests/gpu/wgmma_probe.cu -o "$out/wgmma_probe" & pids+=($!)
fi
for p in "${pids[@]}"; do wait "$p"; done
ls -l "$out"
