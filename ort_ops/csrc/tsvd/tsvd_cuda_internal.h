// Private: the TSVDMatMul launcher with test/benchmark knobs (forced path, two-stage threshold,
// T workspace cap). Used by the test shim (tests/gpu/tsvd_shim.cu); the public entry points in
// tsvd_cuda.h call these with default options.
#pragma once
#include "tsvd/tsvd_cuda.h"
#include "tsvd/tsvd_cuda_traits.h"

namespace ortops::cuda {
size_t tsvd_matmul_workspace_bytes_ex(const TsvdProblem& p, DType dtype, const tsvd::TsvdOptions& opt);
cudaError_t tsvd_matmul_ex(const TsvdProblem& p, DType dtype, const void* A, const void* U, const void* V,
                           const void* bias, void* Y, void* workspace, cudaStream_t stream,
                           const tsvd::TsvdOptions& opt);
// The path the launcher takes for this problem on the current device (tsvd::Path as int), assuming
// 16-byte aligned pointers: lets tests check which kernel they exercised.
int tsvd_matmul_path(const TsvdProblem& p, DType dtype, const tsvd::TsvdOptions& opt);
}  // namespace ortops::cuda
