// Private to the TSVDMatMul CUDA kernels: tile configurations (every constant derived and checked
// here), the launch plan the host computes once per call, and the kernel argument block.
#pragma once
#include <cuda.h>  // CUtensorMap (type only)
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "tsvd/tsvd_problem.h"

namespace ortops::cuda::tsvd {

// One tensor-core (mma.sync m16n8k16) configuration of the fused kernel. A CTA owns kBM rows of
// A/Y and kNB columns of one tile column j; it walks rank chunks (kRC columns of U / rows of V)
// and the tile rows i of its split, kKC rows of tk at a time. Warps sit on a kWarpsM x kWarpsN
// grid; warp (wm, wn) owns rows [wm*16*kMF, +16*kMF) and columns [wn*kWNC, +kWNC) of the block,
// and computes T = A_i·U_ij for its own rows in registers (recomputed by the kWarpsN warps of a
// row band), which become the A operand of the second mma (·V_ij) without leaving the registers.
template <int WarpsM, int WarpsN, int MF, int NB, int KC, int SmemBudgetKB, int MinCtasPerSm>
struct TcConfig {
  static constexpr int kWarpsM = WarpsM, kWarpsN = WarpsN, kMF = MF, kNB = NB, kKC = KC;
  // CTAs an SM holds at once (registers and shared memory from -Xptxas -v): the CTA count
  // make_plan's tile-row split aims at. Not a __launch_bounds__ minimum: as one, 2 capped the
  // 64-row configuration where ptxas fits 128 registers by itself, and it then spilled.
  static constexpr int kMinCtasPerSm = MinCtasPerSm;
  static constexpr int kSmemBudget = SmemBudgetKB * 1024;  // sets the pipeline depth (TcSmem)
  static constexpr int kWarps = WarpsM * WarpsN;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBM = 16 * MF * WarpsM;  // rows of A per CTA
  static constexpr int kWNC = NB / WarpsN;      // output columns per warp
  static constexpr int kNT8 = kWNC / 8;         // n8 mma tiles per warp in stage 2
  static_assert(NB % (16 * WarpsN) == 0, "each warp's columns must be whole pairs of n8 tiles (ldmatrix.x4)");
  static_assert(KC % 16 == 0, "k chunks are whole k16 mma steps");
  static_assert(kThreads <= 1024, "CTA too large");
};

// Decode / small batch (M <= 16): one m16 row block, 4 warps split the 128 columns (stage 1 is
// recomputed per warp: 16 x tk x r per tile, cheap next to loading the tile); long k chunks.
// Two stages: a 4-stage ring (72 KB) left 3 CTAs per SM instead of 5 and the split grid ran in
// two waves: 4096 x 14336, M = 1, c = 4: 22.1 us against 16.3 us with two stages (H200).
// (A 48 KB budget, a third stage at rank chunk 16 with 5 CTAs per SM kept, measured equal: 0.95-1.04x
// over 36 rows at M 1 and 16, H200 run 17.)
using SmallCfg = TcConfig<1, 4, 1, 128, 128, 24, 4>;
// 17 <= M <= 256: 64-row blocks, so small batches still spread over the SMs.
using MediumCfg = TcConfig<4, 2, 1, 128, 64, 100, 2>;
// Large M: 128 x 128 output blocks, warp tile 32 x 64 (2 m16 fragments reuse each B fragment);
// one CTA per SM (~240 registers a thread). Two stages: four measured 0-3% slower at M >= 1024
// (H200), so this path is not bound by load latency but by re-reading A per column block (see
// docs/tsvd_cuda.md).
using LargeCfg = TcConfig<4, 2, 2, 128, 64, 40, 1>;

// Shared-memory layout of one (config, rank chunk) pair: kStages buffers each of A [BM][KC],
// U [KC][RC] and V [RC][NB] (cp.async ring, 2 to 4 deep within the config's budget), rows padded by 8 elements (16 bytes) so ldmatrix's 8 row addresses fall in
// distinct banks (row strides of 9, 17, 3, 5 sixteen-byte units: odd, hence conflict-free).
template <class Cfg, int RC>
struct TcSmem {
  static constexpr int kLDA = Cfg::kKC + 8, kLDU = RC + 8, kLDV = Cfg::kNB + 8;
  static constexpr int kA = Cfg::kBM * kLDA, kU = Cfg::kKC * kLDU, kV = RC * kLDV;  // elements per buffer
  static constexpr size_t kStageBytes = size_t(kA + kU + kV) * 2;                    // 16-bit elements
  static constexpr int kStages = Cfg::kSmemBudget / kStageBytes < 2   ? 2
                                 : Cfg::kSmemBudget / kStageBytes > 4 ? 4
                                                                      : int(Cfg::kSmemBudget / kStageBytes);
  static constexpr size_t kBytes = kStages * kStageBytes;
  static_assert(RC % 16 == 0 && RC <= 64, "rank chunk: whole k16 steps of stage 2, at most 64 (registers)");
  static_assert(kLDA % 8 == 0 && kLDU % 8 == 0 && kLDV % 8 == 0, "ldmatrix rows must be 16-byte aligned");
  static_assert(((kLDA / 8) & 1) && ((kLDU / 8) & 1) && ((kLDV / 8) & 1), "odd 16-byte strides: no bank conflicts");
  static_assert(kBytes <= 227 * 1024, "over Hopper's per-block shared memory");
};

// fp32 (CUDA cores) configuration: 32 x 64 output blocks, 256 threads, rank chunks of 32.
struct SimtCfg {
  static constexpr int kThreads = 256, kBM = 32, kNB = 64, kRC = 32, kKC = 32;
  static constexpr int kTPerThread = kBM * kRC / kThreads;  // T elements per thread
  static constexpr int kYPerThread = kBM * kNB / kThreads;  // output elements per thread
  static_assert(kBM * kRC % kThreads == 0 && kBM * kNB % kThreads == 0, "even split of the block");
};

// Two-kernel path for large M (tsvd_cuda_gemm.cuh): both stages are plain tensor-core GEMMs with
// 128 x 128 blocks, 8 warps of 32 x 64, two CTAs per SM at <= 128 registers
// (__launch_bounds__(256, 2)). Two rings: k chunks of 32, 4 deep (74 KB), or 64, 3 deep (105 KB).
template <int KC, int Stages>
struct GemmCfgT {
  static constexpr int kWarpsM = 4, kWarpsN = 2, kMF = 2, kBN = 128, kKC = KC, kStages = Stages;
  static constexpr int kWarps = kWarpsM * kWarpsN, kThreads = 32 * kWarps;
  static constexpr int kBM = 16 * kMF * kWarpsM;  // 128
  static constexpr int kWNC = kBN / kWarpsN;      // 64 columns per warp
  static constexpr int kNF8 = kWNC / 8;
  static constexpr int kLDA = kKC + 8, kLDB = kBN + 8;
  static constexpr int kA = kBM * kLDA, kB = kKC * kLDB;  // elements per ring buffer
  static constexpr size_t kBytes = size_t(kStages) * (kA + kB) * 2;
  static_assert(kWNC % 16 == 0 && kKC % 16 == 0, "whole ldmatrix.x4 / k16 steps");
  static_assert(((kLDA / 8) & 1) && ((kLDB / 8) & 1), "odd 16-byte strides: conflict-free ldmatrix");
  static_assert(2 * (kBytes + 1024) <= 228 * 1024, "two CTAs per SM");
};
using GemmCfg = GemmCfgT<32, 4>;     // rows and column blocks of both (they share kBM, kBN)
using GemmCfgK64 = GemmCfgT<64, 3>;

// Fused Hopper kernel for M > 16 (tsvd_cuda_wgmma.cuh, sm_90a): a producer warpgroup (two threads
// issue TMA loads) and 2 consumer warpgroups x 64 rows, 256 output columns = kNJ tiles of kTN,
// rank padded to kR. Ring slots of one k chunk of 64 hold A [128][64] and U_j [64][kR]; V_j
// [kR][kTN] has its own ring of kVSlots slots, one per tile row. A and V in 128-byte-swizzled
// atoms, U in the swizzle of its kR * 2-byte rows (all 1024-byte aligned). Consumer registers:
// Y 128 fp32, Z kNJ * kR / 2, so one CTA per SM, with setmaxnreg moving the producer's registers
// to the consumers.
template <int TN, int R>
struct WgmmaCfg {
  static constexpr int kTN = TN, kR = R, kNJ = 256 / TN, kBM = 128, kThreads = 384;
  static constexpr int kProducerRegs = 40, kConsumerRegs = 232;  // 128 x 40 + 256 x 232 <= 65536
  static constexpr int kABytes = kBM * 64 * 2, kUBytes = 64 * R * 2, kVAtomBytes = R * 64 * 2;
  static constexpr int kSlotBytes = kABytes + kNJ * kUBytes;
  static constexpr int kVSlots = 2, kVSlotBytes = kNJ * (TN / 64) * kVAtomBytes;
  static constexpr int kBudget = 227 * 1024 - 1024 - 256;  // alignment slack, static barriers
  static constexpr int kStages = (kBudget - kVSlots * kVSlotBytes) / kSlotBytes > 8
                                     ? 8
                                     : (kBudget - kVSlots * kVSlotBytes) / kSlotBytes;
  static constexpr size_t kSmemBytes = size_t(kStages) * kSlotBytes + size_t(kVSlots) * kVSlotBytes + 1024;
  static_assert(TN == 128 || TN == 256, "tiles of 128 or 256 columns");
  static_assert(R == 16 || R == 32 || R == 64, "rank padded to 16, 32 or 64");
  static_assert(kStages >= 3, "a ring of at least 3 k chunks within Hopper's shared memory");
  static_assert(kProducerRegs * 128 + kConsumerRegs * 256 <= 65536, "register file");
};

// Rank as the fused Hopper kernel pads it: the N of its stage-1 products (m64n16 / n32 / n64).
constexpr int wgmma_rank_padding(int64_t r) { return r <= 16 ? 16 : r <= 32 ? 32 : 64; }

// The fused Hopper kernel's tensor maps (encoded per call on the host, tsvd_cuda.cu):
//   a       A [M][K], box 64 k x 128 rows (rows past M and columns past K load as zero)
//   u       U as [tiles][tk][r], box kR (rank, zero past r) x 64 k rows (zero past tk) x 1 tile,
//           swizzle span kR * 2 bytes
//   u_last  the last tile row's U as [tiles of the row][k_last][r]: its rows past K load as zero
//           (the contract ignores them, so they may hold Inf/NaN against A's zero columns)
//   v       V as [tiles][r][tn], box 64 columns x kR rows (zero past r: the rank padding) x 1 tile
struct WgmmaMaps {
  CUtensorMap a, u, u_last, v;
};

// Two-stage Hopper path for large M (tsvd_cuda_wgmma_gemm.cuh, sm_90a): both stages are
// warp-specialised TMA / wgmma GEMMs whose products are as wide as a CTA's columns, where the fused
// kernel's stage 1 is a chain of N = r products (each re-reading its A tile from shared memory):
//   stage 1, per tile row i:    T[:, j, i] = A_i · U_ij for all j at once (N = tiles x kR)
//   stage 2, per tile column j: Y_j = T[:, j, :] · [V_0j; V_1j; ...]   (K = tile rows x kR)
// T ([M][tile columns][tile rows x kR], input type, the workspace) makes the round trip through
// L2 / DRAM that the fused kernel avoids; the products then run at GEMM rates.
// A CTA owns kBM = 128 rows x kBN columns (two consumer warpgroups of 64 rows, one m64nkBN product
// per k16 step) and walks work units (output blocks) persistently. Ring slots hold one k chunk of
// 64: A [128][64] (K-major, 128-byte swizzle) and B [64 k][kBN] as kBN * 2 / kBSpan atoms of
// [64 k][kBSpan bytes] (MN-major; stage 1: U_ij, kBSpan = kR * 2; stage 2: V, kBSpan = 128).
template <int Stage, int BN, int BSpan, int R, int ResidentChunks = 0>
struct WgmmaGemmCfg {
  // Stage 1 runs the consumer warpgroups "ping-pong": each takes every other unit of 64 rows, so
  // one's epilogue overlaps the other's products (its B, U, is resident and shared): stage 1 at tile
  // 256 took 0.81-0.88 of the time with it (runs 5 and 13). Stage 2's two warpgroups share each unit
  // of 128 rows, and so each slot's streamed B (V): ping-pong there, each streaming its own V, was
  // 0.99-1.3x the time (run 14), so it was not kept.
  static constexpr bool kPingPong = Stage == 1;
  static constexpr int kStage = Stage, kBM = kPingPong ? 64 : 128, kBN = BN, kBSpan = BSpan, kR = R;
  static constexpr int kThreads = 384;
  static constexpr int kSlotConsumerWarps = kPingPong ? 4 : 8;  // arrivals that free a ring slot
  static constexpr int kProducerRegs = 40, kConsumerRegs = 232;  // 128 x 40 + 256 x 232 <= 65536
  static constexpr int kAtomCols = BSpan / 2;                    // B columns per swizzle atom
  static constexpr int kTiles = BN / R;                          // stage 1: tiles per column block
  static constexpr int kABytes = kBM * 64 * 2, kBAtomBytes = 64 * BSpan, kBAtoms = BN / kAtomCols;
  static constexpr int kBBytes = kBAtoms * kBAtomBytes;  // B of one k chunk: [64][kBN]
  // Stage 1 keeps one panel's U resident (ResidentChunks k chunks: tk <= 64 x that), and its slots
  // hold only A: 2 chunks leave 6 slots, 4 chunks 2.
  static constexpr int kResidentChunks = ResidentChunks;
  static constexpr int kResidentBytes = ResidentChunks * kBBytes;
  static constexpr int kSlotBytes = kABytes + (Stage == 1 ? 0 : kBBytes);
  // The epilogue's staging buffer: each consumer warpgroup's 64 x kBN block, rounded to the output
  // type, for its TMA stores (stage 1: kBN / kR boxes [64][kR]; stage 2: kBN / 64 boxes [64][64]).
  static constexpr int kStagingBytes = 2 * 64 * BN * 2;
  static constexpr int kBudget = 227 * 1024 - 1024 - 256 - kStagingBytes - kResidentBytes;  // slack, barriers
  static constexpr int kStages = kBudget / kSlotBytes > 8 ? 8 : kBudget / kSlotBytes;
  static constexpr size_t kSmemBytes = size_t(kResidentBytes) + size_t(kStages) * kSlotBytes + kStagingBytes + 1024;
  static_assert(Stage == 1 || Stage == 2, "two stages");
  static_assert(BN == 128 || BN == 256, "m64n128 / m64n256 products");
  static_assert(BSpan == 32 || BSpan == 64 || BSpan == 128, "TMA swizzle spans");
  static_assert(Stage == 1 || BSpan == 128, "stage 2 reads V in 64-column atoms");
  static_assert(R == 16 || R == 32 || R == 64, "rank padded to 16, 32 or 64");
  static_assert(Stage == 2 || BSpan == 2 * R, "stage 1: one swizzle atom per tile, rows of kR * 2 bytes");
  static_assert((Stage == 1) == (ResidentChunks > 0) && ResidentChunks <= 4, "stage 1 holds U resident");
  static_assert(kStages >= 2, "a ring of at least 2 k chunks");
};

// The two-stage Hopper GEMMs' tensor maps (encoded per call and row chunk, tsvd_cuda.cu):
//   stage 1: a = A [M][K], box 64 k x 128 rows; b = U as [Tk][Tn][tk][r], box kR x 64 k x
//            (256 / kR) tiles x 1 (rank past r, rows past tk, tiles past Tn load as zero);
//            b_last = the last tile row's U with rows ending at K (its rows past K are ignored
//            by the contract, so may hold Inf / NaN)
//   stage 2: a = T as [M][tile columns][tile rows x kR], box 64 x 1 x 128 rows; b = V as [tile
//            rows][Tn][r][tn], box 64 columns x kR (zero past r) x 1 x 64 / kR tile rows
//   out:     stage 1: T as [M][tile columns][tile rows][kR], box kR x 1 x 1 x 64 rows (swizzle span
//            kR * 2); stage 2: Y [M][N], box 64 columns x 64 rows (128-byte swizzle). Stores past
//            M, N or the tile columns are dropped by the TMA unit.
struct WgmmaGemmMaps {
  CUtensorMap a, b, b_last, out;
};

// Arguments of one two-stage Hopper GEMM launch (one row chunk of M; maps already offset to it).
struct WgmmaGemmArgs {
  const void* bias;  // stage 2, may be null
  void* out;         // stage 1: T (row 0 of the chunk); stage 2: Y (row 0 of the chunk)
  int64_t M;         // rows of the chunk
  int K, N, tk, tn;
  int rows;          // tile rows that touch A (T's tile-row blocks)
  int cols;          // tile columns that touch Y (T's tile-column blocks)
  int kr;            // rank padded to 16 / 32 / 64 (T's columns per tile)
  int64_t ld_out;    // stage 1: T's row pitch (cols x rows x kr); stage 2: N
  int col_blocks;    // column blocks per row block (stage 1: of kBN over cols x kr; stage 2: cols)
  int row_blocks;    // blocks of 128 rows
  int units;         // stage 2: work units, row blocks x col_blocks
  // Stage 1: work items (panel = tile row x column block, segment of seg_len row blocks), panel
  // fastest; a CTA takes items blockIdx.x, + gridDim.x, ..., so the CTAs running at once hold
  // neighbouring panels over the same rows of A (read from DRAM about once).
  int panels, seg_len, items;
  int partial_last;  // stage 1: the last tile row is partial (load it through b_last)
  int tma_store;     // the epilogue stores through maps.out (else direct stores: Y rows not 16-byte aligned)
};

// Decode kernel for M <= 16 on sm_90 (tsvd_cuda_decode.cuh): a TMA producer warp streams whole
// tiles (A_i [M][tk], U_ij [tk][r], V_ij [kR][tn]) into a ring of mbarrier-tracked slots, and up to
// kConsumerWarps warps each take whole tiles, computing Z = A_i·U_ij and Y_j += Z·V_ij with
// mma.sync in registers. The CTAs of a cluster split the tile rows of one tile column and add up
// their Y_j through distributed shared memory, so no workspace and no second kernel.
// kTN: tile columns covered by the registers (tn <= kTN, tn % 64 == 0); kR: rank padded to 16/32/64.
template <int TN, int R>
struct DecodeCfg {
  static constexpr int kTN = TN, kR = R, kConsumerWarps = 4, kThreads = 32 * (kConsumerWarps + 1);
  static constexpr int kMaxStages = 8;
  static constexpr int kMaxSplits = 8;           // portable cluster size
  // Two CTAs per SM for 128 register columns (<= 168 registers, no spills); 256 columns take up
  // to 255 registers with the two stage-1 chains, one CTA (capped at two, they spilled 12-1424 bytes).
  static constexpr int kMinCtasPerSm = TN == 128 ? 2 : 1;
  static constexpr int kRedPitch = TN + 4;      // fp32 per row of a warp's Y in the reduction buffer
  static constexpr int kRedBytes = kConsumerWarps * 16 * kRedPitch * 4;
  static_assert(TN == 128 || TN == 256, "register tiles of 128 or 256 columns");
  static_assert(R == 16 || R == 32 || R == 64, "rank padded to 16, 32 or 64");
};

// Arguments of the decode kernel (the tensor maps travel as separate __grid_constant__ parameters).
struct DecodeArgs {
  const void* bias;  // may be null
  void* Y;
  int M, K, N, tk, tn, r, Tn;
  int used_rows;     // tile rows that touch A
  int splits;        // CTAs per cluster, each taking every splits-th tile row of one tile column
  int stages;        // ring slots (<= kMaxStages), a multiple of consumers
  int consumers;     // warps taking tiles: tile t -> warp t % consumers, so slot s always has one consumer
  int a_bytes, u_bytes, slot_bytes;  // slot layout: A boxes, U box, V boxes (all 1024-aligned)
  int tx_bytes;      // bytes the TMA brings per slot (A's rows past M are not loaded)
  int shared_u;
  int stage_mask;    // benchmarks only (wrong results otherwise): 1 loads only, 2 products only; 3 both
  int factors_early; // U, V constant: the first ring's factor loads go out before griddepcontrol.wait
};

// Launch geometry of the decode kernel (make_decode_plan, tsvd_cuda.cu).
struct DecodePlan {
  int splits = 1, stages = 2, consumers = 2, a_bytes = 0, u_bytes = 0, slot_bytes = 0, tx_bytes = 0, kr = 16;
  size_t smem = 0;
};

enum class Path { kSimt, kSmall, kMedium, kLarge, kTwoStage, kWgmma, kDecode, kWgmmaGemm };

// n / d and n % d for 0 <= n < 2^31 and a divisor d >= 1 fixed per launch, by a multiply-high and a
// shift (the round-up reciprocal method of Granlund and Montgomery, 1994): a runtime integer
// division is a ~20-instruction sequence, and the two-stage kernels need one per loaded row and
// per stored column pair (Nsight Compute: the integer pipe was their busiest, 2026-11-29).
struct FastDiv {
  uint32_t d = 1, mul = 1, shift = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor) {
    while ((uint64_t(1) << shift) < d) ++shift;  // shift = ceil(log2 d)
    mul = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }
#ifdef __CUDACC__
  __host__ __device__ __forceinline__ int div(int n) const {
#ifdef __CUDA_ARCH__
    const uint32_t hi = __umulhi(uint32_t(n), mul);
#else
    const uint32_t hi = uint32_t((uint64_t(uint32_t(n)) * mul) >> 32);
#endif
    return int((hi + uint32_t(n)) >> shift);
  }
  __host__ __device__ __forceinline__ int mod(int n, int q) const { return n - q * int(d); }
#endif
};

