#include "common/gemm_cpu.h"

#include <algorithm>

namespace ortops::cpu {

namespace {

constexpr int kMR = 4;        // rows of a full micro-tile
constexpr int kNR = 32;       // columns: 4 x 8-wide AVX2 vectors; kMR x kNR accumulators fill 16 registers
constexpr int kNRTail = 8;    // column step for the last (n % kNR) columns
constexpr int64_t kKC = 256;  // depth block: the B panel (kKC x kNR) stays in L1

// One micro-tile: C[0:MR, 0:nr] (+)= A[0:MR, 0:kc] · B[0:kc, 0:nr], nr == NR unless kMasked.
// MR is exact (leftover rows use MR = 1), so M = 1 (decode) does no wasted rows.
template <int MR, int NR, bool kMasked>
inline void micro_tile(int nr, int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                       int64_t ldc, bool accumulate) {
  float acc[MR][NR] = {};
  for (int64_t kk = 0; kk < kc; ++kk) {
    const float* b = B + kk * ldb;
    float bv[NR];
    for (int c = 0; c < NR; ++c) bv[c] = (!kMasked || c < nr) ? b[c] : 0.f;
    for (int r = 0; r < MR; ++r) {
      const float a = A[r * lda + kk];
      for (int c = 0; c < NR; ++c) acc[r][c] += a * bv[c];
    }
  }
  for (int r = 0; r < MR; ++r) {
    float* c_row = C + r * ldc;
    const int width = kMasked ? nr : NR;
    if (accumulate) {
      for (int c = 0; c < width; ++c) c_row[c] += acc[r][c];
    } else {
      for (int c = 0; c < width; ++c) c_row[c] = acc[r][c];
    }
  }
}

// All rows of one column panel [j0, j0 + nr) for one depth block.
template <int NR, bool kMasked>
inline void panel(int64_t m, int nr, int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                  int64_t ldc, bool accumulate) {
  int64_t i = 0;
  for (; i + kMR <= m; i += kMR)
    micro_tile<kMR, NR, kMasked>(nr, kc, A + i * lda, lda, B, ldb, C + i * ldc, ldc, accumulate);
  for (; i < m; ++i) micro_tile<1, NR, kMasked>(nr, kc, A + i * lda, lda, B, ldb, C + i * ldc, ldc, accumulate);
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
    const float* a = A + k0;
    const float* b = B + k0 * ldb;
    int64_t j = 0;
    for (; j + kNR <= n; j += kNR) panel<kNR, false>(m, kNR, kc, a, lda, b + j, ldb, C + j, ldc, acc);
    for (; j + kNRTail <= n; j += kNRTail) panel<kNRTail, false>(m, kNRTail, kc, a, lda, b + j, ldb, C + j, ldc, acc);
    if (j < n) panel<kNRTail, true>(m, static_cast<int>(n - j), kc, a, lda, b + j, ldb, C + j, ldc, acc);
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
