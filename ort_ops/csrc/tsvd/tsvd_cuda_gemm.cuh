// Private: the two-kernel (unfused) tensor-core path of TSVDMatMul for large M, 16-bit types,
// included once per dtype (tsvd_cuda_fp16.cu, tsvd_cuda_bf16.cu) after tsvd_cuda_tc.cuh, whose
// PTX wrappers, Mma<T> and load_block it reuses. See docs/tsvd_cuda.md ("Large M: two stages").
//
//   stage 1: T[m, j, z, q] = sum_k A[m, kbeg(z) + k] · U[i(k), j, kk(k), q]
//            one GEMM per group z over the columns (j, q) of [U_z0 | U_z1 | ...]: each A_i is read
//            once per 128 of those columns (not once per 128 output columns). z = tile row i, or a
//            single group over all of K when V is shared (sum_i A_i U_ij first); j runs over one
//            column when U is shared (A_i · U computed once per tile row).
//   stage 2: Y[m, j-tile] = sum_(z, q) T[m, j, z, q] · V[z, j, q, :] (+ bias)
//            one GEMM per tile column j with depth nI·r (tile rows and rank flattened: odd ranks
//            cost no padding); T's j-slice is shared by all j when U is shared.
// T is stored in the input type (the fused kernel also rounds T before ·V); accumulation is fp32.
#pragma once
#include "tsvd/tsvd_cuda_tc.cuh"

