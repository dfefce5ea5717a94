// Hopper kernel of MultigrainAttention (sm_90a, fp16 / bf16, head sizes 40..64): band and
// global-row CTAs in one grid, with the band's register and shared-memory footprint, so that the
// two kinds share the SMs (the fused kernel's footprint is set by its global-row code, and as a
// separate launch the global rows found no room beside 3-4 band CTAs per SM).
//
// One CTA = one warpgroup = one 64-row query tile:
//   - band CTAs: 64 consecutive query rows against the band's key blocks [q0 - w, q0 + 63 + w]
//     plus the row's gathered global keys (as the fused kernel's band CTAs,
//     attention_cuda_flash.cuh); 1..32 global keys come as one narrow block (m64n16 / m64n32);
//   - global-row CTAs, first in the grid: 64 global query rows (gathered by index from the global
//     projection) against a key range of the global keys / values: tile 0 in fp.splits key
//     splits merged by log-sum-exp (combine_splits), tiles 1.. (G > 64) whole.
// What the loop does:
//   - Loads: thread 0 issues TMA box loads of Q, K, V (128-byte swizzled, as wgmma reads them;
//     rows past S and columns past D zero-filled) and of the block's mask entries (a box that
//     starts 16-byte aligned) into a ring of 2 or 3 slots, each with a "full" mbarrier (bytes
//     landed) and an "empty" one (the four warps are done with it). Gathered rows (global-key
//     blocks, global query rows), which TMA cannot gather, are copied by all threads with
//     cp.async and published on the same "full" barrier.
//   - Products, software-pipelined inside the warpgroup: block n's Q·Kᵀ and block n - 1's P·V
//     are issued together; the softmax of block n runs while P·V n - 1 is still on the tensor
//     cores. Only O's rescale waits for it.
//   - The op's mask comes in through TMA with the keys, so no thread waits on a global load per
//     block; a block's key validity is one vote per warp when all its keys pass (two ballots
//     otherwise), and only edge blocks mask per element (branch-free). The softmax folds the scale
//     into one FFMA per score, uses ex2.approx, and moves its running max (rescaling O) only when
//     a block passes it by more than kRescaleSlack.
//   - The kernel is issue-bound (ncu: ~0.53 warp instructions per cycle per scheduler whatever
//     the stalls), so its time follows its instruction count: docs/attention_cuda.md, "Runs 19–26".
// The semantics (which keys a row sees, online softmax in the log2 domain, the epilogue's
// padding / global / invalid-row rules, the split partials) are the fused kernel's. Design and
// measurements: docs/attention_cuda.md, "Hopper band kernel" and later sections.
#include <cuda.h>

#include <cstdint>
#include <type_traits>

#include "common/cuda_tma.cuh"
#include "common/tensor_map.h"
#include "multigrain/attention_cuda_flash.cuh"

