// Host-side check of FastDiv (tsvd_cuda_traits.h) against integer division: every divisor below
// 5000 with 2000 dividends each (small and random), then 200 000 random (divisor, dividend) pairs,
// the largest dividend 2^31 - 1 included. Built and run by tests/test_fastdiv.py (needs nvcc, no GPU).
#include <cstdio>
#include <random>

#include "tsvd/tsvd_cuda_traits.h"

using ortops::cuda::tsvd::FastDiv;

int main() {
  std::mt19937 gen(12345);
  long bad = 0, checked = 0;
  auto check = [&](uint32_t d, int n) {
    const FastDiv f(d);
    const int q = f.div(n);
    ++checked;
    if (q != n / int(d) || f.mod(n, q) != n % int(d)) {
      if (++bad <= 5) std::printf("mismatch: %d / %u -> %d\n", n, d, q);
    }
  };
  for (uint32_t d = 1; d < 5000; ++d)
    for (int t = 0; t < 2000; ++t) check(d, t < 1000 ? t : int(gen() >> 1));
  for (int t = 0; t < 200000; ++t) {
    const uint32_t d = (gen() >> (1 + gen() % 30)) | 1u;
    check(d, int(gen() >> 1));
    check(d, 0x7fffffff);
  }
  std::printf("%ld of %ld divisions wrong\n", bad, checked);
  return bad != 0;
}
