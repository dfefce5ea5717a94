// bfloat16 instances of the fused tensor-core kernel (3 configurations x 3 rank chunks).
#include "tsvd/tsvd_cuda_tc.cuh"

namespace ortops::cuda::tsvd {
cudaError_t launch_tc_bf16(const Plan& plan, const Args& a, cudaStream_t stream) {
  return launch_tc<__nv_bfloat16>(plan, a, stream);
}
}  // namespace ortops::cuda::tsvd
