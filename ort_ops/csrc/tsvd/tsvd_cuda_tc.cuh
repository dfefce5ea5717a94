// Private: the fused tensor-core kernel of TSVDMatMul for 16-bit types, included once per dtype
// (tsvd_cuda_fp16.cu, tsvd_cuda_bf16.cu). mma.sync / ldmatrix / cp.async are sm_80 instructions,
// so the same code serves the sm_80 and sm_90a builds and the compute_90 PTX.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "tsvd/tsvd_cuda_traits.h"

namespace ortops::cuda::tsvd {

// ---- PTX wrappers ---------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte async copy; src_bytes = 0 zero-fills the destination (padding, tails).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// Programmatic dependent launch (sm_90, plain PTX 7.8, so also in the compute_90 PTX; a no-op
// for the sm_80 build and whenever the launch did not ask for it). wait: every global access of
// this grid comes after the previous kernel in the stream has finished and flushed (A, U, V may
// be its outputs); launch_dependents: the next kernel may start its prologue during our epilogue.
__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void griddep_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Every launch of the TSVD kernels: dynamic shared memory above 48 KB is opted into once per
// kernel, device and size (not on every call), PDL on request (sm_90), launch errors checked.
template <auto kKernel>
cudaError_t allow_dynamic_smem(size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  static std::atomic<size_t> allowed[64];  // per device ordinal: the largest size opted into
  static std::mutex mu;
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  if (dev >= 64) return cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  if (allowed[dev].load(std::memory_order_acquire) >= bytes) return cudaSuccess;
  std::lock_guard<std::mutex> lock(mu);  // never lower the attribute under a concurrent larger launch
  if (allowed[dev].load(std::memory_order_relaxed) >= bytes) return cudaSuccess;
  err = cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  if (err == cudaSuccess) allowed[dev].store(bytes, std::memory_order_release);
  return err;
}

template <auto kKernel, typename... Params>
cudaError_t launch_kernel(dim3 grid, dim3 block, size_t smem, bool pdl, cudaStream_t stream, Params... params) {
  cudaError_t err = allow_dynamic_smem<kKernel>(smem);
  if (err != cudaSuccess) return err;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  err = cudaLaunchKernelEx(&cfg, kKernel, params...);
  return err != cudaSuccess ? err : cudaGetLastError();
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}

template <typename T> struct Mma;
template <> struct Mma<__half> {
  __device__ __forceinline__ static void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  __device__ __forceinline__ static __half from_float(float x) { return __float2half_rn(x); }
  __device__ __forceinline__ static float to_float(__half x) { return __half2float(x); }
};
template <> struct Mma<__nv_bfloat16> {
  __device__ __forceinline__ static void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  __device__ __forceinline__ static __nv_bfloat16 from_float(float x) { return __float2bfloat16_rn(x); }
  __device__ __forceinline__ static float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
};

// Stores output columns n, n+1 of one row (the C fragment's pair) rounded once: one 4-byte store
// when both exist and the address allows, else each column that exists.
template <typename T>
__device__ __forceinline__ void store_pair(T* y, float v0, float v1, bool ok0, bool ok1) {
  if (ok1 && (reinterpret_cast<uintptr_t>(y) & 3) == 0) {
    *reinterpret_cast<uint32_t*>(y) = Mma<T>::pack(v0, v1);
  } else {
    if (ok0) y[0] = Mma<T>::from_float(v0);
    if (ok1) y[1] = Mma<T>::from_float(v1);
  }
}

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
      cp_async16(s + row * LDS + col, ok ? g + row * ldg + col : g, ok ? 16 : 0);
    }
  } else {
    for (int e = tid; e < ROWS * COLS; e += NT) {
      const int row = e / COLS, col = e % COLS;
      s[row * LDS + col] = (row < valid_rows && col < valid_cols) ? g[row * ldg + col] : T(0.f);
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
#pragma unroll
  for (int f = 0; f < MF; ++f)
#pragma unroll
    for (int n = 0; n < NT8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[f][n][e] = 0.f;
#pragma unroll
  for (int f = 0; f < MF; ++f)
#pragma unroll
    for (int n = 0; n < RT8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) tacc[f][n][e] = 0.f;

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
    const T* bA = sA + (s % ST) * S::kA;
    const T* bU = sU + (s % ST) * S::kU;
#pragma unroll
    for (int ks = 0; ks < KC / 16; ++ks) {
      uint32_t af[MF][4];
#pragma unroll
      for (int f = 0; f < MF; ++f) ldsm_x4(af[f], bA + (warp_row0 + f * 16 + lrow) * S::kLDA + ks * 16 + lcol);
#pragma unroll
      for (int np = 0; np < RT8 / 2; ++np) {
        uint32_t b[4];
        ldsm_x4_t(b, bU + (ks * 16 + lrow) * S::kLDU + np * 16 + lcol);
#pragma unroll
        for (int f = 0; f < MF; ++f) {
          Op::run(tacc[f][2 * np], af[f], b[0], b[1]);
          Op::run(tacc[f][2 * np + 1], af[f], b[2], b[3]);
        }
      }
    }

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
#pragma unroll
      for (int f = 0; f < MF; ++f)
#pragma unroll
        for (int n = 0; n < RT8; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) tacc[f][n][e] = 0.f;
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
          float* p = P + m * a.N + n;
          if (ok1 && (reinterpret_cast<uintptr_t>(p) & 7) == 0) {
            *reinterpret_cast<float2*>(p) = make_float2(y0, y1);
          } else {
            if (ok0) p[0] = y0;
            if (ok1) p[1] = y1;
          }
        } else {
          if (bias) {
            if (ok0) y0 += Op::to_float(bias[n]);
            if (ok1) y1 += Op::to_float(bias[n + 1]);
          }
          store_pair(Y + m * a.N + n, y0, y1, ok0, ok1);
        }
      }
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
