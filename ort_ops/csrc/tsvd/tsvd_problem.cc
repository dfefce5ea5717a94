#include "tsvd/tsvd_problem.h"

#include "common/op_error.h"

namespace ortops {

TsvdProblem make_tsvd_problem(const std::string& node, const std::vector<int64_t>& a_shape,
                              const std::vector<int64_t>& u_shape, const std::vector<int64_t>& v_shape,
                              const std::vector<int64_t>* bias_shape, int64_t out_features) {
  const std::string where = "TSVDMatMul node '" + node + "': ";
  if (a_shape.empty())
    fail(where, "input 'A' must have rank >= 1 ([..., K]); got a scalar");
  if (u_shape.size() != 4)
    fail(where, "input 'U' must have rank 4 ([Tk, Tn, tk, r] or [1, 1, tk, r]); got shape ", shape_str(u_shape));
  if (v_shape.size() != 4)
    fail(where, "input 'V' must have rank 4 ([Tk, Tn, r, tn] or [1, 1, r, tn]); got shape ", shape_str(v_shape));
  for (auto d : u_shape)
    if (d <= 0) fail(where, "input 'U' must have positive dims; got shape ", shape_str(u_shape));
  for (auto d : v_shape)
    if (d <= 0) fail(where, "input 'V' must have positive dims; got shape ", shape_str(v_shape));

  TsvdProblem p;
  p.K = a_shape.back();
  p.M = 1;
  for (size_t i = 0; i + 1 < a_shape.size(); ++i) p.M *= a_shape[i];
  p.tk = u_shape[2];
  p.rank = u_shape[3];
  p.tn = v_shape[3];
  if (v_shape[2] != p.rank)
    fail(where, "inconsistent factor shapes: U ", shape_str(u_shape), " has rank r = ", p.rank, " but V ",
         shape_str(v_shape), " has r = ", v_shape[2], " (expected V = [Tk, Tn, ", p.rank, ", tn])");
  if (p.K <= 0) fail(where, "input 'A' must have K = A.shape[-1] >= 1; got shape ", shape_str(a_shape));

  // A factor with a 1 x 1 grid is shared unless the other factor says the grid is 1 x 1 too
  // (then both readings are the same function).
  const bool u_grid_1 = u_shape[0] == 1 && u_shape[1] == 1;
  const bool v_grid_1 = v_shape[0] == 1 && v_shape[1] == 1;
  if (!u_grid_1 && !v_grid_1 && (u_shape[0] != v_shape[0] || u_shape[1] != v_shape[1]))
    fail(where, "inconsistent factor shapes: U ", shape_str(u_shape), " has a ", u_shape[0], " x ", u_shape[1],
         " tile grid but V ", shape_str(v_shape), " has ", v_shape[0], " x ", v_shape[1]);
  p.shared_u = u_grid_1;
  p.shared_v = v_grid_1;
  if (!u_grid_1) {
    p.Tk = u_shape[0];
    p.Tn = u_shape[1];
  } else if (!v_grid_1) {
    p.Tk = v_shape[0];
    p.Tn = v_shape[1];
  } else {
    // Both factors have a 1 x 1 grid: every tile is U · V, so the grid follows from K and
    // out_features (a 1 x 1 grid when out_features is absent: one tile, the same function).
    p.Tk = (p.K + p.tk - 1) / p.tk;
    p.Tn = out_features < 0 ? 1 : (out_features + p.tn - 1) / p.tn;
  }
  if (p.K > p.Tk * p.tk)
    fail(where, "input 'A' has K = ", p.K, " (shape ", shape_str(a_shape), ") but the factors cover only Tk * tk = ",
         p.Tk, " * ", p.tk, " = ", p.Tk * p.tk, " rows");
  p.N = out_features < 0 ? p.Tn * p.tn : out_features;
  if (p.N > p.Tn * p.tn)
    fail(where, "attribute out_features = ", out_features, " is larger than Tn * tn = ", p.Tn, " * ", p.tn, " = ",
         p.Tn * p.tn);
  if (p.N <= 0) fail(where, "attribute out_features must be >= 1; got ", out_features);
  if (bias_shape) {
    if (bias_shape->size() != 1 || (*bias_shape)[0] != p.N)
      fail(where, "input 'bias' must have shape [N] = [", p.N, "]; got ", shape_str(*bias_shape));
    p.has_bias = true;
  }
  return p;
}

std::vector<int64_t> tsvd_output_shape(const std::vector<int64_t>& a_shape, int64_t n) {
  std::vector<int64_t> out = a_shape;
  out.back() = n;
  return out;
}

}  // namespace ortops