// Arguments of the two-stage path (one row chunk of M; A and Y already offset to it).
struct TwoStageArgs {
  const void* A;
  const void* U;
  const void* V;
  const void* bias;  // may be null
  void* Y;
  void* Tbuf;        // workspace: T[m][j < nJ][D2p], input type
  int64_t M;         // rows of this chunk
  int K, N, tk, tn, r, Tn;
  int nI;            // groups of stage 1 = T slices per j: used tile rows, or 1 when V is shared
  int nJ;            // T column blocks: used tile columns, or 1 when U is shared
  int used_cols;     // tile columns of Y
  int D2, D2p;       // stage-2 depth nI * r, and T's j stride (D2 rounded up to 8)
  int64_t ldT;       // nJ * D2p
  int shared_u, shared_v;
  int vec_a1, vec_b1, vec_a2, vec_b2;  // 16-byte cp.async allowed per operand (host-checked)
  int pair_t;        // r even: stage 1 stores column pairs
  int chunks_per_tile;  // stage 2: ceil(tn / 128)
  FastDiv div_r, div_tk;  // by r and by tk
};

// Test/benchmark knobs (tsvd_cuda_internal.h); the public launcher uses the defaults.
struct TsvdOptions {
  int path = 0;                    // 0: by M; 1: fused kernel; 2: two-stage (16-bit types only); 3: fused
                                   // Hopper kernel where it runs and fits (else as 1); 4: decode kernel
                                   // where it runs and fits (else as 1); 5: the two-stage Hopper GEMMs where
                                   // they run and fit (else as 1)
  int64_t two_stage_min_m = -1;    // < 0: kTwoStageMinM
  int64_t t_cap_bytes = -1;        // < 0: kTCapBytes (workspace for T; M is processed in row chunks)
  int gemm_cfg = -1;               // two-stage ring: < 0 kGemmCfg; 0 GemmCfg (k 32 x 4); 1 GemmCfgK64 (k 64 x 3)
  int pdl = -1;                    // < 0: on sm_90+; 0 off (two-stage launches)
  int stage_mask = 3;              // benchmarks only (wrong results otherwise): 1 stage 1 only, 2 stage 2 only;
                                   // decode kernel: 1 TMA loads only, 2 products only (no loads)
  int ctas_per_sm = -1;            // fused kernel: CTAs per SM the tile-row split aims at (< 1: per config)
  int split_sum = -1;              // split sums: < 0 the default (tsvd_cuda.cu), 0 finalize kernel, 1 in-kernel
  int64_t wgmma_min_m = -1;        // < 0: wgmma_preferred decides; else the Hopper kernel from this M on where it fits
  int decode_splits = -1;          // decode kernel: CTAs per cluster (1..8; < 1: make_decode_plan decides)
  int decode_stages = -1;          // decode kernel: ring slots (2..8; < 1: make_decode_plan decides)
};

