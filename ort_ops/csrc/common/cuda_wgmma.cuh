// Hopper warpgroup MMA (wgmma, sm_90a only): shared-memory matrix descriptors for the 128-byte
// swizzled layout, the 16-bit products (m64n64k16 with A in registers; m64nNk16, N = 16/32/64,
// with both operands in shared memory), and the fences and group waits around them. Compiled only in the sm_90a pass (`kHasWgmma`); callers branch on it with
// `if constexpr`, so the sm_80 and compute_90 builds keep their mma.sync code.
//
// Register layouts are those of mma.sync m16n8k16, per warp of the warpgroup: warp w of the 4
// owns accumulator rows 16w..16w+15, its A fragment for one k16 step is the m16n8k16 A fragment,
// and accumulator element 4·j + e is n8 tile j's C element e. So code that works on mma.sync
// fragments works on these unchanged.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "common/cuda_ptx.cuh"

namespace ortops::cuda::wgmma {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr bool kHasWgmma = true;
#define ORTOPS_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
constexpr bool kHasWgmma = false;
#define ORTOPS_WGMMA_ASM(...) __trap()
#endif

// The 128-byte swizzle (CUTLASS's Swizzle<3,4,3>): a tile of rows of 64 16-bit elements (128
// bytes), its base 1024-byte aligned; the 16-byte chunk c of row r sits at chunk c ^ (r % 8).
// Element offset of (row r, 16-byte chunk c) in such a tile:
__host__ __device__ constexpr int sw128_offset(int r, int c) { return r * 64 + ((c ^ (r & 7)) << 3); }

// Descriptor of an operand tile whose rows are one swizzle span of kSpan = 32 / 64 / 128 bytes,
// 8-row groups kSpan * 8 bytes apart, base aligned to that group size: an MN-major operand whose
// N (kSpan / 2 elements) is one span, as TSVD's U with its rank-wide rows; at kSpan = 128 also
// the K-major tiles (sw128_desc below).
template <int kSpan>
__device__ __forceinline__ uint64_t mn_span_desc(uint32_t addr) {
  static_assert(kSpan == 32 || kSpan == 64 || kSpan == 128, "swizzle spans");
  constexpr uint64_t kLayout = kSpan == 128 ? 1 : kSpan == 64 ? 2 : 3;
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1) << 16) |
         (static_cast<uint64_t>(kSpan * 8 >> 4) << 32) | (kLayout << 62);
}

// The same for an MN-major operand whose N spans several such atoms (each [K rows][kSpan bytes]),
// `atom_bytes` apart: the leading byte offset is the stride between atoms along N (PTX ISA, matrix
// descriptor, MN-major canonical layouts). One wgmma then covers N = atoms * kSpan / 2 columns.
template <int kSpan>
__device__ __forceinline__ uint64_t mn_atoms_desc(uint32_t addr, uint32_t atom_bytes) {
  return (mn_span_desc<kSpan>(addr) & ~(uint64_t(0x3FFF) << 16)) | (uint64_t((atom_bytes >> 4) & 0x3FFF) << 16);
}

// Descriptor of a 128-byte-swizzled operand tile at smem byte address `addr` (1024-aligned for
// the tile, plus any k offset inside a row). Fields (PTX ISA, "matrix descriptor"): start
// address >> 4 (bits 0-13), leading byte offset >> 4 (16-29), stride byte offset >> 4 (32-45),
// swizzle mode (62-63, 1 = 128 B). Stride = 1024 bytes between 8-row groups: between groups of
// 8 rows along N for a K-major operand, between groups of 8 along K for an MN-major one. The
// leading offset is unused when one swizzle atom spans the operand's 64-element width.
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) { return mn_span_desc<128>(addr); }

