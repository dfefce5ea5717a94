// The CPU kernels compute in float32. float16 / bfloat16 tensors are widened on the way in and
// rounded once on the way out, so fp16/bf16 models also run on the CPU (every exported model runs
// everywhere), at the cost of a conversion pass over the inputs.
#pragma once
#include <type_traits>
#include <vector>

#include "ort/ort_api.h"

namespace ortops::ort {

template <typename T>
constexpr ONNXTensorElementDataType onnx_type() {
  if constexpr (std::is_same_v<T, float>) return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if constexpr (std::is_same_v<T, Ort::Float16_t>) return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  if constexpr (std::is_same_v<T, Ort::BFloat16_t>) return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
}

// The tensor's data as float32: the tensor itself for float, else a widened copy in `buf`.
template <typename T>
const float* widen(const Ort::ConstValue& v, std::vector<float>& buf) {
  const T* data = v.GetTensorData<T>();
  if constexpr (std::is_same_v<T, float>) {
    return data;
  } else {
    const size_t n = v.GetTensorTypeAndShapeInfo().GetElementCount();
    buf.resize(n);
    for (size_t i = 0; i < n; ++i) buf[i] = data[i].ToFloat();
    return buf.data();
  }
}

// Where the kernel writes its float32 result: the output itself for float, else `buf`, which
// narrow() then rounds into the output.
template <typename T>
float* float_output(Ort::UnownedValue& out, std::vector<float>& buf) {
  if constexpr (std::is_same_v<T, float>) {
    return out.GetTensorMutableData<float>();
  } else {
    buf.resize(out.GetTensorTypeAndShapeInfo().GetElementCount());
    return buf.data();
  }
}

template <typename T>
void narrow(const std::vector<float>& buf, Ort::UnownedValue& out) {
  if constexpr (!std::is_same_v<T, float>) {
    T* dst = out.GetTensorMutableData<T>();
    for (size_t i = 0; i < buf.size(); ++i) dst[i] = T(buf[i]);
  }
}

}  // namespace ortops::ort
