"""One-node ONNX models of the two ops, built with onnx.helper, and a runner through ort_ops."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

import ort_ops

_ELEM = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, np.int32: TensorProto.INT32,
         np.int64: TensorProto.INT64}


def _value_info(name, array_or_dtype, shape):
    dtype = array_or_dtype.dtype.type if hasattr(array_or_dtype, "dtype") else array_or_dtype
    return helper.make_tensor_value_info(name, _ELEM[dtype], shape)


def single_node_model(op_type, inputs: dict, attributes: dict, node_name="node0", symbolic=True, out_dtype=np.float32):
    """A model with graph inputs named after `inputs` (None values become omitted optional
    inputs: empty names in the node's input list) and one output "Y".

    symbolic: declare every input dim as a symbol (so shapes are only checked at run time)."""
    node_inputs, graph_inputs = [], []
    for name, array in inputs.items():
        if array is None:
            node_inputs.append("")
            continue
        node_inputs.append(name)
        shape = [f"{name}_{d}" for d in range(array.ndim)] if symbolic else list(array.shape)
        graph_inputs.append(_value_info(name, array, shape))
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    node = helper.make_node(op_type, node_inputs, ["Y"], domain=ort_ops.DOMAIN, name=node_name, **attributes)
    graph = helper.make_graph([node], f"{op_type}_test", graph_inputs, [helper.make_tensor_value_info("Y", _ELEM[out_dtype], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(ort_ops.DOMAIN, 1)])
    model.ir_version = 10
    return model


def run_single_node(op_type, inputs: dict, attributes: dict, providers=("CPUExecutionProvider",), **kw):
    model = single_node_model(op_type, inputs, attributes, **kw)
    sess = ort_ops.InferenceSession(model, providers=list(providers))
    feeds = {k: v for k, v in inputs.items() if v is not None}
    return sess.run(None, feeds)[0]


def tsvd_inputs(A, U, V, bias=None):
    return {"A": A, "U": U, "V": V, "bias": bias}


def attention_inputs(q, k, v, mask, gq=None, gk=None, gv=None):
    return {"query": q, "key": k, "value": v, "attention_mask": mask, "global_query": gq, "global_key": gk,
            "global_value": gv}


def check_model(model: onnx.ModelProto):
    onnx.checker.check_model(model)