namespace ortops::cuda::tsvd {

template <typename T, class C, int STAGE>
__global__ void __launch_bounds__(C::kThreads, 2) tsvd_gemm_kernel(const TwoStageArgs a) {
  using Op = Mma<T>;
  constexpr int BM = C::kBM, BN = C::kBN, KC = C::kKC, MF = C::kMF, NF = C::kNF8, NT = C::kThreads;
  constexpr int ST = C::kStages, LDA = C::kLDA, LDB = C::kLDB;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sA = reinterpret_cast<T*>(smem_raw);  // [ST][BM][LDA]
  T* sB = sA + ST * C::kA;                 // [ST][KC][LDB]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp % C::kWarpsM, wn = warp / C::kWarpsM;
  const int64_t m0 = int64_t(blockIdx.y) * BM;
  const int rows_valid = int(a.M - m0 < BM ? a.M - m0 : BM);
  const T* gU = static_cast<const T*>(a.U);
  const T* gV = static_cast<const T*>(a.V);
  T* gT = static_cast<T*>(a.Tbuf);

  // Operand geometry of this CTA.
  const T* gA;       // A operand: row-major, leading dim lda, klen valid columns
  int64_t lda;
  int klen, cols_valid;
  int z = 0, kbeg = 0, c0 = 0, j = 0, n0 = 0;
  if constexpr (STAGE == 1) {
    z = blockIdx.z;
    kbeg = a.shared_v ? 0 : z * a.tk;
    klen = a.shared_v ? a.K : min(a.tk, a.K - kbeg);
    c0 = blockIdx.x * BN;
    cols_valid = min(BN, a.nJ * a.r - c0);
    gA = static_cast<const T*>(a.A) + m0 * a.K + kbeg;
    lda = a.K;
  } else {
    j = blockIdx.x / a.chunks_per_tile;
    n0 = (blockIdx.x % a.chunks_per_tile) * BN;
    klen = a.D2;
    cols_valid = min(BN, a.tn - n0);
    gA = gT + m0 * a.ldT + (a.shared_u ? 0 : int64_t(j) * a.D2p);
    lda = a.ldT;
  }
  const bool vec_a = STAGE == 1 ? a.vec_a1 : a.vec_a2;
  const bool vec_b = STAGE == 1 ? a.vec_b1 : a.vec_b2;
  const int steps = (klen + KC - 1) / KC;

  // B operand element (k, col), k < klen, col < cols_valid, split into a row part and a column
  // part: the 16-byte loads of a thread keep one column for the whole k loop (NT is a multiple of
  // BN / 8), so the column part, with its division by r, is computed once per CTA; the row part
  // costs one FastDiv only where the row index mixes two factors (k over tile rows or ranks).
  auto b_col_off = [&](int col) -> int64_t {
    if constexpr (STAGE == 1) {
      const int c = c0 + col, jj = a.div_r.div(c), q = a.div_r.mod(c, jj);
      return (a.shared_u ? int64_t(0) : int64_t(jj) * a.tk * a.r) + q;
    } else {
      return (a.shared_v ? int64_t(0) : int64_t(j) * a.r * a.tn) + n0 + col;
    }
  };
  auto b_row_off = [&](int k) -> int64_t {
    if constexpr (STAGE == 1) {
      if (!a.shared_v) return (a.shared_u ? int64_t(0) : int64_t(z) * a.Tn * a.tk * a.r) + int64_t(k) * a.r;
      const int i = a.div_tk.div(k), kk = a.div_tk.mod(k, i);  // kbeg = 0: k runs over all of K
      return (a.shared_u ? int64_t(0) : int64_t(i) * a.Tn * a.tk * a.r) + int64_t(kk) * a.r;
    } else {
      const int i = a.div_r.div(k), q = a.div_r.mod(k, i);
      return (a.shared_v ? int64_t(0) : int64_t(i) * a.Tn * a.r * a.tn) + int64_t(q) * a.tn;
    }
  };
  const T* gB = STAGE == 1 ? gU : gV;
  constexpr int kVecPerRow = BN / 8, kVecRowStep = NT / kVecPerRow;
  static_assert(NT % kVecPerRow == 0 && KC % kVecRowStep == 0, "fixed column per thread in the B loads");
  const int bvec_col = (tid % kVecPerRow) * 8, bvec_row = tid / kVecPerRow;
  const bool bvec_col_ok = bvec_col < cols_valid;
  const T* gB_col = bvec_col_ok ? gB + b_col_off(bvec_col) : gB;
  auto issue = [&](int s, int buf) {
    const int k0 = s * KC;
    load_block<T, BM, KC, LDA, NT>(sA + buf * C::kA, gA + k0, lda, rows_valid, min(KC, klen - k0), vec_a, tid);
    T* sb = sB + buf * C::kB;
    if (vec_b) {
#pragma unroll
      for (int row = bvec_row; row < KC; row += kVecRowStep) {
        const bool ok = bvec_col_ok && k0 + row < klen;
        cp_async16(sb + row * LDB + bvec_col, ok ? gB_col + b_row_off(k0 + row) : gB, ok);
      }
    } else {
      for (int e = tid; e < KC * BN; e += NT) {
        const int row = e / BN, col = e % BN;
        sb[row * LDB + col] =
            (k0 + row < klen && col < cols_valid) ? gB[b_row_off(k0 + row) + b_col_off(col)] : T(0.f);
      }
    }
  };

  float acc[MF][NF][4];
  zero_acc(acc);

  griddep_wait();  // A, U, V (stage 1) or T (stage 2) may be written by the previous kernel
#pragma unroll
  for (int p = 0; p < ST - 1; ++p) {
    if (p < steps) issue(p, p);
    cp_async_commit();
  }
  const int lrow = (lane & 7) + ((lane >> 3) & 1) * 8, lcol = (lane >> 4) * 8;  // ldmatrix.x4 lane offsets
  const int warp_row0 = wm * 16 * MF, warp_col0 = wn * C::kWNC;
  for (int s = 0; s < steps; ++s) {
    if (s + ST - 1 < steps) issue(s + ST - 1, (s + ST - 1) % ST);
    cp_async_commit();
    cp_async_wait<ST - 1>();
    __syncthreads();
    warp_mma<T, MF, NF, KC / 16, LDA, LDB>(acc, sA + (s % ST) * C::kA + warp_row0 * LDA,
                                          sB + (s % ST) * C::kB + warp_col0, lrow, lcol);
    __syncthreads();  // buffer s % ST is refilled by the next iteration's prefetch
  }
  cp_async_wait<0>();
  griddep_launch_dependents();

  // Epilogue: C fragment rows g / g+8, columns 2t, 2t+1 of each n8 tile. Column loop outermost:
  // a column's destination (stage 1: its T offset, one division by r) is computed once.
  const int g = lane >> 2, t2 = (lane & 3) * 2;
  const T* bias = static_cast<const T*>(a.bias);
  T* Y = static_cast<T*>(a.Y);
#pragma unroll
  for (int n8 = 0; n8 < NF; ++n8) {
    const int cl = warp_col0 + n8 * 8 + t2;
    if constexpr (STAGE == 1) {
      if (cl >= cols_valid) continue;
      const int c = c0 + cl, jj = a.div_r.div(c), q = a.div_r.mod(c, jj);
      const int off0 = jj * a.D2p + z * a.r + q;  // < ldT, which the T cap keeps far below 2^31
      int off1 = -1;                              // column c + 1 (r odd: may start the next j)
      if (!a.pair_t && cl + 1 < cols_valid) off1 = q + 1 < a.r ? off0 + 1 : off0 - q + a.D2p;
#pragma unroll
      for (int f = 0; f < MF; ++f)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int64_t m = m0 + warp_row0 + f * 16 + g + h * 8;
          if (m >= a.M) continue;
          const float y0 = acc[f][n8][2 * h], y1 = acc[f][n8][2 * h + 1];
          T* row = gT + m * a.ldT;
          if (a.pair_t) {  // r even: columns c, c+1 share j and are adjacent in T (4-byte aligned)
            *reinterpret_cast<uint32_t*>(row + off0) = Op::pack(y0, y1);
          } else {
            row[off0] = Op::from_float(y0);
            if (off1 >= 0) row[off1] = Op::from_float(y1);
          }
        }
    } else {
      const int64_t n = int64_t(j) * a.tn + n0 + cl;
      const bool ok0 = cl < cols_valid && n < a.N, ok1 = cl + 1 < cols_valid && n + 1 < a.N;
      const float b0 = bias && ok0 ? Op::to_float(bias[n]) : 0.f, b1 = bias && ok1 ? Op::to_float(bias[n + 1]) : 0.f;
#pragma unroll
      for (int f = 0; f < MF; ++f)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int64_t m = m0 + warp_row0 + f * 16 + g + h * 8;
          if (m >= a.M) continue;
          const float v0 = acc[f][n8][2 * h] + b0, v1 = acc[f][n8][2 * h + 1] + b1;
          store_pair(Y + m * a.N + n, v0, v1, ok0, ok1);
        }
    }
  }
}

