#include "ort/shape_inference.h"

#include <memory>

namespace ortops::ort {

namespace {
bool ok(OrtStatus* status) {
  if (!status) return true;
  Ort::GetApi().ReleaseStatus(status);
  return false;
}
}  // namespace

size_t ShapeInference::input_count() const {
  size_t n = 0;
  return ok(Ort::GetApi().ShapeInferContext_GetInputCount(raw_, &n)) ? n : 0;
}

std::optional<SymShape> ShapeInference::input(size_t i) const {
  const OrtApi& api = Ort::GetApi();
  if (i >= input_count()) return std::nullopt;
  OrtTensorTypeAndShapeInfo* info = nullptr;
  if (!ok(api.ShapeInferContext_GetInputTypeShape(raw_, i, &info)) || !info) return std::nullopt;
  size_t rank = 0;
  std::optional<SymShape> result;
  if (ok(api.GetDimensionsCount(info, &rank))) {
    std::vector<int64_t> dims(rank);
    std::vector<const char*> symbols(rank, nullptr);
    if (ok(api.GetDimensions(info, dims.data(), rank)) && ok(api.GetSymbolicDimensions(info, symbols.data(), rank))) {
      SymShape shape(rank);
      for (size_t d = 0; d < rank; ++d) {
        shape[d].value = dims[d];
        if (symbols[d]) shape[d].symbol = symbols[d];
        if (!shape[d].symbol.empty()) shape[d].value = -1;
      }
      result = std::move(shape);
    }
  }
  // `info` belongs to the context (ORT's own C++ wrapper releases, not frees, it).
  return result;
}

ONNXTensorElementDataType ShapeInference::element_type(size_t i) const {
  const OrtApi& api = Ort::GetApi();
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  if (i >= input_count()) return type;
  OrtTensorTypeAndShapeInfo* info = nullptr;
  if (!ok(api.ShapeInferContext_GetInputTypeShape(raw_, i, &info)) || !info) return type;
  if (!ok(api.GetTensorElementType(info, &type))) type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  return type;
}

std::optional<std::vector<int64_t>> ShapeInference::concrete_input(size_t i) const {
  auto shape = input(i);
  if (!shape) return std::nullopt;
  std::vector<int64_t> dims;
  for (const auto& d : *shape) {
    if (!d.known()) return std::nullopt;
    dims.push_back(d.value);
  }
  return dims;
}

std::optional<int64_t> ShapeInference::int_attribute(const char* name) const {
  const OrtApi& api = Ort::GetApi();
  const OrtOpAttr* attr = nullptr;
  if (!ok(api.ShapeInferContext_GetAttribute(raw_, name, &attr)) || !attr) return std::nullopt;
  int64_t value = 0;
  size_t written = 0;
  if (!ok(api.ReadOpAttr(attr, ORT_OP_ATTR_INT, &value, sizeof(value), &written))) return std::nullopt;
  return value;
}

void ShapeInference::set_output(size_t i, const SymShape& shape, ONNXTensorElementDataType type) const {
  const OrtApi& api = Ort::GetApi();
  OrtTensorTypeAndShapeInfo* info = nullptr;
  Ort::ThrowOnError(api.CreateTensorTypeAndShapeInfo(&info));
  std::unique_ptr<OrtTensorTypeAndShapeInfo, void (*)(OrtTensorTypeAndShapeInfo*)> guard(
      info, [](OrtTensorTypeAndShapeInfo* p) { Ort::GetApi().ReleaseTensorTypeAndShapeInfo(p); });
  std::vector<int64_t> dims;
  std::vector<const char*> symbols;
  for (const auto& d : shape) {
    dims.push_back(d.known() ? d.value : -1);
    symbols.push_back(d.known() ? "" : d.symbol.c_str());
  }
  Ort::ThrowOnError(api.SetTensorElementType(info, type));
  Ort::ThrowOnError(api.SetDimensions(info, dims.data(), dims.size()));
  Ort::ThrowOnError(api.SetSymbolicDimensions(info, symbols.data(), symbols.size()));
  Ort::ThrowOnError(api.ShapeInferContext_SetOutputTypeShape(raw_, i, info));
}

}  // namespace ortops::ort
