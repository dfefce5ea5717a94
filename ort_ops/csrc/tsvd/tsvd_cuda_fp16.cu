// float16 instances: the fused tensor-core kernel (3 configurations x 3 rank chunks) and
// the two stages of the large-M path, the Hopper kernel for large M and the decode kernel (M <= 16).
#include <atomic>
#include <map>
#include <mutex>
#include <tuple>

#include "tsvd/tsvd_cuda_gemm.cuh"
#include "tsvd/tsvd_cuda_tc.cuh"
#include "tsvd/tsvd_cuda_decode.cuh"
#include "tsvd/tsvd_cuda_wgmma.cuh"
#include "tsvd/tsvd_cuda_wgmma_gemm.cuh"

namespace ortops::cuda::tsvd {
cudaError_t launch_tc_fp16(const Plan& plan, const Args& a, cudaStream_t stream) {
  return launch_tc<__half>(plan, a, stream);
}
cudaError_t launch_wgmma_fp16(const WgmmaMaps& maps, const Args& a, cudaStream_t stream, bool pdl) {
  return launch_wgmma<__half>(maps, a, stream, pdl);
}
cudaError_t launch_wgmma_gemm_fp16(int stage, const WgmmaGemmMaps& maps, const WgmmaGemmArgs& a, int grid,
                                   cudaStream_t stream, bool pdl) {
  return launch_wgmma_gemm<__half>(stage, maps, a, grid, stream, pdl);
}
cudaError_t launch_decode_fp16(const DecodePlan& plan, const DecodeArgs& a, const CUtensorMap& mapA,
                               const CUtensorMap& mapU, const CUtensorMap& mapV, int used_cols, bool pdl,
                               cudaStream_t stream) {
  return launch_decode<__half>(plan, a, mapA, mapU, mapV, used_cols, pdl, stream);
}

// The kernel the current device would run was compiled for sm_90 or later (an sm_80-only build,
// or an older device, gets the trap stub): asked once per device.
bool decode_kernel_loads() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> state[kMaxDevices];  // 0 unknown, 1 yes, 2 no
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (dev < kMaxDevices && state[dev].load(std::memory_order_relaxed) != 0) return state[dev].load() == 1;
  cudaFuncAttributes attr{};
  const bool ok = cudaFuncGetAttributes(&attr, tsvd_decode_kernel<__half, DecodeCfg<128, 16>>) == cudaSuccess &&
                  attr.binaryVersion >= 90;
  if (!ok) cudaGetLastError();
  if (dev < kMaxDevices) state[dev].store(ok ? 1 : 2);
  return ok;
}
namespace {
template <class C>
int cluster_capacity(size_t smem, int splits) {
  constexpr auto kKernel = tsvd_decode_kernel<__half, C>;
  if (ptx::allow_dynamic_smem<kKernel>(smem) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(splits), 1, 1);
  cfg.blockDim = dim3(C::kThreads);
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = unsigned(splits);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, kKernel, &cfg) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}
}  // namespace

// Cached per (device, register tile, rank padding, shared memory, cluster size): a driver query
// per new shape, not per call. bf16 instances have the same resources within a few registers.
int decode_cluster_capacity(int tn, int kr, size_t smem, int splits) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int, size_t, int>, int> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  const auto key = std::make_tuple(dev, tn > 128 ? 256 : 128, kr, smem, splits);
  {
    std::lock_guard<std::mutex> lock(mu);
    const auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  int n = 0;
  const bool wide = tn > 128;
  switch (kr) {
    case 16: n = wide ? cluster_capacity<DecodeCfg<256, 16>>(smem, splits) : cluster_capacity<DecodeCfg<128, 16>>(smem, splits); break;
    case 32: n = wide ? cluster_capacity<DecodeCfg<256, 32>>(smem, splits) : cluster_capacity<DecodeCfg<128, 32>>(smem, splits); break;
    default: n = wide ? cluster_capacity<DecodeCfg<256, 64>>(smem, splits) : cluster_capacity<DecodeCfg<128, 64>>(smem, splits); break;
  }
  std::lock_guard<std::mutex> lock(mu);
  cache[key] = n;
  return n;
}

cudaError_t launch_two_stage_fp16(const TwoStageArgs& a, int cfg, bool pdl, int stage_mask, cudaStream_t stream) {
  return launch_two_stage<__half>(a, cfg, pdl, stage_mask, stream);
}
}  // namespace ortops::cuda::tsvd