// Register writes before a wgmma that reads or accumulates into them must be fenced.
__device__ __forceinline__ void fence() { ORTOPS_WGMMA_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { ORTOPS_WGMMA_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most N committed groups of this warpgroup are still running.
template <int N>
__device__ __forceinline__ void wait() {
  ORTOPS_WGMMA_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Shared memory written through the generic proxy (cp.async, st.shared) and read next by wgmma:
// each writing thread fences before the barrier that publishes it.
__device__ __forceinline__ void fence_proxy_async() {
  ORTOPS_WGMMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Warp-specialised kernels move registers between warpgroups: a producer warpgroup gives some
// back (dec), the consumers take them (inc). Every warp of the warpgroup executes it; N is a
// multiple of 8 in 24..256, and ptxas allocates the code after it within N.
template <int N>
__device__ __forceinline__ void registers_inc() {
  ORTOPS_WGMMA_ASM("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void registers_dec() {
  ORTOPS_WGMMA_ASM("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
// Pins accumulator registers at this point of the program: the compiler must not move their
// reads above a wait (it does not know that the asm of the product finishes asynchronously).
template <int N>
__device__ __forceinline__ void fence_operands(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// The 32 fp32 accumulator registers of an m64n64 product: their PTX operand list (%0..%31) and
// the matching read-write constraints.
#define ORTOPS_WGMMA_D32                                                                              \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26," \
  "%27,%28,%29,%30,%31}"
#define ORTOPS_WGMMA_ACC32(d)                                                                                 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),  \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

// d (64 x 64, fp32) (+)= a (64 x 16, registers) · b (16 x 64, smem descriptor); accumulate
// unless `accumulate` is 0. kTransB: B is stored MN-major (its N index contiguous), as V's
// [key][d] rows are for P·V; 0: K-major (K contiguous), as K's [key][d] rows are for Q·Kᵀ.
template <typename T, int kTransB>
__device__ __forceinline__ void mma_m64n64k16_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                                 int accumulate) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "16-bit float types only");
#define ORTOPS_WGMMA_M64N64K16(TYPE)                                                                           \
  ORTOPS_WGMMA_ASM(                                                                                            \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n"                                                             \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " "                                          \
      ORTOPS_WGMMA_D32 ", {%32,%33,%34,%35}, %36, p, 1, 1, %37;\n}\n"                                       \
      : ORTOPS_WGMMA_ACC32(d)                                                                                  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(kTransB), "r"(accumulate))
  if constexpr (std::is_same_v<T, __half>) {
    ORTOPS_WGMMA_M64N64K16("f16");
  } else {
    ORTOPS_WGMMA_M64N64K16("bf16");
  }
#undef ORTOPS_WGMMA_M64N64K16
}

// The accumulator operand lists of the narrower products (m64n16: 8 registers, m64n32: 16), used
// by TSVDMatMul's first stage, whose N is the factor rank.
#define ORTOPS_WGMMA_D8 "{%0,%1,%2,%3,%4,%5,%6,%7}"
#define ORTOPS_WGMMA_ACC8(d) \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
#define ORTOPS_WGMMA_D16 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}"
#define ORTOPS_WGMMA_ACC16(d)                                                                                 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])

// The wide products' accumulator operand lists (m64n128: 64 registers, m64n256: 128), used by
// TSVDMatMul's two-stage Hopper GEMMs, whose N is a whole block of output columns.
#define ORTOPS_WGMMA_D64 \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25," \
  "%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48," \
  "%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}"
#define ORTOPS_WGMMA_D128 \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25," \
  "%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48," \
  "%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71," \
  "%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94," \
  "%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114," \
  "%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}"
#define ORTOPS_WGMMA_ACC32_AT(d, o) \
  "+f"(d[(o) + 0]), "+f"(d[(o) + 1]), "+f"(d[(o) + 2]), "+f"(d[(o) + 3]), "+f"(d[(o) + 4]), "+f"(d[(o) + 5]), "+f"(d[(o) + 6]), "+f"(d[(o) + 7]), \
  "+f"(d[(o) + 8]), "+f"(d[(o) + 9]), "+f"(d[(o) + 10]), "+f"(d[(o) + 11]), "+f"(d[(o) + 12]), "+f"(d[(o) + 13]), "+f"(d[(o) + 14]), "+f"(d[(o) + 15]), \
  "+f"(d[(o) + 16]), "+f"(d[(o) + 17]), "+f"(d[(o) + 18]), "+f"(d[(o) + 19]), "+f"(d[(o) + 20]), "+f"(d[(o) + 21]), "+f"(d[(o) + 22]), "+f"(d[(o) + 23]), \
  "+f"(d[(o) + 24]), "+f"(d[(o) + 25]), "+f"(d[(o) + 26]), "+f"(d[(o) + 27]), "+f"(d[(o) + 28]), "+f"(d[(o) + 29]), "+f"(d[(o) + 30]), "+f"(d[(o) + 31])
#define ORTOPS_WGMMA_ACC64(d) ORTOPS_WGMMA_ACC32_AT(d, 0), ORTOPS_WGMMA_ACC32_AT(d, 32)
#define ORTOPS_WGMMA_ACC128(d) ORTOPS_WGMMA_ACC64(d), ORTOPS_WGMMA_ACC32_AT(d, 64), ORTOPS_WGMMA_ACC32_AT(d, 96)

// d (64 x N, fp32) (+)= a (64 x 16, smem descriptor, K-major) · b (16 x N, smem descriptor), for
// N = 16, 32, 64, 128, 256: both operands from shared memory, as the attention band's Q·Kᵀ reads Q's and
// K's [row][d] tiles (N = 64, kTransB = 0). kTransB: B MN-major (as TSVD's U[k][rank] rows are). With the 128-byte swizzle an MN-major B narrower than 64 reads the first N columns
// of its 64-wide swizzle atom.
template <typename T, int N, int kTransB>
__device__ __forceinline__ void mma_m64nNk16_ss(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b,
                                                int accumulate) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "16-bit float types only");
  static_assert(N == 16 || N == 32 || N == 64 || N == 128 || N == 256, "N: 16, 32, 64, 128 or 256");
  constexpr bool kHalf = std::is_same_v<T, __half>;
#define ORTOPS_WGMMA_SS(SHAPE, TYPE, DLIST, ACC, P, DA, DB, TB)                                          \
  ORTOPS_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, " P ", 0;\n"                                         \
                   "wgmma.mma_async.sync.aligned." SHAPE ".f32." TYPE "." TYPE " " DLIST ", " DA ", " DB \
                   ", p, 1, 1, 0, " TB ";\n}\n"                                                          \
                   : ACC(d)                                                                              \
                   : "l"(desc_a), "l"(desc_b), "n"(kTransB), "r"(accumulate))
  if constexpr (N == 16) {
    if constexpr (kHalf) {
      ORTOPS_WGMMA_SS("m64n16k16", "f16", ORTOPS_WGMMA_D8, ORTOPS_WGMMA_ACC8, "%11", "%8", "%9", "%10");
    } else {
      ORTOPS_WGMMA_SS("m64n16k16", "bf16", ORTOPS_WGMMA_D8, ORTOPS_WGMMA_ACC8, "%11", "%8", "%9", "%10");
    }
  } else if constexpr (N == 32) {
    if constexpr (kHalf) {
      ORTOPS_WGMMA_SS("m64n32k16", "f16", ORTOPS_WGMMA_D16, ORTOPS_WGMMA_ACC16, "%19", "%16", "%17", "%18");
    } else {
      ORTOPS_WGMMA_SS("m64n32k16", "bf16", ORTOPS_WGMMA_D16, ORTOPS_WGMMA_ACC16, "%19", "%16", "%17", "%18");
    }
  } else if constexpr (N == 64) {
    if constexpr (kHalf) {
      ORTOPS_WGMMA_SS("m64n64k16", "f16", ORTOPS_WGMMA_D32, ORTOPS_WGMMA_ACC32, "%35", "%32", "%33", "%34");
    } else {
      ORTOPS_WGMMA_SS("m64n64k16", "bf16", ORTOPS_WGMMA_D32, ORTOPS_WGMMA_ACC32, "%35", "%32", "%33", "%34");
    }
  } else if constexpr (N == 128) {
    if constexpr (kHalf) {
      ORTOPS_WGMMA_SS("m64n128k16", "f16", ORTOPS_WGMMA_D64, ORTOPS_WGMMA_ACC64, "%67", "%64", "%65", "%66");
    } else {
      ORTOPS_WGMMA_SS("m64n128k16", "bf16", ORTOPS_WGMMA_D64, ORTOPS_WGMMA_ACC64, "%67", "%64", "%65", "%66");
    }
  } else {
    if constexpr (kHalf) {
      ORTOPS_WGMMA_SS("m64n256k16", "f16", ORTOPS_WGMMA_D128, ORTOPS_WGMMA_ACC128, "%131", "%128", "%129", "%130");
    } else {
      ORTOPS_WGMMA_SS("m64n256k16", "bf16", ORTOPS_WGMMA_D128, ORTOPS_WGMMA_ACC128, "%131", "%128", "%129", "%130");
    }
  }
#undef ORTOPS_WGMMA_SS
}

// d (64 x N, fp32) (+)= a (64 x 16, registers: the m16n8k16 A fragment of each warp) · b (16 x N,
// smem descriptor), N = 16 or 32: TSVD's first stage when one A fragment feeds several tiles'
// products (A read from shared memory once instead of once per product).
template <typename T, int N, int kTransB>
__device__ __forceinline__ void mma_m64nNk16_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b,
                                                int accumulate) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "16-bit float types only");
  static_assert(N == 16 || N == 32, "N: 16 or 32");
  constexpr bool kHalf = std::is_same_v<T, __half>;
