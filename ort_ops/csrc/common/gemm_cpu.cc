#include "common/gemm_cpu.h"

#include <algorithm>

namespace ortops::cpu {

namespace {

constexpr int kMR = 4;    // rows of a micro-tile
constexpr int kNR = 32;   // columns: 4 x 8-wide AVX2 vectors; kMR x kNR accumulators fill 16 registers
constexpr int64_t kKC = 256;  // depth block: the B panel (kKC x kNR) stays in L1

// One micro-tile: C[0:mr, 0:nr] (+)= A[0:mr, 0:kc] · B[0:kc, 0:nr]. Rows of A past mr alias row 0
// (their results are dropped), so the hot loop has no row guards.
template <bool kFullWidth>
inline void micro_tile(int mr, int nr, int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb,
                       float* C, int64_t ldc, bool accumulate) {
  float acc[kMR][kNR] = {};
  const float* a_rows[kMR];
  for (int r = 0; r < kMR; ++r) a_rows[r] = A + (r < mr ? r : 0) * lda;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const float* b = B + kk * ldb;
    float bv[kNR];
    if (kFullWidth) {
      for (int c = 0; c < kNR; ++c) bv[c] = b[c];
    } else {
      for (int c = 0; c < kNR; ++c) bv[c] = c < nr ? b[c] : 0.f;
    }
    for (int r = 0; r < kMR; ++r) {
      const float a = a_rows[r][kk];
      for (int c = 0; c < kNR; ++c) acc[r][c] += a * bv[c];
    }
  }
  for (int r = 0; r < mr; ++r) {
    float* c_row = C + r * ldc;
    if (accumulate) {
      for (int c = 0; c < nr; ++c) c_row[c] += acc[r][c];
    } else {
      for (int c = 0; c < nr; ++c) c_row[c] = acc[r][c];
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// Built for AVX2+FMA and AVX-512 too; the loader picks the best clone for the CPU it runs on.
#define ORTOPS_CLONES __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define ORTOPS_CLONES
#endif

ORTOPS_CLONES void gemm_impl(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B,
                             int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  for (int64_t k0 = 0; k0 < k; k0 += kKC) {
    const int64_t kc = std::min(kKC, k - k0);
    const bool acc = accumulate || k0 > 0;
    for (int64_t j0 = 0; j0 < n; j0 += kNR) {
      const int nr = static_cast<int>(std::min<int64_t>(kNR, n - j0));
      for (int64_t i0 = 0; i0 < m; i0 += kMR) {
        const int mr = static_cast<int>(std::min<int64_t>(kMR, m - i0));
        const float* a = A + i0 * lda + k0;
        const float* b = B + k0 * ldb + j0;
        float* c = C + i0 * ldc + j0;
        if (nr == kNR)
          micro_tile<true>(mr, nr, kc, a, lda, b, ldb, c, ldc, acc);
        else
          micro_tile<false>(mr, nr, kc, a, lda, b, ldb, c, ldc, acc);
      }
    }
  }
}

}  // namespace

void gemm(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
          int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(C + i * ldc, C + i * ldc + n, 0.f);
    return;
  }
  gemm_impl(m, n, k, A, lda, B, ldb, C, ldc, accumulate);
}

}  // namespace ortops::cpu
