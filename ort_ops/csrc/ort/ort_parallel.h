// ParallelFor on ORT's intra-op thread pool (honours the session's intra_op_num_threads).
#pragma once
#include "common/parallel.h"
#include "ort/ort_api.h"

namespace ortops::ort {

inline ParallelFor ort_parallel_for(OrtKernelContext* ctx) {
  return [ctx](size_t n, const ParallelBody& body) {
    if (n <= 1) {
      for (size_t i = 0; i < n; ++i) body(i);
      return;
    }
    auto trampoline = [](void* user, size_t i) { (*static_cast<const ParallelBody*>(user))(i); };
    Ort::ThrowOnError(Ort::GetApi().KernelContext_ParallelFor(ctx, trampoline, n, 0,
                                                              const_cast<ParallelBody*>(&body)));
  };
}

}  // namespace ortops::ort
