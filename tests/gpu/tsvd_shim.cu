// Test-only C ABI over the TSVDMatMul CUDA launcher, loaded by tests/gpu/test_tsvd_cuda.py and
// benchmarks/gpu_tsvd.py through ctypes (built by tests/gpu/build_shims.sh, never shipped).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "tsvd/tsvd_cuda.h"

namespace {
ortops::TsvdProblem problem(int64_t M, int64_t K, int64_t N, int64_t Tk, int64_t Tn, int64_t tk, int64_t tn,
                            int64_t r, int shared_u, int shared_v, int has_bias) {
  ortops::TsvdProblem p;
  p.M = M, p.K = K, p.N = N, p.Tk = Tk, p.Tn = Tn, p.tk = tk, p.tn = tn, p.rank = r;
  p.shared_u = shared_u != 0, p.shared_v = shared_v != 0, p.has_bias = has_bias != 0;
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
