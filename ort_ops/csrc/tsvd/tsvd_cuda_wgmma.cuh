// Private: the fused Hopper kernel of TSVDMatMul for large M (sm_90a warpgroup MMAs, TMA), 16-bit
// types, included once per dtype (tsvd_cuda_fp16.cu, tsvd_cuda_bf16.cu) after tsvd_cuda_tc.cuh.
//
// The product has the shape of attention without the softmax: for every tile row i,
//   Z_ij = A_i · U_ij        (stage 1: BM x tk by tk x r; A from shared memory, or from registers
//                             where two 128-column tiles share it; U from shared memory)
//   Y_j += Z_ij · V_ij       (stage 2: Z from registers, rounded to the input type, as the A operand)
// so Z never leaves the registers and the intermediate of the two-stage path (4x |A| at c = 4,
// tile 128) is gone. A CTA owns 128 rows (two consumer warpgroups of 64) and 256 output columns
// (kNJ tiles of kTN), so each A chunk it loads feeds kNJ tiles' products.
//
// Warp-specialised: two threads of the producer warpgroup issue TMA box loads (maps: WgmmaMaps,
// tsvd_cuda_traits.h), one into a ring of k-chunk slots (A [128][64] + U_j [64][kR]), one into a
// ring of V slots (V_j [kR][kTN], one per tile row); each slot has a "full" mbarrier (bytes
// landed) and an "empty" one (every consumer warp is done with it). The consumers never compute a copy address
// and never meet at a CTA-wide barrier, so the loads run ahead by the whole ring. (The previous,
// cp.async version issued ~190 instructions per warp per k step in copies and met at a
// __syncthreads per step: issue 32% busy with 65% of cycles without an eligible warp, Nsight
// Compute, docs/tsvd_cuda.md.)
// Layouts are the swizzles of common/cuda_wgmma.cuh, which TMA's swizzle modes produce (128-byte
// for A and V; U's rows are one swizzle span of kR * 2 bytes, so no zero-filled columns are
// written: measured 9-28% faster than 64-wide U boxes where r < 64, docs/tsvd_cuda.md):
//   A chunk  [128 rows][64 k]        K-major, one atom column; warpgroup w reads rows 64w..64w+63
//   U_j      [64 k][kR]              MN-major (rank contiguous), rows of one kR * 2-byte swizzle span
//   V_j, h   [kR rows][64 columns]   MN-major, h = 0 .. kTN / 64 - 1
// Zero padding comes from the maps' bounds: ranks past r (U columns, V rows), A columns past K,
// rows of A past M, U rows past tk (a k chunk that crosses into the next tile row brings A columns
// that meet zero U rows) and, through the u_last map, U rows past K in the partial last tile row.
#pragma once
#include "common/cuda_tma.cuh"
#include "common/cuda_wgmma.cuh"
#include "tsvd/tsvd_cuda_tc.cuh"

