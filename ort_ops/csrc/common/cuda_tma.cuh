// Hopper (sm_90) asynchronous-copy vocabulary: tensor-memory-accelerator (TMA) tile loads into
// shared memory, the mbarriers that count their bytes, thread-block-cluster barriers and reads of
// a peer CTA's shared memory, and the address function of TMA's shared-memory swizzles. These
// are sm_90 features (not sm_90a): compiled for __CUDA_ARCH__ >= 900, a trap below (callers check
// the device and the loaded binary first, tsvd_cuda.cu). Tensor maps are encoded on the host
// (common/tensor_map.h).
#pragma once
#include <cuda.h>  // CUtensorMap (a 128-byte opaque type; no driver library is linked)
#include <cuda_runtime.h>

#include <cstdint>

namespace ortops::cuda::tma {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr bool kHasTma = true;
#define ORTOPS_TMA_ASM(...) asm volatile(__VA_ARGS__)
#else
constexpr bool kHasTma = false;
#define ORTOPS_TMA_ASM(...) __trap()
#endif

// ---- mbarriers (one 8-byte word in shared memory, addressed by its 32-bit shared address) ----
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
  ORTOPS_TMA_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
// Makes the initialised barriers visible to the async proxy (the TMA unit) and to the cluster.
__device__ __forceinline__ void fence_mbar_init() {
  ORTOPS_TMA_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// Orders this thread's generic-proxy shared-memory writes before later async-proxy (TMA)
// accesses of the same bytes.
__device__ __forceinline__ void fence_proxy_async_smem() {
  ORTOPS_TMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// One arrival that also announces `bytes` of TMA traffic the current phase must see land.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  ORTOPS_TMA_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  ORTOPS_TMA_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Waits until the phase of parity `parity` has completed (phases alternate 0, 1, 0, ...). The
// retry loop lives inside one asm block, so the compiler sees no data-dependent branch: a warp
// leaves it converged (what .aligned instructions after it, such as wgmma, require).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  ORTOPS_TMA_ASM(
      "{\n .reg .pred p;\n"
      "ORTOPS_MBAR_WAIT:\n"
      " mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      " @!p bra ORTOPS_MBAR_WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// ---- TMA tile loads: box at element coordinates (c0 innermost, ...) -> shared `dst`, completion
// counted on `bar` in bytes (the full box, zero-filled out of bounds, is always counted) ----
__device__ __forceinline__ void load_1d(uint32_t dst, const CUtensorMap* map, int c0, uint32_t bar) {
  ORTOPS_TMA_ASM(
      "cp.async.bulk.tensor.1d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2}], [%3];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  ORTOPS_TMA_ASM(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void load_3d(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, uint32_t bar) {
  ORTOPS_TMA_ASM(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}

__device__ __forceinline__ void load_4d(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                        uint32_t bar) {
  ORTOPS_TMA_ASM(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}

// ---- TMA tile stores: shared `src` (the box's layout, swizzled as the map says) -> the box at
// element coordinates (c0 innermost, ...); out-of-bounds elements are not written. Tracked per
// issuing thread in bulk async-groups: commit, then wait before the source is rewritten / exit. ----
__device__ __forceinline__ void store_2d(const CUtensorMap* map, int c0, int c1, uint32_t src) {
  ORTOPS_TMA_ASM("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(
                     reinterpret_cast<uint64_t>(map)),
                 "r"(c0), "r"(c1), "r"(src)
                 : "memory");
}
__device__ __forceinline__ void store_4d(const CUtensorMap* map, int c0, int c1, int c2, int c3, uint32_t src) {
  ORTOPS_TMA_ASM("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4}], [%5];\n" ::"l"(
                     reinterpret_cast<uint64_t>(map)),
                 "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(src)
                 : "memory");
}
__device__ __forceinline__ void bulk_commit() { ORTOPS_TMA_ASM("cp.async.bulk.commit_group;\n" ::: "memory"); }
// This thread's committed stores have read their shared-memory source (it may be rewritten).
__device__ __forceinline__ void bulk_wait_read() {
  ORTOPS_TMA_ASM("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
// This thread's committed stores are complete (their global writes done).
__device__ __forceinline__ void bulk_wait() { ORTOPS_TMA_ASM("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// A named barrier for `threads` threads (a multiple of 32) of the CTA, id 1..15 (0 is __syncthreads).
__device__ __forceinline__ void named_barrier(int id, int threads) {
  ORTOPS_TMA_ASM("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Brings a tensor map (a __grid_constant__ kernel parameter) into the TMA unit's descriptor cache
// ahead of its first use.
__device__ __forceinline__ void prefetch_map(const CUtensorMap* map) {
  ORTOPS_TMA_ASM("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// ---- thread-block clusters ----
// Every thread of every CTA of the cluster arrives (release: its shared-memory writes become
// visible to the peers) and waits (acquire).
__device__ __forceinline__ void cluster_sync() {
  ORTOPS_TMA_ASM("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// The shared::cluster address of `addr` (this CTA's shared address) in CTA `rank` of the cluster.
__device__ __forceinline__ uint32_t map_to_rank(uint32_t addr, uint32_t rank) {
  uint32_t out = 0;
  ORTOPS_TMA_ASM("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(out) : "r"(addr), "r"(rank));
  return out;
}
__device__ __forceinline__ float4 ld_cluster_f4(uint32_t addr) {
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  // No memory clobber, so several of these can be in flight at once; cluster_sync (which has one)
  // orders them after the peers' writes.
  ORTOPS_TMA_ASM("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "r"(addr));
  return v;
}

// Byte offset, inside a buffer aligned to the pattern's repeat (256 / 512 / 1024 bytes), where TMA
// puts logical byte offset `off` of a box whose rows are kSpan = 32 / 64 / 128 bytes: the 16-byte
// chunk bits [4, 4 + B) are XORed with the row bits [7, 7 + B), B = log2(kSpan / 16) (CUTLASS's
// Swizzle<B, 4, 3>). ldmatrix reads of 8 consecutive rows then hit 8 distinct 16-byte bank groups.
template <int kSpan>
__host__ __device__ __forceinline__ constexpr uint32_t swizzle(uint32_t off) {
  static_assert(kSpan == 32 || kSpan == 64 || kSpan == 128, "TMA swizzle spans");
  constexpr uint32_t kMask = kSpan / 16 - 1;
  return off ^ (((off >> 7) & kMask) << 4);
}

}  // namespace ortops::cuda::tma
