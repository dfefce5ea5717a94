// Tensor-core flash kernel of MultigrainAttention (fp16 / bf16, mma.sync m16n8k16), included by
// the per-head-dim instance files attention_cuda_hdim*.cu. One launch holds two kinds of CTA:
//   - global-row CTAs (first in the grid, so they are dispatched first): a tile of up to 64
//     global query rows, gathered by index, against a key range with the global projections;
//   - band CTAs: 64 consecutive query rows against the band's key blocks [q0 - w, q0 + 63 + w]
//     plus the row's global keys gathered into compact 64-key blocks (local projections).
// Only edge blocks (band ends, partial blocks, a padding or global key inside the block) pay for
// per-element masking; a block's "all keys valid" flag comes free with its barrier
// (__syncthreads_and). Nothing here is Hopper-only: the same code serves sm_80 and sm_90.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common/cuda_ptx.cuh"
#include "common/cuda_wgmma.cuh"
#include "multigrain/attention_cuda_impl.h"
#include "multigrain/attention_cuda_traits.h"

namespace ortops::cuda::multigrain {

template <DType>
struct Elem;
template <>
struct Elem<DType::kFloat16> {
  using T = __half;
};
template <>
struct Elem<DType::kBFloat16> {
  using T = __nv_bfloat16;
};

// The 16-bit tensor-core ops of one element type (common/cuda_ptx.cuh).
template <DType kType>
using MmaOf = ptx::Mma<typename Elem<kType>::T>;

namespace dev {

// Waits for the compaction kernel (programmatic dependent launch, sm_90+; a no-op when the
// launch was an ordinary one).
__device__ __forceinline__ void wait_for_compaction() { ptx::griddep_wait(); }

// The op's mask entry as 0, 1, 2, or 3 for an invalid value (band CTAs read it before the
// compaction has finished).
__device__ __forceinline__ int mask_in(const FlashParams& fp, int64_t idx) {
  if (fp.mask64) {
    const long long v = static_cast<const long long*>(fp.mask_in)[idx];
    return v >= 0 && v <= 2 ? static_cast<int>(v) : 3;
  }
  const int v = static_cast<const int*>(fp.mask_in)[idx];
  return v >= 0 && v <= 2 ? v : 3;
}

// An [A][B] fragment array seen as the flat [A·B] array a warpgroup MMA takes (same registers).
template <int A, int B>
__device__ __forceinline__ float (&flat(float (&x)[A][B]))[A * B] {
  return *reinterpret_cast<float(*)[A * B]>(&x);
}

}  // namespace dev

// What a CTA computes: which query rows, which keys, where the result goes.
enum class TileKind { kBand, kGlobalSplit, kGlobalWhole };

// Where a CTA's tiles live in shared memory. mma.sync layout: Q, then 2 x (K, V), rows padded
// to kStride (conflict-free ldmatrix). wgmma layout (band CTAs, head dim 64, sm_90a): 2 x (K, V)
// and Q, 64 x 64 each, 1024-byte aligned and 128-byte swizzled as the wgmma descriptors read them
// (Q·Kᵀ takes both operands from shared memory). Then the 2 x kBlockN key-valid flags.
template <DType kType, int kHeadDim, bool kWgmma>
struct SmemTiles {
  using Tr = FlashTraits<kHeadDim>;
  using T = typename Elem<kType>::T;
  static constexpr int kKvTileElems = kWgmma ? Tr::kBlockN * 64 : Tr::kTileElems;  // one K or V tile
  T *q, *k, *v;  // k, v: buffer b at + b * kKvTileElems
  int8_t* valid;
  __device__ __forceinline__ explicit SmemTiles(unsigned char* smem) {
    if constexpr (kWgmma) {
      static_assert(kHeadDim == 64, "one 128-byte swizzle atom per 64-element row");
      const uint32_t a = ptx::smem_u32(smem);
      k = reinterpret_cast<T*>(smem + (((a + 1023u) & ~1023u) - a));
      v = k + 2 * kKvTileElems;
      q = v + 2 * kKvTileElems;
      valid = reinterpret_cast<int8_t*>(q + kKvTileElems);
    } else {
      q = reinterpret_cast<T*>(smem);
      k = q + Tr::kTileElems;
      v = k + 2 * kKvTileElems;
      valid = reinterpret_cast<int8_t*>(v + 2 * kKvTileElems);
    }
  }
  // Element offset of (row r, 16-byte chunk c) inside a K, V (or, wgmma layout, Q) tile.
  __device__ __forceinline__ static int kv_offset(int r, int c) {
    if constexpr (kWgmma) return wgmma::sw128_offset(r, c);
    else return r * Tr::kStride + c * 8;
  }
};

// Band Q tile (rows q0.., zero past S): needs nothing from the compaction, so band CTAs issue
// it before waiting for that kernel.
template <DType kType, int kHeadDim, bool kWgmma>
__device__ void load_band_q(const FlashParams& fp, unsigned char* smem, int b, int h, int q0) {
  using Tr = FlashTraits<kHeadDim>;
  using T = typename Elem<kType>::T;
  using Tiles = SmemTiles<kType, kHeadDim, kWgmma>;
  T* sQ = Tiles(smem).q;
  const T* gQ = static_cast<const T*>(fp.q) + static_cast<int64_t>(b) * fp.S * fp.ld + static_cast<int64_t>(h) * fp.D;
  for (int i = threadIdx.x; i < Tr::kBlockM * Tr::kChunksPerRow; i += Tr::kThreads) {
    const int r = i / Tr::kChunksPerRow, c = i % Tr::kChunksPerRow;
    const bool ok = q0 + r < fp.S && c * 8 < fp.D;
    ptx::cp_async16(sQ + Tiles::kv_offset(r, c), gQ + (ok ? (q0 + r) * fp.ld + c * 8 : 0), ok);
  }
}

// kNarrow (global-row split tiles with G <= 16): the 4 warps share query rows 0..15 and each
// takes 16 of a block's 64 keys; their partial softmaxes are merged through smem at the end. A
// quarter of the tensor work of a 64-row tile, which would compute 48 empty rows at G <= 16.
// kWgmma (band tiles, head dim 64, sm_90a): Q·Kᵀ and P·V as warpgroup MMAs reading Q, K and V
// straight from swizzled shared memory (no ldmatrix; P from registers), P·V left running while
// the next block's barrier and loads go on; the fragments, masking and softmax are the same code.
template <DType kType, int kHeadDim, bool kNarrow = false, bool kWgmma = false>
__device__ void attend_tile(const FlashParams& fp, unsigned char* smem, TileKind kind, int b, int h, int tile,
                            int key_begin, int key_end, int split) {
  using Tr = FlashTraits<kHeadDim>;
  using T = typename Elem<kType>::T;
  static_assert(!(kWgmma && kNarrow), "the warpgroup MMA path computes whole 64-row tiles");
  using Tiles = SmemTiles<kType, kHeadDim, kWgmma>;
  const Tiles tiles(smem);
  T* sQ = tiles.q;  // (BLK_M, kStride)
  T* sK = tiles.k;  // 2 x K tile
  T* sV = tiles.v;  // 2 x V tile
  int8_t* sValid = tiles.valid;  // 2 x (BLK_N)

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;  // mma fragment row group and column pair
  const int S = fp.S, D = fp.D, w = fp.w;
  const int64_t ld = fp.ld;
  const bool band = kind == TileKind::kBand;
  const int64_t head_off = static_cast<int64_t>(b) * S * ld + static_cast<int64_t>(h) * D;
  const T* gQ = static_cast<const T*>(band ? fp.q : fp.gq) + head_off;
  const T* gK = static_cast<const T*>(band ? fp.k : fp.gk) + head_off;
  const T* gV = static_cast<const T*>(band ? fp.v : fp.gv) + head_off;
  const int64_t mrow = static_cast<int64_t>(b) * S;
  const int8_t* gMask = fp.mask + mrow;
  const int32_t* gIdx = fp.gidx + mrow;
  const int q0 = tile * Tr::kBlockM;  // band: first query row; global: first global slot

  // Blocks: first the key range [key_begin, key_end); band CTAs then walk the ceil(G / 64)
  // gathered global-key blocks. Band CTAs wait for the compaction (G, gidx) only when they are
  // about to load the first gathered block: the band itself needs only the op's mask.
  const int n_range = (key_end - key_begin + Tr::kBlockN - 1) / Tr::kBlockN;
  int G = band ? -1 : fp.gcount[b];
  int n_blocks = n_range;
  auto need_globals = [&]() {
    if (G >= 0) return;
    dev::wait_for_compaction();
    G = fp.gcount[b];
    n_blocks = n_range + (G + Tr::kBlockN - 1) / Tr::kBlockN;
  };

  // Q tile: band rows were issued by load_band_q; global rows are gathered: gidx[q0..].
  if (!band)
    for (int i = tid; i < Tr::kBlockM * Tr::kChunksPerRow; i += Tr::kThreads) {
      const int r = i / Tr::kChunksPerRow, c = i % Tr::kChunksPerRow;
      const int slot = q0 + r;
      const bool ok = slot < G && c * 8 < D;
      const int row = slot < G ? gIdx[slot] : 0;
      ptx::cp_async16(sQ + r * Tr::kStride + c * 8, gQ + (ok ? row * ld + c * 8 : 0), ok);
    }

  // Issues the loads of block n into buffer buf; returns this thread's share of "every key of
  // the block is valid" (for the barrier's AND).
  auto load_block = [&](int n, int buf) -> bool {
    const bool gathered = n >= n_range;
    const int kb = gathered ? (n - n_range) * Tr::kBlockN : key_begin + n * Tr::kBlockN;
    T* dK = sK + buf * Tiles::kKvTileElems;
    T* dV = sV + buf * Tiles::kKvTileElems;
#pragma unroll
    for (int it = 0; it < Tr::kLoadsPerThread; ++it) {
      const int i = tid + it * Tr::kThreads;
      const int r = i / Tr::kChunksPerRow, c = i % Tr::kChunksPerRow;
      int row = kb + r;
      bool ok = gathered ? row < G : row < key_end;
      if (gathered && ok) row = gIdx[row];
      ok = ok && c * 8 < D;
      const int64_t off = ok ? row * ld + c * 8 : 0;
      ptx::cp_async16(dK + Tiles::kv_offset(r, c), gK + off, ok);
      ptx::cp_async16(dV + Tiles::kv_offset(r, c), gV + off, ok);
    }
    bool valid = true;
    if (tid < Tr::kBlockN) {
      const int j = kb + tid;
      if (gathered)
        valid = j < G;
      else if (band)
        valid = j < key_end && dev::mask_in(fp, mrow + j) == kLocal;  // padding and global keys leave the band
      else
        valid = j < key_end && gMask[j] != kPadding;
      sValid[buf * Tr::kBlockN + tid] = valid;
    }
    return valid;
  };

  if (n_range == 0) need_globals();
  bool pred_next = load_block(0, 0);
  ptx::cp_async_commit();

  // O accumulators (16 rows, kHeadDim) per warp, mma C layout. The wgmma path leaves them unset:
  // block 0's first P·V product overwrites them (a band tile always has a block). Zeroing them
  // here would be a plain write to registers that a still-running P·V of the loop's previous
  // trip also targets, as ptxas sees the loop, and it then serializes every wgmma (C7515).
  float acc_o[Tr::kDTiles][4];
  if constexpr (!kWgmma) ptx::zero_acc(reinterpret_cast<float(&)[1][Tr::kDTiles][4]>(acc_o));
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
  uint32_t q_frag[Tr::kKSteps][4];
  const float scale_log2 = fp.scale_log2;
  const int warp_row0 = kNarrow ? 0 : warp * Tr::kRowsPerWarp;
  constexpr int kNT = kNarrow ? 2 : Tr::kNTiles;  // n8 score tiles per warp and block
  const int key0 = kNarrow ? warp * 16 : 0;         // the warp's first key column in a block

  for (int n = 0; n < n_blocks; ++n) {
    const int buf = n & 1;
    ptx::cp_async_wait<0>();
    if constexpr (kWgmma) {
      wgmma::fence_proxy_async();  // this thread's cp.async writes, before wgmma reads them
      wgmma::wait<0>();            // P·V of block n - 1 has read buffer buf ^ 1: it may be refilled
      wgmma::fence_operands(dev::flat(acc_o));
    }
    const bool all_valid = __syncthreads_and(pred_next);
    if (!kWgmma && n == 0) {  // (wgmma: Q·Kᵀ reads Q from shared memory)
#pragma unroll
      for (int ks = 0; ks < Tr::kKSteps; ++ks) {
        const int r = warp_row0 + (lane & 7) + ((lane >> 3) & 1) * 8, c = ks * 16 + (lane >> 4) * 8;
        ptx::ldsm_x4(q_frag[ks], sQ + r * Tr::kStride + c);
      }
    }
    if (n + 1 >= n_range) need_globals();  // block n + 1 is gathered, or the last block
    if (n + 1 < n_blocks) pred_next = load_block(n + 1, buf ^ 1);
    ptx::cp_async_commit();

    // S = Q Kᵀ for this warp's 16 rows x 64 keys.
    const T* cK = sK + buf * Tiles::kKvTileElems;
    float acc_s[kNT][4];
    if constexpr (kWgmma) {
      const uint32_t k_addr = ptx::smem_u32(cK), q_addr = ptx::smem_u32(sQ);
      wgmma::fence();
#pragma unroll
      for (int ks = 0; ks < Tr::kKSteps; ++ks)  // k16 step = 32 bytes further along each Q and K row
        wgmma::mma_m64nNk16_ss<T, 64, 0>(dev::flat(acc_s), wgmma::sw128_desc(q_addr + ks * 32),
                                   wgmma::sw128_desc(k_addr + ks * 32), ks > 0);
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::fence_operands(dev::flat(acc_s));
    } else {
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_s[nt][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < Tr::kKSteps; ++ks)
#pragma unroll
        for (int np = 0; np < kNT / 2; ++np) {
          uint32_t kf[4];
          const int r = key0 + np * 16 + (lane & 7) + ((lane >> 4) << 3), c = ks * 16 + ((lane >> 3) & 1) * 8;
          ptx::ldsm_x4(kf, cK + Tiles::kv_offset(r, c >> 3));
          MmaOf<kType>::run(acc_s[2 * np], q_frag[ks], kf[0], kf[1]);
          MmaOf<kType>::run(acc_s[2 * np + 1], q_frag[ks], kf[2], kf[3]);
        }
    }
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_s[nt][e] *= scale_log2;

    // Per-element mask only on edge blocks.
    const bool gathered = n >= n_range;
    const int kb = gathered ? 0 : key_begin + n * Tr::kBlockN;
    const bool window_edge = band && !gathered &&
                             !(kb >= q0 + Tr::kBlockM - 1 - w && kb + Tr::kBlockN - 1 <= q0 + w);
    if (!all_valid || window_edge) {
      const int8_t* valid = sValid + buf * Tr::kBlockN;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int kk = key0 + nt * 8 + 2 * t4 + (e & 1);
          bool ok = valid[kk] != 0;
          if (window_edge) {
            const int i = q0 + warp_row0 + g + (e >> 1) * 8;
            const int dist = kb + kk - i;
            ok = ok && dist <= w && dist >= -w;
          }
          if (!ok) acc_s[nt][e] = -INFINITY;
        }
    }

    // Online softmax (log2 domain); rows g and g + 8 of the warp's tile.
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = row_max[rr];
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) mx = fmaxf(mx, fmaxf(acc_s[nt][2 * rr], acc_s[nt][2 * rr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_use = mx == -INFINITY ? 0.f : mx;  // a row with no valid key yet stays 0
      const float corr = ptx::exp2_approx(row_max[rr] - m_use);
      row_max[rr] = mx;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        acc_s[nt][2 * rr] = ptx::exp2_approx(acc_s[nt][2 * rr] - m_use);
        acc_s[nt][2 * rr + 1] = ptx::exp2_approx(acc_s[nt][2 * rr + 1] - m_use);
        sum += acc_s[nt][2 * rr] + acc_s[nt][2 * rr + 1];
      }
      row_sum[rr] = row_sum[rr] * corr + sum;  // quad-partial; reduced once at the end
      if (!kWgmma || n > 0)  // (wgmma: block 0 overwrites O, see above)
#pragma unroll
        for (int d = 0; d < Tr::kDTiles; ++d) {
          acc_o[d][2 * rr] *= corr;
          acc_o[d][2 * rr + 1] *= corr;
        }
    }

    // O += P V: the S accumulators are re-packed in place as the A operand.
    const T* cV = sV + buf * Tiles::kKvTileElems;
    if constexpr (kWgmma) {
      // The P registers stay live until the product is waited for (next block, or after the loop).
      uint32_t pa[kNT / 2][4];
#pragma unroll
      for (int kk = 0; kk < kNT / 2; ++kk) {
        pa[kk][0] = MmaOf<kType>::pack(acc_s[2 * kk][0], acc_s[2 * kk][1]);
        pa[kk][1] = MmaOf<kType>::pack(acc_s[2 * kk][2], acc_s[2 * kk][3]);
        pa[kk][2] = MmaOf<kType>::pack(acc_s[2 * kk + 1][0], acc_s[2 * kk + 1][1]);
        pa[kk][3] = MmaOf<kType>::pack(acc_s[2 * kk + 1][2], acc_s[2 * kk + 1][3]);
      }
      const uint32_t v_addr = ptx::smem_u32(cV);
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < kNT / 2; ++kk)  // k16 step = 16 key rows of 128 bytes
        wgmma::mma_m64n64k16_rs<T, 1>(dev::flat(acc_o), pa[kk], wgmma::sw128_desc(v_addr + kk * 2048),
                                      n > 0 || kk > 0);
      wgmma::commit();  // waited for at the next block's top, or after the loop
    } else {
#pragma unroll
      for (int kk = 0; kk < kNT / 2; ++kk) {
        const uint32_t pa[4] = {MmaOf<kType>::pack(acc_s[2 * kk][0], acc_s[2 * kk][1]),
                                MmaOf<kType>::pack(acc_s[2 * kk][2], acc_s[2 * kk][3]),
                                MmaOf<kType>::pack(acc_s[2 * kk + 1][0], acc_s[2 * kk + 1][1]),
                                MmaOf<kType>::pack(acc_s[2 * kk + 1][2], acc_s[2 * kk + 1][3])};
#pragma unroll
        for (int dp = 0; dp < Tr::kDTiles / 2; ++dp) {
          uint32_t vf[4];
          const int r = key0 + kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = dp * 16 + (lane >> 4) * 8;
          ptx::ldsm_x4_t(vf, cV + Tiles::kv_offset(r, c >> 3));
          MmaOf<kType>::run(acc_o[2 * dp], pa, vf[0], vf[1]);
          MmaOf<kType>::run(acc_o[2 * dp + 1], pa, vf[2], vf[3]);
        }
      }
    }
  }

  if constexpr (kWgmma) {
    wgmma::wait<0>();
    wgmma::fence_operands(dev::flat(acc_o));
  }

  if constexpr (kNarrow) {
    // Merge the 4 warps' partials of rows 0..15 (each over its quarter of every block) into one
    // normalized partial per row + its log2-sum-exp, as a 64-row split tile writes them.
    __syncthreads();  // every warp is done with the K/V tiles: smem is reused
    float* sM = reinterpret_cast<float*>(smem);  // [warp][16] running max
    float* sL = sM + Tr::kWarps * 16;              // [warp][16] sum
    float* sO = sL + Tr::kWarps * 16;              // [warp][16][kHeadDim] rescaled partial outputs
    static_assert((2 * 4 * 16 + 4 * 16 * kHeadDim) * 4 <= Tr::kSmemBytes, "narrow merge fits the tiles' smem");
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float l = row_sum[rr];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      if (t4 == 0) {
        sM[warp * 16 + g + rr * 8] = row_max[rr];
        sL[warp * 16 + g + rr * 8] = l;
      }
    }
    __syncthreads();
    // Row r's merged max, sum: m = max_w m_w, L = sum_w l_w 2^(m_w - m) (empty warps count 0).
    auto merged = [&](int r, float& m, float& L) {
      m = -INFINITY;
#pragma unroll
      for (int w2 = 0; w2 < Tr::kWarps; ++w2) m = fmaxf(m, sM[w2 * 16 + r]);
      L = 0.f;
#pragma unroll
      for (int w2 = 0; w2 < Tr::kWarps; ++w2) {
        const float mw = sM[w2 * 16 + r];
        if (mw != -INFINITY) L += sL[w2 * 16 + r] * exp2f(mw - m);
      }
    };
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int r = g + rr * 8;
      float m, L;
      merged(r, m, L);
      const float f = row_max[rr] == -INFINITY || L == 0.f ? 0.f : exp2f(row_max[rr] - m) / L;
      float* o = sO + (warp * 16 + r) * kHeadDim;
