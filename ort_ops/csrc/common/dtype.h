#pragma once

namespace ortops {

// Element types the kernels know. CPU kernels take float32; CUDA kernels all three.
enum class DType { kFloat32, kFloat16, kBFloat16 };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
  }
  return "?";
}

}  // namespace ortops
