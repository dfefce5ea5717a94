// ORT glue of TSVDMatMul: inputs A, U, V, bias?; attribute out_features; CPU (float32) and CUDA
// (float32/float16/bfloat16) kernels. Shape checks live in tsvd_problem.cc, shared by both.
#include "tsvd/tsvd_op.h"

#include "ort/cpu_types.h"
#include "ort/ort_parallel.h"
#include "tsvd/tsvd_cpu.h"
#include "tsvd/tsvd_problem.h"
#ifdef ORTOPS_WITH_CUDA
#include "ort/cuda_glue.h"
#include "tsvd/tsvd_cuda.h"
#endif

namespace ortops::ort {

namespace {
enum Input : size_t { kA = 0, kU = 1, kV = 2, kBias = 3 };

int64_t read_out_features(const OrtKernelInfo* info, const std::string& node) {
  auto n = int_attribute(info, "out_features");
  if (!n) {
    // A FLOAT attribute (out_features=30.0) would otherwise be ignored silently (N = Tn * tn).
    if (auto f = float_attribute(info, "out_features"))
      fail("TSVDMatMul node '", node, "': attribute out_features must be an integer (INT) attribute; got a FLOAT ",
           "attribute (", *f, ")");
    return -1;
  }
  if (*n < 1) fail("TSVDMatMul node '", node, "': attribute out_features must be >= 1; got ", *n);
  return *n;
}

// a: A's shape, read once by the caller (each shape query costs ORT an allocation).
TsvdProblem problem_of(Ort::KernelContext& ctx, const std::vector<int64_t>& a, const std::string& node,
                       int64_t out_features) {
  const auto u = input_shape(ctx, kU), v = input_shape(ctx, kV);
  std::vector<int64_t> bias;
  const bool with_bias = has_input(ctx, kBias);
  if (with_bias) bias = input_shape(ctx, kBias);
  return make_tsvd_problem(node, a, u, v, with_bias ? &bias : nullptr, out_features);
}
}  // namespace

TsvdKernelBase::TsvdKernelBase(const OrtKernelInfo* info)
    : node_(node_name(info)),
      out_features_(read_out_features(info, node_)),
      factors_constant_(constant_input(info, kU) && constant_input(info, kV)) {}

void TsvdKernelBase::InferShape(ShapeInference& ctx, ONNXTensorElementDataType type) {
  auto a = ctx.input(kA);
  if (!a) return;  // rank unknown: nothing to say
  if (a->empty()) fail("TSVDMatMul: input 'A' must have rank >= 1 ([..., K]); got a scalar");
  const auto out_features = ctx.int_attribute("out_features");
  const auto ca = ctx.concrete_input(kA), cu = ctx.concrete_input(kU), cv = ctx.concrete_input(kV);
  const auto cbias = ctx.concrete_input(kBias);
  SymShape out = *a;
  if (ca && cu && cv) {
    // Every shape known: run the full check, so a bad graph fails when the session is created.
    out.back() = Dim{make_tsvd_problem("<shape inference>", *ca, *cu, *cv, cbias ? &*cbias : nullptr,
                                       out_features.value_or(-1)).N, ""};
  } else if (out_features) {
    out.back() = Dim{*out_features, ""};
  } else if (cu && cv && cu->size() == 4 && cv->size() == 4) {
    // N = Tn * tn: the grid width from whichever factor is not shared.
    out.back() = Dim{((*cu)[1] != 1 ? (*cu)[1] : (*cv)[1]) * (*cv)[3], ""};
  } else {
    out.back() = Dim{-1, "tsvd_out_features"};
  }
  ctx.set_output(0, out, type);
}

template <typename T>
void TsvdCpuKernel<T>::Compute(OrtKernelContext* raw) const {
  Ort::KernelContext ctx(raw);
  const auto a_shape = input_shape(ctx, kA);
  const TsvdProblem p = problem_of(ctx, a_shape, node_, out_features_);
  auto out = ctx.GetOutput(0, tsvd_output_shape(a_shape, p.N));
  if (p.M == 0) return;
  std::vector<float> a_buf, u_buf, v_buf, bias_buf, y_buf;
  const float* bias = p.has_bias ? widen<T>(ctx.GetInput(kBias), bias_buf) : nullptr;
  cpu::tsvd_matmul(p, widen<T>(ctx.GetInput(kA), a_buf), widen<T>(ctx.GetInput(kU), u_buf),
                   widen<T>(ctx.GetInput(kV), v_buf), bias, float_output<T>(out, y_buf), ort_parallel_for(raw));
  narrow<T>(y_buf, out);
}

template struct TsvdCpuKernel<float>;
template struct TsvdCpuKernel<Ort::Float16_t>;
template struct TsvdCpuKernel<Ort::BFloat16_t>;

#ifdef ORTOPS_WITH_CUDA
void TsvdCudaKernel::Compute(OrtKernelContext* raw) const {
  Ort::KernelContext ctx(raw);
  auto A = ctx.GetInput(kA);
  const auto a_info = A.GetTensorTypeAndShapeInfo();
  const auto a_shape = a_info.GetShape();
  TsvdProblem p = problem_of(ctx, a_shape, node_, out_features_);
  p.factors_constant = factors_constant_;
  auto out = ctx.GetOutput(0, tsvd_output_shape(a_shape, p.N));
  if (p.M == 0) return;
  const DType dtype = dtype_of(a_info.GetElementType(), "TSVDMatMul", node_);
  const void* bias = p.has_bias ? ctx.GetInput(kBias).GetTensorRawData() : nullptr;
  cudaStream_t stream = static_cast<cudaStream_t>(ctx.GetGPUComputeStream());
  Scratch scratch(ctx, A, cuda::tsvd_matmul_workspace_bytes(p, dtype));
  check_cuda(cuda::tsvd_matmul(p, dtype, A.GetTensorRawData(), ctx.GetInput(kU).GetTensorRawData(),
                               ctx.GetInput(kV).GetTensorRawData(), bias, out.GetTensorMutableRawData(),
                               scratch.data(), stream),
             "TSVDMatMul", node_);
}
#endif

}  // namespace ortops::ort