namespace ortops::cuda::multigrain {

namespace {

constexpr int kBlock = 64;           // query rows per tile, keys per block
constexpr int kThreads = 128;        // one warpgroup
// A band tile whose batch row has 1..kNarrowKeys global tokens takes them as one narrow block
// (m64n16 / m64n32 products, 16 or 32 gathered rows) instead of a 64-key block.
constexpr int kNarrowKeys = 32;
template <int N>
using NTiles = std::integral_constant<int, N>;  // n8 column tiles of a block: 8 (64 keys), 4, 2
// K / V / mask ring depth, a template parameter: 3 slots (60 KB, 3 CTAs per SM) or 2 (43 KB, 4
// CTAs per SM at <= 128 registers). 2 is the default; 3 an A/B option (launch_band_sm90).
template <int kStages>
constexpr int kMinCtasPerSm = kStages <= 2 ? 4 : 3;
constexpr int kTileBytes = kBlock * 64 * 2;  // one swizzled 64 x 64 16-bit tile
// How far (log2 units) a block's row max may pass the running max before the running max moves
// and O is rescaled: probabilities up to 2^8 (the idea of FlashAttention 4's conditional rescale).
constexpr float kRescaleSlack = 8.f;
// A TMA box must start 16-byte aligned in its innermost dimension (an unaligned start faults), so
// a block's mask entries come in a box of 64 + 16 / size entries starting at the aligned entry
// before the block's first (at most 66 x 8 bytes; slots 128-byte aligned for TMA).
constexpr int kMaskSlotBytes = 640;
static_assert((kBlock + 2) * 8 <= kMaskSlotBytes && (kBlock + 4) * 4 <= kMaskSlotBytes && kMaskSlotBytes % 128 == 0,
              "a mask box fits its slot");
// Shared memory: 1024-byte alignment slack, Q, kStages x (K, V), kStages mask slots, barriers.
template <int kStages>
constexpr int kSmemBytes = 1024 + kTileBytes * (1 + 2 * kStages) + kMaskSlotBytes * kStages + 2 * kStages * 8;

// The tensor maps of one call (kernel parameter, __grid_constant__).
struct BandMaps {
  CUtensorMap q, k, v;  // [B][S][H][D] 16-bit, box {64, 1, 64, 1}, 128-byte swizzle
  CUtensorMap gk, gv;   // the global projections' keys / values, the same layout
  CUtensorMap mask;     // [B * S] int32 / int64, box {64 + 16 / entry size}
};

// One row's 16 values of an m64n64 fp32 fragment (row half rr: entries 4 nt + 2 rr + {0, 1}),
// reduced as a tree: depth 4 instead of a 16-long dependent chain.
enum class Reduce { kMax, kSum };
template <Reduce kOp>
__device__ __forceinline__ float reduce_op(float a, float b) {
  return kOp == Reduce::kMax ? fmaxf(a, b) : a + b;
}
template <Reduce kOp, int kNt>  // kNt: n8 column tiles
__device__ __forceinline__ float tree_reduce(const float (&acc)[4 * kNt], int rr) {
  float v[kNt];
#pragma unroll
  for (int nt = 0; nt < kNt; ++nt) v[nt] = reduce_op<kOp>(acc[4 * nt + 2 * rr], acc[4 * nt + 2 * rr + 1]);
#pragma unroll
  for (int width = kNt / 2; width >= 1; width /= 2)
#pragma unroll
    for (int i = 0; i < width; ++i) v[i] = reduce_op<kOp>(v[i], v[i + width]);
  return v[0];
}

// Rows slot0.. slot0 + rows - 1 of a gathered tile (K, V or global Q: row slot0 + r is
// sequence row gidx[slot0 + r] of `src`; zeros past G and past D) into a swizzled smem tile, with
// cp.async by all threads; the caller commits and publishes.
template <class T>
__device__ __forceinline__ void gather_rows(const void* src, uint32_t dst, int slot0, int G, int64_t head_off,
                                            int64_t mrow, const FlashParams& fp, int rows = kBlock) {
  const T* g = static_cast<const T*>(src) + head_off;
  const int32_t* gIdx = fp.gidx + mrow;
#pragma unroll
  for (int it = 0; it < kBlock * 8 / kThreads; ++it) {
    if (it * kThreads >= rows * 8) break;  // rows: 16, 32 or 64
    const int i = threadIdx.x + it * kThreads, r = i / 8, c = i % 8;
    const bool ok = slot0 + r < G && c * 8 < fp.D;
    const int64_t off = ok ? static_cast<int64_t>(gIdx[slot0 + r]) * fp.ld + c * 8 : 0;
    ptx::cp_async16(dst + wgmma::sw128_offset(r, c) * 2, g + off, ok);
  }
}

// A global-row tile's result: a split of tile 0 writes its normalized partial O and log-sum-exp
// (merged by combine_splits), any other tile writes its rows to the output (row gidx[slot]).
template <DType kType>
__device__ __forceinline__ void store_global_rows(const FlashParams& fp, const float (&acc_o)[32],
                                                  const float (&row_max)[2], const float (&row_sum)[2], int b,
                                                  int h, int q0, int G, int split, int64_t head_off,
                                                  int64_t mrow) {
  using T = typename Elem<kType>::T;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t4 = lane % 4, D = fp.D;
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float l = row_sum[rr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int r = warp * 16 + g + rr * 8, slot = q0 + r;
    if (slot >= G) continue;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    if (split >= 0) {
      const int64_t prow = ((static_cast<int64_t>(b) * fp.H + h) * fp.splits + split) * kBlock + r;
      float* po = fp.part_o + prow * D;
#pragma unroll
      for (int d = 0; d < 8; ++d) {
        const int col = d * 8 + 2 * t4;
        if (col < D) *reinterpret_cast<float2*>(po + col) = make_float2(acc_o[4 * d + 2 * rr] * inv, acc_o[4 * d + 2 * rr + 1] * inv);
      }
      if (t4 == 0) fp.part_lse[prow] = l > 0.f ? row_max[rr] + log2f(l) : -INFINITY;
    } else {
      T* o = static_cast<T*>(fp.out) + head_off + static_cast<int64_t>(fp.gidx[mrow + slot]) * fp.ld;
#pragma unroll
      for (int d = 0; d < 8; ++d) {
        const int col = d * 8 + 2 * t4;
        if (col < D)
          *reinterpret_cast<uint32_t*>(o + col) =
              MmaOf<kType>::pack(acc_o[4 * d + 2 * rr] * inv, acc_o[4 * d + 2 * rr + 1] * inv);
      }
    }
  }
}

// The tiles of one CTA. kGlobalRows: a global-row CTA, else a band CTA. The two kinds share the
// kernel (one grid) but not their code: each loop is compiled for its kind alone, so the band
// loop carries none of the global rows' branches and registers (with one loop for both, the band
// alone had measured 6-7% slower: run 15 against run 13).
template <DType kType, int kStages, bool kGlobalRows>
__device__ __forceinline__ void run_tiles(const FlashParams& fp, const BandMaps& maps, unsigned char* smem_raw) {
  using T = typename Elem<kType>::T;
  using Mma = MmaOf<kType>;
  const uint32_t raw = ptx::smem_u32(smem_raw);
  unsigned char* base = smem_raw + (((raw + 1023u) & ~1023u) - raw);
  const uint32_t sQ = ptx::smem_u32(base);
  const uint32_t sK = sQ + kTileBytes;                   // slot s at + s * kTileBytes
  const uint32_t sV = sK + kStages * kTileBytes;
  const unsigned char* sMask = base + (1 + 2 * kStages) * kTileBytes;  // slot s at + s * kMaskSlotBytes
  const uint32_t full0 = sQ + (1 + 2 * kStages) * kTileBytes + kStages * kMaskSlotBytes;
  const uint32_t empty0 = full0 + kStages * 8;
  auto full = [&](int s) { return full0 + 8u * s; };
  auto empty = [&](int s) { return empty0 + 8u * s; };

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;  // fragment row group and column pair
  const int S = fp.S, D = fp.D, w = fp.w;

  // Which work this CTA has: global-row CTAs come first in the grid (dispatched first); per
  // (b, h), fp.splits CTAs take global tile 0 (the first 64 global rows) against one key
  // split each (their partials merged by the last to finish), then kExtraCtas CTAs take
  // tiles 1, 1 + kExtraCtas, ... (G > 64) against all keys; then the band CTAs, one 64-row
  // tile each.
  int b, h, tile, tile_step = 0, split = -1, G = -1;
  if constexpr (kGlobalRows) {
    const int per_bh = fp.splits + kExtraCtas, bh = blockIdx.x / per_bh, x = blockIdx.x % per_bh;
    b = bh / fp.H, h = bh % fp.H;
    if (x < fp.splits) {
      split = x, tile = 0;
    } else {
      tile = 1 + (x - fp.splits), tile_step = kExtraCtas;
    }
    ptx::griddep_wait();  // the compaction: G, gidx
    G = fp.gcount[b];
    if (fp.bad[b] || tile * kBlock >= G) return;  // (a bad row's NaNs are written by its band CTAs)
  } else {
    const int cta = blockIdx.x - fp.global_ctas, bh = cta / fp.q_tiles;
    b = bh / fp.H, h = bh % fp.H, tile = cta % fp.q_tiles;
  }
  const int64_t mrow = static_cast<int64_t>(b) * S;
  const int64_t head_off = mrow * fp.ld + static_cast<int64_t>(h) * D;
  const int mask_size = fp.mask64 ? 8 : 4, mask_align = 16 / mask_size;  // entry bytes, entries per 16 B
  const uint32_t mask_bytes = (kBlock + mask_align) * mask_size;  // one box
  const CUtensorMap* map_k = kGlobalRows ? &maps.gk : &maps.k;
  const CUtensorMap* map_v = kGlobalRows ? &maps.gv : &maps.v;

  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      tma::mbar_init(full(s), 1);
      tma::mbar_init(empty(s), kThreads / 32);
    }
    tma::fence_mbar_init();
    if (!kGlobalRows) tma::prefetch_map(&maps.q);
    tma::prefetch_map(map_k);
    tma::prefetch_map(map_v);
    tma::prefetch_map(&maps.mask);
  }
  __syncthreads();

