// A small single-threaded float32 GEMM for the CPU kernels' tiles (callers parallelise over
// tiles/rows): register-blocked MR x NR micro-tiles, B read in place (the tiles here are small and
// stay in L1/L2, so packing would only add traffic, which matters most at M = 1).
#pragma once
#include <cstdint>

namespace ortops::cpu {

// C[m, n] (row stride ldc) = (accumulate ? C : 0) + A[m, k] (row stride lda) · B[k, n] (row stride ldb).
void gemm(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
          int64_t ldc, bool accumulate);

}  // namespace ortops::cpu
