// Private: the two-stage Hopper path of TSVDMatMul for large M (sm_90a warpgroup MMAs, TMA),
// 16-bit types, included once per dtype (tsvd_cuda_fp16.cu, tsvd_cuda_bf16.cu).
//
// Both stages are one GEMM kernel (WgmmaGemmCfg, tsvd_cuda_traits.h), each CTA computing 128 x kBN
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
// Warp-specialised as the fused kernel: thread 0 of the producer warpgroup issues the TMA loads of
// every k chunk of every unit of this CTA into a ring of slots (full / empty mbarriers), the two
// consumer warpgroups run the products and the unit's epilogue: each warpgroup rounds its 64-row
// block to the input type (T as the fused kernel rounds its Z) into a swizzled staging buffer and
// one of its threads issues TMA stores, so the next unit's products start while the bytes go out
// (measured: direct scattered stores of T left the tensor cores idle for a large part of each
// short stage-1 unit, docs/tsvd_cuda.md). Zero padding comes from the maps' bounds.
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
    constexpr int ST = C::kStages, kR = C::kAtomCols;  // stage 1: atoms are tiles of kR columns
    constexpr bool kStage1 = C::kStage == 1;
    __shared__ __align__(8) uint64_t bars[2 * ST];
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t ring = (ptx::smem_u32(smem_raw) + 1023u) & ~1023u;  // swizzle atoms: 1024-aligned
    const uint32_t staging = ring + ST * C::kSlotBytes;                // 2 x [64 rows][kBN], type T
    const uint32_t bar0 = ptx::smem_u32(bars);
    auto full = [&](int b) { return bar0 + 8u * b; };
    auto empty = [&](int b) { return bar0 + 8u * (ST + b); };

    // Unit u: column block fastest (stage 1: the column blocks of one A block run side by side, so
    // A is read from DRAM about once), then the tile row (stage 1), then the row block.
    struct Unit {
      int64_t m0;
      int i, cb, chunks;
    };
    auto unit = [&](int u) {
      Unit w;
      w.cb = u % a.col_blocks;
      const int rest = u / a.col_blocks;
      if constexpr (kStage1) {
        w.i = rest % a.rows;
        w.m0 = int64_t(rest / a.rows) * C::kBM;
        w.chunks = (min(a.tk, a.K - w.i * a.tk) + 63) / 64;
      } else {
        w.i = 0;
        w.m0 = int64_t(rest) * C::kBM;
        w.chunks = (a.rows * a.kr + 63) / 64;
      }
      return w;
    };

    const int tid = threadIdx.x, wg = tid / 128, lane = tid & 31;
    if (tid == 0) {
      for (int b = 0; b < ST; ++b) {
        tma::mbar_init(full(b), 1);   // the producer's arrive.expect_tx
        tma::mbar_init(empty(b), 8);  // one arrival per consumer warp
      }
      tma::fence_mbar_init();
    }
    __syncthreads();
    ptx::griddep_wait();  // A / T and the factors may be written, T and Y still read, by the previous kernel

    if (wg == 0) {
      wgmma::registers_dec<C::kProducerRegs>();
      if (tid == 0) {
        tma::prefetch_map(&maps.a), tma::prefetch_map(&maps.b);
        if (kStage1) tma::prefetch_map(&maps.b_last);
        int b = 0, round = 0;
        for (int u = blockIdx.x; u < a.units; u += gridDim.x) {
          const Unit w = unit(u);
          const bool last_row = kStage1 && a.partial_last && w.i == a.rows - 1;
          for (int c = 0; c < w.chunks; ++c) {
            if (round > 0) tma::mbar_wait(empty(b), (round - 1) & 1);
            const uint32_t slot = ring + b * C::kSlotBytes;
            tma::mbar_arrive_expect_tx(full(b), C::kSlotBytes);
            if constexpr (kStage1) {
              tma::load_2d(slot, &maps.a, w.i * a.tk + 64 * c, int(w.m0), full(b));
              tma::load_4d(slot + C::kABytes, last_row ? &maps.b_last : &maps.b, 0, 64 * c, w.cb * C::kBAtoms,
                           last_row ? 0 : w.i, full(b));
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
        }
      }
      ptx::griddep_launch_dependents();
      return;
    }
    if (a.tma_store && tid % 128 == 0) tma::prefetch_map(&maps.out);

    wgmma::registers_inc<C::kConsumerRegs>();
    const int cw = wg - 1, warp_in_wg = (tid / 32) % 4, g = lane >> 2, t2 = (lane & 3) * 2;
    float d[C::kBN / 2];  // this warpgroup's 64 rows x kBN columns, fp32
    const uint64_t desc_a0 = wgmma::sw128_desc(ring + cw * 8192);
    const uint64_t desc_b0 = wgmma::mn_atoms_desc<C::kBSpan>(ring + C::kABytes, C::kBAtomBytes);
    int b = 0, round = 0;
    for (int u = blockIdx.x; u < a.units; u += gridDim.x) {
      const Unit w = unit(u);
      int pend = -1;  // slots are released one step late, after the wait that leaves one group in flight
      for (int c = 0; c < w.chunks; ++c) {
        tma::mbar_wait(full(b), round & 1);
        const uint64_t slot = uint64_t(b) * (C::kSlotBytes >> 4);
        wgmma::fence();
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
          wgmma::mma_m64nNk16_ss_wide<T, C::kBN, 1>(d, desc_a0 + slot + ks * 2, desc_b0 + slot + ks * C::kBSpan,
                                                    c > 0 || ks > 0);
        wgmma::commit();
        wgmma::wait<1>();
        if (pend >= 0 && lane == 0) tma::mbar_arrive(empty(pend));
        pend = b;
        if (++b == ST) b = 0, ++round;
      }
      wgmma::wait<0>();
      if (pend >= 0 && lane == 0) tma::mbar_arrive(empty(pend));
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
              addr = stage_wg + (col / kR) * (64 * C::kBSpan) + tma::swizzle<C::kBSpan>(r * C::kBSpan + (col % kR) * 2);
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
          const int row0 = int(w.m0) + 64 * cw;
          if constexpr (kStage1) {
#pragma unroll 1
            for (int jj = 0; jj < C::kBAtoms; ++jj) {
              const int j = w.cb * C::kBAtoms + jj;
              if (j < a.cols) tma::store_4d(&maps.out, 0, w.i, j, row0, stage_wg + jj * (64 * C::kBSpan));
            }
          } else {
#pragma unroll
            for (int h = 0; h < C::kBN / 64; ++h) tma::store_2d(&maps.out, w.cb * a.tn + 64 * h, row0, stage_wg + h * 8192);
          }
          tma::bulk_commit();
        }
        continue;
      }
      // Direct stores (stage 2 only: Y whose rows are not 16-byte aligned has no tensor map).
      T* out = static_cast<T*>(a.out);
      const T* bias = static_cast<const T*>(a.bias);
#pragma unroll
      for (int e2 = 0; e2 < 2; ++e2) {
        const int64_t m = w.m0 + 64 * cw + 16 * warp_in_wg + g + 8 * e2;
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
    }
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
    if (a.kr == 16) return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 32>>(maps, a, grid, stream, pdl);
    if (a.kr == 32) return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 64>>(maps, a, grid, stream, pdl);
    return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<1, 256, 128>>(maps, a, grid, stream, pdl);
  }
  if (a.tn == 128) return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<2, 128, 128>>(maps, a, grid, stream, pdl);
  return launch_wgmma_gemm_cfg<T, WgmmaGemmCfg<2, 256, 128>>(maps, a, grid, stream, pdl);
}

}  // namespace ortops::cuda::tsvd
