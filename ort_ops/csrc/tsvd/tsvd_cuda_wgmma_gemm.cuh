// Private: the two-stage Hopper path of TSVDMatMul for large M (sm_90a warpgroup MMAs, TMA),
// 16-bit types, included once per dtype (tsvd_cuda_fp16.cu, tsvd_cuda_bf16.cu).
//
// Both stages are one GEMM kernel (WgmmaGemmCfg, tsvd_cuda_traits.h), each CTA computing kBM x kBN
// output blocks ("units") one after another:
//   stage 1, unit (row block, tile row i, column block):
//     T[m][j][i * kR + s] = sum_k A[m][i * tk + k] U[i][j][k][s]   for the kBN / kR tiles j of the block
//   stage 2, unit (row block, tile column j):
//     Y[m][j * tn + n] = sum_(i, s) T[m][j][i * kR + s] V[i][j][s][n] (+ bias)
// The tensor maps gather both operands (U's tiles of one row side by side, V's tile rows stacked),
// so every product is one m64n256k16 (or m64n128k16) with both operands in shared memory. The
// fused kernel (tsvd_cuda_wgmma.cuh) keeps T in registers but runs stage 1 as N = r products that
// re-read A per tile; measured against it in docs/tsvd_cuda.md.
//
// Stage 1 keeps a panel's U (one tile row's tk x 256 columns, up to 128 KB) resident in shared
// memory while A streams past it for a run of row blocks: streaming U per unit made its rank-wide
// rows (32 bytes at r = 16) the largest part of the L2 traffic (Nsight Compute: L2 81% busy).
// Warp-specialised as the fused kernel: thread 0 of the producer warpgroup issues the TMA loads of
// every k chunk of every unit of this CTA into a ring of slots (full / empty mbarriers), the two
// consumer warpgroups run the products and the unit's epilogue: each warpgroup rounds its 64-row
// block to the input type (T as the fused kernel rounds its Z) into a swizzled staging buffer and
// one of its threads issues TMA stores, so the next unit's products start while the bytes go out
// (measured: direct scattered stores of T left the tensor cores idle for a large part of each
// short stage-1 unit, docs/tsvd_cuda.md). Stage 1's warpgroups take turns over 64-row units
// ("ping-pong": one's epilogue under the other's products); stage 2's share 128-row units and
// their slots' V. Zero padding comes from the maps' bounds.
#pragma once
#include "common/cuda_tma.cuh"
#include "common/cuda_wgmma.cuh"
#include "tsvd/tsvd_cuda_tc.cuh"

