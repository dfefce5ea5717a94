#include "ort/custom_op.h"

namespace ortops::ort {

namespace {
// Reads one attribute through the C API; an error status (attribute absent) means nullopt.
template <typename T, typename Getter>
std::optional<T> read_attribute(Getter getter) {
  T value{};
  OrtStatus* status = getter(&value);
  if (status) {
    Ort::GetApi().ReleaseStatus(status);
    return std::nullopt;
  }
  return value;
}
}  // namespace

std::optional<int64_t> int_attribute(const OrtKernelInfo* info, const char* name) {
  return read_attribute<int64_t>([&](int64_t* v) { return Ort::GetApi().KernelInfoGetAttribute_int64(info, name, v); });
}

std::optional<float> float_attribute(const OrtKernelInfo* info, const char* name) {
  return read_attribute<float>([&](float* v) { return Ort::GetApi().KernelInfoGetAttribute_float(info, name, v); });
}

bool has_input(Ort::KernelContext& ctx, size_t i) {
  return i < ctx.GetInputCount() && static_cast<const OrtValue*>(ctx.GetInput(i)) != nullptr;
}

std::vector<int64_t> input_shape(Ort::KernelContext& ctx, size_t i) {
  return ctx.GetInput(i).GetTensorTypeAndShapeInfo().GetShape();
}

}  // namespace ortops::ort
