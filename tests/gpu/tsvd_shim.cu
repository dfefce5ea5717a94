// Test-only C ABI over the TSVDMatMul CUDA launcher, loaded by tests/gpu/test_tsvd_cuda.py and
// benchmarks/gpu_tsvd.py through ctypes (built by tests/gpu/build_shims.sh, never shipped).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/stream_counters.h"
#include "tsvd/tsvd_cuda.h"
#include "tsvd/tsvd_cuda_internal.h"

namespace {
ortops::TsvdProblem problem(int64_t M, int64_t K, int64_t N, int64_t Tk, int64_t Tn, int64_t tk, int64_t tn,
                            int64_t r, int shared_u, int shared_v, int has_bias) {
  ortops::TsvdProblem p;
  p.M = M, p.K = K, p.N = N, p.Tk = Tk, p.Tn = Tn, p.tk = tk, p.tn = tn, p.rank = r;
  p.shared_u = shared_u != 0, p.shared_v = shared_v != 0, p.has_bias = has_bias != 0;
  // Nothing writes the factors while the tests and benchmarks run (as with ORT's initializers):
  // the decode kernel's early factor loads are exercised everywhere.
  p.factors_constant = true;
  return p;
}
ortops::DType dtype_of(int code) {
  return code == 1 ? ortops::DType::kFloat16 : code == 2 ? ortops::DType::kBFloat16 : ortops::DType::kFloat32;
}
}  // namespace

// dtype: 0 float32, 1 float16, 2 bfloat16.
extern "C" int64_t ortops_test_tsvd_workspace_bytes(int dtype, int64_t M, int64_t K, int64_t N, int64_t Tk,
                                                     int64_t Tn, int64_t tk, int64_t tn, int64_t r, int shared_u,
                                                     int shared_v) {
  return int64_t(ortops::cuda::tsvd_matmul_workspace_bytes(
      problem(M, K, N, Tk, Tn, tk, tn, r, shared_u, shared_v, 0), dtype_of(dtype)));
}

// With a caller-provided workspace (benchmarks: graph-capturable, no allocation).
extern "C" int ortops_test_tsvd_ws(int dtype, const void* A, const void* U, const void* V, const void* bias, void* Y,
                                   int64_t M, int64_t K, int64_t N, int64_t Tk, int64_t Tn, int64_t tk, int64_t tn,
                                   int64_t r, int shared_u, int shared_v, void* workspace, void* stream) {
  const auto p = problem(M, K, N, Tk, Tn, tk, tn, r, shared_u, shared_v, bias != nullptr);
  return int(ortops::cuda::tsvd_matmul(p, dtype_of(dtype), A, U, V, bias, Y, workspace,
                                       static_cast<cudaStream_t>(stream)));
}

// Allocates the workspace itself (tests): cudaMalloc, run, wait for the stream, free.
extern "C" int ortops_test_tsvd(int dtype, const void* A, const void* U, const void* V, const void* bias, void* Y,
                                int64_t M, int64_t K, int64_t N, int64_t Tk, int64_t Tn, int64_t tk, int64_t tn,
                                int64_t r, int shared_u, int shared_v, void* stream) {
  const auto p = problem(M, K, N, Tk, Tn, tk, tn, r, shared_u, shared_v, bias != nullptr);
  const size_t bytes = ortops::cuda::tsvd_matmul_workspace_bytes(p, dtype_of(dtype));
  void* ws = nullptr;
  if (bytes > 0) {
    cudaError_t err = cudaMalloc(&ws, bytes);
    if (err != cudaSuccess) return int(err);
  }
  cudaError_t err = ortops::cuda::tsvd_matmul(p, dtype_of(dtype), A, U, V, bias, Y, ws,
                                              static_cast<cudaStream_t>(stream));
  cudaError_t sync = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
  if (ws) cudaFree(ws);
  return int(err != cudaSuccess ? err : sync);
}