namespace ortops::cuda::tsvd {

template <typename T, class C>
__global__ void __launch_bounds__(C::kThreads, 1)
    tsvd_wgmma_gemm_kernel(const __grid_constant__ WgmmaGemmMaps maps, const WgmmaGemmArgs a) {
  if constexpr (!wgmma::kHasWgmma) {
    __trap();  // launched only where the sm_90a code exists (runs_sm90a, tsvd_cuda.cu)
  } else {
    constexpr int ST = C::kStages, kR = C::kR;
    constexpr bool kStage1 = C::kStage == 1;
    __shared__ __align__(8) uint64_t bars[2 * ST + 4];
    extern __shared__ __align__(16) unsigned char smem_raw[];
    // [resident B (stage 1: U of one panel)][ring of k-chunk slots][staging], swizzle atoms 1024-aligned
    const uint32_t resident = (ptx::smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t ring = resident + C::kResidentBytes;
    const uint32_t staging = ring + ST * C::kSlotBytes;  // 2 x [64 rows][kBN], type T
    const uint32_t bar0 = ptx::smem_u32(bars);
    auto full = [&](int b) { return bar0 + 8u * b; };
    auto empty = [&](int b) { return bar0 + 8u * (ST + b); };
    const uint32_t b_full = bar0 + 8u * (2 * ST), b_empty = b_full + 8u;  // the resident block
    // Ping-pong turns: warpgroup w's products of a unit start once the other's products of the unit
    // before were issued. Without it a warpgroup that skips the other's unit could wait on a slot's
    // full barrier two rounds ahead, which an mbarrier's phase parity cannot tell from the round
    // before (it would read the slot early).
    auto turn = [&](int w) { return bar0 + 8u * (2 * ST + 2 + w); };

    // A unit is one kBM x kBN output block. Stage 1: items (a panel = tile row i x column block,
    // and a segment of row blocks; WgmmaGemmArgs) strided over the grid, each loading its panel's
    // U (tk x 256) once and streaming A past it. Stage 2: units strided over the grid, tile column
    // fastest. walk(f) calls f(unit, opens an item, closes an item) for this CTA's units in order.
    struct Unit {
      int64_t m0;
      int i, cb, chunks;
    };
    auto walk = [&](auto&& f) {
      if constexpr (kStage1) {
        for (int it = blockIdx.x; it < a.items; it += gridDim.x) {
          const int panel = it % a.panels, rb0 = it / a.panels * a.seg_len;
          const int rb1 = min(a.row_blocks, rb0 + a.seg_len);
          Unit w;
          w.i = panel / a.col_blocks, w.cb = panel - w.i * a.col_blocks;
          w.chunks = (min(a.tk, a.K - w.i * a.tk) + 63) / 64;
          for (int rb = rb0; rb < rb1; ++rb) {
            w.m0 = int64_t(rb) * C::kBM;
            f(w, rb == rb0, rb + 1 == rb1);
          }
        }
      } else {
        for (int u = blockIdx.x; u < a.units; u += gridDim.x) {
          Unit w;
          w.cb = u % a.col_blocks, w.m0 = int64_t(u / a.col_blocks) * C::kBM, w.i = 0;
          w.chunks = (a.rows * a.kr + 63) / 64;
          f(w, false, false);
        }
      }
    };

    const int tid = threadIdx.x, wg = tid / 128, lane = tid & 31;
    if (tid == 0) {
      for (int b = 0; b < ST; ++b) {
        tma::mbar_init(full(b), 1);   // the producer's arrive.expect_tx
        tma::mbar_init(empty(b), C::kSlotConsumerWarps);  // one arrival per consumer warp reading it
      }
      tma::mbar_init(b_full, 1);
      tma::mbar_init(b_empty, 8);
      tma::mbar_init(turn(0), 4), tma::mbar_init(turn(1), 4);
      tma::fence_mbar_init();
    }
    __syncthreads();
    ptx::griddep_wait();  // A / T and the factors may be written, T and Y still read, by the previous kernel

    if (wg == 0) {
      wgmma::registers_dec<C::kProducerRegs>();
      if (tid == 0) {
        tma::prefetch_map(&maps.a), tma::prefetch_map(&maps.b);
        if (kStage1) tma::prefetch_map(&maps.b_last);
        int b = 0, round = 0, panels = 0;
        walk([&](const Unit& w, bool opens, bool) {
          if (kStage1 && opens) {
            // A new panel's U: once the consumers are done with the previous one.
            if (panels > 0) tma::mbar_wait(b_empty, (panels - 1) & 1);
            const bool last_row = a.partial_last && w.i == a.rows - 1;
            const CUtensorMap* mu = last_row ? &maps.b_last : &maps.b;
            tma::mbar_arrive_expect_tx(b_full, w.chunks * C::kBBytes);
            for (int c = 0; c < w.chunks; ++c)
              tma::load_4d(resident + c * C::kBBytes, mu, 0, 64 * c, w.cb * C::kTiles, last_row ? 0 : w.i, b_full);
            ++panels;
          }
          for (int c = 0; c < w.chunks; ++c) {
            if (round > 0) tma::mbar_wait(empty(b), (round - 1) & 1);
            const uint32_t slot = ring + b * C::kSlotBytes;
            tma::mbar_arrive_expect_tx(full(b), C::kSlotBytes);
            if constexpr (kStage1) {
              tma::load_2d(slot, &maps.a, w.i * a.tk + 64 * c, int(w.m0), full(b));
            } else {
              tma::load_3d(slot, &maps.a, 64 * c, w.cb, int(w.m0), full(b));
              const int rows_per_chunk = 64 / a.kr;
#pragma unroll
              for (int h = 0; h < C::kBAtoms; ++h)
                tma::load_4d(slot + C::kABytes + h * C::kBAtomBytes, &maps.b, 64 * h, 0, w.cb, c * rows_per_chunk,
                             full(b));
            }
            if (++b == ST) b = 0, ++round;
          }
        });
      }
      ptx::griddep_launch_dependents();
      return;
    }
    if (a.tma_store && tid % 128 == 0) tma::prefetch_map(&maps.out);

    wgmma::registers_inc<C::kConsumerRegs>();
    const int cw = wg - 1, warp_in_wg = (tid / 32) % 4, g = lane >> 2, t2 = (lane & 3) * 2;
    float d[C::kBN / 2];  // this warpgroup's 64 rows x kBN columns, fp32
    const uint64_t desc_a0 = wgmma::sw128_desc(ring + (C::kPingPong ? 0 : cw * 8192));
    const int row_off = C::kPingPong ? 0 : 64 * cw;  // this warpgroup's first row in a unit
    // B: stage 1 the resident panel (chunk c at c * kBBytes), stage 2 the slot's B part.
    const uint64_t desc_b0 =
        wgmma::mn_atoms_desc<C::kBSpan>(kStage1 ? resident : ring + C::kABytes, C::kBAtomBytes);
    int b = 0, round = 0, panels = 0, units = 0, mine = 0;
    walk([&](const Unit& w, bool opens, bool closes) {
      if (kStage1 && opens) tma::mbar_wait(b_full, panels & 1), ++panels;
      if (C::kPingPong && (units++ & 1) != cw) {  // the other warpgroup's unit: skip its slots
        b += w.chunks, round += b / ST, b %= ST;
        if (closes && lane == 0) tma::mbar_arrive(b_empty);  // after this warpgroup's units of the item
        return;
      }
      if (C::kPingPong) {
        if (cw == 1) tma::mbar_wait(turn(1), mine & 1);  // warpgroup 0 issued unit 2 * mine
        else if (mine > 0) tma::mbar_wait(turn(0), (mine - 1) & 1);  // warpgroup 1 issued unit 2 * mine - 1
      }
      int pend = -1;  // slots are released one step late, after the wait that leaves one group in flight
      for (int c = 0; c < w.chunks; ++c) {
        tma::mbar_wait(full(b), round & 1);
        const uint64_t slot = uint64_t(b) * (C::kSlotBytes >> 4);
        const uint64_t desc_b = desc_b0 + (kStage1 ? uint64_t(c) * (C::kBBytes >> 4) : slot);
        wgmma::fence();
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
          wgmma::mma_m64nNk16_ss<T, C::kBN, 1>(d, desc_a0 + slot + ks * 2, desc_b + ks * C::kBSpan, c > 0 || ks > 0);
        wgmma::commit();
        wgmma::wait<1>();
        if (pend >= 0 && lane == 0) tma::mbar_arrive(empty(pend));
        pend = b;
        if (++b == ST) b = 0, ++round;
      }
      if (C::kPingPong && lane == 0) tma::mbar_arrive(turn(1 - cw));
      ++mine;
      wgmma::wait<0>();
      if (pend >= 0 && lane == 0) tma::mbar_arrive(empty(pend));
      if (kStage1 && closes && lane == 0) tma::mbar_arrive(b_empty);  // the panel's U may be replaced
      wgmma::fence_operands(d);

      // Epilogue: warp w of the warpgroup holds rows 16w + g and 16w + g + 8; element 4·n8 + e is
      // column 8·n8 + 2·(lane % 4) + (e & 1).
      if (a.tma_store) {
        // This warpgroup's staging block is free once its previous stores have read it (thread 0
        // of the warpgroup issued them and waits; the others wait at the barrier).
        const bool leader = warp_in_wg == 0 && lane == 0;
        const uint32_t stage_wg = staging + cw * (C::kStagingBytes / 2);
        if (leader) tma::bulk_wait_read();
        tma::named_barrier(1 + cw, 128);
        const T* bias = static_cast<const T*>(a.bias);
#pragma unroll
        for (int e2 = 0; e2 < 2; ++e2) {
          const uint32_t r = 16 * warp_in_wg + g + 8 * e2;
#pragma unroll
          for (int n8 = 0; n8 < C::kBN / 8; ++n8) {
            const int col = 8 * n8 + t2;
            float v0 = d[4 * n8 + 2 * e2], v1 = d[4 * n8 + 2 * e2 + 1];
            uint32_t addr;
            if constexpr (kStage1) {  // box [64][kR] of tile col / kR, rows of one swizzle span
              addr = stage_wg + (col / kR) * (128 * kR) + tma::swizzle<2 * kR>(r * 2 * kR + (col % kR) * 2);
            } else {  // box [64][64] of column atom col / 64
              addr = stage_wg + (col / 64) * 8192 + tma::swizzle<128>(r * 128 + (col % 64) * 2);
              if (bias) {
                const int64_t n = int64_t(w.cb) * a.tn + col;
                v0 += n < a.N ? Mma<T>::to_float(bias[n]) : 0.f;
                v1 += n + 1 < a.N ? Mma<T>::to_float(bias[n + 1]) : 0.f;
              }
            }
            asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(Mma<T>::pack(v0, v1)) : "memory");
          }
        }
        tma::fence_proxy_async_smem();  // the stores below read these bytes through the async proxy
        tma::named_barrier(1 + cw, 128);
        if (leader) {
          const int row0 = int(w.m0) + row_off;
          if constexpr (kStage1) {
#pragma unroll 1
            for (int jj = 0; jj < C::kTiles; ++jj) {
              const int j = w.cb * C::kTiles + jj;
              if (j < a.cols) tma::store_4d(&maps.out, 0, w.i, j, row0, stage_wg + jj * (128 * kR));
            }
          } else {
#pragma unroll
            for (int h = 0; h < C::kBN / 64; ++h) tma::store_2d(&maps.out, w.cb * a.tn + 64 * h, row0, stage_wg + h * 8192);
          }
          tma::bulk_commit();
        }
        return;
      }
      // Direct stores (stage 2 only: Y whose rows are not 16-byte aligned has no tensor map).
      T* out = static_cast<T*>(a.out);
      const T* bias = static_cast<const T*>(a.bias);
#pragma unroll
      for (int e2 = 0; e2 < 2; ++e2) {
        const int64_t m = w.m0 + row_off + 16 * warp_in_wg + g + 8 * e2;
        if (m >= a.M) continue;
        T* row = out + m * a.ld_out;
#pragma unroll
        for (int n8 = 0; n8 < C::kBN / 8; ++n8) {
          const int64_t n = int64_t(w.cb) * a.tn + 8 * n8 + t2;
          const bool ok0 = n < a.N, ok1 = n + 1 < a.N;
          const float b0 = bias && ok0 ? Mma<T>::to_float(bias[n]) : 0.f;
          const float b1 = bias && ok1 ? Mma<T>::to_float(bias[n + 1]) : 0.f;
          store_pair(row + n, d[4 * n8 + 2 * e2] + b0, d[4 * n8 + 2 * e2 + 1] + b1, ok0, ok1);
        }
      }
    });
    // The stores must have read shared memory before the CTA exits, and be complete before the
    // dependent launch (stage 2 reads T) may run past its griddepcontrol.wait.
    if (warp_in_wg == 0 && lane == 0) tma::bulk_wait();
    ptx::griddep_launch_dependents();
  }
}

template <typename T, class C>
cudaError_t launch_wgmma_gemm_cfg(const WgmmaGemmMaps& maps, const WgmmaGemmArgs& a, int grid, cudaStream_t stream,
                                  bool pdl) {
  return launch_kernel<tsvd_wgmma_gemm_kernel<T, C>>(dim3(unsigned(grid)), dim3(C::kThreads), C::kSmemBytes, pdl,
                                                     stream, maps, a);
}

// Stage 1: 256-column blocks of kR-wide tiles (kR = a.kr); stage 2: one tile column (tn) per block.
template <typename T>
cudaError_t launch_wgmma_gemm(int stage, const WgmmaGemmMaps& maps, const WgmmaGemmArgs& a, int grid,
                              cudaStream_t stream, bool pdl) {
  if (stage == 1) {
    // U resident for tk <= 128 in 2 k chunks (a 6-slot A ring), else in 4 (2 slots).
    if (a.tk <= 128) {
      if (a.kr == 16) return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 32, 16, 2>>(maps, a, grid, stream, pdl);
      if (a.kr == 32) return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 64, 32, 2>>(maps, a, grid, stream, pdl);
      return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 128, 64, 2>>(maps, a, grid, stream, pdl);
    }
    if (a.kr == 16) return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 32, 16, 4>>(maps, a, grid, stream, pdl);
    if (a.kr == 32) return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 64, 32, 4>>(maps, a, grid, stream, pdl);
    return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 128, 64, 4>>(maps, a, grid, stream, pdl);
  }
  if (a.tn == 128) return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<2, 128, 128, 16>>(maps, a, grid, stream, pdl);
  return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<2, 256, 128, 16>>(maps, a, grid, stream, pdl);
}

}  // namespace ortops::cuda::tsvd
