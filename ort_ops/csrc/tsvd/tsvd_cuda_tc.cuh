// Private: the fused tensor-core kernel of TSVDMatMul for 16-bit types, included once per dtype
// (tsvd_cuda_fp16.cu, tsvd_cuda_bf16.cu), and the block loader the two-stage kernels share.
#pragma once
#include <cstdint>
#include <type_traits>

#include "common/cuda_ptx.cuh"
#include "tsvd/tsvd_cuda_traits.h"

namespace ortops::cuda::tsvd {

// The shared PTX vocabulary (common/cuda_ptx.cuh), by its short names.
using ptx::cp_async16;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::griddep_launch_dependents;
using ptx::griddep_wait;
using ptx::launch_kernel;
using ptx::ldsm_x4;
using ptx::ldsm_x4_t;
using ptx::Mma;
using ptx::store_pair;
using ptx::zero_acc;

// Copies a ROWS x COLS block of a row-major global matrix (leading dim ldg) into shared memory
// (leading dim LDS); elements outside [valid_rows, valid_cols) become 0 (A's zero padding, the
// unused rows/columns of partial tiles and of the rank padding). vec: 16-byte cp.async (valid_cols,
// ldg and the base are multiples of 8 elements, checked on the host); else element by element.
template <typename T, int ROWS, int COLS, int LDS, int NT>
__device__ __forceinline__ void load_block(T* s, const T* g, int64_t ldg, int valid_rows, int valid_cols, bool vec,
                                           int tid) {
  if (vec) {
    constexpr int kVecPerRow = COLS / 8;
#pragma unroll 4
    for (int v = tid; v < ROWS * kVecPerRow; v += NT) {
      const int row = v / kVecPerRow, col = (v % kVecPerRow) * 8;
      const bool ok = row < valid_rows && col < valid_cols;
      cp_async16(s + row * LDS + col, ok ? g + row * ldg + col : g, ok);
    }
  } else {
    for (int e = tid; e < ROWS * COLS; e += NT) {
      const int row = e / COLS, col = e % COLS;
      s[row * LDS + col] = (row < valid_rows && col < valid_cols) ? g[row * ldg + col] : T(0.f);
    }
  }
}

// Columns n, n + 1 of an fp32 split partial (kept in L2: the finalize kernel reads them next);
// one 8-byte store where both are valid and aligned.
__device__ __forceinline__ void store_partial_pair(float* p, float y0, float y1, bool ok0, bool ok1) {
  if (ok1 && (reinterpret_cast<uintptr_t>(p) & 7) == 0) {
    __stcg(reinterpret_cast<float2*>(p), make_float2(y0, y1));
  } else {
    if (ok0) __stcg(p, y0);
    if (ok1) __stcg(p + 1, y1);
  }
}

// One warp's acc[MF][N8] += A[16·MF rows, 16·KSTEPS] · B[16·KSTEPS, 8·N8 columns], both operands
// row-major in shared memory: `a` at the warp's first row, `b` at its first column (ldmatrix.x4
// for A, ldmatrix.x4.trans for B, each B fragment reused by the MF row fragments).
// lrow, lcol: this lane's ldmatrix.x4 row and column inside a 16x16 block.
template <typename T, int MF, int N8, int KSTEPS, int LDA, int LDB>
__device__ __forceinline__ void warp_mma(float (&acc)[MF][N8][4], const T* a, const T* b, int lrow, int lcol) {
  static_assert(N8 % 2 == 0, "B is loaded in pairs of n8 tiles");
#pragma unroll
  for (int ks = 0; ks < KSTEPS; ++ks) {
    uint32_t af[MF][4];
#pragma unroll
    for (int f = 0; f < MF; ++f) ldsm_x4(af[f], a + (f * 16 + lrow) * LDA + ks * 16 + lcol);
#pragma unroll
    for (int np = 0; np < N8 / 2; ++np) {
      uint32_t bf[4];
      ldsm_x4_t(bf, b + (ks * 16 + lrow) * LDB + np * 16 + lcol);
#pragma unroll
      for (int f = 0; f < MF; ++f) {
        Mma<T>::run(acc[f][2 * np], af[f], bf[0], bf[1]);
        Mma<T>::run(acc[f][2 * np + 1], af[f], bf[2], bf[3]);
      }
    }
  }
}

// Walks (rank chunk, tile row of the split, k chunk) in that order. Stage 2 (·V) runs after the
// last k chunk of each tile row, or, when V is shared, once per rank chunk after the last tile row
// (sum_i A_i U_ij first, then one product with V).
struct Cursor {
  int rc, i, kc;
  __device__ __forceinline__ void next(const Args& a, int i_begin, int i_end, int KC) {
    const int k_ext = min(a.tk, a.K - i * a.tk);
    if (++kc < (k_ext + KC - 1) / KC) return;
    kc = 0;
    if (++i < i_end) return;
    i = i_begin;
    ++rc;
  }
  __device__ __forceinline__ bool last_k(const Args& a, int KC) const {
    const int k_ext = min(a.tk, a.K - i * a.tk);
    return kc + 1 == (k_ext + KC - 1) / KC;
  }
};

// The split sums of one output block, in the launch that made them. Scalars, not Args: this is a
// separate (noinline) function so its registers do not raise the main loop's, and a reference to
// the kernel's parameter block would copy it to local memory.
struct SplitSum {
  const float* partial;  // [splits, M, N]
  unsigned int* counters;
  const void* bias;
  void* Y;
  int64_t M;
  int N, splits;
};

// Y[rows x cols from (m0, n0)] = bias + the splits' fp32 partials, by one CTA, in a fixed order
// (deterministic whichever CTA runs it). W = 4: float4 loads (N and n0 multiples of 4, partials
// 16-byte aligned). The sum is bound by L2 latency, so loads are kept in flight: each thread takes
// kItems groups with the split loop unrolled. (Splitting a group's splits over several threads and
// adding their sums through shared memory was measured no faster on the H200, and its static buffer
// pushed one configuration past the 48 KB launch limit, so it was removed.)
template <typename T, int NT, int W>
__device__ __forceinline__ void sum_split_block(const SplitSum& a, int64_t m0, int rows, int64_t n0, int cols) {
  using Vec = std::conditional_t<W == 4, float4, float>;
  constexpr int kItems = 4;
  const T* bias = static_cast<const T*>(a.bias);
  T* Y = static_cast<T*>(a.Y);
  const int64_t split_stride = a.M * a.N;
  const int groups = (cols + W - 1) / W, items = rows * groups;  // with W = 4, cols % 4 == 0
  auto offset = [&](int item, int* col) {
    const int row = item / groups;
    *col = (item - row * groups) * W;
    return (m0 + row) * a.N + n0 + *col;
  };
  for (int base = threadIdx.x; base < items; base += NT * kItems) {
    float acc[kItems][W];
    int64_t e[kItems];
#pragma unroll
    for (int u = 0; u < kItems; ++u) {
      int col = 0;
      e[u] = offset(min(base + u * NT, items - 1), &col);  // past the end: a duplicate, not stored
#pragma unroll
      for (int w = 0; w < W; ++w) acc[u][w] = bias ? Mma<T>::to_float(bias[n0 + col + w]) : 0.f;
    }
#pragma unroll 4
    for (int q = 0; q < a.splits; ++q) {
      Vec v[kItems];
#pragma unroll
      for (int u = 0; u < kItems; ++u) v[u] = __ldcg(reinterpret_cast<const Vec*>(a.partial + q * split_stride + e[u]));
#pragma unroll
      for (int u = 0; u < kItems; ++u) {
        const float* f = reinterpret_cast<const float*>(&v[u]);
#pragma unroll
        for (int w = 0; w < W; ++w) acc[u][w] += f[w];
      }
    }
#pragma unroll
    for (int u = 0; u < kItems; ++u) {
      if (base + u * NT >= items) break;
#pragma unroll
      for (int w = 0; w < W; ++w) Y[e[u] + w] = Mma<T>::from_float(acc[u][w]);
    }
  }
}

// Every CTA of the output block has stored its fp32 partial; the last to arrive (per-stream
// counter, common/stream_counters.h) adds them up and writes Y, whichever CTA it is.
template <typename T, int NT>
__device__ __noinline__ void sum_splits_if_last(const SplitSum a, int64_t m0, int rows, int64_t n0, int cols) {
  __shared__ bool is_last;
  __threadfence();  // this thread's partials are visible device-wide before the CTA counts itself in
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned int* count = a.counters + blockIdx.y * gridDim.x + blockIdx.x;
    is_last = atomicAdd(count, 1u) == unsigned(a.splits - 1);
    if (is_last) atomicExch(count, 0u);  // all splits are in: zero again for the next launch
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  const bool vec4 = a.N % 4 == 0 && n0 % 4 == 0 && cols % 4 == 0 && (reinterpret_cast<uintptr_t>(a.partial) & 15) == 0;
  if (vec4) sum_split_block<T, NT, 4>(a, m0, rows, n0, cols);
  else sum_split_block<T, NT, 1>(a, m0, rows, n0, cols);
}

template <typename T, class Cfg, int RC>
__global__ void __launch_bounds__(Cfg::kThreads) tsvd_tc_kernel(const Args a) {
  using S = TcSmem<Cfg, RC>;
  using Op = Mma<T>;
  constexpr int BM = Cfg::kBM, NB = Cfg::kNB, KC = Cfg::kKC, MF = Cfg::kMF, NT = Cfg::kThreads, ST = S::kStages;
  constexpr int NT8 = Cfg::kNT8, RT8 = RC / 8;  // n8 tiles: stage 2 per warp, stage 1 (T columns)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sA = reinterpret_cast<T*>(smem_raw);  // [ST][BM][LDA]
  T* sU = sA + ST * S::kA;                 // [ST][KC][LDU]
  T* sV = sU + ST * S::kU;                 // [ST][RC][LDV]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp % Cfg::kWarpsM, wn = warp / Cfg::kWarpsM;
  const int j = blockIdx.x / a.chunks_per_tile;
  const int n_in_tile0 = (blockIdx.x % a.chunks_per_tile) * NB;  // first column of the block inside tile j
  const int64_t m0 = int64_t(blockIdx.y) * BM;
  const int i_begin = blockIdx.z * a.rows_per_split;
  const int i_end = min(a.used_rows, i_begin + a.rows_per_split);
  const int rows_valid = int(a.M - m0 < BM ? a.M - m0 : BM);
  const int v_cols = min(NB, a.tn - n_in_tile0);
  const T* gA = static_cast<const T*>(a.A) + m0 * a.K;
  const T* gU = static_cast<const T*>(a.U);
  const T* gV = static_cast<const T*>(a.V);

  int total = 0;  // steps of this CTA
  for (int i = i_begin; i < i_end; ++i) total += (min(a.tk, a.K - i * a.tk) + KC - 1) / KC;
  total *= a.n_rc;

  auto factor_tile = [&](int i) { return a.shared_u ? int64_t(0) : (int64_t(i) * a.Tn + j); };
  auto vfactor_tile = [&](int i) { return a.shared_v ? int64_t(0) : (int64_t(i) * a.Tn + j); };
  auto issue = [&](const Cursor& c, int buf, int vbuf) {
    const int k_ext = min(a.tk, a.K - c.i * a.tk), k0 = c.kc * KC;
    const int kvalid = min(KC, k_ext - k0), rvalid = min(RC, a.r - c.rc * RC);
    load_block<T, BM, KC, S::kLDA, NT>(sA + buf * S::kA, gA + int64_t(c.i) * a.tk + k0, a.K, rows_valid, kvalid,
                                       a.vec_a, tid);
    load_block<T, KC, RC, S::kLDU, NT>(sU + buf * S::kU,
                                       gU + factor_tile(c.i) * a.tk * a.r + int64_t(k0) * a.r + c.rc * RC, a.r,
                                       kvalid, rvalid, a.vec_u, tid);
    if (vbuf >= 0)
      load_block<T, RC, NB, S::kLDV, NT>(sV + vbuf * S::kV,
                                         gV + vfactor_tile(c.i) * a.r * a.tn + int64_t(c.rc) * RC * a.tn + n_in_tile0,
                                         a.tn, rvalid, v_cols, a.vec_v, tid);
  };
  auto starts_vgroup = [&](const Cursor& c) { return c.kc == 0 && (!a.shared_v || c.i == i_begin); };
  auto ends_vgroup = [&](const Cursor& c) { return c.last_k(a, KC) && (!a.shared_v || c.i == i_end - 1); };

  float acc[MF][NT8][4];  // Y block of this warp, fp32
  float tacc[MF][RT8][4];  // T = A_i · U_ij (rows of this warp, RC columns), fp32
  zero_acc(acc);
  zero_acc(tacc);

  // Ring of ST buffers: steps s .. s+ST-2 are in flight while step s is computed. A V group
  // (one tile row, or one rank chunk when V is shared) spans >= 1 step, so V's ring of ST
  // buffers is refilled only after the stage 2 that read it (and the barrier after it).
  griddep_wait();
  Cursor ld{0, i_begin, 0}, cp{0, i_begin, 0};
  int v_loads = 0, v_uses = 0;
#pragma unroll
  for (int p = 0; p < ST - 1; ++p) {
    if (p < total) {
      if (p > 0) ld.next(a, i_begin, i_end, KC);
      issue(ld, p, starts_vgroup(ld) ? (v_loads++ % ST) : -1);
    }
    cp_async_commit();
  }

  // ldmatrix lane addressing: x4 over a 16x16 block = rows (lane % 16), column half (lane / 16).
  const int lrow = (lane & 7) + ((lane >> 3) & 1) * 8, lcol = (lane >> 4) * 8;
  const int warp_row0 = wm * 16 * MF, warp_col0 = wn * Cfg::kWNC;

  for (int s = 0; s < total; ++s) {
    if (s + ST - 1 < total) {
      ld.next(a, i_begin, i_end, KC);
      issue(ld, (s + ST - 1) % ST, starts_vgroup(ld) ? (v_loads++ % ST) : -1);
    }
    cp_async_commit();
    cp_async_wait<ST - 1>();  // step s has landed
    __syncthreads();

    // Stage 1: tacc += A[rows, k chunk] · U[k chunk, rank chunk].
    warp_mma<T, MF, RT8, KC / 16, S::kLDA, S::kLDU>(tacc, sA + (s % ST) * S::kA + warp_row0 * S::kLDA,
                                                   sU + (s % ST) * S::kU, lrow, lcol);

    // Stage 2: acc += T (rounded to T's dtype, as the A operand straight from registers) · V.
    if (ends_vgroup(cp)) {
      const T* bV = sV + (v_uses++ % ST) * S::kV;
#pragma unroll
      for (int q = 0; q < RC / 16; ++q) {
        uint32_t tf[MF][4];
#pragma unroll
        for (int f = 0; f < MF; ++f) {
          tf[f][0] = Op::pack(tacc[f][2 * q][0], tacc[f][2 * q][1]);
          tf[f][1] = Op::pack(tacc[f][2 * q][2], tacc[f][2 * q][3]);
          tf[f][2] = Op::pack(tacc[f][2 * q + 1][0], tacc[f][2 * q + 1][1]);
          tf[f][3] = Op::pack(tacc[f][2 * q + 1][2], tacc[f][2 * q + 1][3]);
        }
#pragma unroll
        for (int np = 0; np < NT8 / 2; ++np) {
          uint32_t b[4];
          ldsm_x4_t(b, bV + (q * 16 + lrow) * S::kLDV + warp_col0 + np * 16 + lcol);
#pragma unroll
          for (int f = 0; f < MF; ++f) {
            Op::run(acc[f][2 * np], tf[f], b[0], b[1]);
            Op::run(acc[f][2 * np + 1], tf[f], b[2], b[3]);
          }
        }
      }
      zero_acc(tacc);
    }
    cp.next(a, i_begin, i_end, KC);
    __syncthreads();  // buffer s % ST is refilled by the next iteration's prefetch
  }
  griddep_launch_dependents();

  // Epilogue: C fragment (row g / g+8, columns 2t, 2t+1 of each n8 tile).
  const int g = lane >> 2, t2 = (lane & 3) * 2;
  const T* bias = static_cast<const T*>(a.bias);
  T* Y = static_cast<T*>(a.Y);
  float* P = a.partial ? a.partial + int64_t(blockIdx.z) * a.M * a.N : nullptr;
#pragma unroll
  for (int f = 0; f < MF; ++f)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = m0 + warp_row0 + f * 16 + g + h * 8;
      if (m >= a.M) continue;
#pragma unroll
      for (int n8 = 0; n8 < NT8; ++n8) {
        const int cl = warp_col0 + n8 * 8 + t2;  // column inside the block
        const int64_t n = int64_t(j) * a.tn + n_in_tile0 + cl;
        const bool ok0 = cl < v_cols && n < a.N, ok1 = cl + 1 < v_cols && n + 1 < a.N;
        float y0 = acc[f][n8][2 * h], y1 = acc[f][n8][2 * h + 1];
        if (P) {
          store_partial_pair(P + m * a.N + n, y0, y1, ok0, ok1);
        } else {
          if (bias) {
            if (ok0) y0 += Op::to_float(bias[n]);
            if (ok1) y1 += Op::to_float(bias[n + 1]);
          }
          store_pair(Y + m * a.N + n, y0, y1, ok0, ok1);
        }
      }
    }
  if (P != nullptr && a.counters != nullptr) {
    const int64_t n0 = int64_t(j) * a.tn + n_in_tile0;
    sum_splits_if_last<T, NT>(SplitSum{a.partial, a.counters, a.bias, a.Y, a.M, a.N, a.splits}, m0, rows_valid, n0,
                              int(min(int64_t(v_cols), a.N - n0)));
  }
}

