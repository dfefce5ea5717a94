// float16 instances of the fused tensor-core kernel (3 configurations x 3 rank chunks).
#include "tsvd/tsvd_cuda_tc.cuh"

namespace ortops::cuda::tsvd {
cudaError_t launch_tc_fp16(const Plan& plan, const Args& a, cudaStream_t stream) {
  return launch_tc<__half>(plan, a, stream);
}
}  // namespace ortops::cuda::tsvd
