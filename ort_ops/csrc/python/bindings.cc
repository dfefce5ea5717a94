// ort_ops._cpu_kernels: the CPU kernels on NumPy arrays, without ONNX Runtime (tests, quick use).
// Same shape checks and messages as the ORT ops; an OpError becomes ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <optional>

#include "common/op_error.h"
#include "common/parallel.h"
#include "multigrain/attention_cpu.h"
#include "multigrain/attention_problem.h"
#include "tsvd/tsvd_cpu.h"
#include "tsvd/tsvd_problem.h"

namespace py = pybind11;
using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

std::vector<int64_t> shape_of(const py::array& a) { return std::vector<int64_t>(a.shape(), a.shape() + a.ndim()); }

F32 tsvd_matmul(const F32& A, const F32& U, const F32& V, const std::optional<F32>& bias,
                std::optional<int64_t> out_features, unsigned threads) {
  std::vector<int64_t> bias_shape;
  if (bias) bias_shape = shape_of(*bias);
  if (out_features && *out_features < 1)
    throw ortops::OpError("TSVDMatMul node '<numpy>': attribute out_features must be >= 1");
  const auto p = ortops::make_tsvd_problem("<numpy>", shape_of(A), shape_of(U), shape_of(V),
                                           bias ? &bias_shape : nullptr, out_features.value_or(-1));
  F32 Y(ortops::tsvd_output_shape(shape_of(A), p.N));
  if (p.M == 0) return Y;
  const float* b = bias ? bias->data() : nullptr;
  float* y = Y.mutable_data();
  py::gil_scoped_release release;
  ortops::cpu::tsvd_matmul(p, A.data(), U.data(), V.data(), b, y, ortops::thread_for(threads));
  return Y;
}

F32 multigrain_attention(const F32& query, const F32& key, const F32& value, const py::array& attention_mask,
                         const std::optional<F32>& global_query, const std::optional<F32>& global_key,
                         const std::optional<F32>& global_value, int64_t num_heads, int64_t window,
                         std::optional<float> scale, unsigned threads) {
  std::vector<int64_t> gshapes[3];
  const std::vector<int64_t>* gptrs[3] = {nullptr, nullptr, nullptr};
  const std::optional<F32>* globals[3] = {&global_query, &global_key, &global_value};
  for (int g = 0; g < 3; ++g)
    if (*globals[g]) {
      gshapes[g] = shape_of(**globals[g]);
      gptrs[g] = &gshapes[g];
    }
  const auto p = ortops::make_attention_problem("<numpy>", num_heads, window,
                                                scale.value_or(std::numeric_limits<float>::quiet_NaN()),
                                                shape_of(query), shape_of(key), shape_of(value),
                                                shape_of(attention_mask), gptrs);
  std::vector<int8_t> mask(static_cast<size_t>(p.batch * p.seq_len));
  if (attention_mask.dtype().is(py::dtype::of<int64_t>())) {
    auto m = py::array_t<int64_t, py::array::c_style>::ensure(attention_mask);
    ortops::normalize_mask("<numpy>", m.data(), p.batch, p.seq_len, mask.data());
  } else if (attention_mask.dtype().is(py::dtype::of<int32_t>())) {
    auto m = py::array_t<int32_t, py::array::c_style>::ensure(attention_mask);
    ortops::normalize_mask("<numpy>", m.data(), p.batch, p.seq_len, mask.data());
  } else {
    throw ortops::OpError("MultigrainAttention node '<numpy>': input 'attention_mask' must be int32 or int64");
  }
  F32 out(shape_of(query));
  if (p.batch * p.seq_len == 0) return out;
  const float* q = query.data();
  const float* k = key.data();
  const float* v = value.data();
  const float* gq = global_query ? global_query->data() : q;
  const float* gk = global_key ? global_key->data() : k;
  const float* gv = global_value ? global_value->data() : v;
  float* o = out.mutable_data();
  py::gil_scoped_release release;
  ortops::cpu::multigrain_attention(p, q, k, v, gq, gk, gv, mask.data(), o, ortops::thread_for(threads));
  return out;
}

}  // namespace

PYBIND11_MODULE(_cpu_kernels, m) {
  m.doc() = "ort-ops CPU kernels (float32) on NumPy arrays; see docs/ops.md for the contract";
  py::register_exception<ortops::OpError>(m, "OpError", PyExc_ValueError);
  m.def("tsvd_matmul", &tsvd_matmul, py::arg("A"), py::arg("U"), py::arg("V"), py::arg("bias") = py::none(),
        py::arg("out_features") = py::none(), py::arg("threads") = 0,
        "Y[..., N] = A[..., K] · W̃ (+ bias); W̃'s tile (i, j) = U[i, j] · V[i, j] (U [Tk, Tn, tk, r] or "
        "[1, 1, tk, r], V [Tk, Tn, r, tn] or [1, 1, r, tn]).");
  m.def("multigrain_attention", &multigrain_attention, py::arg("query"), py::arg("key"), py::arg("value"),
        py::arg("attention_mask"), py::arg("global_query") = py::none(), py::arg("global_key") = py::none(),
        py::arg("global_value") = py::none(), py::kw_only(), py::arg("num_heads"), py::arg("window"),
        py::arg("scale") = py::none(), py::arg("threads") = 0,
        "Longformer self-attention: query/key/value [B, S, H·D], attention_mask [B, S] int32/int64 with 0 = "
        "padding, 1 = local, 2 = global; window is one-sided (HF attention_window / 2).");
}
