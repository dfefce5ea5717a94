"""float16 and bfloat16 models on the CPU EP: the kernels widen to float32, compute, and round the
result once, so the error is the output rounding of the type (input rounding is shared with the
reference, which gets the same rounded inputs)."""
import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import reference as ref

import ort_ops

TYPES = {"float16": (TensorProto.FLOAT16, np.float16, 2e-3),
         "bfloat16": (TensorProto.BFLOAT16, ml_dtypes.bfloat16, 1.6e-2)}


def typed_model(op_type, inputs, attrs, elem):
    graph_inputs = [helper.make_tensor_value_info(name, TensorProto.INT64 if a.dtype == np.int64 else elem, a.shape)
                    for name, a in inputs.items()]
    # The op's output is declared as the type T (ORT checks it), then cast to float32 for NumPy.
    nodes = [helper.make_node(op_type, list(inputs), ["y_t"], domain=ort_ops.DOMAIN, **attrs),
             helper.make_node("Cast", ["y_t"], ["Y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", graph_inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              value_info=[helper.make_tensor_value_info("y_t", elem, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(ort_ops.DOMAIN, 1)])
    model.ir_version = 10
    return model


def run(op_type, inputs, attrs, dtype):
    elem, np_type, _ = TYPES[dtype]
    typed = {k: (v if v.dtype == np.int64 else v.astype(np_type)) for k, v in inputs.items()}
    sess = ort_ops.InferenceSession(typed_model(op_type, typed, attrs, elem))
    # onnxruntime takes bfloat16 only as raw 16-bit words tagged with the ONNX type.
    feeds = {k: v if v.dtype != ml_dtypes.bfloat16 else
             ort.OrtValue.ortvalue_from_numpy_with_onnx_type(v.view(np.uint16), TensorProto.BFLOAT16)
             for k, v in typed.items()}
    y = sess.run_with_ort_values(None, {k: v if isinstance(v, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(v)
                                        for k, v in feeds.items()})[0]
    y = y.numpy()
    as64 = {k: v.astype(np.float64) if v.dtype != np.int64 else v for k, v in typed.items()}
    return y.astype(np.float64), as64


@pytest.mark.parametrize("dtype", list(TYPES))
def test_tsvd_half_types_on_cpu(rng, dtype):
    inputs = {"A": rng.standard_normal((5, 100)).astype(np.float32),
              "U": (rng.standard_normal((4, 3, 32, 6)) / 6).astype(np.float32),
              "V": (rng.standard_normal((4, 3, 6, 16)) / 3).astype(np.float32),
              "bias": rng.standard_normal(40).astype(np.float32)}
    y, x = run("TSVDMatMul", inputs, {"out_features": 40}, dtype)
    expected = ref.tsvd_matmul(x["A"], x["U"], x["V"], x["bias"], out_features=40)
    rel = np.linalg.norm(y - expected) / np.linalg.norm(expected)
    assert rel < TYPES[dtype][2], rel


@pytest.mark.parametrize("dtype", list(TYPES))
def test_attention_half_types_on_cpu(rng, dtype):
    B, S, H, D, w = 2, 45, 2, 8, 4
    mask = np.ones((B, S), np.int64)
    mask[0, [3, 30]] = 2
    mask[1, -5:] = 0
    inputs = {"query": rng.standard_normal((B, S, H * D)).astype(np.float32),
              "key": rng.standard_normal((B, S, H * D)).astype(np.float32),
              "value": rng.standard_normal((B, S, H * D)).astype(np.float32), "attention_mask": mask}
    y, x = run("MultigrainAttention", inputs, {"num_heads": H, "window": w}, dtype)
    expected = ref.multigrain_attention(x["query"], x["key"], x["value"], mask, H, w)
    rel = np.linalg.norm(y - expected) / np.linalg.norm(expected)
    assert rel < TYPES[dtype][2], rel
    assert np.all(y[1, -5:] == 0)
