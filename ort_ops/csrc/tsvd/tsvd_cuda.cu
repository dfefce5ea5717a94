// TSVDMatMul on CUDA: the launch plan, the workspace size, the fp32 (CUDA-core) kernel, the
// split-sum finalize kernel and the dispatch. The 16-bit tensor-core kernel is tsvd_cuda_tc.cuh,
// instantiated in tsvd_cuda_fp16.cu / tsvd_cuda_bf16.cu. Design notes: docs/tsvd_cuda.md.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "common/cuda_ptx.cuh"
#include "common/stream_counters.h"
#include "common/tensor_map.h"
#include "tsvd/tsvd_cuda.h"
#include "tsvd/tsvd_cuda_internal.h"
#include "tsvd/tsvd_cuda_traits.h"

namespace ortops::cuda {
namespace tsvd {
namespace {

__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// fp32 path on CUDA cores (the tensor cores' fp32 mode, tf32, would lose float32 accuracy).
// Same walk as the tensor-core kernel: rank chunks outer, tile rows inner; T in shared memory.
__global__ void __launch_bounds__(SimtCfg::kThreads) tsvd_simt_kernel(const Args a) {
  using C = SimtCfg;
  __shared__ float sA[C::kBM][C::kKC + 1];   // (BM, KC)
  __shared__ float sU[C::kKC][C::kRC + 1];   // (KC, RC)
  __shared__ float sT[C::kBM][C::kRC + 1];   // (BM, RC)
  __shared__ float sV[C::kRC][C::kNB];       // (RC, NB)
  const int tid = threadIdx.x;
  const int j = blockIdx.x / a.chunks_per_tile;
  const int n_in_tile0 = (blockIdx.x % a.chunks_per_tile) * C::kNB;
  const int64_t m0 = int64_t(blockIdx.y) * C::kBM;
  const int rows_valid = int(a.M - m0 < C::kBM ? a.M - m0 : C::kBM);
  const int v_cols = min(C::kNB, a.tn - n_in_tile0);
  const float* gA = static_cast<const float*>(a.A) + m0 * a.K;
  const float* gU = static_cast<const float*>(a.U);
  const float* gV = static_cast<const float*>(a.V);

  float acc[C::kYPerThread] = {};
  float tacc[C::kTPerThread] = {};
  for (int rc = 0; rc < a.n_rc; ++rc) {
    const int rvalid = min(C::kRC, a.r - rc * C::kRC);
    for (int i = 0; i < a.used_rows; ++i) {
      const int k_ext = min(a.tk, a.K - i * a.tk);
      const int64_t tile = int64_t(i) * a.Tn + j;
      const float* u = gU + (a.shared_u ? 0 : tile * a.tk * a.r) + rc * C::kRC;
      for (int k0 = 0; k0 < k_ext; k0 += C::kKC) {
        const int kvalid = min(C::kKC, k_ext - k0);
        for (int e = tid; e < C::kBM * C::kKC; e += C::kThreads) {
          const int row = e / C::kKC, col = e % C::kKC;
          sA[row][col] = (row < rows_valid && col < kvalid) ? gA[row * int64_t(a.K) + int64_t(i) * a.tk + k0 + col] : 0.f;
        }
        for (int e = tid; e < C::kKC * C::kRC; e += C::kThreads) {
          const int row = e / C::kRC, col = e % C::kRC;
          sU[row][col] = (row < kvalid && col < rvalid) ? u[int64_t(k0 + row) * a.r + col] : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int q = 0; q < C::kTPerThread; ++q) {
          const int e = tid + q * C::kThreads, row = e / C::kRC, col = e % C::kRC;
          float s = tacc[q];
#pragma unroll 8
          for (int k = 0; k < C::kKC; ++k) s = fmaf(sA[row][k], sU[k][col], s);
          tacc[q] = s;
        }
        __syncthreads();
      }
      if (a.shared_v && i + 1 < a.used_rows) continue;  // shared V: sum T over i, then one ·V
      const float* v = gV + (a.shared_v ? 0 : tile * a.r * a.tn) + int64_t(rc) * C::kRC * a.tn + n_in_tile0;
#pragma unroll
      for (int q = 0; q < C::kTPerThread; ++q) {
        const int e = tid + q * C::kThreads;
        sT[e / C::kRC][e % C::kRC] = tacc[q];
        tacc[q] = 0.f;
      }
      for (int e = tid; e < C::kRC * C::kNB; e += C::kThreads) {
        const int row = e / C::kNB, col = e % C::kNB;
        sV[row][col] = (row < rvalid && col < v_cols) ? v[int64_t(row) * a.tn + col] : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int q = 0; q < C::kYPerThread; ++q) {
        const int e = tid + q * C::kThreads, row = e / C::kNB, col = e % C::kNB;
        float s = acc[q];
#pragma unroll 8
        for (int c = 0; c < C::kRC; ++c) s = fmaf(sT[row][c], sV[c][col], s);
        acc[q] = s;
      }
      __syncthreads();
    }
  }
  const float* bias = static_cast<const float*>(a.bias);
  float* Y = static_cast<float*>(a.Y);
#pragma unroll
  for (int q = 0; q < C::kYPerThread; ++q) {
    const int e = tid + q * C::kThreads, row = e / C::kNB, col = e % C::kNB;
    const int64_t m = m0 + row, n = int64_t(j) * a.tn + n_in_tile0 + col;
    if (row < rows_valid && col < v_cols && n < a.N) Y[m * a.N + n] = acc[q] + (bias ? bias[n] : 0.f);
  }
}

// Y = sum over splits of the fp32 partials (+ bias), rounded once to the output type.
template <typename T>
__global__ void tsvd_finalize_kernel(const float* __restrict__ partial, int splits, int64_t M, int N,
                                     const T* __restrict__ bias, T* __restrict__ Y) {
  ptx::griddep_wait();  // launched as a programmatic dependent of the main kernel (sm_90)
  const int64_t total = M * N, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    float s = bias ? to_f(bias[e % N]) : 0.f;
    for (int q = 0; q < splits; ++q) s += partial[q * total + e];
    Y[e] = from_f<T>(s);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

struct DeviceInfo {
  int sms = 132, cc_major = 9, cc_minor = 0;
};
// SM count and compute capability of the current device, queried once per device (host-side
// attribute queries; cached because every call of the op needs them, twice).
DeviceInfo device_info() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> sms[kMaxDevices], cc_major[kMaxDevices], cc_minor[kMaxDevices];  // sms 0: not queried yet
  DeviceInfo d;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return d;
  }
  if (dev < kMaxDevices && sms[dev].load(std::memory_order_relaxed) > 0) {
    d.sms = sms[dev].load(std::memory_order_relaxed), d.cc_major = cc_major[dev].load(std::memory_order_relaxed);
    d.cc_minor = cc_minor[dev].load(std::memory_order_relaxed);
    return d;
  }
  if (cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || d.sms <= 0 ||
      cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    cudaGetLastError();
    return DeviceInfo{};
  }
  if (dev < kMaxDevices) {
    cc_major[dev].store(d.cc_major, std::memory_order_relaxed);
    cc_minor[dev].store(d.cc_minor, std::memory_order_relaxed);
    sms[dev].store(d.sms, std::memory_order_relaxed);
  }
  return d;
}

// The fused Hopper kernel needs its sm_90a machine code in this build (the architecture list has
// 90a; CMake then defines ORTOPS_CUDA_SM90A) and a compute capability 9.0 device to run it.
bool runs_sm90a(const DeviceInfo& d) {
#if defined(ORTOPS_CUDA_SM90A)
  return d.cc_major == 9 && d.cc_minor == 0;
#else
  (void)d;
  return false;
#endif
}

// The decode kernel needs TMA and clusters (compute capability 9.0 or later) and its sm_90 code
// loaded for this device.
bool runs_decode(const DeviceInfo& d) { return d.cc_major >= 9 && decode_kernel_loads(); }

}  // namespace

// Shapes the decode kernel takes (tsvd_cuda_decode.cuh): 16-bit types, M <= 16, per-tile V (shared
// V sums A_i·U_ij over i first: the fused kernel), tiles whose sides are multiples of 64 up to 256
// (whole TMA boxes, the U box's rows <= 256), rank <= 64 in multiples of 8 and K % 8 == 0 (TMA's
// 16-byte global strides). Pointer alignment is checked per call.
bool decode_fits(const TsvdProblem& p, DType dtype) {
  return dtype != DType::kFloat32 && !p.shared_v && p.M <= kDecodeMaxM && p.tk % 64 == 0 && p.tk <= 256 &&
         p.tn % 64 == 0 && p.tn <= 256 && p.rank % 8 == 0 && p.rank <= 64 && p.K % 8 == 0 &&
         p.Tk * p.Tn * (p.tk * p.rank / 64) < (int64_t(1) << 31) &&  // TMA coordinates of U's lines
         p.N < (int64_t(1) << 31) && p.used_tile_cols() <= 65535;
}

// CTAs of the decode kernel an SM holds: two for 128-column register tiles with slots of at most
// 24 KB (DecodeCfg::kMinCtasPerSm), else one.
static int decode_ctas_per_sm(const TsvdProblem& p, const DecodePlan& d) {
  return p.tn <= 128 && d.slot_bytes <= 24 * 1024 ? 2 : 1;
}

// Cluster size (tile-row splits per tile column) and ring depth of the decode kernel, from the
// H200 sweeps (docs/tsvd_cuda.md, "Sixth session"): the largest cluster whose grid the device
// holds at once (cudaOccupancyMaxActiveClusters: clusters must fit inside a GPC, so 8-CTA clusters
// at two CTAs per SM left 4096^2, tile 128 a second wave, 12.2 us against 7.8 at 4 a cluster), but
// at least 4 tiles a CTA where that keeps a quarter of the SMs busy (4096^2, tile 256: 4 a cluster
// beat 8 by 1.05-1.3x). Small slots leave room for two CTAs per SM; large ones (or 256-column
// register tiles) get as many slots, hence consumer warps, as fit, since with few slots the
// products were the slower side (4096 x 14336, tile 256, r 32: 4 slots 16.0 us, 2 slots 23.2 us).
static DecodePlan decode_plan_for(const TsvdProblem& p, int splits, const TsvdOptions& opt) {
  using C = DecodeCfg<128, 16>;
  DecodePlan d;
  d.splits = splits;
  d.kr = p.rank <= 16 ? 16 : p.rank <= 32 ? 32 : 64;
  const int u_data = int(p.tk * p.rank) * 2;       // [tk][r], dense
  d.a_bytes = int(p.tk / 64) * 2048;               // [16 rows][64] boxes
  d.u_bytes = (u_data + 1023) / 1024 * 1024;
  const int v_bytes = int(p.tn / 64) * d.kr * 128;  // [kR][64] boxes
  d.slot_bytes = d.a_bytes + d.u_bytes + v_bytes;
  d.tx_bytes = int(p.tk / 64) * int(p.M) * 128 + u_data + v_bytes;
  const int64_t tiles_per_cta = (p.used_tile_rows() + splits - 1) / splits;
  const int budget = decode_ctas_per_sm(p, d) == 2 ? kDecodeRingBudget : 226 * 1024;
  int stages = opt.decode_stages > 0 ? opt.decode_stages
                                     : int(std::min<int64_t>(budget / d.slot_bytes, tiles_per_cta));
  const int smem_fit = (227 * 1024 - 1024) / d.slot_bytes;  // Hopper's per-block shared memory (>= 3 slots)
  stages = std::max(2, std::min({stages, C::kMaxStages, smem_fit}));
  // Tile t goes to warp t % consumers and slot t % stages; with stages a multiple of consumers a
  // slot always has the same consumer, which waits for its rounds in order (an mbarrier's phase
  // parity cannot tell round n from n + 2, so two warps must never wait on one slot).
  d.consumers = std::min(stages, C::kConsumerWarps);
  d.stages = stages / d.consumers * d.consumers;
  const int red_bytes = p.tn > 128 ? DecodeCfg<256, 16>::kRedBytes : C::kRedBytes;
  d.smem = size_t(std::max(d.stages * d.slot_bytes, red_bytes)) + 1024;  // + alignment slack
  return d;
}

DecodePlan make_decode_plan(const TsvdProblem& p, int sms, const TsvdOptions& opt) {
  const int64_t rows = p.used_tile_rows(), cols = p.used_tile_cols();
  const int max_splits = int(std::min<int64_t>(DecodeCfg<128, 16>::kMaxSplits, rows));
  if (opt.decode_splits > 0) return decode_plan_for(p, std::min(opt.decode_splits, max_splits), opt);
  int splits = 1;
  for (int s = max_splits; s > 1; --s) {
    const DecodePlan d = decode_plan_for(p, s, opt);
    int clusters = decode_cluster_capacity(int(p.tn), d.kr, d.smem, s);
    if (clusters <= 0) clusters = sms * decode_ctas_per_sm(p, d) / s;  // no device answer: an estimate
    if (cols <= clusters) {
      splits = s;
      break;
    }
  }
  if (cols * std::min<int64_t>(splits, rows / 4) >= sms / 4) splits = int(std::max<int64_t>(1, std::min<int64_t>(splits, rows / 4)));
  return decode_plan_for(p, splits, opt);
}

// Shapes the fused Hopper kernel takes (tsvd_cuda_wgmma.cuh): 16-bit types, tiles of 128 or 256
// columns, rank <= 64 and 16-byte rows everywhere (pointer alignment is checked per call). Shared V
// goes to the two-stage path, which sums A_i·U_ij over i before the one product with V.
bool wgmma_fits(const TsvdProblem& p, DType dtype) {
  return dtype != DType::kFloat32 && !p.shared_v && (p.tn == 128 || p.tn == 256) && p.rank <= 64 &&
         p.rank % 8 == 0 && p.tk % 8 == 0 && p.K % 8 == 0 && (p.M + 63) / 64 <= 65535;
}

// Shapes the two-stage Hopper GEMMs take (tsvd_cuda_wgmma_gemm.cuh): as the fused Hopper kernel,
// but per-tile U as well as per-tile V (the fused kernel computes a shared U's product once per
// chunk already), tk <= 256, and work-unit counts within int32.
bool wgmma_gemm_fits(const TsvdProblem& p, DType dtype) {
  if (!wgmma_fits(p, dtype) || p.shared_u || p.tk > 256) return false;  // stage 1 holds tk x 256 of U
  const int64_t kr = wgmma_rank_padding(p.rank), rows = p.used_tile_rows(), cols = p.used_tile_cols();
  const int64_t row_blocks = (p.M + 127) / 128, col_blocks1 = (cols * kr + 255) / 256;
  return 2 * row_blocks * rows * col_blocks1 < (int64_t(1) << 31) && 2 * row_blocks * cols < (int64_t(1) << 31) &&
         cols * rows * kr < (int64_t(1) << 31) && p.Tn * p.Tk < (int64_t(1) << 31);
}
bool wgmma_gemm_preferred(const TsvdProblem& p) {
  return p.M >= kWgmmaGemmMinM && wgmma_rank_padding(p.rank) * 8 <= p.tn &&
         (p.tn == 128 || p.K * p.N >= kWgmmaLargeWeight);
}
bool wgmma_preferred(const TsvdProblem& p) {
  return p.M >= kWgmmaMinM || (p.M >= kWgmmaMinMLargeWeight && p.K * p.N >= kWgmmaLargeWeight);
}

// Geometry of the two-stage path (tsvd_cuda_gemm.cuh) without the pointers.
TwoStageArgs two_stage_geometry(const TsvdProblem& p) {
  TwoStageArgs g{};
  g.K = int(p.K), g.N = int(p.N), g.tk = int(p.tk), g.tn = int(p.tn), g.r = int(p.rank), g.Tn = int(p.Tn);
  g.used_cols = int(p.used_tile_cols());
  g.nI = p.shared_v ? 1 : int(p.used_tile_rows());
  g.nJ = p.shared_u ? 1 : g.used_cols;
  g.D2 = g.nI * g.r;
  g.D2p = (g.D2 + 7) / 8 * 8;
  g.ldT = int64_t(g.nJ) * g.D2p;
  g.shared_u = p.shared_u, g.shared_v = p.shared_v;
  g.pair_t = p.rank % 2 == 0;
  g.chunks_per_tile = int((p.tn + GemmCfg::kBN - 1) / GemmCfg::kBN);
  g.div_r = FastDiv(uint32_t(p.rank));
  g.div_tk = FastDiv(uint32_t(p.tk));
  return g;
}

// The fused mma.sync kernel's plan: what runs instead of the Hopper kernel when a pointer is not
// 16-byte aligned, so the Hopper kernel's plan reserves its workspace (the workspace size cannot
// depend on the pointers).
static Plan fused_fallback_plan(const TsvdProblem& p, DType dtype, int sms, const TsvdOptions& opt) {
  TsvdOptions fused = opt;
  fused.path = 1;
  return make_plan(p, dtype, sms, fused, false);
}

Plan make_plan(const TsvdProblem& p, DType dtype, int sms, const TsvdOptions& opt, bool sm90a, bool decode) {
  if (decode && decode_fits(p, dtype) && (opt.path == 4 || (opt.path == 0 && p.M <= kDecodeMaxM))) {
    Plan plan;
    plan.path = Path::kDecode;
    plan.threads = DecodeCfg<128, 16>::kThreads;
    plan.workspace = fused_fallback_plan(p, dtype, sms, opt).workspace;  // a misaligned call runs it
    return plan;
  }
  const bool gemm_by_m = opt.path == 0 && opt.wgmma_min_m < 0 && wgmma_gemm_preferred(p);
  if (sm90a && wgmma_gemm_fits(p, dtype) && (opt.path == 5 || gemm_by_m)) {
    Plan plan;
    plan.path = Path::kWgmmaGemm;
    plan.threads = WgmmaGemmCfg<2, 256, 128, 16>::kThreads;
    // T for a chunk of rows at a time (the cap bounds the scratch memory; each chunk is a pair of
    // launches). A misaligned call runs the fused kernel instead, so its workspace is reserved too.
    const int64_t row_bytes = p.used_tile_cols() * p.used_tile_rows() * wgmma_rank_padding(p.rank) * 2;
    const int64_t cap = opt.t_cap_bytes >= 0 ? opt.t_cap_bytes : kWgmmaGemmTCapBytes;
    int64_t chunk = std::max<int64_t>(cap / row_bytes / 128 * 128, 128);
    chunk = std::min<int64_t>(chunk, int64_t(65535) * 64);  // stage 1's segment search walks 64-row blocks
    if (chunk >= p.M) chunk = p.M;
    plan.m_chunk = chunk;
    plan.workspace = std::max(size_t(chunk) * size_t(row_bytes), fused_fallback_plan(p, dtype, sms, opt).workspace);
    return plan;
  }
  const bool by_m = opt.wgmma_min_m >= 0 ? p.M >= opt.wgmma_min_m : wgmma_preferred(p);
  if (sm90a && wgmma_fits(p, dtype) && (opt.path == 3 || (opt.path == 0 && by_m))) {
    const Plan fallback = fused_fallback_plan(p, dtype, sms, opt);
    Plan plan;
    plan.path = Path::kWgmma;
    plan.threads = WgmmaCfg<128, 16>::kThreads;
    // One CTA per SM (128 rows x 256 columns each). A grid short of the SMs (M up to a few
    // hundred rows) splits the tile rows over grid.z as far as whole waves allow, each split
    // adding its fp32 partial that the finalize kernel sums, while that traffic stays near the L2
    // size (at M = 256, N = 4096 a split's partial is 4 MB written and read back).
    const int64_t used_rows = p.used_tile_rows();
    const int64_t ctas = (p.used_tile_cols() * p.tn + 255) / 256 * ((p.M + 127) / 128);
    int64_t want = std::min<int64_t>(std::max<int64_t>(sms / std::max<int64_t>(ctas, 1), 1), used_rows);
    const int64_t per_split = 2 * p.M * p.N * 4;
    while (want > 1 && want * per_split > kWgmmaPartialBytes) --want;
    plan.rows_per_split = int((used_rows + want - 1) / want);
    plan.splits = int((used_rows + plan.rows_per_split - 1) / plan.rows_per_split);
    const size_t partial = plan.splits > 1 ? size_t(plan.splits) * size_t(p.M) * size_t(p.N) * sizeof(float) : 0;
    plan.workspace = std::max(fallback.workspace, partial);  // a misaligned call runs the fallback
    return plan;
  }
  Plan plan;
  const int64_t used_rows = p.used_tile_rows(), used_cols = p.used_tile_cols();
  const int64_t min_m = opt.two_stage_min_m >= 0 ? opt.two_stage_min_m
                        : p.N >= kWideN             ? kTwoStageMinMWide
                                                    : kTwoStageMinM;
  if (dtype != DType::kFloat32 && (opt.path == 2 || (opt.path == 0 && p.M >= min_m))) {
    // Large M: T = A_i·U_ij for all j at once (stage 1), then Y = sum_i T_ij·V_ij (stage 2).
    // T lives in the workspace; rows of M go in chunks so it stays under the cap.
    plan.path = Path::kTwoStage;
    const int64_t row_bytes = two_stage_geometry(p).ldT * 2;
    const int64_t cap = opt.t_cap_bytes >= 0 ? opt.t_cap_bytes : kTCapBytes;
    int64_t chunk = cap / row_bytes / GemmCfg::kBM * GemmCfg::kBM;
    chunk = std::max<int64_t>(chunk, GemmCfg::kBM);
    // Grid limit of stage 1/2 (grid.y <= 65535 row blocks).
    chunk = std::min<int64_t>(chunk, int64_t(65535) * GemmCfg::kBM);
    if (chunk >= p.M) chunk = p.M;
    plan.m_chunk = chunk;
    plan.workspace = size_t(chunk) * size_t(row_bytes);
    plan.threads = GemmCfg::kThreads;
    return plan;
  }
  if (dtype == DType::kFloat32) {
    plan.path = Path::kSimt;
    plan.rc = SimtCfg::kRC;
    plan.n_rc = int((p.rank + SimtCfg::kRC - 1) / SimtCfg::kRC);
    plan.chunks_per_tile = int((p.tn + SimtCfg::kNB - 1) / SimtCfg::kNB);
    plan.col_chunks = used_cols * plan.chunks_per_tile;
    plan.row_blocks = (p.M + SimtCfg::kBM - 1) / SimtCfg::kBM;
    plan.splits = 1;
    plan.rows_per_split = int(used_rows);
    plan.threads = SimtCfg::kThreads;
    return plan;
  }
  // Rows per CTA by M: 16 (decode), 64, 128. CTAs an SM holds at once (registers / shared
  // memory, from -Xptxas -v): small ~4, medium ~2, large 1.
  int bm, per_sm;
  if (p.M <= 16) {
    plan.path = Path::kSmall, bm = SmallCfg::kBM, per_sm = SmallCfg::kMinCtasPerSm, plan.threads = SmallCfg::kThreads;
  } else if (p.M <= 256) {
    plan.path = Path::kMedium, bm = MediumCfg::kBM, per_sm = MediumCfg::kMinCtasPerSm, plan.threads = MediumCfg::kThreads;
  } else {
    plan.path = Path::kLarge, bm = LargeCfg::kBM, per_sm = LargeCfg::kMinCtasPerSm, plan.threads = LargeCfg::kThreads;
  }
  const int rp = int((p.rank + 15) / 16 * 16);
  plan.rc = rp <= 16 ? 16 : rp <= 32 ? 32 : 64;
  plan.n_rc = int((p.rank + plan.rc - 1) / plan.rc);
  plan.chunks_per_tile = int((p.tn + 127) / 128);  // NB = 128 in every 16-bit configuration
  plan.col_chunks = used_cols * plan.chunks_per_tile;
  plan.row_blocks = (p.M + bm - 1) / bm;
  // Too few CTAs for the SMs: split the tile rows (the sum over i) across CTAs, each writing fp32
  // partials that a second kernel adds up. Only when the output is small next to the factors, so
  // the partials' traffic (2 x splits x M x N x 4 bytes, mostly in L2) stays below the factors'.
  if (opt.ctas_per_sm > 0) per_sm = opt.ctas_per_sm;
  const int64_t ctas = plan.col_chunks * plan.row_blocks, target = int64_t(sms) * per_sm;
  int splits = 1;
  if (ctas < target && used_rows > 1) {
    const int64_t factor_bytes = (p.shared_u ? 1 : used_rows * used_cols) * p.tk * p.rank * 2 +
                                 (p.shared_v ? 1 : used_rows * used_cols) * p.rank * p.tn * 2;
    const int64_t per_split = 2 * p.M * p.N * 4;
    int64_t want = std::min<int64_t>((target + ctas - 1) / ctas, used_rows);
    while (want > 1 && want * per_split > std::max<int64_t>(2 * factor_bytes, 8 << 20)) --want;
    splits = int(want);
  }
  plan.rows_per_split = int((used_rows + splits - 1) / splits);
  plan.splits = int((used_rows + plan.rows_per_split - 1) / plan.rows_per_split);
  if (plan.splits > 1) plan.workspace = size_t(plan.splits) * size_t(p.M) * size_t(p.N) * sizeof(float);
  return plan;
}

// The decode kernel's three tensor maps (encoded per call: A's address changes, and an encode is
// a host-only call) and its launch. cudaErrorNotSupported: the driver declined a map, so the caller
// runs the fused kernel instead.
cudaError_t launch_decode_path(const TsvdProblem& p, DType dtype, const void* A, const void* U, const void* V,
                               const void* bias, void* Y, int sms, const TsvdOptions& opt, bool pdl,
                               cudaStream_t stream) {
  const DecodePlan d = make_decode_plan(p, sms, opt);
  const uint64_t K = uint64_t(p.K), tk = uint64_t(p.tk), tn = uint64_t(p.tn), r = uint64_t(p.rank);
  const uint64_t tiles = uint64_t(p.Tk * p.Tn);
  alignas(64) CUtensorMap mapA, mapU, mapV;
  const uint64_t a_dims[2] = {K, uint64_t(p.M)}, a_strides[2] = {0, K * 2};
  const uint32_t a_box[2] = {64, uint32_t(p.M)};
  // U as 128-byte lines: one tile's tk·r elements are tk·r/64 whole lines (tk % 64 == 0, r % 8 == 0).
  const uint64_t u_dims[2] = {64, (p.shared_u ? 1 : tiles) * tk * r / 64}, u_strides[2] = {0, 128};
  const uint32_t u_box[2] = {64, uint32_t(tk * r / 64)};
  const uint64_t v_dims[3] = {tn, r, tiles}, v_strides[3] = {0, tn * 2, r * tn * 2};
  const uint32_t v_box[3] = {64, uint32_t(d.kr), 1};
  if (!encode_tensor_map_16bit(&mapA, A, 2, a_dims, a_strides, a_box, 128) ||
      !encode_tensor_map_16bit(&mapU, U, 2, u_dims, u_strides, u_box, 128) ||
      !encode_tensor_map_16bit(&mapV, V, 3, v_dims, v_strides, v_box, 128))
    return cudaErrorNotSupported;
  DecodeArgs a{};
  a.bias = bias, a.Y = Y;
  a.M = int(p.M), a.K = int(p.K), a.N = int(p.N), a.tk = int(p.tk), a.tn = int(p.tn), a.Tn = int(p.Tn);
  a.used_rows = int(p.used_tile_rows());
  a.r = int(p.rank);
  a.splits = d.splits, a.stages = d.stages, a.consumers = d.consumers;
  a.a_bytes = d.a_bytes, a.u_bytes = d.u_bytes, a.slot_bytes = d.slot_bytes, a.tx_bytes = d.tx_bytes;
  a.shared_u = p.shared_u;
  a.stage_mask = opt.stage_mask;
  a.factors_early = p.factors_constant;
  const int cols = int(p.used_tile_cols());
  return dtype == DType::kFloat16 ? launch_decode_fp16(d, a, mapA, mapU, mapV, cols, pdl, stream)
                                  : launch_decode_bf16(d, a, mapA, mapU, mapV, cols, pdl, stream);
}

// The fused Hopper kernel's tensor maps (WgmmaMaps, tsvd_cuda_traits.h), encoded per call (A's
// address changes; a per-thread cache of encoded maps measured no different through ORT,
// docs/tsvd_cuda.md). False when the driver declines one.
static bool encode_wgmma_maps(const TsvdProblem& p, const void* A, const void* U, const void* V, WgmmaMaps* m) {
  const uint64_t K = uint64_t(p.K), tk = uint64_t(p.tk), tn = uint64_t(p.tn), r = uint64_t(p.rank);
  const uint64_t last = uint64_t(p.used_tile_rows() - 1), k_last = K - last * tk;
  const uint64_t u_tiles = p.shared_u ? 1 : uint64_t(p.Tk * p.Tn), row_tiles = p.shared_u ? 1 : uint64_t(p.Tn);
  const uint64_t a_dims[2] = {K, uint64_t(p.M)}, a_strides[2] = {0, K * 2};
  const uint32_t a_box[2] = {64, 128};
  const uint64_t u_dims[3] = {r, tk, u_tiles}, u_last_dims[3] = {r, k_last, row_tiles};
  const uint64_t u_strides[3] = {0, r * 2, tk * r * 2};
  const int kr = wgmma_rank_padding(p.rank);  // U rows of kr elements: one swizzle span each
  const uint32_t u_box[3] = {uint32_t(kr), 64, 1};
  const void* U_last = static_cast<const char*>(U) + (p.shared_u ? 0 : last * uint64_t(p.Tn) * tk * r * 2);
  const uint64_t v_dims[3] = {tn, r, uint64_t(p.Tk * p.Tn)}, v_strides[3] = {0, tn * 2, r * tn * 2};
  const uint32_t v_box[3] = {64, uint32_t(wgmma_rank_padding(p.rank)), 1};
  return encode_tensor_map_16bit(&m->a, A, 2, a_dims, a_strides, a_box, 128) &&
         encode_tensor_map_16bit(&m->u, U, 3, u_dims, u_strides, u_box, kr * 2) &&
         encode_tensor_map_16bit(&m->u_last, U_last, 3, u_last_dims, u_strides, u_box, kr * 2) &&
         encode_tensor_map_16bit(&m->v, V, 3, v_dims, v_strides, v_box, 128);
}

// Stage 1's work items (WgmmaGemmArgs): the segment length, in row blocks of 64, that finishes
// first on `sms` CTAs, counting a panel's U load as two more row blocks (it brings four times a row
// block's bytes of A at tk = 256, in rank-wide rows, before the item's first product).
static void stage1_items(WgmmaGemmArgs& a, int sms) {
  a.panels = a.rows * a.col_blocks;
  int64_t best = -1;
  for (int len = 1; len <= a.row_blocks; ++len) {
    const int64_t items = int64_t(a.panels) * ((a.row_blocks + len - 1) / len);
    const int64_t cost = (items + sms - 1) / sms * (len + 2);
    if (best < 0 || cost <= best) best = cost, a.seg_len = len;  // ties: the longer segment
  }
  a.items = int(int64_t(a.panels) * ((a.row_blocks + a.seg_len - 1) / a.seg_len));
}

// The two-stage Hopper GEMMs, one (stage 1, stage 2) pair of launches per row chunk of M. The
// factors' maps are encoded once, A's and T's per chunk. cudaErrorNotSupported: the driver declined
// a map before anything was launched, so the caller runs the fused kernel instead.
static cudaError_t launch_wgmma_gemm_path(const TsvdProblem& p, DType dtype, const Plan& plan, const void* A,
                                          const void* U, const void* V, const void* bias, void* Y, void* workspace,
                                          int sms, int stage_mask, cudaStream_t stream) {
  const uint64_t K = uint64_t(p.K), tk = uint64_t(p.tk), tn = uint64_t(p.tn), r = uint64_t(p.rank);
  const int kr = wgmma_rank_padding(p.rank);
  const uint64_t rows = uint64_t(p.used_tile_rows()), cols = uint64_t(p.used_tile_cols());
  const uint64_t Tn = uint64_t(p.Tn), last = rows - 1, k_last = K - last * tk;
  WgmmaGemmMaps m1{}, m2{};
  // U as [Tk][Tn][tk][r]: box kr x 64 k x (256 / kr) tiles x 1, one swizzle atom of kr * 2-byte rows
  // per tile; the last tile row through its own map.
  const uint64_t u_dims[4] = {r, tk, Tn, uint64_t(p.Tk)}, u_last_dims[4] = {r, k_last, Tn, 1};
  const uint64_t u_strides[4] = {0, r * 2, tk * r * 2, Tn * tk * r * 2};
  const uint32_t u_box[4] = {uint32_t(kr), 64, uint32_t(256 / kr), 1};
  const int u_swizzle = kr * 2;
  const void* U_last = static_cast<const char*>(U) + last * Tn * tk * r * 2;
  // V as [Tk][Tn][r][tn], the used tile rows: box 64 columns x kr x 1 tile x 64 / kr tile rows.
  const uint64_t v_dims[4] = {tn, r, Tn, rows}, v_strides[4] = {0, tn * 2, r * tn * 2, Tn * r * tn * 2};
  const uint32_t v_box[4] = {64, uint32_t(kr), 1, uint32_t(64 / kr)};
  if (!encode_tensor_map_16bit(&m1.b, U, 4, u_dims, u_strides, u_box, u_swizzle) ||
      !encode_tensor_map_16bit(&m1.b_last, U_last, 4, u_last_dims, u_strides, u_box, u_swizzle) ||
      !encode_tensor_map_16bit(&m2.b, V, 4, v_dims, v_strides, v_box, 128))
    return cudaErrorNotSupported;
  m2.b_last = m2.b;
  const uint64_t d2 = rows * uint64_t(kr), ld_t = cols * d2;
  WgmmaGemmArgs a1{}, a2{};
  a1.K = a2.K = int(p.K), a1.N = a2.N = int(p.N), a1.tk = a2.tk = int(p.tk), a1.tn = a2.tn = int(p.tn);
  a1.rows = a2.rows = int(rows), a1.cols = a2.cols = int(cols), a1.kr = a2.kr = kr;
  a1.out = workspace, a1.ld_out = int64_t(ld_t);
  a1.col_blocks = int((cols * kr + 255) / 256);
  a1.partial_last = k_last < tk;
  a2.bias = bias, a2.ld_out = p.N, a2.col_blocks = int(cols);
  a1.tma_store = 1;
  a2.tma_store = p.N % 8 == 0 && aligned16(Y);  // Y's rows 16-byte aligned: stores through a map
  // T as [M][cols][rows][kr] for stage 1's stores: box kr x 1 x 1 x 64 rows.
  const uint64_t ts_strides[4] = {0, uint64_t(kr) * 2, d2 * 2, ld_t * 2};
  const uint32_t ts_box[4] = {uint32_t(kr), 1, 1, 64};
  const uint32_t y_box[2] = {64, 64};
  for (int64_t m0 = 0; m0 < p.M; m0 += plan.m_chunk) {
    const int64_t mc = std::min<int64_t>(plan.m_chunk, p.M - m0);
    const void* A_c = static_cast<const char*>(A) + size_t(m0) * size_t(p.K) * 2;
    const uint64_t a_dims[2] = {K, uint64_t(mc)}, a_strides[2] = {0, K * 2};
    const uint32_t a_box[2] = {64, 64};  // stage 1's units of 64 rows
    const uint64_t t_dims[3] = {d2, cols, uint64_t(mc)}, t_strides[3] = {0, d2 * 2, ld_t * 2};
    const uint32_t t_box[3] = {64, 1, 128};
    const uint64_t ts_dims[4] = {uint64_t(kr), rows, cols, uint64_t(mc)};
    void* Y_c = static_cast<char*>(Y) + size_t(m0) * size_t(p.N) * 2;
    const uint64_t y_dims[2] = {uint64_t(p.N), uint64_t(mc)}, y_strides[2] = {0, uint64_t(p.N) * 2};
    if (!encode_tensor_map_16bit(&m1.a, A_c, 2, a_dims, a_strides, a_box, 128) ||
        !encode_tensor_map_16bit(&m1.out, workspace, 4, ts_dims, ts_strides, ts_box, kr * 2) ||
        !encode_tensor_map_16bit(&m2.a, workspace, 3, t_dims, t_strides, t_box, 128) ||
        (a2.tma_store && !encode_tensor_map_16bit(&m2.out, Y_c, 2, y_dims, y_strides, y_box, 128)))
      return m0 == 0 ? cudaErrorNotSupported : cudaErrorUnknown;  // later chunks differ from the first only in M
    const int64_t row_blocks = (mc + 127) / 128;
    a1.M = a2.M = mc;
    a1.row_blocks = int((mc + 63) / 64), a2.row_blocks = int(row_blocks);  // stage 1 in units of 64 rows
    a2.units = int(int64_t(a2.row_blocks) * a2.col_blocks);
    stage1_items(a1, sms);
    a2.out = Y_c;
    const int g1 = std::min(a1.items, sms), g2 = std::min(a2.units, sms);
    // stage_mask (benchmarks only: wrong results otherwise) times one stage alone.
    cudaError_t err = cudaSuccess;
    if (stage_mask & 1)
      err = dtype == DType::kFloat16 ? launch_wgmma_gemm_fp16(1, m1, a1, g1, stream, plan.pdl)
                                     : launch_wgmma_gemm_bf16(1, m1, a1, g1, stream, plan.pdl);
    if (err == cudaSuccess && (stage_mask & 2))
      err = dtype == DType::kFloat16 ? launch_wgmma_gemm_fp16(2, m2, a2, g2, stream, plan.pdl)
                                     : launch_wgmma_gemm_bf16(2, m2, a2, g2, stream, plan.pdl);
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}
}  // namespace tsvd

size_t tsvd_matmul_workspace_bytes_ex(const TsvdProblem& p, DType dtype, const tsvd::TsvdOptions& opt) {
  if (p.M == 0) return 0;
  const tsvd::DeviceInfo dev = tsvd::device_info();
  return tsvd::make_plan(p, dtype, dev.sms, opt, tsvd::runs_sm90a(dev), tsvd::runs_decode(dev)).workspace;
}

int tsvd_matmul_path(const TsvdProblem& p, DType dtype, const tsvd::TsvdOptions& opt) {
  const tsvd::DeviceInfo dev = tsvd::device_info();
  return int(tsvd::make_plan(p, dtype, dev.sms, opt, tsvd::runs_sm90a(dev), tsvd::runs_decode(dev)).path);
}

size_t tsvd_matmul_workspace_bytes(const TsvdProblem& p, DType dtype) {
  return tsvd_matmul_workspace_bytes_ex(p, dtype, tsvd::TsvdOptions{});
}

cudaError_t tsvd_matmul(const TsvdProblem& p, DType dtype, const void* A, const void* U, const void* V,
                        const void* bias, void* Y, void* workspace, cudaStream_t stream) {
  return tsvd_matmul_ex(p, dtype, A, U, V, bias, Y, workspace, stream, tsvd::TsvdOptions{});
}

cudaError_t tsvd_matmul_ex(const TsvdProblem& p, DType dtype, const void* A, const void* U, const void* V,
                           const void* bias, void* Y, void* workspace, cudaStream_t stream,
                           const tsvd::TsvdOptions& opt) {
  using namespace tsvd;
  if (p.M == 0) return cudaSuccess;
  const DeviceInfo dev = device_info();
  Plan plan = make_plan(p, dtype, dev.sms, opt, runs_sm90a(dev), runs_decode(dev));
  if ((plan.path == Path::kWgmma || plan.path == Path::kDecode || plan.path == Path::kWgmmaGemm) &&
      !(aligned16(A) && aligned16(U) && aligned16(V) && (plan.path != Path::kWgmmaGemm || aligned16(workspace))))
    plan = fused_fallback_plan(p, dtype, dev.sms, opt);
  plan.pdl = dev.cc_major >= 9;
  if (plan.workspace > 0 && workspace == nullptr) return cudaErrorInvalidValue;
  if (plan.path == Path::kDecode) {
    const cudaError_t err = launch_decode_path(p, dtype, A, U, V, bias, Y, dev.sms, opt, plan.pdl, stream);
    if (err != cudaErrorNotSupported) return err;
    plan = fused_fallback_plan(p, dtype, dev.sms, opt);  // the driver declined a tensor map
    plan.pdl = dev.cc_major >= 9;
  }
  if (plan.path == Path::kWgmmaGemm) {
    const cudaError_t err = launch_wgmma_gemm_path(p, dtype, plan, A, U, V, bias, Y, workspace, dev.sms, opt.stage_mask, stream);
    if (err != cudaErrorNotSupported) return err;
    plan = fused_fallback_plan(p, dtype, dev.sms, opt);  // the driver declined a tensor map
    plan.pdl = dev.cc_major >= 9;
  }
  WgmmaMaps maps;
  if (plan.path == Path::kWgmma && !encode_wgmma_maps(p, A, U, V, &maps)) {
    plan = fused_fallback_plan(p, dtype, dev.sms, opt);  // the driver declined a tensor map
    plan.pdl = dev.cc_major >= 9;
  }
  if (plan.path == Path::kTwoStage) {
    TwoStageArgs g = two_stage_geometry(p);
    const int64_t col_blocks1 = (int64_t(g.nJ) * g.r + GemmCfg::kBN - 1) / GemmCfg::kBN;
    if (col_blocks1 > 0x7fffffff || int64_t(g.used_cols) * g.chunks_per_tile > 0x7fffffff || g.nI > 65535)
      return cudaErrorInvalidConfiguration;
    g.U = U, g.V = V, g.bias = bias, g.Tbuf = workspace;
    const bool ws16 = aligned16(workspace);
    g.vec_a1 = aligned16(A) && p.K % 8 == 0 && (p.shared_v || p.tk % 8 == 0);
    g.vec_b1 = aligned16(U) && p.rank % 8 == 0;
    g.vec_a2 = ws16 && g.D2 % 8 == 0;
    g.vec_b2 = aligned16(V) && p.tn % 8 == 0;
    g.pair_t = g.pair_t && (reinterpret_cast<uintptr_t>(workspace) & 3) == 0;
    const size_t es = 2;
    for (int64_t m0 = 0; m0 < p.M; m0 += plan.m_chunk) {
      g.M = std::min<int64_t>(plan.m_chunk, p.M - m0);
      g.A = static_cast<const char*>(A) + size_t(m0) * size_t(p.K) * es;
      g.Y = static_cast<char*>(Y) + size_t(m0) * size_t(p.N) * es;
      // A row chunk's A pointer keeps 16-byte alignment when K % 8 == 0 (vec_a1 requires it).
      const int cfg = opt.gemm_cfg >= 0 ? opt.gemm_cfg : kGemmCfg;
      const bool pdl = plan.pdl && opt.pdl != 0;
      const cudaError_t err = dtype == DType::kFloat16 ? launch_two_stage_fp16(g, cfg, pdl, opt.stage_mask, stream)
                                                       : launch_two_stage_bf16(g, cfg, pdl, opt.stage_mask, stream);
      if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
  }
  if (plan.row_blocks > 65535 || plan.splits > 65535 || plan.col_chunks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  Args a{};
  a.A = A, a.U = U, a.V = V, a.bias = bias, a.Y = Y;
  a.partial = plan.splits > 1 ? static_cast<float*>(workspace) : nullptr;
  // Split sums: outside a graph capture they are added up in the same launch by the last CTA of
  // each output block (one launch less: at small M, ORT's per-node host work, launches included,
  // takes longer than the kernels). Inside a capture the host cost is paid once, so the finalize
  // kernel, which spreads the sums over every SM, is used. Also the finalize kernel when the
  // stream has no counters (first use inside a capture) or there are too many output blocks.
  // Off: on the H200 the in-kernel sum was slower both graph-timed (1-43% in all 24 rows at M <= 16,
  // docs/tsvd_cuda.md, run 3) and eagerly through ORT, where the saved launch was to pay off (the
  // same library built both ways, one run: slower in all 24 rows, by 1-65%, run 22). Opt in with
  // TsvdOptions::split_sum = 1. (fp32 never splits.)
  constexpr bool kInKernelSplitSumWhenEager = false;
  a.counters = nullptr;
  const bool in_kernel = opt.split_sum > 0 ||
                         (opt.split_sum < 0 && kInKernelSplitSumWhenEager && !stream_is_capturing(stream));
  if (a.partial != nullptr && dtype != DType::kFloat32 && in_kernel &&
      plan.col_chunks * plan.row_blocks <= kStreamCounters)
    a.counters = stream_counters(stream);
  a.M = p.M;
  a.K = int(p.K), a.N = int(p.N), a.tk = int(p.tk), a.tn = int(p.tn), a.r = int(p.rank);
  a.Tn = int(p.Tn);
  a.used_rows = int(p.used_tile_rows());
  a.used_cols = int(p.used_tile_cols());
  a.shared_u = p.shared_u, a.shared_v = p.shared_v;
  // 16-byte copies need 8-element strides and aligned bases (factor tiles then start aligned too).
  a.vec_a = aligned16(A) && p.K % 8 == 0 && p.tk % 8 == 0;
  a.vec_u = aligned16(U) && p.rank % 8 == 0;
  a.vec_v = aligned16(V) && p.tn % 8 == 0;
  a.chunks_per_tile = plan.chunks_per_tile;
  a.rows_per_split = plan.rows_per_split, a.splits = plan.splits;
  a.n_rc = plan.n_rc;

  cudaError_t err;
  if (dtype == DType::kFloat32) {
    const dim3 grid(unsigned(plan.col_chunks), unsigned(plan.row_blocks), 1);
    tsvd_simt_kernel<<<grid, SimtCfg::kThreads, 0, stream>>>(a);
    return cudaGetLastError();
  } else if (dtype != DType::kFloat16 && dtype != DType::kBFloat16) {
    return cudaErrorInvalidValue;
  } else if (plan.path == Path::kWgmma) {
    a.counters = nullptr;  // its splits are always added up by the finalize kernel
    err = dtype == DType::kFloat16 ? launch_wgmma_fp16(maps, a, stream, plan.pdl)
                                   : launch_wgmma_bf16(maps, a, stream, plan.pdl);
  } else {
    err = dtype == DType::kFloat16 ? launch_tc_fp16(plan, a, stream) : launch_tc_bf16(plan, a, stream);
  }
  if (err != cudaSuccess || plan.splits == 1 || a.counters != nullptr) return err;
  const int64_t total = p.M * p.N;
  const dim3 grid(unsigned(std::min<int64_t>((total + 255) / 256, 4096)));
  if (dtype == DType::kFloat16)
    return ptx::launch_kernel<tsvd_finalize_kernel<__half>>(grid, dim3(256), 0, plan.pdl, stream,
                                                       static_cast<const float*>(a.partial), plan.splits, p.M,
                                                       int(p.N), static_cast<const __half*>(bias),
                                                       static_cast<__half*>(Y));
  return ptx::launch_kernel<tsvd_finalize_kernel<__nv_bfloat16>>(grid, dim3(256), 0, plan.pdl, stream,
                                                            static_cast<const float*>(a.partial), plan.splits, p.M,
                                                            int(p.N), static_cast<const __nv_bfloat16*>(bias),
                                                            static_cast<__nv_bfloat16*>(Y));
}

}  // namespace ortops::cuda
