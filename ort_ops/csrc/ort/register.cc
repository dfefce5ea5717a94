// The library's one entry point. Every op of the library is in the list below: name, execution
// provider, input/output element types. ORT may call RegisterCustomOps many times (Triton does,
// once per model instance) and from many threads: the op objects are built once, under a mutex
// (function-local statics), and never changed after.
#include <memory>
#include <mutex>
#include <vector>

#include "multigrain/attention_op.h"
#include "ort/cpu_types.h"
#include "ort/custom_op.h"
#include "tsvd/tsvd_op.h"

namespace ortops::ort {
namespace {

using OpList = std::vector<std::unique_ptr<OrtCustomOp>>;

template <typename Kernel>
std::unique_ptr<OrtCustomOp> op(const char* name, const char* ep, std::vector<IoSpec> inputs,
                                ONNXTensorElementDataType out) {
  return std::make_unique<CustomOp<Kernel>>(name, ep, std::move(inputs), std::vector<IoSpec>{{out}});
}

template <typename T>
void add_cpu_ops(OpList& list) {
  constexpr auto t = onnx_type<T>();
  list.push_back(op<TsvdCpuKernel<T>>("TSVDMatMul", kCpuEp, tsvd_inputs(t), t));
  list.push_back(op<AttentionCpuKernel<T>>("MultigrainAttention", kCpuEp, attention_inputs(t), t));
}

const OpList& all_ops() {
  static const OpList ops = [] {
    constexpr auto kF32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    OpList list;
    add_cpu_ops<float>(list);
    add_cpu_ops<Ort::Float16_t>(list);
    add_cpu_ops<Ort::BFloat16_t>(list);
#ifdef ORTOPS_WITH_CUDA
    for (auto t : {kF32, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16}) {
      list.push_back(op<TsvdCudaKernel>("TSVDMatMul", kCudaEp, tsvd_inputs(t), t));
      list.push_back(op<AttentionCudaKernel>("MultigrainAttention", kCudaEp, attention_inputs(t), t));
    }
#endif
    return list;
  }();
  return ops;
}

std::mutex& init_mutex() {
  static std::mutex m;
  return m;
}

// One domain for the process, created on first use: session options keep a raw pointer to it, so
// it must outlive every session; it is never released (a few hundred bytes).
OrtCustomOpDomain* the_domain(const OrtApi* api) {
  static OrtCustomOpDomain* domain = nullptr;
  if (!domain) {
    OrtCustomOpDomain* d = nullptr;
    Ort::ThrowOnError(api->CreateCustomOpDomain(kDomain, &d));
    for (const auto& op : all_ops()) {
      if (OrtStatus* status = api->CustomOpDomain_Add(d, op.get())) {
        api->ReleaseCustomOpDomain(d);
        Ort::ThrowOnError(status);
      }
    }
    domain = d;
  }
  return domain;
}

#define ORTOPS_STR2(x) #x
#define ORTOPS_STRINGIFY(x) ORTOPS_STR2(x)

}  // namespace
}  // namespace ortops::ort

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  using namespace ortops::ort;
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (!api) {
    // The runtime is older than the headers this library was built with.
    const OrtApi* oldest = api_base->GetApi(1);
    return oldest->CreateStatus(ORT_FAIL,
                                "ort-ops: this onnxruntime is older than the ORT API the op library was built for "
                                "(ORT_API_VERSION " ORTOPS_STRINGIFY(ORT_API_VERSION) "); rebuild ort-ops against "
                                "this onnxruntime's headers (ONNXRUNTIME_ROOT)");
  }
  std::lock_guard<std::mutex> lock(init_mutex());
  Ort::InitApi(api);
  return guarded([&] { Ort::ThrowOnError(api->AddCustomOpDomain(options, the_domain(api))); });
}
