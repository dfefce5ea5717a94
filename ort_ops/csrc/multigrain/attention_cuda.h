// CUDA launcher of MultigrainAttention (kernels in attention_cuda*.cu). Work is issued on
// `stream` (side streams, if any, fork from and join back to it with events); no host sync, no
// allocation: scratch comes from the caller, so the op can be captured in a CUDA graph.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "common/dtype.h"
#include "multigrain/attention_problem.h"

namespace ortops::cuda {

// Head sizes the CUDA kernels take: 8..128 in steps of 8 (16-byte rows of 16-bit elements).
// The launcher returns cudaErrorInvalidValue for others; the ORT glue says so in words first.
inline bool multigrain_attention_head_dim_supported(int64_t head_dim) {
  return head_dim >= 8 && head_dim <= 128 && head_dim % 8 == 0;
}

// Bytes of device scratch multigrain_attention needs for this problem (0 if none).
size_t multigrain_attention_workspace_bytes(const AttentionProblem& p, DType dtype);

// out[B, S, H·D] = Longformer attention. query..global_value are device [B, S, H·D] arrays of
// `dtype` (global_* never null: the caller passes the local projection when one is absent).
// mask is device [B, S] int32 (mask_is_int64 false) or int64. Rows of a batch entry whose mask
// holds a value other than 0/1/2 are written as NaN (checking on the host would need a sync).
cudaError_t multigrain_attention(const AttentionProblem& p, DType dtype, const void* query, const void* key,
                                 const void* value, const void* global_query, const void* global_key,
                                 const void* global_value, const void* mask, bool mask_is_int64, void* out,
                                 void* workspace, cudaStream_t stream);

}  // namespace ortops::cuda
