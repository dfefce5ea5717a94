// Private: the fused Hopper kernel of TSVDMatMul for large M (sm_90a warpgroup MMAs), 16-bit
// types, included once per dtype (tsvd_cuda_fp16.cu, tsvd_cuda_bf16.cu) after tsvd_cuda_tc.cuh.
//
// The product has the shape of attention without the softmax: for every tile row i,
//   Z_ij = A_i · U_ij        (stage 1: BM x tk by tk x r, both operands from shared memory)
//   Y_j += Z_ij · V_ij       (stage 2: Z from registers, rounded to the input type, as the A operand)
// so Z never leaves the registers and the intermediate of the two-stage path (4x |A| at c = 4,
// tile 128) is gone. A CTA owns 128 rows (two warpgroups of 64) and 256 output columns (kNJ tiles of
// kTN), so each A chunk it loads feeds kNJ tiles' products (the mma.sync kernel re-read A once per
// 128 columns). A cp.async ring of k chunks of 64 feeds both stages; V_ij rides with the last chunk
// of tile row i. Layouts are the 128-byte swizzle of common/cuda_wgmma.cuh:
//   A chunk  [128 rows][64 k]        K-major, one atom column
//   U_j      [64 k][64]              MN-major (rank contiguous); the first kR columns are loaded and read
//   V_j, h   [kR rows][64 columns]   MN-major, h = 0 .. kTN / 64 - 1
// Ranks round up to kR = 16 / 32 / 64; the extra U columns and V rows are zero-filled, as are A
// columns past K, U rows past a partial tile and rows of A past M.
#pragma once
#include "common/cuda_wgmma.cuh"
#include "tsvd/tsvd_cuda_tc.cuh"

