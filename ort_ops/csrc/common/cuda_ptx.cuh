// The device-side vocabulary both CUDA ops share: PTX wrappers for async copies, ldmatrix, the
// 16-bit tensor-core mma (m16n8k16, fp32 accumulate), programmatic dependent launch, and one
// launch helper. mma.sync / ldmatrix / cp.async are sm_80 instructions, so the sm_80, sm_90a and
// compute_90 builds share every kernel; griddepcontrol is compiled for sm_90+ only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <type_traits>

namespace ortops::cuda::ptx {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; !valid zero-fills the destination (padding, tails) and
// reads nothing (src may then be any mapped address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 16 : 0));
}
// The same with the destination as a shared-memory address (smem_u32), for loops that keep
// their shared offsets in registers.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// Four 8x8 16-bit matrices from shared memory (row addresses from lanes 0-31), plain or transposed.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_u32(p)));
}

// The same with the address as a shared-memory address (smem_u32): for buffers whose layout is
// computed in bytes (TMA's swizzled boxes).
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

// 2^x by the special-function unit alone (ex2.approx.ftz: relative error ~2^-22, results below
// 2^-126 flushed to 0, 2^-inf = 0). exp2f adds a range check and two multiplies per call to
// handle denormal results, which a softmax does not need: ~13% of the attention band's
// instructions (Nsight Compute, H200, 2026-12-03).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// 1 / x, approximate (rcp.approx.ftz: one MUFU op, ~1 ulp; a softmax's 1 / row sum, whose
// result is rounded to 16 bits anyway).
__device__ __forceinline__ float rcp_approx(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Programmatic dependent launch (sm_90; plain PTX 7.8, so also in the compute_90 PTX; a no-op
// for the sm_80 build and whenever the launch did not ask for it). wait: this grid's global
// accesses after it see everything the previous kernel in the stream wrote; launch_dependents:
// the next kernel may start its prologue now.
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

// Tensor-core mma.sync m16n8k16 for T = __half or __nv_bfloat16 (fp32 accumulators), and the
// conversions between T and the fp32 fragments.
template <typename T>
struct Mma {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "16-bit float types only");
  static constexpr bool kHalf = std::is_same_v<T, __half>;
  __device__ __forceinline__ static void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if constexpr (kHalf) {
      asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                   "{%0,%1,%2,%3};\n"
                   : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
      asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                   "{%0,%1,%2,%3};\n"
                   : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
  }
  // Two floats -> one 32-bit register of two T values (lo in the low half).
  __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
    if constexpr (kHalf) {
      __half2 h = __floats2half2_rn(lo, hi);
      return *reinterpret_cast<uint32_t*>(&h);
    } else {
      __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
      return *reinterpret_cast<uint32_t*>(&h);
    }
  }
  __device__ __forceinline__ static T from_float(float x) {
    if constexpr (kHalf) return __float2half_rn(x);
    else return __float2bfloat16_rn(x);
  }
  __device__ __forceinline__ static float to_float(T x) {
    if constexpr (kHalf) return __half2float(x);
    else return __bfloat162float(x);
  }
};

// Zeroes a warp's fp32 mma accumulators (fragments [rows][n8 tiles][4]).
template <int MF, int N8>
__device__ __forceinline__ void zero_acc(float (&acc)[MF][N8][4]) {
#pragma unroll
  for (int f = 0; f < MF; ++f)
#pragma unroll
    for (int n = 0; n < N8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[f][n][e] = 0.f;
}

// Stores output columns n, n+1 of one row (an mma C-fragment pair), rounded once: one 4-byte
// store when both exist and the address allows it, else each column that exists.
template <typename T>
__device__ __forceinline__ void store_pair(T* y, float v0, float v1, bool ok0, bool ok1) {
  if (ok1 && (reinterpret_cast<uintptr_t>(y) & 3) == 0) {
    *reinterpret_cast<uint32_t*>(y) = Mma<T>::pack(v0, v1);
  } else {
    if (ok0) y[0] = Mma<T>::from_float(v0);
    if (ok1) y[1] = Mma<T>::from_float(v1);
  }
}

// Dynamic shared memory is opted into once per kernel, device and size (not on every call;
// cudaFuncSetAttribute is not a stream operation, so this is also capture-safe). Any non-zero size
// is opted into, not only sizes above 48 KB: the 48 KB default bounds static + dynamic together, so
// 46 KB dynamic next to a kernel's 2.5 KB of static shared memory fails to launch without it.
template <auto kKernel>
cudaError_t allow_dynamic_smem(size_t bytes) {
  if (bytes == 0) return cudaSuccess;
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

// One launch of kKernel on `stream`, as a programmatic dependent of the previous kernel when
// `pdl` (sm_90+); launch errors returned, never left pending.
template <auto kKernel, typename... Params>
cudaError_t launch_kernel(dim3 grid, dim3 block, size_t smem, bool pdl, cudaStream_t stream, Params... params) {
  cudaError_t err = allow_dynamic_smem<kKernel>(smem);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return err;
  }
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
  if (err != cudaSuccess) {
    cudaGetLastError();  // returned here: not left as the thread's last error for a later call to find
    return err;
  }
  return cudaGetLastError();
}

}  // namespace ortops::cuda::ptx
