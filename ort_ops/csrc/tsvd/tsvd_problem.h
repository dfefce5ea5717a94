// TSVDMatMul: Y[..., N] = A[..., K] · W̃ (+ bias), W̃ cut into a Tk × Tn grid of tk × tn tiles,
// tile (i, j) = U[i, j] · V[i, j]. A factor of shape [1, 1, ·, ·] is shared by every tile.
// This header holds the problem description every kernel (CPU, CUDA) receives, and the checks
// that turn input shapes into one; see docs/ops.md for the contract.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ortops {

struct TsvdProblem {
  int64_t M = 0;             // rows of A: product of its leading dims (may be 0)
  int64_t K = 0;             // A's last dim; K <= Tk * tk (A is zero-padded to the grid)
  int64_t N = 0;             // output features; N <= Tn * tn
  int64_t Tk = 0, Tn = 0;    // tile grid
  int64_t tk = 0, tn = 0;    // tile size
  int64_t rank = 0;          // r, the same in every tile
  bool shared_u = false;     // U is [1, 1, tk, r], shared by all tiles
  bool shared_v = false;     // V is [1, 1, r, tn] (TSVD-common)
  bool has_bias = false;
  // U and V are never written while calls run (the node's constant initializers): a kernel may read
  // them before the previous kernel in the stream has finished (programmatic dependent launch).
  bool factors_constant = false;

  // Element offsets of tile (i, j)'s factors inside U ([Tk, Tn, tk, r]) and V ([Tk, Tn, r, tn]).
  int64_t u_offset(int64_t i, int64_t j) const { return shared_u ? 0 : (i * Tn + j) * tk * rank; }
  int64_t v_offset(int64_t i, int64_t j) const { return shared_v ? 0 : (i * Tn + j) * rank * tn; }
  // Rows of A's K (columns of Y's N) that tile row i (column j) covers: the last one may be partial.
  int64_t k_extent(int64_t i) const { return K - i * tk < tk ? K - i * tk : tk; }
  int64_t n_extent(int64_t j) const { return N - j * tn < tn ? N - j * tn : tn; }
  // Tile rows/columns that touch real data (K or N may end before the grid does).
  int64_t used_tile_rows() const { return (K + tk - 1) / tk; }
  int64_t used_tile_cols() const { return (N + tn - 1) / tn; }
};

// Checks the shapes of A, U, V and (optional) bias against each other and builds the problem.
// out_features < 0 means the attribute is absent. Throws OpError naming `node` and the input.
TsvdProblem make_tsvd_problem(const std::string& node, const std::vector<int64_t>& a_shape,
                              const std::vector<int64_t>& u_shape, const std::vector<int64_t>& v_shape,
                              const std::vector<int64_t>* bias_shape, int64_t out_features);

// Output shape: A's shape with the last dim replaced by N.
std::vector<int64_t> tsvd_output_shape(const std::vector<int64_t>& a_shape, int64_t n);

}  // namespace ortops
