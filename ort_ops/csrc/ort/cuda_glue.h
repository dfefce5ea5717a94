// Glue shared by the CUDA kernels' Compute: element type of an input, scratch memory from ORT's
// allocator for the input's device, and CUDA errors turned into OpErrors naming the node.
#pragma once
#ifdef ORTOPS_WITH_CUDA
#include <cuda_runtime_api.h>

#include <string>

#include "common/dtype.h"
#include "common/op_error.h"
#include "ort/ort_api.h"

namespace ortops::ort {

inline DType dtype_of(ONNXTensorElementDataType type, const char* op, const std::string& node) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DType::kFloat32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return DType::kFloat16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return DType::kBFloat16;
    default: fail(op, " node '", node, "': the CUDA kernel takes float32, float16 or bfloat16 inputs");
  }
}
inline DType dtype_of(const Ort::ConstValue& v, const char* op, const std::string& node) {
  return dtype_of(v.GetTensorTypeAndShapeInfo().GetElementType(), op, node);
}

inline void check_cuda(cudaError_t err, const char* op, const std::string& node) {
  if (err != cudaSuccess)
    fail(op, " node '", node, "': CUDA error ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
}

// Device scratch from ORT's allocator (stream-ordered arena): no cudaMalloc inside Compute.
class Scratch {
 public:
  Scratch(Ort::KernelContext& ctx, const Ort::ConstValue& on_device_of, size_t bytes) {
    if (bytes == 0) return;
    Ort::ConstMemoryInfo memory_info = on_device_of.GetTensorMemoryInfo();
    OrtAllocator* alloc = ctx.GetAllocator(*static_cast<const OrtMemoryInfo*>(memory_info));
    if (!alloc) fail("ort-ops: ORT gave no allocator for the CUDA device");
    allocator_ = alloc;
    data_ = alloc->Alloc(alloc, bytes);
    if (!data_) {
      Ort::GetApi().ReleaseAllocator(alloc);  // the destructor won't run after a throw
      allocator_ = nullptr;
      fail("ort-ops: could not allocate ", bytes, " bytes of CUDA scratch");
    }
  }
  ~Scratch() {
    if (!allocator_) return;
    if (data_) allocator_->Free(allocator_, data_);
    Ort::GetApi().ReleaseAllocator(allocator_);  // KernelContext_GetAllocator hands out a reference
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* data() const { return data_; }

 private:
  OrtAllocator* allocator_ = nullptr;
  void* data_ = nullptr;
};

}  // namespace ortops::ort
#endif
