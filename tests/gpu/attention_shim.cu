// Test-only C ABI over the MultigrainAttention CUDA launcher, for ctypes (tests/gpu/
// test_attention_cuda.py, benchmarks/gpu_attention.py). Built by tests/gpu/build_shims.sh into
// .device/shims/; never part of libortops.so.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "multigrain/attention_cuda.h"
#include "multigrain/attention_cuda_impl.h"

namespace {
ortops::AttentionProblem problem(int B, int S, int H, int D, int w, float scale) {
  ortops::AttentionProblem p;
  p.batch = B, p.seq_len = S, p.num_heads = H, p.head_dim = D, p.window = w, p.scale = scale;
  p.has_global_query = p.has_global_key = p.has_global_value = true;
  return p;
}
}  // namespace

extern "C" {

// dtype: 0 float32, 1 float16, 2 bfloat16 (ortops::DType order).
size_t ortops_test_attention_workspace(int B, int S, int H, int D, int w, int dtype) {
  return ortops::cuda::multigrain_attention_workspace_bytes(problem(B, S, H, D, w, 1.f),
                                                            static_cast<ortops::DType>(dtype));
}

// Runs the op on `stream`. workspace may be null: then it is cudaMalloc'ed, and freed after a
// stream sync (test convenience only). parts, low 2 bits: 1 band, 2 global rows, 3 both (the op),
// 0 the compaction alone; bits 2-3: schedule (0 the launcher's default, 1 one grid, 2 two streams);
// bit 4: band tiles on mma.sync even where the sm_90a warpgroup-MMA path is built (head dim 64);
// bit 5: the fused kernel rather than the Hopper kernel (band and global rows); bit 6: two streams with
// the band launched as an ordinary (not programmatic dependent) launch; bits 7-8: the Hopper
// kernel's ring depth, 3 for the 3-slot ring (0 or 2: the 2-slot default).
// Returns the cudaError_t as int (0 = success).
// The schedule the launcher uses by default at this size (ortops::cuda::multigrain::Schedule:
// 1 one grid, 2 two streams).
int ortops_test_attention_default_schedule(int B, int S) {
  return static_cast<int>(ortops::cuda::multigrain::default_schedule(B, S));
}

int ortops_test_attention(int B, int S, int H, int D, int w, float scale, int dtype, const void* q, const void* k,
                          const void* v, const void* gq, const void* gk, const void* gv, const void* mask, int mask64,
                          void* out, void* workspace, void* stream, int parts) {
  const ortops::AttentionProblem p = problem(B, S, H, D, w, scale);
  const auto dt = static_cast<ortops::DType>(dtype);
  auto st = static_cast<cudaStream_t>(stream);
  void* ws = workspace;
  if (!ws) {
    const size_t bytes = ortops::cuda::multigrain_attention_workspace_bytes(p, dt);
    if (cudaError_t e = cudaMalloc(&ws, bytes ? bytes : 256); e != cudaSuccess) return e;
  }
  ortops::cuda::multigrain::RunOptions opt;
  opt.parts = parts & 3;
  opt.schedule = static_cast<ortops::cuda::multigrain::Schedule>((parts >> 2) & 3);
  opt.band_wgmma = ((parts >> 4) & 1) == 0;
  opt.band_kernel = ((parts >> 5) & 1) == 0;
  opt.band_pdl = ((parts >> 6) & 1) == 0;
  opt.ring_slots = (parts >> 7) & 3;  // 3: the Hopper kernel's 3-slot ring; 0 or 2: 2 slots
  cudaError_t err = ortops::cuda::multigrain::run_parts(p, dt, q, k, v, gq, gk, gv, mask, mask64 != 0, out, ws, st,
                                                        opt);
  if (!workspace) {
    const cudaError_t e2 = cudaStreamSynchronize(st);
    if (err == cudaSuccess) err = e2;
    cudaFree(ws);
  }
  return static_cast<int>(err);
}
}