  // Ring positions run on across this CTA's tiles (p0 = blocks of the tiles before), so the
  // slots and barrier phases simply continue.
  unsigned p0 = 0;  // (unsigned: the slot and phase divisions by kStages stay shifts or multiplies)
  auto slot_of = [&](int n) { return (p0 + n) % kStages; };  // block n's ring slot
  for (;;) {  // band CTAs: one tile; global-row CTAs: tile, tile + tile_step, ... while < G
    const int q0 = tile * kBlock;  // band: first query row; global: first global slot
    int key_begin, key_end;
    if (!kGlobalRows) {
      key_begin = max(0, q0 - w);
      key_end = static_cast<int>(min(static_cast<long long>(S), static_cast<long long>(q0) + kBlock + w));
    } else if (split >= 0) {
      key_begin = split * fp.chunk;
      key_end = min(S, key_begin + fp.chunk);
    } else {
      key_begin = 0, key_end = S;
    }
    const int n_range = (key_end - key_begin + kBlock - 1) / kBlock;  // >= 1
    int n_blocks = kGlobalRows ? n_range : -1;

    // Band CTAs need the compaction (programmatic dependent launch) only for their gathered
    // global keys: waited for when the first gathered block is issued, or when the loop needs
    // the block count.
    bool bad_row = false;  // band CTAs: the batch row holds an invalid mask value
    int narrow_nt = 0;     // band CTAs: the gathered keys as one narrow block of this many n8 tiles
    auto need_globals = [&]() {
      if (n_blocks >= 0) return;
      ptx::griddep_wait();
      G = fp.gcount[b];
      bad_row = fp.bad[b] != 0;
      n_blocks = n_range + (G + kBlock - 1) / kBlock;
      // 1..16 keys: two n8 tiles (m64n16); 17..kNarrowKeys: four (m64n32); else 64-key blocks.
      // (Written as two statements: the one-expression form changed ptxas's code throughout.)
      narrow_nt = G > 16 ? 4 : 2;
      if (G == 0 || G > kNarrowKeys) narrow_nt = 0;
    };

    // A gathered block's cp.asyncs in flight (its slot), published on its "full" barrier by
    // finish_gather() before anyone waits on a barrier (so nobody waits for its own arrival).
    int gather_slot = -1;
    auto finish_gather = [&]() {
      if (gather_slot < 0) return;
      ptx::cp_async_wait<0>();
      wgmma::fence_proxy_async();  // generic-proxy writes, read next by wgmma
      __syncthreads();
      if (tid == 0) tma::mbar_arrive(full(gather_slot));
      gather_slot = -1;
    };

    // Loads of block n into slot (p0 + n) % kStages, once the slot's previous block is
    // released. Collective: every thread calls it at the same point (thread 0 issues the TMA).
    auto issue = [&](int n) {
      if (n >= n_range) {
        need_globals();
        if (n >= n_blocks) return;
      }
      const unsigned p = p0 + n, s = p % kStages;
      if (n < n_range) {
        if (tid != 0) return;
        if (p >= kStages) tma::mbar_wait(empty(s), ((p / kStages) - 1) & 1);
        const bool band_q = n == 0 && !kGlobalRows;  // global rows' Q is gathered (below)
        tma::mbar_arrive_expect_tx(full(s), 2 * kTileBytes + mask_bytes + (band_q ? kTileBytes : 0));
        if (band_q) tma::load_4d(sQ, &maps.q, 0, h, q0, b, full(s));
        const int kb = key_begin + n * kBlock;
        tma::load_4d(sK + s * kTileBytes, map_k, 0, h, kb, b, full(s));
        tma::load_4d(sV + s * kTileBytes, map_v, 0, h, kb, b, full(s));
        const int m0 = static_cast<int>(mrow + kb);  // B * S <= INT32_MAX (band_sm90_runs)
        tma::load_1d(ptx::smem_u32(sMask + s * kMaskSlotBytes), &maps.mask, m0 & ~(mask_align - 1), full(s));
        return;
      }
      finish_gather();  // at most one gathered block in flight
      if (p >= kStages) tma::mbar_wait(empty(s), ((p / kStages) - 1) & 1);
      const int slot0 = (n - n_range) * kBlock;
      const int rows = narrow_nt ? 8 * narrow_nt : kBlock;
      gather_rows<T>(fp.k, sK + s * kTileBytes, slot0, G, head_off, mrow, fp, rows);
      gather_rows<T>(fp.v, sV + s * kTileBytes, slot0, G, head_off, mrow, fp, rows);
      ptx::cp_async_commit();
      gather_slot = s;
    };
    // Warpgroup MMAs are .aligned: every lane of a warp must reach them together, so the warp
    // reconverges after thread 0's TMA issue (__syncwarp after each issue()); mbar_wait leaves
    // it converged.
    auto wait_full = [&](int n) {
      finish_gather();
      tma::mbar_wait(full(slot_of(n)), ((p0 + n) / kStages) & 1);
    };

    float acc_s[32], acc_o[32];  // S = Q·Kᵀ and O, wgmma m64n64 fragments (n8 tile j: 4j..4j+3)
    uint32_t pa[4][4];           // P of the last softmax, packed as P·V's A operand (k16 steps)
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f}, corr[2] = {1.f, 1.f};
    const float scale_log2 = fp.scale_log2;