// Everything the kernels need, by value (one __grid_constant__-sized block of scalars).
struct Args {
  const void* A;
  const void* U;
  const void* V;
  const void* bias;  // may be null
  void* Y;
  float* partial;    // [splits, M, N] fp32 when splits > 1, else null
  // With partials: the stream's zeroed counters (common/stream_counters.h), one per output block;
  // the last CTA of a block to finish adds up the splits. Null: tsvd_finalize_kernel does it.
  unsigned int* counters;
  int64_t M;
  int K, N, tk, tn, r;
  int Tn;             // tile columns of the factor grid (for factor offsets)
  int used_rows;      // tile rows that touch A (ceil(K / tk))
  int used_cols;      // tile columns that touch Y (ceil(N / tn))
  int shared_u, shared_v;
  int vec_a, vec_u, vec_v;  // 16-byte cp.async allowed (alignment and strides checked on the host)
  int chunks_per_tile;      // ceil(tn / NB)
  int rows_per_split, splits;
  int n_rc;                 // rank chunks
};

struct Plan {
  Path path = Path::kSimt;
  int rc = 16;             // rank chunk (template value)
  int n_rc = 1;
  int chunks_per_tile = 1;
  int64_t col_chunks = 1;  // used tile columns x chunks per tile (grid.x)
  int64_t row_blocks = 1;  // grid.y
  int splits = 1, rows_per_split = 1;  // grid.z over tile rows
  int threads = 128;
  bool pdl = false;        // programmatic dependent launch (sm_90+): launch gaps overlap
  size_t workspace = 0;    // bytes: fp32 partial sums when splits > 1, or T (two-stage path)
  int64_t m_chunk = 0;     // two-stage: rows per (stage 1, stage 2) pair of launches
};