namespace ortops::cuda::tsvd {

template <typename T, class C>
__global__ void __launch_bounds__(C::kThreads, 1) tsvd_wgmma_kernel(const __grid_constant__ WgmmaMaps maps, const Args a) {
  if constexpr (!wgmma::kHasWgmma) {
    __trap();  // the host (runs_sm90a, tsvd_cuda.cu) launches this only where the sm_90a code exists
  } else {
    using Op = Mma<T>;
    constexpr int kR = C::kR, kNJ = C::kNJ, kH = C::kTN / 64, ST = C::kStages, VS = C::kVSlots;
    __shared__ __align__(8) uint64_t bars[2 * ST + 2 * VS];
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = ptx::smem_u32(smem_raw);
    const uint32_t ring = (raw + 1023u) & ~1023u;  // swizzle atoms: 1024-byte aligned
    const uint32_t vring = ring + ST * C::kSlotBytes;
    const uint32_t bar0 = ptx::smem_u32(bars);
    auto full = [&](int b) { return bar0 + 8u * b; };
    auto empty = [&](int b) { return bar0 + 8u * (ST + b); };
    auto vfull = [&](int v) { return bar0 + 8u * (2 * ST + v); };
    auto vempty = [&](int v) { return bar0 + 8u * (2 * ST + VS + v); };

    const int tid = threadIdx.x, wg = tid / 128, lane = tid & 31;
    const int jb = blockIdx.x * kNJ;  // first tile column of this CTA
    const int64_t m0 = int64_t(blockIdx.y) * C::kBM;
    const int rows_valid = int(a.M - m0 < C::kBM ? a.M - m0 : C::kBM);
    const int nj_valid = min(kNJ, a.used_cols - jb);  // tiles of this CTA inside N
    const bool shared_u = a.shared_u != 0;
    const int nj_u = shared_u ? 1 : nj_valid;  // U tiles loaded and stage-1 products per chunk
    // Tile rows [i_begin, i_begin + n_rows) of this CTA's split (grid.z; one split unless the grid
    // would be too small for the SMs: then each split writes fp32 partials the finalize kernel adds).
    const int i_begin = blockIdx.z * a.rows_per_split;
    const int n_rows = min(a.used_rows, i_begin + a.rows_per_split) - i_begin;
    // The CTAs of one row block start their walk over the tile rows at different rows, so they do
    // not all read the same A chunk at once.
    const int i0 = int(int64_t(blockIdx.x) * n_rows / gridDim.x);
    auto row_of = [&](int t) { return i_begin + (t + i0 < n_rows ? t + i0 : t + i0 - n_rows); };
    auto chunks_of = [&](int i) { return (min(a.tk, a.K - i * a.tk) + 63) / 64; };
    auto tile = [&](int i, int j) { return int64_t(i) * a.Tn + jb + j; };

    if (tid == 0) {
      for (int b = 0; b < ST; ++b) {
        tma::mbar_init(full(b), 1);   // the producer's arrive.expect_tx
        tma::mbar_init(empty(b), 8);  // one arrival per consumer warp
      }
      for (int v = 0; v < VS; ++v) {
        tma::mbar_init(vfull(v), 1);
        tma::mbar_init(vempty(v), 8);
      }
      tma::fence_mbar_init();
    }
    __syncthreads();
    ptx::griddep_wait();  // A, U, V may be written, and Y still read, by the previous kernel

    if (wg == 0) {
      wgmma::registers_dec<C::kProducerRegs>();
      // Producers: thread 0 walks the consumers' k chunks (A and U, one ring slot each), thread 32
      // the tile rows (V, one V slot each; stage 2 reads it after the row's last chunk), so
      // neither ring waits for the other's slots to free.
      if (tid == 0) {
        tma::prefetch_map(&maps.a), tma::prefetch_map(&maps.u), tma::prefetch_map(&maps.u_last);
        const bool partial_last = a.K - (a.used_rows - 1) * a.tk < a.tk;
        const uint32_t tx = C::kABytes + nj_u * C::kUBytes;
        int b = 0, round = 0;
        for (int t = 0; t < n_rows; ++t) {
          const int i = row_of(t), nc = chunks_of(i);
          const bool last_map = partial_last && i == a.used_rows - 1;
          const CUtensorMap* mu = last_map ? &maps.u_last : &maps.u;
          for (int c = 0; c < nc; ++c) {
            if (round > 0) tma::mbar_wait(empty(b), (round - 1) & 1);
            const uint32_t slot = ring + b * C::kSlotBytes;
            tma::mbar_arrive_expect_tx(full(b), tx);
            tma::load_2d(slot, &maps.a, i * a.tk + 64 * c, int(m0), full(b));
            for (int j = 0; j < nj_u; ++j) {
              const int u_tile = shared_u ? 0 : last_map ? jb + j : int(tile(i, j));
              tma::load_3d(slot + C::kABytes + j * C::kUBytes, mu, 0, 64 * c, u_tile, full(b));
            }
            if (++b == ST) b = 0, ++round;
          }
        }
      } else if (tid == 32) {
        tma::prefetch_map(&maps.v);
        const uint32_t vtx = nj_valid * kH * C::kVAtomBytes;
        for (int t = 0; t < n_rows; ++t) {
          const int i = row_of(t), v = t % VS;
          if (t >= VS) tma::mbar_wait(vempty(v), ((t / VS) - 1) & 1);
          tma::mbar_arrive_expect_tx(vfull(v), vtx);
          for (int j = 0; j < nj_valid; ++j)
            for (int h = 0; h < kH; ++h)
              tma::load_3d(vring + v * C::kVSlotBytes + (j * kH + h) * C::kVAtomBytes, &maps.v, 64 * h, 0,
                           int(tile(i, j)), vfull(v));
        }
      }
      ptx::griddep_launch_dependents();
      return;
    }

    wgmma::registers_inc<C::kConsumerRegs>();
    const int cw = wg - 1, warp_in_wg = (tid / 32) % 4;
    // Stage 2's A fragments: one set per tile when they fit, so the tiles' products need not wait
    // for each other (registers: 128 Y + kNJ * kR / 2 Z + this).
    constexpr int kZfSets = kNJ * kR <= 64 ? kNJ : 1;
    float z[kNJ][kR / 2];              // Z_ij, fp32, this warpgroup's 64 rows
    float y[kNJ][kH][32];              // Y block, fp32: 64 rows x 256 columns per warpgroup
    uint32_t zf[kZfSets][kR / 16][4];  // Z_ij rounded: the A fragments of stage 2

    // Operand descriptors of slot 0; a slot, k step, tile or V atom adds its byte offset / 16 to
    // the start-address field (shared addresses stay below its 256 KB range).
    const uint64_t desc_a0 = wgmma::sw128_desc(ring + cw * 8192);
    const uint64_t desc_u0 = wgmma::mn_span_desc<kR * 2>(ring + C::kABytes);
    const uint64_t desc_v0 = wgmma::sw128_desc(vring);
    // Stage 1 with A in registers where two tiles share it (ldmatrix of this warp's 16 rows of the
    // 128-byte-swizzled chunk: lane l reads row l % 16, 16-byte k chunk 2·ks + l / 16).
    constexpr bool kRegisterA = kNJ == 2 && kR <= 32;
    uint32_t af[4][4];
    const int a_row = 64 * cw + 16 * warp_in_wg + (lane & 15);
    const uint32_t a_frag0 = ring + uint32_t(a_row) * 128;
    uint32_t a_frag_off[4];
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) a_frag_off[ks] = uint32_t(((2 * ks + (lane >> 4)) ^ (a_row & 7)) << 4);

    // Slots are released one step late: after the wgmma wait that leaves only this step's group
    // in flight, the previous step's k-chunk slot and the previous row's V slot are done.
    int b = 0, round = 0, pend_b = -1, pend_v = -1;
    auto release = [&](uint32_t bar) {
      if (lane == 0) tma::mbar_arrive(bar);
    };
    for (int t = 0; t < n_rows; ++t) {
      const int nc = chunks_of(row_of(t));
      for (int c = 0; c < nc; ++c) {
        tma::mbar_wait(full(b), round & 1);
        const uint64_t slot = uint64_t(b) * (C::kSlotBytes >> 4);
        if constexpr (kRegisterA) {
          // Two tiles share each A fragment: read A from shared memory once per chunk. The previous
          // chunk's products still read the fragment registers until they complete.
          wgmma::wait<0>();
#pragma unroll
          for (int ks = 0; ks < 4; ++ks) ldsm_x4(af[ks], a_frag0 + b * C::kSlotBytes + a_frag_off[ks]);
        }
        wgmma::fence();
#pragma unroll
        for (int j = 0; j < kNJ; ++j) {
          if (j >= nj_u) break;
#pragma unroll
          for (int ks = 0; ks < 4; ++ks) {
            const uint64_t desc_u = desc_u0 + slot + (j * C::kUBytes + ks * 16 * kR * 2) / 16;
            if constexpr (kRegisterA) {
              wgmma::mma_m64nNk16_rs<T, kR, 1>(z[j], af[ks], desc_u, c > 0 || ks > 0);
            } else {
              wgmma::mma_m64nNk16_ss<T, kR, 1>(z[j], desc_a0 + slot + ks * 2, desc_u, c > 0 || ks > 0);
            }
          }
        }
        wgmma::commit();
        if (c < nc - 1) {
          wgmma::wait<1>();
          if (pend_b >= 0) release(empty(pend_b));
          if (pend_v >= 0) release(vempty(pend_v));
          pend_b = b, pend_v = -1;
        } else {
          // The row's last chunk: Z is complete once everything in flight is; then stage 2.
          wgmma::wait<0>();
          if (pend_b >= 0) release(empty(pend_b));
          if (pend_v >= 0) release(vempty(pend_v));
          release(empty(b));
          pend_b = -1;
          const int v = t % VS;
          tma::mbar_wait(vfull(v), (t / VS) & 1);
          const uint64_t vslot = uint64_t(v) * (C::kVSlotBytes >> 4);
#pragma unroll
          for (int j = 0; j < kNJ; ++j) {
            if (j >= nj_valid) break;
            auto& f = zf[j % kZfSets];
            auto pack = [&](float(&zj)[kR / 2]) {
              wgmma::fence_operands(zj);
#pragma unroll
              for (int q = 0; q < kR / 16; ++q) {
                f[q][0] = Op::pack(zj[8 * q + 0], zj[8 * q + 1]);
                f[q][1] = Op::pack(zj[8 * q + 2], zj[8 * q + 3]);
                f[q][2] = Op::pack(zj[8 * q + 4], zj[8 * q + 5]);
                f[q][3] = Op::pack(zj[8 * q + 6], zj[8 * q + 7]);
              }
            };
            if (shared_u) {
              pack(z[0]);  // one Z for every tile: U is shared
            } else {
              pack(z[j]);
            }
            wgmma::fence();
#pragma unroll
            for (int h = 0; h < kH; ++h)
#pragma unroll
              for (int q = 0; q < kR / 16; ++q)
                wgmma::mma_m64n64k16_rs<T, 1>(y[j][h], f[q],
                                              desc_v0 + vslot + ((j * kH + h) * C::kVAtomBytes + q * 2048) / 16,
                                              t > 0 || q > 0);
            if (kZfSets == 1 && j + 1 < nj_valid) {  // one fragment set: the next tile rewrites it
              wgmma::commit();
              wgmma::wait<0>();
            }
          }
          wgmma::commit();
          pend_v = v;
        }
        if (++b == ST) b = 0, ++round;
      }
    }
    wgmma::wait<0>();
    ptx::griddep_launch_dependents();

    // Epilogue: warp w of the warpgroup holds rows 16w + g and 16w + g + 8; element 4·n8 + e of
    // y[j][h] is column 64h + 8·n8 + 2·t4 + (e & 1) of tile jb + j.
    // With splits: this split's fp32 partial, bias added by the finalize kernel.
    const int g = lane >> 2, t2 = (lane & 3) * 2;
    const T* bias = static_cast<const T*>(a.bias);
    T* Y = static_cast<T*>(a.Y);
    float* P = a.partial ? a.partial + int64_t(blockIdx.z) * a.M * a.N : nullptr;
#pragma unroll
    for (int j = 0; j < kNJ; ++j) {
      if (j >= nj_valid) break;
#pragma unroll
      for (int h = 0; h < kH; ++h) {
        wgmma::fence_operands(y[j][h]);
#pragma unroll
        for (int n8 = 0; n8 < 8; ++n8) {
          const int col = 64 * h + 8 * n8 + t2;
          const int64_t n = int64_t(jb + j) * a.tn + col;
          const bool ok0 = col < a.tn && n < a.N, ok1 = col + 1 < a.tn && n + 1 < a.N;
          const bool with_bias = bias && !P;
          const float b0 = with_bias && ok0 ? Op::to_float(bias[n]) : 0.f;
          const float b1 = with_bias && ok1 ? Op::to_float(bias[n + 1]) : 0.f;
#pragma unroll
          for (int e2 = 0; e2 < 2; ++e2) {
            const int row = 64 * cw + 16 * warp_in_wg + g + 8 * e2;
            if (row >= rows_valid) continue;
            const float y0 = y[j][h][4 * n8 + 2 * e2] + b0, y1 = y[j][h][4 * n8 + 2 * e2 + 1] + b1;
            if (P) {
              store_partial_pair(P + (m0 + row) * a.N + n, y0, y1, ok0, ok1);
            } else {
              store_pair(Y + (m0 + row) * a.N + n, y0, y1, ok0, ok1);
            }
          }
        }
      }
    }
  }
}

