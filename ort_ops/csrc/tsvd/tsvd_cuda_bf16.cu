// bfloat16 instances: the fused tensor-core kernel (3 configurations x 3 rank chunks) and
// the two stages of the large-M path, the Hopper kernel for large M and the decode kernel (M <= 16).
#include "tsvd/tsvd_cuda_gemm.cuh"
#include "tsvd/tsvd_cuda_tc.cuh"
#include "tsvd/tsvd_cuda_decode.cuh"
#include "tsvd/tsvd_cuda_wgmma.cuh"
#include "tsvd/tsvd_cuda_wgmma_gemm.cuh"

namespace ortops::cuda::tsvd {
cudaError_t launch_tc_bf16(const Plan& plan, const Args& a, cudaStream_t stream) {
  return launch_tc<__nv_bfloat16>(plan, a, stream);
}
cudaError_t launch_wgmma_bf16(const WgmmaMaps& maps, const Args& a, cudaStream_t stream, bool pdl) {
  return launch_wgmma<__nv_bfloat16>(maps, a, stream, pdl);
}
cudaError_t launch_wgmma_gemm_bf16(int stage, const WgmmaGemmMaps& maps, const WgmmaGemmArgs& a, int grid,
                                   cudaStream_t stream, bool pdl) {
  return launch_wgmma_gemm<__nv_bfloat16>(stage, maps, a, grid, stream, pdl);
}
cudaError_t launch_decode_bf16(const DecodePlan& plan, const DecodeArgs& a, const CUtensorMap& mapA,
                               const CUtensorMap& mapU, const CUtensorMap& mapV, int used_cols, bool pdl,
                               cudaStream_t stream) {
  return launch_decode<__nv_bfloat16>(plan, a, mapA, mapU, mapV, used_cols, pdl, stream);
}
cudaError_t launch_two_stage_bf16(const TwoStageArgs& a, int cfg, bool pdl, int stage_mask, cudaStream_t stream) {
  return launch_two_stage<__nv_bfloat16>(a, cfg, pdl, stage_mask, stream);
}
}  // namespace ortops::cuda::tsvd
