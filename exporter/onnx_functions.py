"""ONNX FunctionProto bodies (standard ops only) for both custom ops.

Appended to an exported model, they let stock onnxruntime run it without the op library (dense,
O(S²) attention, so slower); when the library is registered, ORT picks the library's kernel for
the node instead of inlining the body. The bodies compute the function of the ops spec with the
attributes the exporter always writes explicitly (`out_features`, `num_heads`, `window`,
`scale`): an ONNX function cannot derive a default such as 1/√D from an input's shape.
"""

from __future__ import annotations

import onnx
from onnxscript import FLOAT, script
from onnxscript import opset18 as op
from onnxscript.values import Opset

from . import schemas

_ORTOPS = Opset(schemas.DOMAIN, schemas.DOMAIN_VERSION)


@script(_ORTOPS, default_opset=op)
def TSVDMatMul(A, U, V, bias, out_features: int):
    # W̃ = tiles U·V (Tk, Tn, tk, tn) laid out as (Tk·tk, Tn·tn), cut to (K, N); Gemm's optional C
    # takes the optional bias, so a node without bias inlines to a Gemm without C.
    k_dim = op.Shape(A, start=-1)
    n_dim = op.Reshape(op.Constant(value_int=out_features), op.Constant(value_ints=[1]))
    tiles = op.MatMul(U, V)
    grid_k = op.Max(op.Shape(U, start=0, end=1), op.Shape(V, start=0, end=1))
    grid_n = op.Max(op.Shape(U, start=1, end=2), op.Shape(V, start=1, end=2))
    tk = op.Shape(U, start=2, end=3)
    tn = op.Shape(V, start=3, end=4)
    # a shared factor pair ([1, 1, ., .] both) covers the grid that K and N need
    grid_k = op.Max(grid_k, op.Div(op.Sub(op.Add(k_dim, tk), op.Constant(value_ints=[1])), tk))
    grid_n = op.Max(grid_n, op.Div(op.Sub(op.Add(n_dim, tn), op.Constant(value_ints=[1])), tn))
    tiles = op.Expand(tiles, op.Concat(grid_k, grid_n, tk, tn, axis=0))
    full = op.Reshape(op.Transpose(tiles, perm=[0, 2, 1, 3]), op.Concat(op.Mul(grid_k, tk), op.Mul(grid_n, tn), axis=0))
    zeros = op.Constant(value_ints=[0, 0])
    weight = op.Slice(full, zeros, op.Concat(k_dim, n_dim, axis=0))
    rows = op.Reshape(A, op.Concat(op.Constant(value_ints=[-1]), k_dim, axis=0))
    y = op.Gemm(rows, op.CastLike(weight, A), bias)
    return op.Reshape(y, op.Concat(op.Shape(A, start=0, end=-1), n_dim, axis=0))


@script(_ORTOPS, default_opset=op)
def MultigrainAttention(query, key, value, attention_mask, global_query, global_key, global_value,
                        num_heads: int, window: int, scale: float):
    # (B, S, H·D) -> (B, H, S, D) in float32 for every projection
    heads = op.Concat(op.Constant(value_ints=[0, 0]),
                      op.Reshape(op.Constant(value_int=num_heads), op.Constant(value_ints=[1])),
                      op.Constant(value_ints=[-1]), axis=0)
    q = op.Transpose(op.Reshape(op.Cast(query, to=FLOAT.dtype), heads), perm=[0, 2, 1, 3])
    k = op.Transpose(op.Reshape(op.Cast(key, to=FLOAT.dtype), heads), perm=[0, 2, 3, 1])
    v = op.Transpose(op.Reshape(op.Cast(value, to=FLOAT.dtype), heads), perm=[0, 2, 1, 3])
    gq = op.Transpose(op.Reshape(op.Cast(global_query, to=FLOAT.dtype), heads), perm=[0, 2, 1, 3])
    gk = op.Transpose(op.Reshape(op.Cast(global_key, to=FLOAT.dtype), heads), perm=[0, 2, 3, 1])
    gv = op.Transpose(op.Reshape(op.Cast(global_value, to=FLOAT.dtype), heads), perm=[0, 2, 1, 3])
    scale_value = op.Constant(value_float=scale)
    lowest = op.Constant(value_float=-3.4028234663852886e38)

    # mask classes: 0 padding, 1 local, 2 global
    mask = op.Cast(attention_mask, to=7)
    is_padding = op.Equal(mask, op.Constant(value_int=0))
    is_local = op.Equal(mask, op.Constant(value_int=1))
    is_global = op.Equal(mask, op.Constant(value_int=2))
    key_axes = op.Constant(value_ints=[1, 2])
    query_axes = op.Constant(value_ints=[1, 3])

    seq = op.Squeeze(op.Shape(query, start=1, end=2))
    pos = op.Range(op.Constant(value_int=0), seq, op.Constant(value_int=1))
    distance = op.Abs(op.Sub(op.Unsqueeze(pos, op.Constant(value_ints=[1])),
                             op.Unsqueeze(pos, op.Constant(value_ints=[0]))))
    in_band = op.LessOrEqual(distance, op.Constant(value_int=window))  # (S, S)
    local_allowed = op.Or(op.And(in_band, op.Unsqueeze(is_local, key_axes)), op.Unsqueeze(is_global, key_axes))

    local_scores = op.Mul(op.MatMul(q, k), scale_value)
    local_probs = op.Softmax(op.Where(local_allowed, local_scores, lowest), axis=-1)
    local_out = op.MatMul(local_probs, v)

    global_scores = op.Mul(op.MatMul(gq, gk), scale_value)
    key_valid = op.Unsqueeze(op.Not(is_padding), key_axes)
    global_probs = op.Softmax(op.Where(key_valid, global_scores, lowest), axis=-1)
    global_out = op.MatMul(global_probs, gv)

    out = op.Where(op.Unsqueeze(is_global, query_axes), global_out, local_out)
    out = op.Where(op.Unsqueeze(is_padding, query_axes), op.Constant(value_float=0.0), out)
    out = op.Reshape(op.Transpose(out, perm=[0, 2, 1, 3]), op.Shape(query))
    return op.CastLike(out, query)


def function_protos(opset_version: int) -> list[onnx.FunctionProto]:
    """Both bodies, with the standard opset import set to the model's (must match it).

    The ops used (MatMul, Gemm, Softmax(axis=-1), Where, Reshape, Slice, ...) have the same
    semantics from opset 18 through 23, so only the import's version changes.
    """
    protos = []
    for fn in (TSVDMatMul, MultigrainAttention):
        proto = fn.to_function_proto()
        for imp in proto.opset_import:
            if imp.domain == "":
                imp.version = opset_version
        protos.append(proto)
    return protos