template <typename T, class C, int STAGE>
cudaError_t launch_gemm_stage(const TwoStageArgs& a, dim3 grid, bool pdl, cudaStream_t stream) {
  return launch_kernel<tsvd_gemm_kernel<T, C, STAGE>>(grid, dim3(C::kThreads), C::kBytes, pdl, stream, a);
}

// Both stages for rows [0, a.M) of the (already offset) A / Y. stage_mask != 3: benchmarks only.
template <typename T, class C>
cudaError_t launch_two_stage_cfg(const TwoStageArgs& a, bool pdl, int stage_mask, cudaStream_t stream) {
  static_assert(C::kBM == GemmCfg::kBM && C::kBN == GemmCfg::kBN, "the plan assumes 128 x 128 blocks");
  const unsigned row_blocks = unsigned((a.M + C::kBM - 1) / C::kBM);
  if (stage_mask & 1) {
    const dim3 g1(unsigned((a.nJ * a.r + C::kBN - 1) / C::kBN), row_blocks, unsigned(a.nI));
    cudaError_t err = launch_gemm_stage<T, C, 1>(a, g1, pdl, stream);
    if (err != cudaSuccess) return err;
  }
  if (stage_mask & 2) {
    const dim3 g2(unsigned(a.used_cols * a.chunks_per_tile), row_blocks, 1);
    return launch_gemm_stage<T, C, 2>(a, g2, pdl, stream);
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t launch_two_stage(const TwoStageArgs& a, int cfg, bool pdl, int stage_mask, cudaStream_t stream) {
  return cfg == 1 ? launch_two_stage_cfg<T, GemmCfgK64>(a, pdl, stage_mask, stream)
                  : launch_two_stage_cfg<T, GemmCfg>(a, pdl, stage_mask, stream);
}

}  // namespace ortops::cuda::tsvd