    // Operand descriptors: one per tile, then k16 steps added to the address field (16-byte
    // units; shared addresses stay far below its 14-bit limit, so no carry).
    const uint64_t q_desc = wgmma::sw128_desc(sQ);
    // (a slot's descriptor: slot 0's plus the slot offset in the 16-byte address field, which
    // cannot carry: shared addresses stay below 2^18)
    const uint64_t k_desc0 = wgmma::sw128_desc(sK), v_desc0 = wgmma::sw128_desc(sV);
    auto issue_qk = [&](int n) {
      const uint64_t k_desc = k_desc0 + slot_of(n) * (kTileBytes >> 4);
#pragma unroll
      for (int ks = 0; ks < 4; ++ks)  // k16 step = 32 bytes further along each Q and K row
        wgmma::mma_m64nNk16_ss<T, 64, 0>(acc_s, q_desc + ks * 2, k_desc + ks * 2, ks > 0);
    };
    auto issue_pv = [&](int n) {
      const uint64_t v_desc = v_desc0 + slot_of(n) * (kTileBytes >> 4);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)  // k16 step = 16 key rows of 128 bytes
        wgmma::mma_m64n64k16_rs<T, 1>(acc_o, pa[kk], v_desc + kk * 128, n > 0 || kk > 0);
    };

    // Scores of block n -> probabilities (in acc_s, fp32), the running max / sum, and corr,
    // the factor O must be rescaled by once P·V n - 1 has finished. The scale is folded into
    // the exponent (one FFMA per score): the max is taken on raw scores, which a positive
    // scale orders the same way; a scale <= 0 (allowed by the contract) is applied first.
    const float exp_scale = scale_log2 > 0.f ? scale_log2 : 1.f;
    // (sc: acc_s, or a narrow block's scores, float[4 kNt] for kNt n8 column tiles)
    auto softmax = [&](int n, auto& sc) {
      constexpr int kNt = sizeof(sc) / sizeof(float) / 4;
      if (scale_log2 <= 0.f)
#pragma unroll
        for (int i = 0; i < 4 * kNt; ++i) sc[i] *= scale_log2;
      const bool gathered = n >= n_range;
      const int kb = gathered ? (n - n_range) * kBlock : key_begin + n * kBlock;
      // This block's first entry in its slot (see kMaskSlotBytes); an int64 entry is read by
      // its low word (any other value flags the row invalid, and the row is written as NaN).
      // (mask_align is 2 or 4: a mask, not a 64-bit remainder)
      const unsigned char* m = sMask + slot_of(n) * kMaskSlotBytes +
                               ((static_cast<int>(mrow) + kb) & (mask_align - 1)) * mask_size;
      // Band rows see local keys in their window and the gathered global keys; global rows
      // see every key that is not padding.
      auto entry_ok = [](int v) { return kGlobalRows ? v != kPadding : v == kLocal; };
      auto key_ok = [&](int col) {
        if (gathered) return kb + col < G;
        if (kb + col >= key_end) return false;
        return entry_ok(*reinterpret_cast<const int*>(m + col * mask_size));
      };
      // Common case first: a block inside the key range whose mask box starts 16-byte aligned
      // (S and w multiples of 4) is checked with one 16-byte read per lane and one vote; only
      // when some key fails are the per-key votes below taken.
      bool all_ok = false;
      if (!gathered && ((static_cast<int>(mrow) + kb) & (mask_align - 1)) == 0 && kb + kBlock <= key_end) {
        bool ok = true;
        if (lane < kBlock * mask_size / 16) {
          const int4 x = *reinterpret_cast<const int4*>(m + lane * 16);  // int64: two low words, x and z
          ok = entry_ok(x.x) && entry_ok(x.z) && (fp.mask64 || (entry_ok(x.y) && entry_ok(x.w)));
        }
        all_ok = __all_sync(0xffffffffu, ok);
      }
      // Key validity of the block as two 32-bit words (keys 0..31, 32..63), one vote each.
      uint32_t valid_lo = 0xffffffffu, valid_hi = 0xffffffffu;
      if (!all_ok) {
        valid_lo = __ballot_sync(0xffffffffu, key_ok(lane));
        if (kNt > 4) valid_hi = __ballot_sync(0xffffffffu, key_ok(lane + 32));
      }
      const bool window_edge =
          !gathered && !kGlobalRows && !(kb >= q0 + kBlock - 1 - w && kb + kBlock - 1 <= q0 + w);
      if ((valid_lo & valid_hi) != 0xffffffffu || window_edge) {
        // This thread's columns are 8 nt + 2 t4 + {0, 1}: shift its pair to bits 8 nt + {0, 1}.
        const uint32_t mine_lo = valid_lo >> (2 * t4), mine_hi = valid_hi >> (2 * t4);
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          // Keys of this row inside the window, as columns [lo, hi] of the block.
          const int row = q0 + warp * 16 + g + rr * 8;
          const int lo = window_edge ? row - w - kb : 0, hi = window_edge ? row + w - kb : kBlock - 1;
#pragma unroll
          for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int col = nt * 8 + 2 * t4 + e;
              const uint32_t bit = ((nt < 4 ? mine_lo : mine_hi) >> ((nt % 4) * 8 + e)) & 1u;
              const bool ok = bit && static_cast<unsigned>(col - lo) <= static_cast<unsigned>(hi - lo);
              if (!ok) sc[4 * nt + 2 * rr + e] = -INFINITY;
            }
        }
      }
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float mx = tree_reduce<Reduce::kMax, kNt>(sc, rr);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // The running max (scaled, log2 domain) moves only when this block's max passes it by
        // more than kRescaleSlack: the probabilities then stay <= 2^kRescaleSlack (exact in
        // fp32 sums and 16-bit P, whose relative precision does not depend on magnitude), and O
        // needs no rescale for most blocks (it had been rescaled on 84% of them, ncu, 6fec01d).
        const float m_blk = mx * exp_scale;
        const bool moves = m_blk > row_max[rr] + kRescaleSlack;  // (-inf: any finite max moves it)
        const float m_new = moves ? m_blk : row_max[rr];
        const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with no valid key yet stays 0
        corr[rr] = moves ? ptx::exp2_approx(row_max[rr] - m_use) : 1.f;
        row_max[rr] = m_new;