// Two-stage path from kTwoStageMinM rows on, or from kTwoStageMinMWide rows when N >= kWideN
// (16-bit types). From the H200 sweep in docs/tsvd_cuda.md: at M = 128 the fused kernel is 2-4x
// faster for 768x3072 / 3072x768 and 1.1-1.5x for 4096^2 (c = 2, 4), the two-stage path 1.1-2.3x
// faster for 4096x14336; from M = 512 on the two-stage path wins in all but 1 of 6 (4096^2) rows.
constexpr int64_t kTwoStageMinM = 512;
constexpr int64_t kTwoStageMinMWide = 128;
constexpr int64_t kWideN = 8192;
// Cap on T's workspace: M is processed in row chunks whose T fits (bounds the scratch memory).
// 128 MB was 0-22% faster than 32 MB (more, smaller launches) at M >= 1024 except c = 8, tile 128
// (8-16% slower), and never slower than no cap by more than 2%.
constexpr int64_t kTCapBytes = int64_t(128) << 20;
// Default ring of the two-stage GEMMs (TsvdOptions::gemm_cfg): k 64 x 3 was 5-20% faster than
// k 32 x 4 in every measured row.
constexpr int kGemmCfg = 1;

// Fused Hopper kernel (Path::kWgmma) from this M on, wherever it applies (wgmma_fits), and from
// kWgmmaMinMLargeWeight rows on for weights of kWgmmaLargeWeight elements or more. From the H200
// runs of the TMA version with rank-wide U boxes (docs/tsvd_cuda.md, "Seventh session"): faster
// than the two-stage path in 47 of the 48 rows at M 128-2048 on 4096^2 and 4096 x 14336, c 2-8,
// tiles 128 and 256 (the 48th equal), rank 8 included (run 16); at M 17-96 faster than the fused
// mma.sync kernel in every 4096 x 14336 row (1.5-3.7x) and 4096^2 from M = 64 (1.1-2.4x; within
// -10% / +15% at M 17-32), slower at M <= 64 on 768 x 3072 (run 24).
constexpr int64_t kWgmmaMinM = 128;
constexpr int64_t kWgmmaMinMLargeWeight = 17;  // above the decode kernel's M <= 16
constexpr int64_t kWgmmaLargeWeight = int64_t(4096) * 4096;
// Cap on the Hopper kernel's fp32 split partials, written and read back (about the L2 size).
constexpr int64_t kWgmmaPartialBytes = int64_t(64) << 20;