#pragma unroll
      for (int d = 0; d < Tr::kDTiles; ++d)
        *reinterpret_cast<float2*>(o + d * 8 + 2 * t4) = make_float2(acc_o[d][2 * rr] * f, acc_o[d][2 * rr + 1] * f);
    }
    __syncthreads();
    const int rows = min(G, 16);
    const int64_t prow0 = ((static_cast<int64_t>(b) * fp.H + h) * fp.splits + split) * Tr::kBlockM;
    for (int e = tid; e < rows * D; e += Tr::kThreads) {
      const int r = e / D, col = e % D;
      float acc = 0.f;
#pragma unroll
      for (int w2 = 0; w2 < Tr::kWarps; ++w2) acc += sO[(w2 * 16 + r) * kHeadDim + col];
      fp.part_o[(prow0 + r) * D + col] = acc;
    }
    if (tid < rows) {
      float m, L;
      merged(tid, m, L);
      fp.part_lse[prow0 + tid] = L > 0.f ? m + log2f(L) : -INFINITY;
    }
    return;
  }

  // Epilogue: normalize and store. A band tile of a batch row with an invalid mask value writes
  // NaN on all its rows (the global-row CTAs of that row write nothing).
  const bool bad_row = band && fp.bad[b];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float l = row_sum[rr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int r = warp_row0 + g + rr * 8;
    if (kind == TileKind::kGlobalSplit) {
      if (r >= G) continue;
      const int64_t prow = ((static_cast<int64_t>(b) * fp.H + h) * fp.splits + split) * Tr::kBlockM + r;
      float* po = fp.part_o + prow * D;
#pragma unroll
      for (int d = 0; d < Tr::kDTiles; ++d) {
        const int col = d * 8 + 2 * t4;
        if (col < D) *reinterpret_cast<float2*>(po + col) = make_float2(acc_o[d][2 * rr] * inv, acc_o[d][2 * rr + 1] * inv);
      }
      if (t4 == 0) fp.part_lse[prow] = l > 0.f ? row_max[rr] + log2f(l) : -INFINITY;
      continue;
    }
    int row;
    float scale_out = inv;
    if (band) {
      row = q0 + r;
      if (row >= S) continue;
      const int mv = dev::mask_in(fp, mrow + row);
      if (bad_row) {
        scale_out = __int_as_float(0x7fc00000);
      } else {
        if (mv == kGlobal) continue;          // the global-row CTAs own it
        if (mv == kPadding) scale_out = 0.f;  // padding rows are 0
      }
    } else {
      const int slot = q0 + r;
      if (slot >= G) continue;
      row = gIdx[slot];
    }
    T* o = static_cast<T*>(fp.out) + head_off + row * ld;
#pragma unroll
    for (int d = 0; d < Tr::kDTiles; ++d) {
      const int col = d * 8 + 2 * t4;
      if (col < D)
        *reinterpret_cast<uint32_t*>(o + col) =
            MmaOf<kType>::pack(acc_o[d][2 * rr] * scale_out, acc_o[d][2 * rr + 1] * scale_out);
    }
  }
}

