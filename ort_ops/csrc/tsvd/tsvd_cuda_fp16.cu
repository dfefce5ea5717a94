// float16 instances: the fused tensor-core kernel (3 configurations x 3 rank chunks) and
// the two stages of the large-M path.
#include "tsvd/tsvd_cuda_gemm.cuh"
#include "tsvd/tsvd_cuda_tc.cuh"
#include "tsvd/tsvd_cuda_wgmma.cuh"

namespace ortops::cuda::tsvd {
cudaError_t launch_tc_fp16(const Plan& plan, const Args& a, cudaStream_t stream) {
  return launch_tc<__half>(plan, a, stream);
}
cudaError_t launch_wgmma_fp16(const Args& a, cudaStream_t stream, bool pdl) {
  return launch_wgmma<__half>(a, stream, pdl);
}
cudaError_t launch_two_stage_fp16(const TwoStageArgs& a, int cfg, bool pdl, int stage_mask, cudaStream_t stream) {
  return launch_two_stage<__half>(a, cfg, pdl, stage_mask, stream);
}
}  // namespace ortops::cuda::tsvd
