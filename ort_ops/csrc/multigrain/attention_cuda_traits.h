// Tile configuration of the MultigrainAttention CUDA kernels (private to attention_cuda*.cu).
// Every constant of the tensor-core kernel is derived here and checked once, so the kernel reads
// as "what" and the numbers live in one place.
#pragma once
#include <cstdint>

// Tuning override for measurements only (e.g. -DORTOPS_MULTIGRAIN_MIN_BLOCKS_HDIM64=4).
#ifndef ORTOPS_MULTIGRAIN_MIN_BLOCKS_HDIM64
#define ORTOPS_MULTIGRAIN_MIN_BLOCKS_HDIM64 3
#endif

namespace ortops::cuda::multigrain {

// Tensor-core (mma.sync m16n8k16) flash kernel for fp16/bf16, one CTA = one tile of kBlockM
// query rows against a sequence of kBlockN-key blocks, 4 warps x 16 query rows each.
// kHeadDim is the padded head size (D <= kHeadDim, D % 8 == 0; the columns past D are zero-filled).
template <int kHeadDim_>
struct FlashTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = 64;   // query rows per CTA: band work = (64 + 2w) / (2w + 1) of the
                                       // exact band, 1.12 at w = 256 (128 rows: 1.25)
  static constexpr int kBlockN = 64;   // keys per block
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  // Register cap through __launch_bounds__: 3 CTAs per SM at head dim <= 64 (170 registers, no
  // spill); 4 (128 registers, 104 bytes spilled) measured 1.5-3% slower at S = 4096 (H200,
  // 2026-11-29, six mask configurations). 2 at head dim 128 (246 registers).
  static constexpr int kMinBlocksPerSm = kHeadDim <= 64 ? ORTOPS_MULTIGRAIN_MIN_BLOCKS_HDIM64 : 2;
  static constexpr int kRowsPerWarp = kBlockM / kWarps;      // one m16 tile per warp
  static constexpr int kPad = 8;                             // 16 bytes per smem row: ldmatrix rows
  static constexpr int kStride = kHeadDim + kPad;            // hit distinct bank groups
  static constexpr int kChunksPerRow = kHeadDim / 8;         // 16-byte cp.async chunks per row
  static constexpr int kTileElems = kBlockM * kStride;       // one (64, kStride) smem tile
  static constexpr int kNTiles = kBlockN / 8;                // n8 tiles of S = Q Kᵀ per warp
  static constexpr int kDTiles = kHeadDim / 8;               // n8 tiles of O per warp
  static constexpr int kKSteps = kHeadDim / 16;              // k16 steps of Q Kᵀ
  static constexpr int kPvSteps = kBlockN / 16;              // k16 steps of P V
  static constexpr int kLoadsPerThread = kBlockN * kChunksPerRow / kThreads;  // per K or V tile
  // smem: Q + 2 x (K, V) double buffer, 16-bit elements, + 2 x kBlockN key-valid flags.
  static constexpr int kSmemBytes = (kTileElems + 4 * kBlockN * kStride) * 2 + 2 * kBlockN;

  static_assert(kHeadDim % 16 == 0 && kHeadDim >= 32 && kHeadDim <= 128, "head dim instance: 32..128, /16");
  static_assert(kBlockM == kWarps * 16, "each warp owns one m16 row tile");
  static_assert(kBlockM == kBlockN, "Q and K/V tiles share one smem layout and loader");
  static_assert(kNTiles % 2 == 0 && kDTiles % 2 == 0, "ldmatrix.x4 loads two n8 tiles at a time");
  static_assert((kBlockN * kChunksPerRow) % kThreads == 0, "whole loads per thread");
  static_assert(kThreads >= kBlockN, "one thread per key writes its valid flag");
  static_assert((kStride * 2) % 16 == 0, "16-byte aligned smem rows for cp.async / ldmatrix");
  static_assert(((kStride * 2 / 16) & 1) == 1, "odd 16-byte row pitch: conflict-free ldmatrix");
  static_assert(kSmemBytes <= 227 * 1024, "fits Hopper/Ampere opt-in smem");
  // The warpgroup-MMA band layout (head dim 64): 1024-byte alignment slack, 2 x (K, V) and Q as
  // swizzled 64 x 64 tiles, and the valid flags fit the same allocation.
  static_assert(kHeadDim != 64 || 1024 + 5 * kBlockN * 64 * 2 + 2 * kBlockN <= kSmemBytes,
                "wgmma band tiles fit the kernel's shared memory");
};

// Global-row pass: global query rows of a batch entry attend all its keys. The first kBlockM
// global rows split the keys into chunks (partials merged by log-sum-exp by the last split CTA
// of each head to finish); rows past kBlockM (only when G > 64) run whole-sequence on
// kExtraCtas CTAs per head.
constexpr int kMinChunk = 256;     // keys per split at S <= 4096 (512: global part 21 us at S = 4096, G = 8)
constexpr int kMaxSplits = 16;     // bounds the partial buffer: splits x B x H x 64 x D floats
constexpr int kExtraCtas = 4;      // CTAs per (b, h) for global tiles 1.. (G > 64)
// Mask compaction: a row is cut into chunks of kCompactChunk entries (more when S is long, so that
// a row has at most kCompactMaxChunks), one CTA each. A CTA counts the globals before its chunk
// (coalesced 16-byte loads of the mask, no inter-CTA communication), then compacts its chunk in
// passes of kCompactThreads x kCompactItems entries.
constexpr int kCompactThreads = 256;
constexpr int kCompactItems = 8;                                // entries per thread per pass
constexpr int kCompactChunk = kCompactThreads * kCompactItems;  // 2048: one pass
constexpr int kCompactMaxChunks = 64;

}  // namespace ortops::cuda::multigrain
