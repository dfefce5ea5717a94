#pragma once
#include <string>

#include "ort/custom_op.h"

namespace ortops::ort {

class AttentionKernelBase {
 public:
  explicit AttentionKernelBase(const OrtKernelInfo* info);
  static void InferShape(ShapeInference& ctx, ONNXTensorElementDataType type);

 protected:
  std::string node_;
  int64_t num_heads_ = 0;
  int64_t window_ = 0;
  float scale_attr_;  // NaN: absent (1/sqrt(D))
};

// T: float, Ort::Float16_t or Ort::BFloat16_t (computed in float32, see ort/cpu_types.h).
template <typename T>
struct AttentionCpuKernel : AttentionKernelBase {
  using AttentionKernelBase::AttentionKernelBase;
  void Compute(OrtKernelContext* ctx) const;
};

#ifdef ORTOPS_WITH_CUDA
struct AttentionCudaKernel : AttentionKernelBase {
  using AttentionKernelBase::AttentionKernelBase;
  void Compute(OrtKernelContext* ctx) const;
};
#endif

// query, key, value (T), attention_mask (int32/int64, checked at run time), then the optional
// global_query, global_key, global_value (T).
inline std::vector<IoSpec> attention_inputs(ONNXTensorElementDataType type) {
  return {{type}, {type}, {type}, {ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED},
          {type, true}, {type, true}, {type, true}};
}

}  // namespace ortops::ort