namespace ortops::cuda::tsvd {

template <typename T, class C>
__global__ void __launch_bounds__(C::kThreads, 1) tsvd_wgmma_kernel(const Args a) {
  if constexpr (!wgmma::kHasWgmma) {
    __trap();  // the host (runs_sm90a, tsvd_cuda.cu) launches this only where the sm_90a code exists
  } else {
    using Op = Mma<T>;
    constexpr int kR = C::kR, kNJ = C::kNJ, kH = C::kTN / 64, ST = C::kStages, NT = C::kThreads;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = ptx::smem_u32(smem_raw);
    unsigned char* smem = smem_raw + (((raw + 1023u) & ~1023u) - raw);  // swizzle atoms: 1024-byte aligned
    const uint32_t smem0 = ptx::smem_u32(smem);

    const int tid = threadIdx.x, wg = tid / 128, warp_in_wg = (tid / 32) % 4, lane = tid & 31;
    const int jb = blockIdx.x * kNJ;  // first tile column of this CTA
    const int64_t m0 = int64_t(blockIdx.y) * C::kBM;
    const int rows_valid = int(a.M - m0 < C::kBM ? a.M - m0 : C::kBM);
    const int nj_valid = min(kNJ, a.used_cols - jb);  // tiles of this CTA inside N
    const T* gA = static_cast<const T*>(a.A) + m0 * a.K;
    const T* gU = static_cast<const T*>(a.U);
    const T* gV = static_cast<const T*>(a.V);
    // Tile rows [i_begin, i_end) of this CTA's split (grid.z; one split unless the grid would be
    // too small for the SMs: then each split writes fp32 partials that the finalize kernel adds).
    const int i_begin = blockIdx.z * a.rows_per_split;
    const int n_rows = min(a.used_rows, i_begin + a.rows_per_split) - i_begin;
    const int chunks_full = (a.tk + 63) / 64;
    const bool has_last = i_begin + n_rows == a.used_rows;  // the partial last tile row, if any, is here
    const int k_last = a.K - (a.used_rows - 1) * a.tk;
    const int steps = (n_rows - has_last) * chunks_full + (has_last ? (k_last + 63) / 64 : 0);

    auto tile = [&](int i, int j) { return int64_t(i) * a.Tn + jb + j; };
    // Each thread's copies keep their row and 16-byte chunk from step to step (thread count and
    // chunks per row are powers of two, and the row steps multiples of 8, so the swizzle phase is
    // fixed too): shared offsets and in-tile global offsets are computed once, and a step costs a
    // few adds per copy. (Computing them per copy made the loads, not the memory system, the
    // limit: ~540 instructions per warp per step, Nsight Compute, H200.)
    constexpr int kARowStep = NT / 8, kAPer = C::kBM * 8 / NT;  // A: 8 chunks per row
    constexpr int kUChunks = kR / 8, kUCopies = 64 * kUChunks, kURowStep = NT / kUChunks;
    constexpr int kUPer = (kUCopies + NT - 1) / NT;
    constexpr int kVChunks = C::kTN / 8, kVRowStep = NT / kVChunks, kVPer = kR * kVChunks / NT;
    static_assert(kARowStep % 8 == 0 && kURowStep % 8 == 0 && kVRowStep % 8 == 0 && kR * kVChunks % NT == 0,
                  "fixed swizzle phase per thread");
    const int a_row = tid / 8, a_c = tid % 8;
    const uint32_t a_soff = uint32_t(wgmma::sw128_offset(a_row, a_c)) * 2;
    const T* a_g = gA + int64_t(a_row) * a.K + a_c * 8;
    const int64_t a_gstep = int64_t(kARowStep) * a.K;
    const int u_row = tid / kUChunks, u_c = tid % kUChunks;
    const bool u_thread = kUCopies >= NT || tid < kUCopies;
    const uint32_t u_soff = uint32_t(wgmma::sw128_offset(u_row, u_c)) * 2;
    const int64_t u_goff = int64_t(u_row) * a.r + u_c * 8;
    const bool u_c_ok = u_c * 8 < a.r;
    const int v_row = tid / kVChunks, v_c = tid % kVChunks;
    const uint32_t v_soff = uint32_t((v_c / 8) * C::kVAtomBytes) + uint32_t(wgmma::sw128_offset(v_row, v_c % 8)) * 2;
    const int64_t v_goff = int64_t(v_row) * a.tn + v_c * 8;

    uint32_t a_rows_ok = 0;  // this thread's A copies inside M (rows past M are zero-filled)
#pragma unroll
    for (int u = 0; u < kAPer; ++u) a_rows_ok |= uint32_t(a_row + u * kARowStep < rows_valid) << u;
    const int64_t u_gstep = int64_t(kURowStep) * a.r;

    // The CTAs of one row block start their walk over the tile rows at different rows, so they do
    // not all read the same A chunk at once (measured neutral on the H200: L2 lines are not the limit).
    const int i0 = int(int64_t(blockIdx.x) * n_rows / gridDim.x);
    auto row_of = [&](int t) { return i_begin + (t + i0 < n_rows ? t + i0 : t + i0 - n_rows); };
    auto k_extent = [&](int i) { return min(a.tk, a.K - i * a.tk); };

    // Load cursor: walk position, the tile row, the valid k from the next chunk on, and this
    // thread's sources at that chunk. Set once per tile row and advanced by a chunk per step, so
    // a step's copies cost an add and a predicate each (the per-step offset products and row
    // arithmetic were most of the ~300 instructions a warp issued per step).
    int ld_t = 0, ld_i = row_of(0), ld_left = k_extent(ld_i);
    const T* ld_a = a_g + int64_t(ld_i) * a.tk;
    const T* ld_u[kNJ];
    auto u_sources = [&](int i) {
#pragma unroll
      for (int j = 0; j < kNJ; ++j) ld_u[j] = gU + (a.shared_u ? int64_t(0) : tile(i, j) * a.tk * a.r) + u_goff;
    };
    u_sources(ld_i);

    // Loads of the load cursor's step into ring slot b (V_ij too on the last chunk of tile row i),
    // then the cursor moves on by one chunk.
    auto issue = [&](int b) {
      const uint32_t sbase = smem0 + uint32_t(b * C::kStageBytes);
      const bool a_c_ok = a_c * 8 < ld_left;
#pragma unroll
      for (int u = 0; u < kAPer; ++u) {
        const bool ok = a_c_ok && ((a_rows_ok >> u) & 1u);
        cp_async16(sbase + a_soff + u * kARowStep * 128, ok ? ld_a + u * a_gstep : gA, ok);
      }
      if (u_thread) {
#pragma unroll
        for (int j = 0; j < kNJ; ++j) {
          if (j >= nj_valid) break;
#pragma unroll
          for (int u = 0; u < kUPer; ++u) {
            const bool ok = u_c_ok && u_row + u * kURowStep < ld_left;
            cp_async16(sbase + C::kUOffset + j * C::kUBytes + u_soff + u * kURowStep * 128,
                       ok ? ld_u[j] + u * u_gstep : gU, ok);
          }
        }
      }
      if (ld_left <= 64) {  // the row's last chunk: V_ij rides with it
#pragma unroll
        for (int j = 0; j < kNJ; ++j) {
          if (j >= nj_valid) break;
          const T* gv = gV + tile(ld_i, j) * a.r * a.tn + v_goff;
          const bool c_ok = v_c * 8 < a.N - (jb + j) * a.tn;  // columns of tile jb + j inside N
#pragma unroll
          for (int u = 0; u < kVPer; ++u) {
            const bool ok = c_ok && v_row + u * kVRowStep < a.r;
            cp_async16(sbase + C::kVOffset + j * kH * C::kVAtomBytes + v_soff + u * kVRowStep * 128,
                       ok ? gv + int64_t(u * kVRowStep) * a.tn : gV, ok);
          }
        }
        if (++ld_t < n_rows) {
          ld_i = row_of(ld_t), ld_left = k_extent(ld_i);
          ld_a = a_g + int64_t(ld_i) * a.tk;
          u_sources(ld_i);
        }
      } else {
        ld_left -= 64, ld_a += 64;
#pragma unroll
        for (int j = 0; j < kNJ; ++j) ld_u[j] += 64 * a.r;
      }
    };

    // Stage 2's A fragments: one set per tile when they fit, so the tiles' products need not wait
    // for each other (registers: 128 Y + kNJ * kR / 2 Z + this).
    constexpr int kZfSets = kNJ * kR <= 64 ? kNJ : 1;
    float z[kNJ][kR / 2];             // Z_ij, fp32, this warpgroup's 64 rows
    float y[kNJ][kH][32];             // Y block, fp32: 64 rows x 256 columns per warpgroup
    uint32_t zf[kZfSets][kR / 16][4];  // Z_ij rounded: the A fragments of stage 2

    // Operand descriptors of ring slot 0; a slot, k step, tile or V atom adds its byte offset / 16
    // to the start-address field (shared addresses stay below its 256 KB range).
    const uint64_t desc_a0 = wgmma::sw128_desc(smem0 + wg * 8192);
    const uint64_t desc_u0 = wgmma::sw128_desc(smem0 + C::kUOffset);
    const uint64_t desc_v0 = wgmma::sw128_desc(smem0 + C::kVOffset);

    // Ring: kLead steps are loaded ahead. Lazy (3+ slots): a step's products may still run while
    // the next step starts; the slot refilled at step s is that of step s - 2, whose products are
    // done once at most one commit group (step s - 1's last) is pending.
    constexpr bool kLazy = ST >= 3;
    constexpr int kLead = kLazy ? ST - 2 : ST - 1;
    ptx::griddep_wait();  // A, U, V may be written by the previous kernel
#pragma unroll
    for (int p = 0; p < kLead; ++p) {
      if (p < steps) issue(p);
      cp_async_commit();
    }

    int c_rows = 0, c_kc = 0, c_left = k_extent(row_of(0));  // compute cursor: rows done, chunk, valid k left
    int b = 0, b_load = kLead % ST;                // ring slots of the step computed and of the next load
    for (int s = 0; s < steps; ++s) {
      if constexpr (kLazy) {
        wgmma::wait<1>();
      } else {
        wgmma::wait<0>();
      }
      cp_async_wait<kLead - 1>();  // step s has landed (this thread's copies)
      wgmma::fence_proxy_async();
      __syncthreads();  // ... for every thread, and the slot refilled next is free in every warpgroup
      if (s + kLead < steps) issue(b_load);
      cp_async_commit();
      b_load = b_load + 1 == ST ? 0 : b_load + 1;

      const uint64_t slot = uint64_t(b) * (C::kStageBytes >> 4);
      const bool last = c_left <= 64;
      wgmma::fence();
#pragma unroll
      for (int j = 0; j < kNJ; ++j) {
        if (j >= nj_valid) break;
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
          wgmma::mma_m64nNk16_ss<T, kR, 1>(z[j], desc_a0 + slot + ks * 2,
                                          desc_u0 + slot + (j * C::kUBytes + ks * 2048) / 16, c_kc > 0 || ks > 0);
      }
      wgmma::commit();
      if (last) {
        wgmma::wait<0>();
#pragma unroll
        for (int j = 0; j < kNJ; ++j) {
          if (j >= nj_valid) break;
          wgmma::fence_operands(z[j]);
          auto& f = zf[j % kZfSets];
#pragma unroll
          for (int q = 0; q < kR / 16; ++q) {
            f[q][0] = Op::pack(z[j][8 * q + 0], z[j][8 * q + 1]);
            f[q][1] = Op::pack(z[j][8 * q + 2], z[j][8 * q + 3]);
            f[q][2] = Op::pack(z[j][8 * q + 4], z[j][8 * q + 5]);
            f[q][3] = Op::pack(z[j][8 * q + 6], z[j][8 * q + 7]);
          }
          wgmma::fence();
#pragma unroll
          for (int h = 0; h < kH; ++h)
#pragma unroll
            for (int q = 0; q < kR / 16; ++q)
              wgmma::mma_m64n64k16_rs<T, 1>(y[j][h], f[q],
                                            desc_v0 + slot + ((j * kH + h) * C::kVAtomBytes + q * 2048) / 16,
                                            c_rows > 0 || q > 0);
          if (kZfSets == 1 && j + 1 < nj_valid) {  // one fragment set: the next tile rewrites it
            wgmma::commit();
            wgmma::wait<0>();
          }
        }
        wgmma::commit();
        if (++c_rows < n_rows) c_left = k_extent(row_of(c_rows));
        c_kc = 0;
      } else {
        c_left -= 64, ++c_kc;
      }
      b = b + 1 == ST ? 0 : b + 1;
    }
    wgmma::wait<0>();
    cp_async_wait<0>();
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
            const int row = 64 * wg + 16 * warp_in_wg + g + 8 * e2;
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
cudaError_t launch_wgmma_cfg(const Args& a, cudaStream_t stream, bool pdl) {
  const dim3 grid(unsigned((a.used_cols + C::kNJ - 1) / C::kNJ), unsigned((a.M + C::kBM - 1) / C::kBM),
                  unsigned(a.splits));
  return launch_kernel<tsvd_wgmma_kernel<T, C>>(grid, dim3(C::kThreads), C::kSmemBytes, pdl, stream, a);
}

// Picks the configuration by tile width and padded rank (wgmma_path_ok checked both).
template <typename T>
cudaError_t launch_wgmma(const Args& a, cudaStream_t stream, bool pdl) {
  const int rp = a.r <= 16 ? 16 : a.r <= 32 ? 32 : 64;
  if (a.tn == 128) {
    if (rp == 16) return launch_wgmma_cfg<T, WgmmaCfg<128, 16>>(a, stream, pdl);
    if (rp == 32) return launch_wgmma_cfg<T, WgmmaCfg<128, 32>>(a, stream, pdl);
    return launch_wgmma_cfg<T, WgmmaCfg<128, 64>>(a, stream, pdl);
  }
  if (rp == 16) return launch_wgmma_cfg<T, WgmmaCfg<256, 16>>(a, stream, pdl);
  if (rp == 32) return launch_wgmma_cfg<T, WgmmaCfg<256, 32>>(a, stream, pdl);
  return launch_wgmma_cfg<T, WgmmaCfg<256, 64>>(a, stream, pdl);
}

}  // namespace ortops::cuda::tsvd
