"""How the dynamo exporter turns the torch custom ops into `com.ortops` nodes.

`torch.onnx.export(..., dynamo=True, custom_translation_table=TRANSLATION_TABLE)` calls these
onnxscript functions with the op's inputs; onnxscript checks them against the schemas registered
from `schemas.py`, so the node carries exactly the contract's inputs and attributes.
"""

from __future__ import annotations

import onnxscript

from . import schemas
from . import torch_ops  # noqa: F401  (registers torch.ops.ortops.*)
import torch

schemas.register_onnx_schemas()
_ORTOPS = onnxscript.values.Opset(schemas.DOMAIN, schemas.DOMAIN_VERSION)


def tsvd_matmul(a, u, v, bias, out_features: int):
    return getattr(_ORTOPS, schemas.TSVD_MATMUL.name)(a, u, v, bias, out_features=out_features)


def multigrain_attention(query, key, value, attention_mask, global_query, global_key, global_value,
                         num_heads: int, window: int, scale: float):
    # Absent globals are passed as the local tensors: the same function by the spec, and it keeps
    # the node's arity fixed, which the ONNX function body (no optional-input branching) needs.
    global_query = query if global_query is None else global_query
    global_key = key if global_key is None else global_key
    global_value = value if global_value is None else global_value
    return getattr(_ORTOPS, schemas.MULTIGRAIN_ATTENTION.name)(
        query, key, value, attention_mask, global_query, global_key, global_value,
        num_heads=num_heads, window=window, scale=scale,
    )


TRANSLATION_TABLE = {
    torch.ops.ortops.tsvd_matmul.default: tsvd_matmul,
    torch.ops.ortops.multigrain_attention.default: multigrain_attention,
}
