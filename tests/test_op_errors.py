"""Bad input raises an ONNX Runtime error whose message names the node, the input or attribute,
and the expected vs actual value; the process never crashes. Attribute errors surface when the
session is created (kernel creation), input errors when it runs (or at creation when every shape
is known, ORT also runs the same checks in shape inference, but only logs their failure)."""
import numpy as np
import pytest

from onnx_graphs import attention_inputs, run_single_node, single_node_model, tsvd_inputs

import ort_ops
from ort_ops import _cpu_kernels


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def expect_error(pattern, op, inputs, attrs, **kw):
    with pytest.raises(Exception, match=pattern) as info:
        run_single_node(op, inputs, attrs, node_name="bad_node", **kw)
    assert "bad_node" in str(info.value) or "shape inference" in str(info.value)


# --- TSVDMatMul --------------------------------------------------------------------------------

def test_tsvd_factor_rank_mismatch(rng):
    expect_error(r"input 'U' must have rank 4.*got shape \[2, 32, 4\]", "TSVDMatMul",
                 tsvd_inputs(f32(rng, 3, 64), f32(rng, 2, 32, 4), f32(rng, 2, 2, 4, 16)), {})


def test_tsvd_scalar_a(rng):
    expect_error(r"input 'A' must have rank >= 1", "TSVDMatMul",
                 tsvd_inputs(np.array(1.0, np.float32), f32(rng, 2, 2, 32, 4), f32(rng, 2, 2, 4, 16)), {})


def test_tsvd_inconsistent_ranks(rng):
    expect_error(r"inconsistent factor shapes: U \[2, 2, 32, 4\] has rank r = 4 but V \[2, 2, 3, 16\] has r = 3",
                 "TSVDMatMul", tsvd_inputs(f32(rng, 3, 64), f32(rng, 2, 2, 32, 4), f32(rng, 2, 2, 3, 16)), {})


def test_tsvd_inconsistent_grids(rng):
    expect_error(r"U \[2, 3, 32, 4\] has a 2 x 3 tile grid but V \[2, 2, 4, 16\] has 2 x 2", "TSVDMatMul",
                 tsvd_inputs(f32(rng, 3, 64), f32(rng, 2, 3, 32, 4), f32(rng, 2, 2, 4, 16)), {})


def test_tsvd_k_larger_than_grid(rng):
    expect_error(r"input 'A' has K = 65 .* cover only Tk \* tk = 2 \* 32 = 64 rows", "TSVDMatMul",
                 tsvd_inputs(f32(rng, 3, 65), f32(rng, 2, 2, 32, 4), f32(rng, 2, 2, 4, 16)), {})


def test_tsvd_out_features_larger_than_grid(rng):
    expect_error(r"out_features = 33 is larger than Tn \* tn = 2 \* 16 = 32", "TSVDMatMul",
                 tsvd_inputs(f32(rng, 3, 64), f32(rng, 2, 2, 32, 4), f32(rng, 2, 2, 4, 16)), {"out_features": 33})


def test_tsvd_out_features_not_positive(rng):
    expect_error(r"out_features must be >= 1; got 0", "TSVDMatMul",
                 tsvd_inputs(f32(rng, 3, 64), f32(rng, 2, 2, 32, 4), f32(rng, 2, 2, 4, 16)), {"out_features": 0})


def test_tsvd_bias_shape(rng):
    expect_error(r"input 'bias' must have shape \[N\] = \[30\]; got \[32\]", "TSVDMatMul",
                 tsvd_inputs(f32(rng, 3, 64), f32(rng, 2, 2, 32, 4), f32(rng, 2, 2, 4, 16), f32(rng, 32)),
                 {"out_features": 30})


def test_tsvd_bad_shapes_declared_in_the_graph(rng):
    """Concrete bad shapes in the graph: ORT logs the shape-inference failure and goes on, so the
    error with its message comes from the run."""
    inputs = tsvd_inputs(f32(rng, 3, 64), f32(rng, 2, 2, 32, 4), f32(rng, 2, 2, 3, 16))
    expect_error(r"inconsistent factor shapes", "TSVDMatMul", inputs, {}, symbolic=False)


def test_tsvd_pybind_raises_value_error(rng):
    with pytest.raises(ValueError, match=r"input 'V' must have rank 4"):
        _cpu_kernels.tsvd_matmul(f32(rng, 3, 64), f32(rng, 2, 2, 32, 4), f32(rng, 2, 4, 16))


