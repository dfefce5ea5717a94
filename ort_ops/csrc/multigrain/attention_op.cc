// ORT glue of MultigrainAttention: inputs query, key, value, attention_mask, global_query?,
// global_key?, global_value?; attributes num_heads, window, scale?. CPU (float32) and CUDA
// (float32/float16/bfloat16) kernels; shape checks shared in attention_problem.cc.
#include "multigrain/attention_op.h"

#include <cmath>
#include <limits>

#include "multigrain/attention_cpu.h"
#include "multigrain/attention_problem.h"
#include "ort/cpu_types.h"
#include "ort/ort_parallel.h"
#ifdef ORTOPS_WITH_CUDA
#include "multigrain/attention_cuda.h"
#include "ort/cuda_glue.h"
#endif

namespace ortops::ort {

namespace {
enum Input : size_t { kQuery = 0, kKey, kValue, kMask, kGlobalQuery, kGlobalKey, kGlobalValue };

int64_t required_int(const OrtKernelInfo* info, const char* name, const std::string& node) {
  auto v = int_attribute(info, name);
  if (!v) {
    // Present with another type (e.g. num_heads=4.0 makes a FLOAT attribute): say so rather than
    // "required".
    if (auto f = float_attribute(info, name))
      fail("MultigrainAttention node '", node, "': attribute '", name, "' must be an integer (INT) attribute; got ",
           "a FLOAT attribute (", *f, ")");
    fail("MultigrainAttention node '", node, "': attribute '", name, "' is required");
  }
  return *v;
}

// The scale attribute, NaN when absent. An INT attribute (scale=1 written without a decimal point
// makes one) is taken for its value rather than silently ignored; NaN/inf are refused here, at
// kernel creation (NaN is the "absent" marker further on).
float scale_attribute(const OrtKernelInfo* info, const std::string& node) {
  float scale = std::numeric_limits<float>::quiet_NaN();
  if (auto f = float_attribute(info, "scale"))
    scale = *f;
  else if (auto i = int_attribute(info, "scale"))
    scale = static_cast<float>(*i);
  else
    return scale;
  if (!std::isfinite(scale))
    fail("MultigrainAttention node '", node, "': attribute scale must be finite; got ", scale);
  return scale;
}

AttentionProblem problem_of(Ort::KernelContext& ctx, const std::string& node, int64_t heads, int64_t window,
                            float scale) {
  std::vector<int64_t> globals[3];
  const std::vector<int64_t>* global_ptrs[3] = {nullptr, nullptr, nullptr};
  for (int g = 0; g < 3; ++g)
    if (has_input(ctx, kGlobalQuery + g)) {
      globals[g] = input_shape(ctx, kGlobalQuery + g);
      global_ptrs[g] = &globals[g];
    }
  return make_attention_problem(node, heads, window, scale, input_shape(ctx, kQuery), input_shape(ctx, kKey),
                                input_shape(ctx, kValue), input_shape(ctx, kMask), global_ptrs);
}

const char* onnx_type_name(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return "uint16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return "int16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return "uint32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return "uint64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
    default: return "another";
  }
}

bool mask_is_int64(const Ort::ConstValue& mask, const std::string& node) {
  const auto type = mask.GetTensorTypeAndShapeInfo().GetElementType();
  if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) return true;
  if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32) return false;
  fail("MultigrainAttention node '", node, "': input 'attention_mask' must be int32 or int64 (0 padding, 1 local, ",
       "2 global); got ", onnx_type_name(type), " (ONNX element type ", static_cast<int>(type), ")");
}
}  // namespace

AttentionKernelBase::AttentionKernelBase(const OrtKernelInfo* info)
    : node_(node_name(info)),
      num_heads_(required_int(info, "num_heads", node_)),
      window_(required_int(info, "window", node_)),
      scale_attr_(scale_attribute(info, node_)) {
  check_attention_attributes(node_, num_heads_, window_);
}

void AttentionKernelBase::InferShape(ShapeInference& ctx, ONNXTensorElementDataType type) {
  auto q = ctx.input(kQuery);
  if (!q) return;
  if (q->size() != 3) fail("MultigrainAttention: input 'query' must have rank 3 ([B, S, H*D]); got rank ", q->size());
  // Every shape known: run the full check, so a bad graph fails when the session is created.
  const auto heads = ctx.int_attribute("num_heads"), window = ctx.int_attribute("window");
  const auto cq = ctx.concrete_input(kQuery), ck = ctx.concrete_input(kKey), cv = ctx.concrete_input(kValue);
  const auto cmask = ctx.concrete_input(kMask);
  if (heads && window && cq && ck && cv && cmask) {
    std::optional<std::vector<int64_t>> globals[3];
    const std::vector<int64_t>* global_ptrs[3] = {nullptr, nullptr, nullptr};
    for (int g = 0; g < 3; ++g)
      if ((globals[g] = ctx.concrete_input(kGlobalQuery + g))) global_ptrs[g] = &*globals[g];
    make_attention_problem("<shape inference>", *heads, *window, std::numeric_limits<float>::quiet_NaN(), *cq, *ck,
                           *cv, *cmask, global_ptrs);
  }
  ctx.set_output(0, *q, type);
}

