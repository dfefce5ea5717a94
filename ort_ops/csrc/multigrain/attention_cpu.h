// CPU kernel of MultigrainAttention (float32). Work and memory are O(S·(w + G)) per head: query
// rows are processed in blocks against the keys of their band plus the global keys; global rows
// attend to all non-padding keys. Softmax in float32, padding rows written as 0.
#pragma once
#include <cstdint>

#include "common/parallel.h"
#include "multigrain/attention_problem.h"

namespace ortops::cpu {

// query..global_value: [B, S, H·D] (global_* never null: pass the local one when absent);
// mask: [B, S] int8 of 0/1/2 (already checked); out: [B, S, H·D], fully overwritten.
void multigrain_attention(const AttentionProblem& p, const float* query, const float* key, const float* value,
                          const float* global_query, const float* global_key, const float* global_value,
                          const int8_t* mask, float* out, const ParallelFor& parallel_for);

}  // namespace ortops::cpu