// The last split CTA of (b, h) to finish merges the splits of global tile 0 by log-sum-exp.
template <DType kType, int kHeadDim>
__device__ void combine_splits(const FlashParams& fp, unsigned char* smem, int b, int h) {
  using Tr = FlashTraits<kHeadDim>;
  using T = typename Elem<kType>::T;
  __shared__ int s_last;
  __threadfence();  // this CTA's partials before its count
  __syncthreads();
  const int bh = b * fp.H + h;
  if (threadIdx.x == 0) s_last = atomicAdd(fp.done + bh, 1) == fp.splits - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const int rows = min(fp.gcount[b], Tr::kBlockM), splits = fp.splits, D = fp.D;
  float* sW = reinterpret_cast<float*>(smem);  // (splits, BLK_M) merge weights
  const int64_t base = static_cast<int64_t>(bh) * splits * Tr::kBlockM;
  if (threadIdx.x < rows) {
    const int r = threadIdx.x;
    float mx = -INFINITY;
    for (int s = 0; s < splits; ++s) mx = fmaxf(mx, __ldcg(fp.part_lse + base + s * Tr::kBlockM + r));
    float den = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float wgt = exp2f(__ldcg(fp.part_lse + base + s * Tr::kBlockM + r) - mx);  // -inf: empty split
      sW[s * Tr::kBlockM + r] = wgt;
      den += wgt;
    }
    for (int s = 0; s < splits; ++s) sW[s * Tr::kBlockM + r] /= den;
  }
  __syncthreads();
  T* out = static_cast<T*>(fp.out) + static_cast<int64_t>(b) * fp.S * fp.ld + static_cast<int64_t>(h) * D;
  const int32_t* gi = fp.gidx + static_cast<int64_t>(b) * fp.S;
  const int d4s = D / 4;
  for (int e = threadIdx.x; e < rows * d4s; e += Tr::kThreads) {
    const int r = e / d4s, d = (e % d4s) * 4;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s = 0; s < splits; ++s) {
      const float wgt = sW[s * Tr::kBlockM + r];
      if (wgt == 0.f) continue;
      const float4 v = __ldcg(reinterpret_cast<const float4*>(fp.part_o + (base + s * Tr::kBlockM + r) * D + d));
      acc.x += wgt * v.x, acc.y += wgt * v.y, acc.z += wgt * v.z, acc.w += wgt * v.w;
    }
    uint32_t* o = reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(gi[r]) * fp.ld + d);
    o[0] = MmaOf<kType>::pack(acc.x, acc.y);
    o[1] = MmaOf<kType>::pack(acc.z, acc.w);
  }
}