// With knobs: path (0 by M, 1 fused, 2 two-stage, 3 Hopper, 4 decode: then ctas_per_sm is its
// cluster size and gemm_cfg its ring depth), two-stage threshold, T workspace cap, ring of
// the two-stage GEMMs, PDL, stage mask, CTAs per SM of the fused kernel's split, split sums (0: finalize
// kernel, 1: in-kernel; < 0: defaults; stage_mask 3 = both, others time one stage). Workspace from the caller
// (benchmarks) or, when workspace is null and the plan needs one, allocated here and the stream
// waited for (tests).
namespace {
ortops::cuda::tsvd::TsvdOptions options(int path, int64_t min_m, int64_t cap, int gemm_cfg = -1, int pdl = -1,
                                        int stage_mask = 3, int ctas_per_sm = -1, int split_sum = -1) {
  ortops::cuda::tsvd::TsvdOptions o;
  o.path = path, o.two_stage_min_m = min_m, o.t_cap_bytes = cap;
  o.gemm_cfg = gemm_cfg, o.pdl = pdl, o.stage_mask = stage_mask, o.ctas_per_sm = ctas_per_sm;
  o.split_sum = split_sum;
  if (path == 4) {  // the decode kernel has no ring or split knobs of its own here: these two carry them
    o.decode_splits = ctas_per_sm;
    o.decode_stages = gemm_cfg;
  }
  return o;
}
// Runs the launcher with a workspace allocated here (when the plan needs one) and waits for the
// stream (tests): the first CUDA error, of the launch or of the run.
int run_with_own_workspace(const ortops::TsvdProblem& p, ortops::DType dt, const void* A, const void* U,
                           const void* V, const void* bias, void* Y, cudaStream_t st,
                           const ortops::cuda::tsvd::TsvdOptions& o) {
  const size_t bytes = ortops::cuda::tsvd_matmul_workspace_bytes_ex(p, dt, o);
  void* ws = nullptr;
  if (bytes > 0) {
    cudaError_t err = cudaMalloc(&ws, bytes);
    if (err != cudaSuccess) return int(err);
  }
  cudaError_t err = ortops::cuda::tsvd_matmul_ex(p, dt, A, U, V, bias, Y, ws, st, o);
  cudaError_t sync = cudaStreamSynchronize(st);
  if (ws) cudaFree(ws);
  return int(err != cudaSuccess ? err : sync);
}
}  // namespace
extern "C" int64_t ortops_test_tsvd_workspace_bytes_ex(int dtype, int64_t M, int64_t K, int64_t N, int64_t Tk,
                                                        int64_t Tn, int64_t tk, int64_t tn, int64_t r, int shared_u,
                                                        int shared_v, int path, int64_t min_m, int64_t cap,
                                                        int ctas_per_sm) {
  return int64_t(ortops::cuda::tsvd_matmul_workspace_bytes_ex(problem(M, K, N, Tk, Tn, tk, tn, r, shared_u, shared_v, 0),
                                                              dtype_of(dtype), options(path, min_m, cap, -1, -1, 3, ctas_per_sm)));
}
extern "C" int ortops_test_tsvd_ex(int dtype, const void* A, const void* U, const void* V, const void* bias, void* Y,
                                   int64_t M, int64_t K, int64_t N, int64_t Tk, int64_t Tn, int64_t tk, int64_t tn,
                                   int64_t r, int shared_u, int shared_v, void* workspace, void* stream, int path,
                                   int64_t min_m, int64_t cap, int gemm_cfg, int pdl, int stage_mask,
                                   int ctas_per_sm, int split_sum) {
  const auto p = problem(M, K, N, Tk, Tn, tk, tn, r, shared_u, shared_v, bias != nullptr);
  const auto o = options(path, min_m, cap, gemm_cfg, pdl, stage_mask, ctas_per_sm, split_sum);
  const auto st = static_cast<cudaStream_t>(stream);
  if (workspace != nullptr) return int(ortops::cuda::tsvd_matmul_ex(p, dtype_of(dtype), A, U, V, bias, Y, workspace, st, o));
  return run_with_own_workspace(p, dtype_of(dtype), A, U, V, bias, Y, st, o);
}

// The decode kernel (path 4) with a given number of CTAs per cluster and ring slots (< 1: the
// launcher's choice); workspace allocated here when the fallback needs one, the stream waited for.
extern "C" int ortops_test_tsvd_decode(int dtype, const void* A, const void* U, const void* V, const void* bias,
                                       void* Y, int64_t M, int64_t K, int64_t N, int64_t Tk, int64_t Tn, int64_t tk,
                                       int64_t tn, int64_t r, int shared_u, int splits, int stages, void* stream) {
  const auto p = problem(M, K, N, Tk, Tn, tk, tn, r, shared_u, 0, bias != nullptr);
  auto o = options(4, -1, -1);
  o.decode_splits = splits;
  o.decode_stages = stages;
  const auto st = static_cast<cudaStream_t>(stream);
  return run_with_own_workspace(p, dtype_of(dtype), A, U, V, bias, Y, st, o);
}

// The decode kernel's launch geometry on the current device: out = {CTAs per cluster, ring slots,
// consumer warps, shared-memory bytes} (benchmarks print it beside their timings).
extern "C" void ortops_test_tsvd_decode_plan(int64_t M, int64_t K, int64_t N, int64_t tk, int64_t tn, int64_t r,
                                             int64_t* out) {
  const auto p = problem(M, K, N, (K + tk - 1) / tk, (N + tn - 1) / tn, tk, tn, r, 0, 0, 0);
  int sms = 132, dev = 0;
  if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const auto d = ortops::cuda::tsvd::make_decode_plan(p, sms, {});
  out[0] = d.splits, out[1] = d.stages, out[2] = d.consumers, out[3] = int64_t(d.smem);
}

// The launcher's path (tsvd::Path as int: 4 two-stage, 5 fused Hopper kernel, 6 decode kernel) for a forced path.
extern "C" int ortops_test_tsvd_path(int dtype, int64_t M, int64_t K, int64_t N, int64_t Tk, int64_t Tn, int64_t tk,
                                     int64_t tn, int64_t r, int shared_u, int shared_v, int path) {
  return ortops::cuda::tsvd_matmul_path(problem(M, K, N, Tk, Tn, tk, tn, r, shared_u, shared_v, 0), dtype_of(dtype),
                                        options(path, -1, -1));
}

// Counters of `stream` (common/stream_counters.h) that are not zero now (after waiting for the
// stream), or -1 when the stream has no counter array yet. Tests: every launch must leave them 0.
extern "C" int ortops_test_stream_counters_nonzero(void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  unsigned int* counters = ortops::cuda::stream_counters(st);
  if (counters == nullptr) return -1;
  static unsigned int host[ortops::cuda::kStreamCounters];
  if (cudaMemcpyAsync(host, counters, sizeof(host), cudaMemcpyDeviceToHost, st) != cudaSuccess ||
      cudaStreamSynchronize(st) != cudaSuccess)
    return -2;
  int nonzero = 0;
  for (unsigned int c : host) nonzero += c != 0;
  return nonzero;
}

// A new non-blocking stream (never destroyed: tests wrap it in torch.cuda.ExternalStream), so a
// test can make a stream's first use a graph capture.
extern "C" void* ortops_test_new_stream() {
  cudaStream_t s = nullptr;
  return cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess ? s : nullptr;
}
