#include "multigrain/attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/gemm_cpu.h"

namespace ortops::cpu {

namespace {

// Query rows per band work item: the key block is kQueryBlock + 2w wide, so the extra work over
// the exact band is (kQueryBlock + 2w) / (2w + 1), about 12% at w = 256.
constexpr int64_t kQueryBlock = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct HeadView {
  const AttentionProblem& p;
  int64_t b, h;
  // Row s of head h of batch entry b inside a [B, S, H·D] array.
  const float* row(const float* base, int64_t s) const { return base + (b * p.seq_len + s) * p.hidden() + h * p.head_dim; }
  float* row(float* base, int64_t s) const { return base + (b * p.seq_len + s) * p.hidden() + h * p.head_dim; }
};

// dst[D, n] = transpose of rows src_rows[0..n) (each D long).
template <typename RowFn>
void transpose_rows(int64_t n, int64_t d, RowFn src_row, float* dst) {
  for (int64_t j = 0; j < n; ++j) {
    const float* s = src_row(j);
    for (int64_t c = 0; c < d; ++c) dst[c * n + j] = s[c];
  }
}

// Band rows [q0, q0 + rows) of one head: local queries attend to local keys within the window
// plus every global key; padding rows become 0; global rows are left to global_rows().
void band_block(const HeadView& hv, const float* query, const float* key, const float* value, const int8_t* mask,
                const std::vector<int64_t>& globals, const float* global_keys_t, const float* global_values,
                int64_t q0, int64_t rows, float* out) {
  const AttentionProblem& p = hv.p;
  const int64_t D = p.head_dim, S = p.seq_len, w = p.window, G = static_cast<int64_t>(globals.size());
  const int64_t k0 = std::max<int64_t>(0, q0 - w), k1 = std::min<int64_t>(S, q0 + rows + w);
  const int64_t L = k1 - k0;
  const int64_t ld_qkv = p.hidden();

  thread_local std::vector<float> q_buf, kt_buf, scores, global_scores;
  q_buf.resize(static_cast<size_t>(rows * D));
  kt_buf.resize(static_cast<size_t>(D * L));
  scores.resize(static_cast<size_t>(rows * L));
  global_scores.resize(static_cast<size_t>(rows * std::max<int64_t>(G, 1)));

  for (int64_t r = 0; r < rows; ++r) {
    const float* q = hv.row(query, q0 + r);
    for (int64_t c = 0; c < D; ++c) q_buf[r * D + c] = q[c] * p.scale;
  }
  transpose_rows(L, D, [&](int64_t j) { return hv.row(key, k0 + j); }, kt_buf.data());
  gemm(rows, L, D, q_buf.data(), D, kt_buf.data(), L, scores.data(), L, false);
  if (G) gemm(rows, G, D, q_buf.data(), D, global_keys_t, G, global_scores.data(), G, false);

  const int8_t* m = mask + hv.b * S;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = q0 + r;
    float* s = scores.data() + r * L;
    float* gs = global_scores.data() + r * G;
    // Keys of the window that are local (not padding, not global), everything else -inf.
    const int64_t lo = std::max<int64_t>(0, i - w) - k0, hi = std::min<int64_t>(S - 1, i + w) - k0;
    float mx = kNegInf;
    for (int64_t j = 0; j < L; ++j) {
      const bool valid = j >= lo && j <= hi && m[k0 + j] == kLocal;
      s[j] = valid ? s[j] : kNegInf;
      mx = std::max(mx, s[j]);
    }
    for (int64_t g = 0; g < G; ++g) mx = std::max(mx, gs[g]);
    if (m[i] != kLocal) {
      // Padding rows are 0 and global rows get their own pass: their results here are dropped.
      std::fill(s, s + L, 0.f);
      std::fill(gs, gs + G, 0.f);
      continue;
    }
    float sum = 0.f;
    for (int64_t j = 0; j < L; ++j) {
      s[j] = s[j] == kNegInf ? 0.f : std::exp(s[j] - mx);
      sum += s[j];
    }
    for (int64_t g = 0; g < G; ++g) {
      gs[g] = std::exp(gs[g] - mx);
      sum += gs[g];
    }
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < L; ++j) s[j] *= inv;
    for (int64_t g = 0; g < G; ++g) gs[g] *= inv;
  }

  // P·V into a private block, then copy out local rows and zero padding rows: global rows of
  // `out` belong to global_rows(), which may run concurrently.
  thread_local std::vector<float> o_buf;
  o_buf.resize(static_cast<size_t>(rows * D));
  gemm(rows, D, L, scores.data(), L, hv.row(value, k0), ld_qkv, o_buf.data(), D, false);
  if (G) gemm(rows, D, G, global_scores.data(), G, global_values, D, o_buf.data(), D, true);
  for (int64_t r = 0; r < rows; ++r) {
    float* o = hv.row(out, q0 + r);
    if (m[q0 + r] == kLocal)
      std::copy(o_buf.data() + r * D, o_buf.data() + (r + 1) * D, o);
    else if (m[q0 + r] == kPadding)
      std::fill(o, o + D, 0.f);
  }
}