template <DType kType, int kHeadDim>
__global__ void __launch_bounds__(FlashTraits<kHeadDim>::kThreads, FlashTraits<kHeadDim>::kMinBlocksPerSm) flash_kernel(const FlashParams fp) {
  using Tr = FlashTraits<kHeadDim>;
  using T = typename Elem<kType>::T;
  extern __shared__ __align__(16) unsigned char smem[];
  int cta = blockIdx.x;
  if (cta < fp.global_ctas) {
    dev::wait_for_compaction();
    const int per_bh = fp.splits + kExtraCtas;
    const int bh = cta / per_bh, x = cta % per_bh, b = bh / fp.H, h = bh % fp.H;
    if (fp.bad[b]) return;  // the band CTAs write this row's NaNs
    const int G = fp.gcount[b];
    if (x < fp.splits) {
      if (G == 0) return;
      const int k0 = x * fp.chunk, k1 = min(fp.S, k0 + fp.chunk);
      if (G <= 16)
        attend_tile<kType, kHeadDim, true>(fp, smem, TileKind::kGlobalSplit, b, h, 0, k0, k1, x);
      else
        attend_tile<kType, kHeadDim>(fp, smem, TileKind::kGlobalSplit, b, h, 0, k0, k1, x);
      combine_splits<kType, kHeadDim>(fp, smem, b, h);
    } else {
      for (int t = 1 + (x - fp.splits); t * Tr::kBlockM < G; t += kExtraCtas) {
        __syncthreads();  // smem reuse between tiles
        attend_tile<kType, kHeadDim>(fp, smem, TileKind::kGlobalWhole, b, h, t, 0, fp.S, 0);
      }
    }
    return;
  }
  cta -= fp.global_ctas;
  const int bh = cta / fp.q_tiles, tile = cta % fp.q_tiles, b = bh / fp.H, h = bh % fp.H;
  const int q0 = tile * Tr::kBlockM;
  const int k0 = max(0, q0 - fp.w);
  const int k1 = static_cast<int>(min(static_cast<long long>(fp.S), static_cast<long long>(q0) + Tr::kBlockM + fp.w));
  if constexpr (kHeadDim == 64 && wgmma::kHasWgmma) {
    if (fp.band_wgmma) {
      load_band_q<kType, kHeadDim, true>(fp, smem, b, h, q0);
      attend_tile<kType, kHeadDim, false, true>(fp, smem, TileKind::kBand, b, h, tile, k0, k1, 0);
      return;
    }
  }
  load_band_q<kType, kHeadDim, false>(fp, smem, b, h, q0);
  attend_tile<kType, kHeadDim>(fp, smem, TileKind::kBand, b, h, tile, k0, k1, 0);
}

template <DType kType, int kHeadDim>
cudaError_t launch_flash(const FlashParams& fp, bool pdl, cudaStream_t stream) {
  using Tr = FlashTraits<kHeadDim>;
  const long long ctas = static_cast<long long>(fp.global_ctas) + fp.band_ctas;
  if (ctas == 0) return cudaSuccess;
  if (ctas > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  return ptx::launch_kernel<flash_kernel<kType, kHeadDim>>(dim3(static_cast<unsigned>(ctas)), dim3(Tr::kThreads),
                                                          Tr::kSmemBytes, pdl, stream, fp);
}

}  // namespace ortops::cuda::multigrain
