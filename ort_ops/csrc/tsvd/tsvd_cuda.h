// CUDA launcher of TSVDMatMul (kernels in tsvd_cuda*.cu). Runs on `stream` only, never syncs the
// host; scratch memory comes from the caller (ORT's allocator). The only allocation of its own is
// a 16 KB counter array per stream, made on the first call on that stream outside a graph capture
// (common/stream_counters.h), which lets small-M calls add up their split sums in one launch.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "common/dtype.h"
#include "tsvd/tsvd_problem.h"

namespace ortops::cuda {

// Bytes of device scratch tsvd_matmul needs for this problem (0 if none).
size_t tsvd_matmul_workspace_bytes(const TsvdProblem& p, DType dtype);

// Y[M, N] = A[M, K] · W̃ (+ bias). All pointers are device memory of `dtype`; bias may be null.
// workspace has tsvd_matmul_workspace_bytes(p, dtype) bytes (may be null when that is 0).
// Returns the first CUDA error (launch or configuration), cudaSuccess otherwise.
cudaError_t tsvd_matmul(const TsvdProblem& p, DType dtype, const void* A, const void* U, const void* V,
                        const void* bias, void* Y, void* workspace, cudaStream_t stream);

}  // namespace ortops::cuda
