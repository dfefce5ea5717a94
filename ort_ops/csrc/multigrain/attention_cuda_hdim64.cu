// Tensor-core instances of MultigrainAttention for head dims up to 64 (fp16, bf16).
#include "multigrain/attention_cuda_flash.cuh"

namespace ortops::cuda::multigrain {
template cudaError_t launch_flash<DType::kFloat16, 64>(const FlashParams&, bool, cudaStream_t);
template cudaError_t launch_flash<DType::kBFloat16, 64>(const FlashParams&, bool, cudaStream_t);
}  // namespace ortops::cuda::multigrain
