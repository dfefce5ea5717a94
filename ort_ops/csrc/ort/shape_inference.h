// Output-shape inference for ORT's graph planning, over the C API so that an absent optional
// input (also one in the middle of the list) or an input of unknown shape is simply "unknown"
// rather than an error.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ort/ort_api.h"

namespace ortops::ort {

struct Dim {
  int64_t value = -1;  // >= 0 when known
  std::string symbol;  // the symbolic name when value < 0 (may be empty: unknown)
  bool known() const { return value >= 0; }
};
using SymShape = std::vector<Dim>;

class ShapeInference {
 public:
  explicit ShapeInference(OrtShapeInferContext* raw) : raw_(raw) {}
  size_t input_count() const;
  // nullopt when the input is absent or its rank is unknown.
  std::optional<SymShape> input(size_t i) const;
  // Concrete dims, or nullopt when absent or any dim is not a number.
  std::optional<std::vector<int64_t>> concrete_input(size_t i) const;
  // Element type of input i (UNDEFINED when absent or unknown).
  ONNXTensorElementDataType element_type(size_t i) const;
  std::optional<int64_t> int_attribute(const char* name) const;
  void set_output(size_t i, const SymShape& shape, ONNXTensorElementDataType type) const;

 private:
  OrtShapeInferContext* raw_;
};

}  // namespace ortops::ort
