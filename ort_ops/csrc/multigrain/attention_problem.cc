#include "multigrain/attention_problem.h"

#include <cmath>

#include "common/op_error.h"

namespace ortops {

void check_attention_attributes(const std::string& node, int64_t num_heads, int64_t window) {
  const std::string where = "MultigrainAttention node '" + node + "': ";
  if (num_heads < 1) fail(where, "attribute num_heads must be >= 1; got ", num_heads);
  if (window < 0) fail(where, "attribute window (one-sided, HF attention_window / 2) must be >= 0; got ", window);
}

AttentionProblem make_attention_problem(const std::string& node, int64_t num_heads, int64_t window,
                                        float scale_attr, const std::vector<int64_t>& query_shape,
                                        const std::vector<int64_t>& key_shape,
                                        const std::vector<int64_t>& value_shape,
                                        const std::vector<int64_t>& mask_shape,
                                        const std::vector<int64_t>* global_shapes[3]) {
  const std::string where = "MultigrainAttention node '" + node + "': ";
  check_attention_attributes(node, num_heads, window);
  if (query_shape.size() != 3)
    fail(where, "input 'query' must have rank 3 ([B, S, H*D]); got shape ", shape_str(query_shape));
  const char* names[3] = {"key", "value", nullptr};
  const std::vector<int64_t>* others[2] = {&key_shape, &value_shape};
  for (int i = 0; i < 2; ++i)
    if (*others[i] != query_shape)
      fail(where, "input '", names[i], "' must have the shape of 'query' ", shape_str(query_shape), "; got ",
           shape_str(*others[i]));
  const char* global_names[3] = {"global_query", "global_key", "global_value"};
  for (int i = 0; i < 3; ++i)
    if (global_shapes[i] && *global_shapes[i] != query_shape)
      fail(where, "input '", global_names[i], "' must have the shape of 'query' ", shape_str(query_shape), "; got ",
           shape_str(*global_shapes[i]));

  AttentionProblem p;
  p.batch = query_shape[0];
  p.seq_len = query_shape[1];
  const int64_t hidden = query_shape[2];
  if (hidden <= 0)
    fail(where, "input 'query' must have a hidden size H*D = query.shape[2] >= 1; got shape ", shape_str(query_shape));
  if (hidden % num_heads != 0)
    fail(where, "hidden size ", hidden, " (query.shape[2]) is not divisible by num_heads = ", num_heads);
  if (mask_shape.size() != 2 || mask_shape[0] != p.batch || mask_shape[1] != p.seq_len)
    fail(where, "input 'attention_mask' must have shape [B, S] = [", p.batch, ", ", p.seq_len, "]; got ",
         shape_str(mask_shape));
  p.num_heads = num_heads;
  p.head_dim = hidden / num_heads;
  // |i - j| <= S - 1 always, so any w >= S is the same function; clamping keeps i + w and
  // q0 + rows + w far from int64 overflow (window = INT64_MAX gave a wrong answer before).
  p.window = window < p.seq_len ? window : p.seq_len;
  p.scale = std::isnan(scale_attr) ? 1.0f / std::sqrt(static_cast<float>(p.head_dim)) : scale_attr;
  if (!std::isfinite(p.scale)) fail(where, "attribute scale must be finite; got ", scale_attr);
  p.has_global_query = global_shapes[0] != nullptr;
  p.has_global_key = global_shapes[1] != nullptr;
  p.has_global_value = global_shapes[2] != nullptr;
  return p;
}

template <typename MaskT>
void normalize_mask(const std::string& node, const MaskT* mask, int64_t batch, int64_t seq_len, int8_t* out) {
  const int64_t n = batch * seq_len;
  for (int64_t i = 0; i < n; ++i) {
    const MaskT m = mask[i];
    if (m != 0 && m != 1 && m != 2)
      fail("MultigrainAttention node '", node, "': input 'attention_mask' values must be 0 (padding), 1 (local) or ",
           "2 (global); got ", static_cast<int64_t>(m), " at [", i / seq_len, ", ", i % seq_len, "]");
    out[i] = static_cast<int8_t>(m);
  }
}

template void normalize_mask<int32_t>(const std::string&, const int32_t*, int64_t, int64_t, int8_t*);
template void normalize_mask<int64_t>(const std::string&, const int64_t*, int64_t, int64_t, int8_t*);

}  // namespace ortops