# --- MultigrainAttention -----------------------------------------------------------------------

def qkv(rng, B=2, S=10, E=16):
    return [f32(rng, B, S, E) for _ in range(3)]


def test_attention_mask_values_outside_0_1_2(rng):
    mask = np.ones((2, 10), np.int64)
    mask[1, 7] = 3
    expect_error(r"'attention_mask' values must be 0 \(padding\), 1 \(local\) or 2 \(global\); got 3 at \[1, 7\]",
                 "MultigrainAttention", attention_inputs(*qkv(rng), mask), {"num_heads": 2, "window": 2})


def test_attention_negative_mask_value(rng):
    mask = np.ones((2, 10), np.int32)
    mask[0, 0] = -1
    expect_error(r"got -1 at \[0, 0\]", "MultigrainAttention", attention_inputs(*qkv(rng), mask),
                 {"num_heads": 2, "window": 2})


def test_attention_negative_window(rng):
    expect_error(r"attribute window .* must be >= 0; got -1", "MultigrainAttention",
                 attention_inputs(*qkv(rng), np.ones((2, 10), np.int64)), {"num_heads": 2, "window": -1})


def test_attention_missing_num_heads(rng):
    expect_error(r"attribute 'num_heads' is required", "MultigrainAttention",
                 attention_inputs(*qkv(rng), np.ones((2, 10), np.int64)), {"window": 2})


def test_attention_hidden_not_divisible_by_heads(rng):
    expect_error(r"hidden size 16 \(query.shape\[2\]\) is not divisible by num_heads = 3", "MultigrainAttention",
                 attention_inputs(*qkv(rng), np.ones((2, 10), np.int64)), {"num_heads": 3, "window": 2})


def test_attention_rank_mismatch(rng):
    q, k, v = qkv(rng)
    expect_error(r"input 'query' must have rank 3 \(\[B, S, H\*D\]\); got shape \[20, 16\]", "MultigrainAttention",
                 attention_inputs(q.reshape(20, 16), k.reshape(20, 16), v.reshape(20, 16), np.ones((2, 10), np.int64)),
                 {"num_heads": 2, "window": 2})


def test_attention_key_shape_mismatch(rng):
    q, k, v = qkv(rng)
    expect_error(r"input 'key' must have the shape of 'query' \[2, 10, 16\]; got \[2, 9, 16\]", "MultigrainAttention",
                 attention_inputs(q, k[:, :9].copy(), v, np.ones((2, 10), np.int64)), {"num_heads": 2, "window": 2})


def test_attention_global_shape_mismatch(rng):
    q, k, v = qkv(rng)
    expect_error(r"input 'global_value' must have the shape of 'query'", "MultigrainAttention",
                 attention_inputs(q, k, v, np.ones((2, 10), np.int64), q, k, f32(rng, 2, 10, 8)),
                 {"num_heads": 2, "window": 2})


def test_attention_mask_shape(rng):
    expect_error(r"'attention_mask' must have shape \[B, S\] = \[2, 10\]; got \[2, 11\]", "MultigrainAttention",
                 attention_inputs(*qkv(rng), np.ones((2, 11), np.int64)), {"num_heads": 2, "window": 2})


def test_attention_mask_dtype(rng):
    expect_error(r"'attention_mask' must be int32 or int64", "MultigrainAttention",
                 attention_inputs(*qkv(rng), np.ones((2, 10), np.float32)), {"num_heads": 2, "window": 2})


def test_attention_pybind_raises_value_error(rng):
    with pytest.raises(ValueError, match=r"not divisible by num_heads = 3"):
        _cpu_kernels.multigrain_attention(*qkv(rng), np.ones((2, 10), np.int64), num_heads=3, window=2)


def test_session_survives_bad_runs(rng):
    """A failed Run leaves the session usable."""
    model = single_node_model("MultigrainAttention", attention_inputs(*qkv(rng), np.ones((2, 10), np.int64)),
                              {"num_heads": 2, "window": 2})
    sess = ort_ops.InferenceSession(model, providers=["CPUExecutionProvider"])
    q, k, v = qkv(rng)
    bad = np.full((2, 10), 5, np.int64)
    with pytest.raises(Exception, match="got 5"):
        sess.run(None, {"query": q, "key": k, "value": v, "attention_mask": bad})
    out = sess.run(None, {"query": q, "key": k, "value": v, "attention_mask": np.ones((2, 10), np.int64)})[0]
    assert out.shape == q.shape and np.isfinite(out).all()