// Global rows of one head: each global query attends to every non-padding key with the global
// projections. Scores are formed transposed ([S, G] = gK · gQᵀ) so no S x D transpose is needed.
void global_rows(const HeadView& hv, const float* global_query, const float* global_key, const float* global_value,
                 const int8_t* mask, const std::vector<int64_t>& globals, float* out) {
  const AttentionProblem& p = hv.p;
  const int64_t D = p.head_dim, S = p.seq_len, G = static_cast<int64_t>(globals.size());
  const int64_t ld = p.hidden();
  thread_local std::vector<float> gq_t, scores_t, probs;
  gq_t.resize(static_cast<size_t>(D * G));
  scores_t.resize(static_cast<size_t>(S * G));
  probs.resize(static_cast<size_t>(G * S));
  for (int64_t g = 0; g < G; ++g) {
    const float* q = hv.row(global_query, globals[g]);
    for (int64_t c = 0; c < D; ++c) gq_t[c * G + g] = q[c] * p.scale;
  }
  gemm(S, G, D, hv.row(global_key, 0), ld, gq_t.data(), G, scores_t.data(), G, false);
  const int8_t* m = mask + hv.b * S;
  for (int64_t g = 0; g < G; ++g) {
    float mx = kNegInf;
    for (int64_t j = 0; j < S; ++j)
      if (m[j] != kPadding) mx = std::max(mx, scores_t[j * G + g]);
    float sum = 0.f;
    float* pr = probs.data() + g * S;
    for (int64_t j = 0; j < S; ++j) {
      pr[j] = m[j] != kPadding ? std::exp(scores_t[j * G + g] - mx) : 0.f;
      sum += pr[j];
    }
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < S; ++j) pr[j] *= inv;
  }
  // Each global row's output: one [1, S] x [S, D] product (rows are scattered in the output).
  for (int64_t g = 0; g < G; ++g)
    gemm(1, D, S, probs.data() + g * S, S, hv.row(global_value, 0), ld, hv.row(out, globals[g]), ld, false);
}

}  // namespace

void multigrain_attention(const AttentionProblem& p, const float* query, const float* key, const float* value,
                          const float* global_query, const float* global_key, const float* global_value,
                          const int8_t* mask, float* out, const ParallelFor& parallel_for) {
  const int64_t B = p.batch, S = p.seq_len, H = p.num_heads, D = p.head_dim;
  // Global token positions per batch row (never padding: the mask value says global).
  std::vector<std::vector<int64_t>> globals(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      if (mask[b * S + s] == kGlobal) globals[b].push_back(s);

  // Per (b, h): global keys transposed [D, G] and global values [G, D], gathered once.
  std::vector<std::vector<float>> global_keys_t(static_cast<size_t>(B * H)), global_values(static_cast<size_t>(B * H));
  parallel_for(static_cast<size_t>(B * H), [&](size_t bh) {
    const HeadView hv{p, static_cast<int64_t>(bh) / H, static_cast<int64_t>(bh) % H};
    const auto& g = globals[hv.b];
    const int64_t G = static_cast<int64_t>(g.size());
    auto& kt = global_keys_t[bh];
    auto& gv = global_values[bh];
    kt.resize(static_cast<size_t>(D * G));
    gv.resize(static_cast<size_t>(G * D));
    transpose_rows(G, D, [&](int64_t j) { return hv.row(key, g[j]); }, kt.data());
    for (int64_t j = 0; j < G; ++j) std::copy(hv.row(value, g[j]), hv.row(value, g[j]) + D, gv.data() + j * D);
  });

  // Items: first the (b, h) global-row passes (the heavier ones), then every band block.
  const int64_t blocks = (S + kQueryBlock - 1) / kQueryBlock;
  const int64_t global_items = B * H;
  parallel_for(static_cast<size_t>(global_items + B * H * blocks), [&](size_t item) {
    int64_t it = static_cast<int64_t>(item);
    if (it < global_items) {
      const HeadView hv{p, it / H, it % H};
      if (!globals[hv.b].empty())
        global_rows(hv, global_query, global_key, global_value, mask, globals[hv.b], out);
      return;
    }
    it -= global_items;
    const int64_t bh = it / blocks, blk = it % blocks;
    const HeadView hv{p, bh / H, bh % H};
    const int64_t q0 = blk * kQueryBlock;
    band_block(hv, query, key, value, mask, globals[hv.b], global_keys_t[bh].data(), global_values[bh].data(), q0,
               std::min(kQueryBlock, S - q0), out);
  });
}

}  // namespace ortops::cpu