template <typename T, class C>
cudaError_t launch_wgmma_cfg(const WgmmaMaps& maps, const Args& a, cudaStream_t stream, bool pdl) {
  const dim3 grid(unsigned((a.used_cols + C::kNJ - 1) / C::kNJ), unsigned((a.M + C::kBM - 1) / C::kBM),
                  unsigned(a.splits));
  return launch_kernel<tsvd_wgmma_kernel<T, C>>(grid, dim3(C::kThreads), C::kSmemBytes, pdl, stream, maps, a);
}

// Picks the configuration by tile width and padded rank (wgmma_fits checked both).
template <typename T>
cudaError_t launch_wgmma(const WgmmaMaps& maps, const Args& a, cudaStream_t stream, bool pdl) {
  const int rp = wgmma_rank_padding(a.r);
  if (a.tn == 128) {
    if (rp == 16) return launch_wgmma_cfg<T, WgmmaCfg<128, 16>>(maps, a, stream, pdl);
    if (rp == 32) return launch_wgmma_cfg<T, WgmmaCfg<128, 32>>(maps, a, stream, pdl);
    return launch_wgmma_cfg<T, WgmmaCfg<128, 64>>(maps, a, stream, pdl);
  }
  if (rp == 16) return launch_wgmma_cfg<T, WgmmaCfg<256, 16>>(maps, a, stream, pdl);
  if (rp == 32) return launch_wgmma_cfg<T, WgmmaCfg<256, 32>>(maps, a, stream, pdl);
  return launch_wgmma_cfg<T, WgmmaCfg<256, 64>>(maps, a, stream, pdl);
}

}  // namespace ortops::cuda::tsvd