template <typename T>
void AttentionCpuKernel<T>::Compute(OrtKernelContext* raw) const {
  Ort::KernelContext ctx(raw);
  const AttentionProblem p = problem_of(ctx, node_, num_heads_, window_, scale_attr_);
  auto mask_value = ctx.GetInput(kMask);
  std::vector<int8_t> mask(static_cast<size_t>(p.batch * p.seq_len));
  if (mask_is_int64(mask_value, node_))
    normalize_mask(node_, mask_value.GetTensorData<int64_t>(), p.batch, p.seq_len, mask.data());
  else
    normalize_mask(node_, mask_value.GetTensorData<int32_t>(), p.batch, p.seq_len, mask.data());
  auto out = ctx.GetOutput(0, input_shape(ctx, kQuery));
  if (p.batch * p.seq_len == 0) return;
  std::vector<float> bufs[6], out_buf;
  const float* q = widen<T>(ctx.GetInput(kQuery), bufs[0]);
  const float* k = widen<T>(ctx.GetInput(kKey), bufs[1]);
  const float* v = widen<T>(ctx.GetInput(kValue), bufs[2]);
  const float* gq = p.has_global_query ? widen<T>(ctx.GetInput(kGlobalQuery), bufs[3]) : q;
  const float* gk = p.has_global_key ? widen<T>(ctx.GetInput(kGlobalKey), bufs[4]) : k;
  const float* gv = p.has_global_value ? widen<T>(ctx.GetInput(kGlobalValue), bufs[5]) : v;
  cpu::multigrain_attention(p, q, k, v, gq, gk, gv, mask.data(), float_output<T>(out, out_buf),
                            ort_parallel_for(raw));
  narrow<T>(out_buf, out);
}

template struct AttentionCpuKernel<float>;
template struct AttentionCpuKernel<Ort::Float16_t>;
template struct AttentionCpuKernel<Ort::BFloat16_t>;

#ifdef ORTOPS_WITH_CUDA
void AttentionCudaKernel::Compute(OrtKernelContext* raw) const {
  Ort::KernelContext ctx(raw);
  const AttentionProblem p = problem_of(ctx, node_, num_heads_, window_, scale_attr_);
  auto query = ctx.GetInput(kQuery);
  const bool mask64 = mask_is_int64(ctx.GetInput(kMask), node_);
  auto out = ctx.GetOutput(0, input_shape(ctx, kQuery));
  if (p.batch * p.seq_len == 0) return;
  const DType dtype = dtype_of(query, "MultigrainAttention", node_);
  if (!cuda::multigrain_attention_head_dim_supported(p.head_dim))
    fail("MultigrainAttention node '", node_, "': the CUDA kernel takes head sizes 8..128 in steps of 8; got ",
         "D = ", p.head_dim, " (hidden ", p.hidden(), " / num_heads ", p.num_heads, "). The CPU EP takes any D.");
  const void* q = query.GetTensorRawData();
  const void* k = ctx.GetInput(kKey).GetTensorRawData();
  const void* v = ctx.GetInput(kValue).GetTensorRawData();
  const void* gq = p.has_global_query ? ctx.GetInput(kGlobalQuery).GetTensorRawData() : q;
  const void* gk = p.has_global_key ? ctx.GetInput(kGlobalKey).GetTensorRawData() : k;
  const void* gv = p.has_global_value ? ctx.GetInput(kGlobalValue).GetTensorRawData() : v;
  cudaStream_t stream = static_cast<cudaStream_t>(ctx.GetGPUComputeStream());
  Scratch scratch(ctx, query, cuda::multigrain_attention_workspace_bytes(p, dtype));
  check_cuda(cuda::multigrain_attention(p, dtype, q, k, v, gq, gk, gv, ctx.GetInput(kMask).GetTensorRawData(), mask64,
                                        out.GetTensorMutableRawData(), scratch.data(), stream),
             "MultigrainAttention", node_);
}
#endif

}  // namespace ortops::ort