#define ORTOPS_WGMMA_RS(SHAPE, TYPE, DLIST, ACC, P, A0, DB, TB)                                              \
  ORTOPS_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, " P ", 0;\n"                                            \
                   "wgmma.mma_async.sync.aligned." SHAPE ".f32." TYPE "." TYPE " " DLIST ", " A0 ", " DB ", p, 1, " \
                   "1, " TB ";\n}\n"                                                                            \
                   : ACC(d)                                                                                  \
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "n"(kTransB), "r"(accumulate))
  if constexpr (N == 16) {
    if constexpr (kHalf) {
      ORTOPS_WGMMA_RS("m64n16k16", "f16", ORTOPS_WGMMA_D8, ORTOPS_WGMMA_ACC8, "%14", "{%8,%9,%10,%11}", "%12", "%13");
    } else {
      ORTOPS_WGMMA_RS("m64n16k16", "bf16", ORTOPS_WGMMA_D8, ORTOPS_WGMMA_ACC8, "%14", "{%8,%9,%10,%11}", "%12", "%13");
    }
  } else {
    if constexpr (kHalf) {
      ORTOPS_WGMMA_RS("m64n32k16", "f16", ORTOPS_WGMMA_D16, ORTOPS_WGMMA_ACC16, "%22", "{%16,%17,%18,%19}", "%20",
                      "%21");
    } else {
      ORTOPS_WGMMA_RS("m64n32k16", "bf16", ORTOPS_WGMMA_D16, ORTOPS_WGMMA_ACC16, "%22", "{%16,%17,%18,%19}", "%20",
                      "%21");
    }
  }
#undef ORTOPS_WGMMA_RS
}



}  // namespace ortops::cuda::wgmma