#pragma unroll
        for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = sc[4 * nt + 2 * rr + e];
            x = ptx::exp2_approx(fmaf(x, exp_scale, -m_use));
          }
        // quad-partial; reduced once at the end
        row_sum[rr] = fmaf(row_sum[rr], corr[rr], tree_reduce<Reduce::kSum, kNt>(sc, rr));
      }
    };
    auto pack_p = [&](const auto& sc) {  // the k16 steps of P·V: one per two n8 tiles of sc
#pragma unroll
      for (int kk = 0; kk < static_cast<int>(sizeof(sc) / sizeof(float)) / 8; ++kk) {
        pa[kk][0] = Mma::pack(sc[8 * kk + 0], sc[8 * kk + 1]);
        pa[kk][1] = Mma::pack(sc[8 * kk + 2], sc[8 * kk + 3]);
        pa[kk][2] = Mma::pack(sc[8 * kk + 4], sc[8 * kk + 5]);
        pa[kk][3] = Mma::pack(sc[8 * kk + 6], sc[8 * kk + 7]);
      }
    };
    // Does any row of this warp need O rescaled (corr != 1)? The vote also reads the row sums,
    // which no row sum can fail (they are >= 0) but which depend on every exponential: so the
    // softmax's exponentials all issue before this branch and the wgmma wait behind it (with
    // the vote on corr alone, ptxas moved them below the wait; the overlap with P·V n - 1 was
    // lost).
    auto rescale_vote = [&]() {
      return __any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f || row_sum[0] < 0.f || row_sum[1] < 0.f);
    };
    auto rescale_o = [&]() {  // once P·V n - 1 is done
      wgmma::wait<0>();
      wgmma::fence_operands(acc_o);
#pragma unroll
      for (int d = 0; d < 8; ++d) {
        acc_o[4 * d + 0] *= corr[0];
        acc_o[4 * d + 1] *= corr[0];
        acc_o[4 * d + 2] *= corr[1];
        acc_o[4 * d + 3] *= corr[1];
      }
    };
    auto release = [&](int n) {  // this warp is done with block n's slot
      __syncwarp();
      if (lane == 0) tma::mbar_arrive(empty(slot_of(n)));
    };

    auto last_pv = [&](int n) {  // P·V of the last block, n - 1
      wgmma::fence();
      issue_pv(n - 1);
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::fence_operands(acc_o);
      release(n - 1);  // (the slot's next user, if any, is this CTA's next tile)
    };
    // A band tile's gathered global keys (1..kNarrowKeys, block n = n_range) as one narrow block
    // after the loop: Q·Kᵀ m64n16 / m64n32, its softmax on 16 / 32 columns, P·V in 1 / 2 k16
    // steps, with the loop's last P·V n - 1 overlapped as in the loop.
    auto narrow_block = [&](int n, auto n_tiles) {
      constexpr int kNt = decltype(n_tiles)::value;
      float s_n[4 * kNt];  // its own accumulator (one aliasing acc_s made ptxas serialize every wgmma)
      wait_full(n);
      wgmma::fence();
      const uint64_t k_desc = k_desc0 + slot_of(n) * (kTileBytes >> 4);
#pragma unroll
      for (int ks = 0; ks < 4; ++ks)
        wgmma::mma_m64nNk16_ss<T, 8 * kNt, 0>(s_n, q_desc + ks * 2, k_desc + ks * 2, ks > 0);
      wgmma::commit();
      issue_pv(n - 1);
      wgmma::commit();
      wgmma::wait<1>();
      wgmma::fence_operands(s_n);
      softmax(n, s_n);
      if (rescale_vote()) rescale_o();
      wgmma::wait<0>();
      wgmma::fence_operands(acc_o);
      release(n - 1);
      pack_p(s_n);
      wgmma::fence();
      const uint64_t v_desc = v_desc0 + slot_of(n) * (kTileBytes >> 4);
#pragma unroll
      for (int kk = 0; kk < kNt / 2; ++kk) wgmma::mma_m64n64k16_rs<T, 1>(acc_o, pa[kk], v_desc + kk * 128, 1);
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::fence_operands(acc_o);
      release(n);
    };

    for (int n = 0; n < kStages - 1; ++n) issue(n);
    if (kGlobalRows) {
      // The tile's global query rows, gathered by index from the global projection (zeros
      // past G); every warp is done with the previous tile's Q (its last product was waited).
      gather_rows<T>(fp.gq, sQ, q0, G, head_off, mrow, fp);
      ptx::cp_async_commit();
      ptx::cp_async_wait<0>();
      wgmma::fence_proxy_async();
      __syncthreads();
    }
    __syncwarp();

    // Block 0: Q·Kᵀ alone.
    wait_full(0);
    wgmma::fence();
    issue_qk(0);
    wgmma::commit();
    wgmma::wait<0>();
    wgmma::fence_operands(acc_s);
    softmax(0, acc_s);
    pack_p(acc_s);
    issue(kStages - 1);
    __syncwarp();

    int n = 1;
    for (;; ++n) {
      if (n >= n_range) {
        need_globals();
        if (n >= n_blocks || narrow_nt) break;
      }
      wait_full(n);
      wgmma::fence();
      issue_qk(n);
      wgmma::commit();
      issue_pv(n - 1);  // the first P·V overwrites O (never zeroed: see the fused kernel's note)
      wgmma::commit();
      wgmma::wait<1>();  // Q·Kᵀ n done; P·V n - 1 may still run
      wgmma::fence_operands(acc_s);
      softmax(n, acc_s);
      // Rescale O, unless no row max of this warp moved (corr = 1 exactly: most blocks after
      // the first few). The vote and branch also end the softmax's basic block, which keeps
      // the softmax overlapped with P·V n - 1: ptxas schedules a block's wgmma wait first when
      // nothing in the block depends on it, and in one block with the softmax it had put the
      // wait before all of it (seen in the SASS of 63fdc69).
      if (rescale_vote()) rescale_o();
      wgmma::wait<0>();  // a no-op after the rescale's
      wgmma::fence_operands(acc_o);
      release(n - 1);
      issue(n - 1 + kStages);
      __syncwarp();
      pack_p(acc_s);
    }
    if (narrow_nt == 2)
      narrow_block(n, NTiles<2>{});
    else if (narrow_nt == 4)
      narrow_block(n, NTiles<4>{});
    else
      last_pv(n);
    p0 += n + (narrow_nt ? 1 : 0);

    // Epilogue: normalize and store.
    if constexpr (kGlobalRows) {
      store_global_rows<kType>(fp, acc_o, row_max, row_sum, b, h, q0, G, split, head_off, mrow);
      if (split >= 0) {
        combine_splits<kType, 64>(fp, smem_raw, b, h);  // the last split of (b, h) merges
        return;
      }
      tile += tile_step;
      if (tile * kBlock >= G) return;
      __syncthreads();  // every warp is done with this tile's Q before the next is gathered
      continue;
    } else {
      // Band rows: a batch row with an invalid mask value is written as NaN on all its rows;
      // global rows are left to the global-row CTAs; padding rows are 0.
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float l = row_sum[rr];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int row = q0 + warp * 16 + g + rr * 8;
        if (row >= S) continue;
        float scale_out = l > 0.f ? ptx::rcp_approx(l) : 0.f;
        const int mv = dev::mask_in(fp, mrow + row);
        if (bad_row) {  // (read by need_globals(), which the loop has called)
          scale_out = __int_as_float(0x7fc00000);
        } else {
          if (mv == kGlobal) continue;
          if (mv == kPadding) scale_out = 0.f;
        }
        T* o = static_cast<T*>(fp.out) + head_off + static_cast<int64_t>(row) * fp.ld + 2 * t4;
#pragma unroll
        for (int d = 0; d < 8; ++d)
          if (D == kBlock || d * 8 + 2 * t4 < D)  // (D = 64: no test, constant offsets from o)
            *reinterpret_cast<uint32_t*>(o + d * 8) =
                Mma::pack(acc_o[4 * d + 2 * rr] * scale_out, acc_o[4 * d + 2 * rr + 1] * scale_out);
      }
      return;
    }
  }
}

