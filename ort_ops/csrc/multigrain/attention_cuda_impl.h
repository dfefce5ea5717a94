// Private interface between the MultigrainAttention launcher (attention_cuda.cu) and the per-head-
// dim tensor-core instances (attention_cuda_hdim*.cu). Not installed; tests/gpu's shim uses it to
// time the coarse and fine parts alone.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "multigrain/attention_problem.h"

namespace ortops::cuda::multigrain {

// Which parts of the fused kernel run (the launcher runs both; timing runs one alone).
enum Parts : int { kBand = 1, kGlobalRows = 2, kAllParts = 3 };

// Device scratch, carved from the caller's workspace (offsets 256-byte aligned).
struct Workspace {
  int8_t* mask = nullptr;    // [B, S] mask as int8; 3 marks an invalid value
  int32_t* gidx = nullptr;   // [B, S] positions of the global tokens of each row, compacted
  int32_t* gcount = nullptr; // [B] number of globals
  int32_t* bad = nullptr;    // [B] 1 if the row's mask holds a value other than 0/1/2
  float* part_o = nullptr;   // [B, H, splits, 64, D] normalized partial outputs of global tile 0
  float* part_lse = nullptr; // [B, H, splits, 64] their log2-sum-exp (log2 domain)
  int32_t* done = nullptr;   // [B, H] split CTAs finished; zeroed by the compaction each run
  size_t bytes = 0;
};

struct SplitPlan {
  int chunk = 0;   // keys per split (multiple of 64)
  int splits = 0;  // ceil(S / chunk), <= kMaxSplits
};
SplitPlan split_plan(int64_t seq_len);
Workspace carve_workspace(const AttentionProblem& p, DType dtype, void* base);

// Arguments of the tensor-core kernel (one launch runs band CTAs and global-row CTAs).
struct FlashParams {
  const void *q, *k, *v, *gq, *gk, *gv;
  void* out;
  const int8_t* mask;      // [B, S] int8 mask from the compaction (global-row CTAs, fp32 kernel)
  const void* mask_in;     // [B, S] the op's int32 / int64 mask: band CTAs read it directly, so
  int mask64;              //   they need the compaction only for their gathered global keys
  const int32_t* gidx;
  const int32_t* gcount;
  const int32_t* bad;
  float* part_o;
  float* part_lse;
  int32_t* done;
  int64_t ld;  // H * D, elements between consecutive sequence rows
  int B, S, H, D, w;
  float scale_log2;  // scale * log2(e): softmax runs on exp2
  int q_tiles;       // ceil(S / 64) band tiles per (b, h)
  int chunk, splits; // global tile 0 key split
  int global_ctas;   // (splits + kExtraCtas) * B * H, first in the grid; 0 when not run
  int band_ctas;     // q_tiles * B * H; 0 when not run
  int band_wgmma;    // 1: band tiles on warpgroup MMAs where built (head dim 64, sm_90a); 0: mma.sync
};

// Tensor-core kernel instances: T = __half / __nv_bfloat16 by DType, kHeadDim in {32, 64, 128}.
// pdl: launch as a programmatic dependent of the compaction kernel (sm_90+), so CTAs start and
// prefetch their queries while the compaction finishes.
template <DType kType, int kHeadDim>
cudaError_t launch_flash(const FlashParams& fp, bool pdl, cudaStream_t stream);

// Hopper kernel (attention_cuda_band_sm90.cu; sm_90a build, compute capability 9.0, head dims
// 40..64, fp16 / bf16): band and global-row CTAs (fp.band_ctas, fp.global_ctas: either or both)
// on warpgroup MMAs, TMA-fed and pipelined, with a register and shared-memory footprint of the
// band's. Returns cudaErrorNotSupported, having launched nothing, when the driver rejects its
// tensor maps (e.g. an unaligned mask); the caller then runs the fused kernel instead.
// ring_slots: 3 runs the 3-slot ring (A/B runs), anything else the 2-slot default.
template <DType kType>
cudaError_t launch_band_sm90(const FlashParams& fp, int ring_slots, bool pdl, cudaStream_t stream);

// How the coarse (band) and fine (global-row) CTAs are launched.
//   kOneGrid:   one launch holds both kinds (global-row CTAs first in the grid): the Hopper
//               kernel where it runs (the default there), else the fused flash_kernel.
//   kTwoStream: band CTAs on the caller's stream (the Hopper kernel where it runs); global-row
//               CTAs (and their merge) in the fused kernel on a side stream forked from it after
//               the compaction and joined back with events.
enum class Schedule : int { kDefault = 0, kOneGrid = 1, kTwoStream = 2 };
// The launcher's choice where the Hopper kernel does not run, by size (H200, 2026-11-29,
// docs/attention_cuda.md): two streams up to 4096 tokens per call (B·S), 3% faster than one grid
// at B 1, S 4096; one grid above (1-2.5% faster at B 1, S 16384; equal within noise at B 8).
constexpr int64_t kTwoStreamMaxTokens = 4096;
inline Schedule default_schedule(int64_t batch, int64_t seq_len) {
  return batch * seq_len <= kTwoStreamMaxTokens ? Schedule::kTwoStream : Schedule::kOneGrid;
}

struct RunOptions {
  int parts = kAllParts;
  Schedule schedule = Schedule::kDefault;
  // Band tiles on warpgroup MMAs where built (sm_90a, head dim 64; 11-13% faster on the H200,
  // docs/attention_cuda.md); false keeps them on mma.sync (A/B runs, tests of that path).
  bool band_wgmma = true;
  // The Hopper kernel where it runs (with band_wgmma): the band, and in one grid the global rows
  // too; false keeps every CTA in the fused kernel (A/B runs, and to keep that path tested on
  // Hopper).
  bool band_kernel = true;
  // Two-stream schedule: the band launched as a programmatic dependent of the compaction (starts
  // before it ends). false: an ordinary launch, so the side stream's higher-priority global-row
  // CTAs, enqueued first, are dispatched first (an A/B option: 7-17% slower, run 11).
  bool band_pdl = true;
  // The Hopper kernel's ring depth: 0 or 2 the 2-slot default; 3 the 3-slot ring (A/B runs).
  int ring_slots = 0;
};

// The whole op with a choice of parts and schedule (multigrain_attention == default options).
cudaError_t run_parts(const AttentionProblem& p, DType dtype, const void* query, const void* key, const void* value,
                      const void* global_query, const void* global_key, const void* global_value, const void* mask,
                      bool mask_is_int64, void* out, void* workspace, cudaStream_t stream, const RunOptions& opt);

}  // namespace ortops::cuda::multigrain
