// MultigrainAttention: HF Longformer self-attention (eval) over [B, S, H·D] projections with a
// 0/1/2 (padding/local/global) mask. This header holds the problem description every kernel
// (CPU, CUDA) receives, and the checks that build it; see docs/ops.md for the contract.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ortops {

// Mask values of the op's attention_mask input.
enum MaskValue : int8_t { kPadding = 0, kLocal = 1, kGlobal = 2 };

struct AttentionProblem {
  int64_t batch = 0;      // B
  int64_t seq_len = 0;    // S (any length; no padding to a window multiple)
  int64_t num_heads = 0;  // H
  int64_t head_dim = 0;   // D; rows of q/k/v are H·D elements apart
  int64_t window = 0;     // w, one-sided: a local query i sees keys with |i - j| <= w
  float scale = 0.f;      // multiplies q·k (default 1/sqrt(D))
  // Which global projections were given; a missing one is replaced by its local counterpart.
  bool has_global_query = false, has_global_key = false, has_global_value = false;

  int64_t hidden() const { return num_heads * head_dim; }
};

// Attribute checks, done once when the kernel is created. Throws OpError naming `node`.
void check_attention_attributes(const std::string& node, int64_t num_heads, int64_t window);

// Checks input shapes against each other. global_shapes[i] is null when that optional input is
// absent. scale_attr is NaN when the attribute is absent (then 1/sqrt(D)).
AttentionProblem make_attention_problem(const std::string& node, int64_t num_heads, int64_t window,
                                        float scale_attr, const std::vector<int64_t>& query_shape,
                                        const std::vector<int64_t>& key_shape,
                                        const std::vector<int64_t>& value_shape,
                                        const std::vector<int64_t>& mask_shape,
                                        const std::vector<int64_t>* global_shapes[3]);

// Copies the int32/int64 mask to int8, checking every value is 0, 1 or 2 (first bad one named).
template <typename MaskT>
void normalize_mask(const std::string& node, const MaskT* mask, int64_t batch, int64_t seq_len, int8_t* out);

}  // namespace ortops
