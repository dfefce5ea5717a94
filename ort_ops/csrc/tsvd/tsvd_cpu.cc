#include "tsvd/tsvd_cpu.h"

#include <algorithm>
#include <vector>

#include "common/gemm_cpu.h"

namespace ortops::cpu {

namespace {

// Rows of A per work item: large enough that a tile's factors are reused across many rows, small
// enough that the intermediate block (rows x r) stays in L1/L2.
constexpr int64_t kRowBlock = 64;

// Y[rows, j-tile] = bias (or 0): the tile loop then only accumulates.
void init_output_block(const TsvdProblem& p, const float* bias, float* Y, int64_t row0, int64_t rows, int64_t j) {
  const int64_t n0 = j * p.tn, nw = p.n_extent(j);
  for (int64_t m = row0; m < row0 + rows; ++m) {
    float* y = Y + m * p.N + n0;
    if (bias)
      std::copy(bias + n0, bias + n0 + nw, y);
    else
      std::fill(y, y + nw, 0.f);
  }
}

}  // namespace

void tsvd_matmul(const TsvdProblem& p, const float* A, const float* U, const float* V, const float* bias, float* Y,
                 const ParallelFor& parallel_for) {
  const int64_t row_blocks = (p.M + kRowBlock - 1) / kRowBlock;
  const int64_t tile_rows = p.used_tile_rows(), tile_cols = p.used_tile_cols();
  const int64_t r = p.rank;

  // Shared U: T_i = A_i · U is the same for every tile column, so compute it once per tile row
  // ([M, Tk, r] scratch, Tk·r floats per row of A) and let the column items only apply V.
  std::vector<float> shared_t;
  if (p.shared_u) {
    shared_t.resize(static_cast<size_t>(p.M * tile_rows * r));
    parallel_for(static_cast<size_t>(row_blocks * tile_rows), [&](size_t item) {
      const int64_t rb = static_cast<int64_t>(item) / tile_rows, i = static_cast<int64_t>(item) % tile_rows;
      const int64_t row0 = rb * kRowBlock, rows = std::min(kRowBlock, p.M - row0);
      gemm(rows, r, p.k_extent(i), A + row0 * p.K + i * p.tk, p.K, U, r,
           shared_t.data() + (row0 * tile_rows + i) * r, tile_rows * r, false);
    });
  }

  // One item per (row block, tile column): it owns Y[rows, j-tile], so items never share output.
  parallel_for(static_cast<size_t>(row_blocks * tile_cols), [&](size_t item) {
    const int64_t rb = static_cast<int64_t>(item) / tile_cols, j = static_cast<int64_t>(item) % tile_cols;
    const int64_t row0 = rb * kRowBlock, rows = std::min(kRowBlock, p.M - row0);
    const int64_t n0 = j * p.tn, nw = p.n_extent(j);
    float* y = Y + row0 * p.N + n0;
    init_output_block(p, bias, Y, row0, rows, j);

    thread_local std::vector<float> t_block;
    t_block.resize(static_cast<size_t>(kRowBlock * r));
    float* t = t_block.data();  // [rows, r]
    for (int64_t i = 0; i < tile_rows; ++i) {
      // T = A_i · U_ij (or the precomputed shared-U row). With V shared, sum T over i first and
      // apply V once: sum_i (A_i U_ij) V = (sum_i A_i U_ij) V.
      const float* t_in;
      int64_t ldt;
      if (p.shared_u) {
        t_in = shared_t.data() + (row0 * tile_rows + i) * r;
        ldt = tile_rows * r;
        if (p.shared_v) {
          for (int64_t m = 0; m < rows; ++m)
            for (int64_t c = 0; c < r; ++c) t[m * r + c] = (i ? t[m * r + c] : 0.f) + t_in[m * ldt + c];
          continue;
        }
      } else {
        gemm(rows, r, p.k_extent(i), A + row0 * p.K + i * p.tk, p.K, U + p.u_offset(i, j), r, t, r,
             p.shared_v && i > 0);
        if (p.shared_v) continue;
        t_in = t;
        ldt = r;
      }
      gemm(rows, nw, r, t_in, ldt, V + p.v_offset(i, j), p.tn, y, p.N, true);
    }
    if (p.shared_v) gemm(rows, nw, r, t, r, V, p.tn, y, p.N, true);
  });
}

}  // namespace ortops::cpu