// Two-stage Hopper GEMMs (Path::kWgmmaGemm) by default where they fit (wgmma_gemm_fits) and
// wgmma_gemm_preferred: from kWgmmaGemmMinM rows, for ranks (padded) of at most an eighth of the
// tile width (c >= 4 with square tiles), on 128-column tiles or weights of kWgmmaLargeWeight
// elements or more. From the H200 sweeps in docs/tsvd_cuda.md (eighth session, runs 5 and 6, 96
// rows): 0.93-2.05x the fused Hopper kernel's time in the 40 rows the rule picks, faster in 34 (the
// other 6 within 0.3-7.4%); at c = 2 and on 256-column tiles of small weights (few panels for the
// SMs) the fused kernel was faster, below M = 512 it depended on the shape.
constexpr int64_t kWgmmaGemmMinM = 512;
// Cap on the two-stage Hopper path's T workspace: M is processed in row chunks whose T fits.
constexpr int64_t kWgmmaGemmTCapBytes = int64_t(128) << 20;

// Decode kernel: from M = 1 to kDecodeMaxM (one m16 row block). Ring bytes per CTA aimed at: two
// CTAs per SM when two slots fit (228 KB per SM), and at most kMaxStages slots.
constexpr int64_t kDecodeMaxM = 16;
constexpr int kDecodeRingBudget = 110 * 1024;

