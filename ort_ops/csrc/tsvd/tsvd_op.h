#pragma once
#include <string>

#include "ort/custom_op.h"

namespace ortops::ort {

class TsvdKernelBase {
 public:
  explicit TsvdKernelBase(const OrtKernelInfo* info);
  static void InferShape(ShapeInference& ctx, ONNXTensorElementDataType type);

 protected:
  std::string node_;
  int64_t out_features_;   // -1: absent (N = Tn * tn)
  bool factors_constant_;  // U and V are constant initializers (TsvdProblem::factors_constant)
};

// T: float, Ort::Float16_t or Ort::BFloat16_t (computed in float32, see ort/cpu_types.h).
template <typename T>
struct TsvdCpuKernel : TsvdKernelBase {
  using TsvdKernelBase::TsvdKernelBase;
  void Compute(OrtKernelContext* ctx) const;
};

#ifdef ORTOPS_WITH_CUDA
struct TsvdCudaKernel : TsvdKernelBase {
  using TsvdKernelBase::TsvdKernelBase;
  void Compute(OrtKernelContext* ctx) const;
};
#endif

// Inputs A, U, V, bias? and output Y, all of element type `type`.
inline std::vector<IoSpec> tsvd_inputs(ONNXTensorElementDataType type) {
  return {{type}, {type}, {type}, {type, /*optional=*/true}};
}

}  // namespace ortops::ort