template <typename T, class Cfg, int RC>
cudaError_t launch_tc_cfg(const Plan& plan, const Args& a, cudaStream_t stream) {
  return launch_kernel<tsvd_tc_kernel<T, Cfg, RC>>(
      dim3(unsigned(plan.col_chunks), unsigned(plan.row_blocks), unsigned(plan.splits)), dim3(Cfg::kThreads),
      TcSmem<Cfg, RC>::kBytes, plan.pdl, stream, a);
}

template <typename T, class Cfg>
cudaError_t launch_tc_rc(const Plan& plan, const Args& a, cudaStream_t stream) {
  switch (plan.rc) {
    case 16: return launch_tc_cfg<T, Cfg, 16>(plan, a, stream);
    case 32: return launch_tc_cfg<T, Cfg, 32>(plan, a, stream);
    default: return launch_tc_cfg<T, Cfg, 64>(plan, a, stream);
  }
}

template <typename T>
cudaError_t launch_tc(const Plan& plan, const Args& a, cudaStream_t stream) {
  switch (plan.path) {
    case Path::kSmall: return launch_tc_rc<T, SmallCfg>(plan, a, stream);
    case Path::kMedium: return launch_tc_rc<T, MediumCfg>(plan, a, stream);
    case Path::kLarge: return launch_tc_rc<T, LargeCfg>(plan, a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace ortops::cuda::tsvd