// Deterministic in (problem, dtype, SM count): tsvd_matmul_workspace_bytes and tsvd_matmul agree.
// sm90a: the fused Hopper kernel can run (built for sm_90a, compute capability 9.0 device).
// decode: the decode kernel can run (sm_90 device and code, decode_kernel_loads).
Plan make_plan(const TsvdProblem& p, DType dtype, int sm_count, const TsvdOptions& opt = {}, bool sm90a = false,
               bool decode = false);
bool wgmma_fits(const TsvdProblem& p, DType dtype);
bool wgmma_gemm_fits(const TsvdProblem& p, DType dtype);
bool decode_fits(const TsvdProblem& p, DType dtype);
DecodePlan make_decode_plan(const TsvdProblem& p, int sm_count, const TsvdOptions& opt);
bool wgmma_preferred(const TsvdProblem& p);
bool wgmma_gemm_preferred(const TsvdProblem& p);

// Per-dtype launchers of the tensor-core kernel (tsvd_cuda_fp16.cu / tsvd_cuda_bf16.cu).
cudaError_t launch_tc_fp16(const Plan& plan, const Args& a, cudaStream_t stream);
cudaError_t launch_tc_bf16(const Plan& plan, const Args& a, cudaStream_t stream);
cudaError_t launch_wgmma_fp16(const WgmmaMaps& maps, const Args& a, cudaStream_t stream, bool pdl);
cudaError_t launch_wgmma_bf16(const WgmmaMaps& maps, const Args& a, cudaStream_t stream, bool pdl);
cudaError_t launch_wgmma_gemm_fp16(int stage, const WgmmaGemmMaps& maps, const WgmmaGemmArgs& a, int grid,
                                   cudaStream_t stream, bool pdl);
