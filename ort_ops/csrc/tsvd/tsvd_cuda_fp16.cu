// float16 instances: the fused tensor-core kernel (3 configurations x 3 rank chunks) and
// the two stages of the large-M path, the Hopper kernel for large M and the decode kernel (M <= 16).
#include <atomic>

#include "tsvd/tsvd_cuda_gemm.cuh"
#include "tsvd/tsvd_cuda_tc.cuh"
#include "tsvd/tsvd_cuda_decode.cuh"
#include "tsvd/tsvd_cuda_wgmma.cuh"

namespace ortops::cuda::tsvd {
cudaError_t launch_tc_fp16(const Plan& plan, const Args& a, cudaStream_t stream) {
  return launch_tc<__half>(plan, a, stream);
}
cudaError_t launch_wgmma_fp16(const Args& a, cudaStream_t stream, bool pdl) {
  return launch_wgmma<__half>(a, stream, pdl);
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
cudaError_t launch_two_stage_fp16(const TwoStageArgs& a, int cfg, bool pdl, int stage_mask, cudaStream_t stream) {
  return launch_two_stage<__half>(a, cfg, pdl, stage_mask, stream);
}
}  // namespace ortops::cuda::tsvd
