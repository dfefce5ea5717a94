// Adapter from ONNX Runtime's C struct OrtCustomOp to a small kernel class. Every entry point
// returns an OrtStatus (CreateKernelV2, KernelComputeV2, InferOutputShapeFn): no C++ exception
// ever crosses the C ABI into ORT, so bad input becomes an ORT error, never a crash.
//
// A Kernel class provides:
//   explicit Kernel(const OrtKernelInfo* info);     reads and checks attributes (throws OpError)
//   void Compute(OrtKernelContext* ctx) const;      checks inputs, runs; shared by concurrent Runs
//   static void InferShape(ShapeInference& ctx, ONNXTensorElementDataType output_type);
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/op_error.h"
#include "ort/ort_api.h"
#include "ort/shape_inference.h"

namespace ortops::ort {

inline constexpr const char* kDomain = "com.ortops";
inline constexpr const char* kCpuEp = "CPUExecutionProvider";
inline constexpr const char* kCudaEp = "CUDAExecutionProvider";

struct IoSpec {
  ONNXTensorElementDataType type;  // UNDEFINED: any type, checked by the kernel
  bool optional = false;
};

// Runs f, turning any exception into a failed OrtStatus.
template <typename F>
OrtStatusPtr guarded(F&& f) noexcept {
  const OrtApi& api = Ort::GetApi();
  try {
    f();
    return nullptr;
  } catch (const OpError& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, e.what());
  } catch (const Ort::Exception& e) {
    return api.CreateStatus(e.GetOrtErrorCode(), e.what());
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_RUNTIME_EXCEPTION, e.what());
  } catch (...) {
    return api.CreateStatus(ORT_RUNTIME_EXCEPTION, "ort-ops: unknown C++ exception");
  }
}

template <typename Kernel>
struct CustomOp : OrtCustomOp {
  CustomOp(const char* name, const char* ep, std::vector<IoSpec> inputs, std::vector<IoSpec> outputs)
      : OrtCustomOp{}, name_(name), ep_(ep), inputs_(std::move(inputs)), outputs_(std::move(outputs)) {
    version = ORT_API_VERSION;
    GetName = [](const OrtCustomOp* op) { return self(op)->name_.c_str(); };
    GetExecutionProviderType = [](const OrtCustomOp* op) { return self(op)->ep_.c_str(); };
    GetInputTypeCount = [](const OrtCustomOp* op) { return self(op)->inputs_.size(); };
    GetInputType = [](const OrtCustomOp* op, size_t i) { return self(op)->inputs_[i].type; };
    GetOutputTypeCount = [](const OrtCustomOp* op) { return self(op)->outputs_.size(); };
    GetOutputType = [](const OrtCustomOp* op, size_t i) { return self(op)->outputs_[i].type; };
    GetInputCharacteristic = [](const OrtCustomOp* op, size_t i) {
      return self(op)->inputs_[i].optional ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
    };
    GetOutputCharacteristic = [](const OrtCustomOp* op, size_t i) {
      return self(op)->outputs_[i].optional ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
    };
    GetInputMemoryType = [](const OrtCustomOp*, size_t) { return OrtMemTypeDefault; };
    GetVariadicInputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicInputHomogeneity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputHomogeneity = [](const OrtCustomOp*) { return 1; };
    CreateKernel = nullptr;
    KernelCompute = nullptr;
    CreateKernelV2 = [](const OrtCustomOp*, const OrtApi*, const OrtKernelInfo* info, void** kernel) {
      *kernel = nullptr;
      return guarded([&] { *kernel = new Kernel(info); });
    };
    KernelComputeV2 = [](void* kernel, OrtKernelContext* ctx) {
      return guarded([&] { static_cast<const Kernel*>(kernel)->Compute(ctx); });
    };
    KernelDestroy = [](void* kernel) { delete static_cast<Kernel*>(kernel); };
    InferOutputShapeFn = [](const OrtCustomOp* op, OrtShapeInferContext* raw) {
      return guarded([&] {
        // ORT calls the first registered op of this name for every node, whatever its types, so
        // the output type is read from input 0 (all ops here output the type of input 0).
        ShapeInference ctx(raw);
        ONNXTensorElementDataType type = ctx.element_type(0);
        if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED) type = self(op)->outputs_[0].type;
        Kernel::InferShape(ctx, type);
      });
    };
    GetStartVersion = [](const OrtCustomOp*) { return 1; };
    GetEndVersion = [](const OrtCustomOp*) { return 1; };
  }

 private:
  static const CustomOp* self(const OrtCustomOp* op) { return static_cast<const CustomOp*>(op); }
  std::string name_, ep_;
  std::vector<IoSpec> inputs_, outputs_;
};

// ---- small helpers shared by the kernels' glue -------------------------------------------------

inline std::string node_name(const OrtKernelInfo* info) {
  std::string name = Ort::ConstKernelInfo(info).GetNodeName();
  return name.empty() ? "<unnamed>" : name;
}

// Input i is a constant initializer of the graph (its value cannot change between runs); false
// when ORT cannot say.
inline bool constant_input(const OrtKernelInfo* info, size_t i) {
  int is_constant = 0;
  try {
    Ort::ConstKernelInfo(info).GetTensorConstantInput(i, &is_constant);
  } catch (const Ort::Exception&) {
    return false;
  }
  return is_constant != 0;
}

// An optional scalar attribute: nullopt when the node does not carry it.
std::optional<int64_t> int_attribute(const OrtKernelInfo* info, const char* name);
std::optional<float> float_attribute(const OrtKernelInfo* info, const char* name);

// Shape of input i (which must be present).
std::vector<int64_t> input_shape(Ort::KernelContext& ctx, size_t i);
bool has_input(Ort::KernelContext& ctx, size_t i);

}  // namespace ortops::ort