cudaError_t launch_wgmma_gemm_bf16(int stage, const WgmmaGemmMaps& maps, const WgmmaGemmArgs& a, int grid,
                                   cudaStream_t stream, bool pdl);
cudaError_t launch_decode_fp16(const DecodePlan& plan, const DecodeArgs& a, const CUtensorMap& mapA,
                               const CUtensorMap& mapU, const CUtensorMap& mapV, int used_cols, bool pdl,
                               cudaStream_t stream);
cudaError_t launch_decode_bf16(const DecodePlan& plan, const DecodeArgs& a, const CUtensorMap& mapA,
                               const CUtensorMap& mapU, const CUtensorMap& mapV, int used_cols, bool pdl,
                               cudaStream_t stream);
// The decode kernel's sm_90 code is in this build and loads on the current device (checked once).
bool decode_kernel_loads();
// Clusters of `splits` CTAs of the decode kernel (register tile of tn, rank padding kr, `smem`
// bytes) that the current device holds at once (cudaOccupancyMaxActiveClusters, cached); 0 if unknown.
int decode_cluster_capacity(int tn, int kr, size_t smem, int splits);
cudaError_t launch_two_stage_fp16(const TwoStageArgs& a, int cfg, bool pdl, int stage_mask, cudaStream_t stream);
cudaError_t launch_two_stage_bf16(const TwoStageArgs& a, int cfg, bool pdl, int stage_mask, cudaStream_t stream);

}  // namespace ortops::cuda::tsvd