template <DType kType, int kStages>
__global__ void __launch_bounds__(kThreads, kMinCtasPerSm<kStages>) band_kernel_sm90(const FlashParams fp, const __grid_constant__ BandMaps maps) {
  if constexpr (!wgmma::kHasWgmma) {
    __trap();  // the host launches this only where the sm_90a code exists (band_sm90_runs)
  } else {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    // Global-row CTAs come first in the grid (dispatched first), then the band CTAs.
    if (static_cast<int>(blockIdx.x) < fp.global_ctas)
      run_tiles<kType, kStages, true>(fp, maps, smem_raw);
    else
      run_tiles<kType, kStages, false>(fp, maps, smem_raw);
  }
}

}  // namespace

template <DType kType>
cudaError_t launch_band_sm90(const FlashParams& fp, int ring_slots, bool pdl, cudaStream_t stream) {
  const long long ctas = static_cast<long long>(fp.global_ctas) + fp.band_ctas;
  if (ctas == 0) return cudaSuccess;
  if (ctas > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  BandMaps maps;
  const uint64_t dims[4] = {uint64_t(fp.D), uint64_t(fp.H), uint64_t(fp.S), uint64_t(fp.B)};
  const uint64_t strides[4] = {0, uint64_t(fp.D) * 2, uint64_t(fp.ld) * 2, uint64_t(fp.S) * uint64_t(fp.ld) * 2};
  const uint32_t box[4] = {64, 1, kBlock, 1};
  const uint64_t mask_dims[1] = {uint64_t(fp.B) * uint64_t(fp.S)};
  const uint32_t mask_box[1] = {kBlock + (fp.mask64 ? 2u : 4u)};  // see kMaskSlotBytes
  auto map16 = [&](CUtensorMap* map, const void* ptr) {
    return encode_tensor_map(map, MapElem::k16bit, ptr, 4, dims, strides, box, 128);
  };
  const bool globals = fp.global_ctas > 0;
  if (!map16(&maps.q, fp.q) || !map16(&maps.k, fp.k) || !map16(&maps.v, fp.v) ||
      !map16(&maps.gk, globals ? fp.gk : fp.k) || !map16(&maps.gv, globals ? fp.gv : fp.v) ||
      !encode_tensor_map(&maps.mask, fp.mask64 ? MapElem::kInt64 : MapElem::kInt32, fp.mask_in, 1, mask_dims,
                         nullptr, mask_box, 0))
    return cudaErrorNotSupported;  // the caller falls back to the fused kernel
  // Ring depth: 2 slots (4 CTAs per SM) unless 3 are asked for (3 CTAs per SM). H200,
  // 2026-12-03, run 25, B = 1, 12 heads, w = 256, G = 8, CUDA graphs: S = 4096 0.0375 vs 0.0419 ms,
  // S = 16384 0.118 vs 0.131 ms; eager S = 1024, B = 1 / 8: 0.053 / 0.071 vs 0.060 / 0.078 ms. (Up
  // to 87d853f 3 slots were the default below 16 band CTAs per SM: faster then at S = 4096, 0.039
  // vs 0.041 ms, before the narrow global block and the leaner loop.)
  const dim3 grid(static_cast<unsigned>(ctas)), block(kThreads);
  if (ring_slots != 3)
    return ptx::launch_kernel<band_kernel_sm90<kType, 2>>(grid, block, kSmemBytes<2>, pdl, stream, fp, maps);
  return ptx::launch_kernel<band_kernel_sm90<kType, 3>>(grid, block, kSmemBytes<3>, pdl, stream, fp, maps);
}

template cudaError_t launch_band_sm90<DType::kFloat16>(const FlashParams&, int, bool, cudaStream_t);
template cudaError_t launch_band_sm90<DType::kBFloat16>(const FlashParams&, int, bool, cudaStream_t);

}  // namespace ortops::cuda::multigrain
