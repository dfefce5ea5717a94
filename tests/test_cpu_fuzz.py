"""Randomised probes of the CPU kernels through onnxruntime's CPU EP, against float64 references
written here from the contract (/work/shared/spec/ops.md, docs/ops.md) -- deliberately not the
references of tests/reference.py, so a misunderstanding shared by kernel and reference shows.

Each test draws a fixed number of fresh cases from the `rng` fixture (conftest.py prints the seed;
replay with ORTOPS_TEST_SEED=<seed>); every assertion message carries the case's parameters.

float16 / bfloat16: the graph takes float32 inputs and Casts them to the op's type (ORT's CPU EP
can then feed bfloat16, which numpy cannot), and Casts the output back. The reference gets the
same rounded inputs, so the only expected difference is the kernel's float32 arithmetic plus
one rounding of the output: half an ulp, 2^-11 (fp16) / 2^-8 (bf16) relative. The tolerances
below are twice that plus the float32 term.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import ort_ops

ml_dtypes = pytest.importorskip("ml_dtypes")

_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16,
         np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.int32): TensorProto.INT32,
         np.dtype(np.int64): TensorProto.INT64, np.dtype(bool): TensorProto.BOOL}
_CAST = {"f32": None, "f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
# float32 accumulation term (relative to the sum of |terms|) and output rounding (relative to |y|).
_F32_TOL = 1e-5
_OUT_RTOL = {"f32": 0.0, "f16": 2 * 2.0**-11, "bf16": 2 * 2.0**-8}


def _round(x, dt):
    if x is None or dt == "f32":
        return x
    t = np.float16 if dt == "f16" else ml_dtypes.bfloat16
    return x.astype(t).astype(np.float32)


def _model(op, inputs, attrs, dt="f32", symbolic=True, name="fuzz_node"):
    """One-node model; inputs: list of (name, array or None = omitted optional input). For dt
    f16/bf16 the float32 graph inputs are Cast to that type in the graph and the output back."""
    cast = _CAST[dt]
    nodes, graph_inputs, node_inputs = [], [], []
    for nm, a in inputs:
        if a is None:
            node_inputs.append("")
            continue
        shape = [f"{nm}_{d}" for d in range(a.ndim)] if symbolic else list(a.shape)
        graph_inputs.append(helper.make_tensor_value_info(nm, _ELEM[a.dtype], shape))
        if cast is not None and a.dtype == np.float32:
            nodes.append(helper.make_node("Cast", [nm], [nm + "_cast"], to=cast))
            node_inputs.append(nm + "_cast")
        else:
            node_inputs.append(nm)
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    nodes.append(helper.make_node(op, node_inputs, ["Y" if cast is None else "Y_t"], domain="com.ortops", name=name,
                                  **attrs))
    if cast is not None:
        nodes.append(helper.make_node("Cast", ["Y_t"], ["Y"], to=TensorProto.FLOAT))
    out_type = TensorProto.FLOAT if cast is not None else _ELEM[inputs[0][1].dtype]
    graph = helper.make_graph(nodes, "fuzz", graph_inputs, [helper.make_tensor_value_info("Y", out_type, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.ortops", 1)])
    model.ir_version = 10
    return model


def _run(op, inputs, attrs, **kw):
    sess = ort_ops.InferenceSession(_model(op, inputs, attrs, **kw), providers=["CPUExecutionProvider"])
    return sess.run(None, {n: a for n, a in inputs if a is not None})[0]


# ---- TSVDMatMul --------------------------------------------------------------------------------

def tsvd_reference(A, U, V, bias, N):
    """Y = A · W̃[:K, :N] (+ bias) in float64, W̃ assembled tile by tile from U[i,j] · V[i,j]
    (a [1, 1, ...] factor serves every tile; with both shared the grid is ceil(K/tk) x ceil(N/tn)).
    Returns Y and the sum of |terms| per output (|A| · |W̃| + |bias|) for the tolerance."""
    A, U, V = (x.astype(np.float64) for x in (A, U, V))
    K, tk, tn = A.shape[-1], U.shape[2], V.shape[3]
    su, sv = U.shape[:2] == (1, 1), V.shape[:2] == (1, 1)
    if su and sv:
        Tk, Tn = -(-K // tk), -(-N // tn)
    else:
        Tk, Tn = (V.shape[:2] if su else U.shape[:2])
    W = np.zeros((Tk * tk, Tn * tn))
    W_abs = np.zeros_like(W)
    for i in range(Tk):
        for j in range(Tn):
            u = U[0, 0] if su else U[i, j]
            v = V[0, 0] if sv else V[i, j]
            W[i * tk:(i + 1) * tk, j * tn:(j + 1) * tn] = u @ v
            W_abs[i * tk:(i + 1) * tk, j * tn:(j + 1) * tn] = np.abs(u) @ np.abs(v)
    Y = A @ W[:K, :N]
    Y_abs = np.abs(A) @ W_abs[:K, :N]
    if bias is not None:
        Y = Y + bias
        Y_abs = Y_abs + np.abs(bias)
    return Y, Y_abs


def _tsvd_case(rng, dt):
    tk = int(rng.choice([1, 2, 3, 5, 8, 16, 17, 31, 32, 48, 64, 100, 300]))
    tn = int(rng.choice([1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 33, 64, 130]))
    r = min(tk, tn) if rng.random() < 0.2 else int(rng.integers(1, min(tk, tn) + 1))
    Tk, Tn = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    su, sv = bool(rng.random() < 0.3), bool(rng.random() < 0.3)
    # K: usually in the last tile row (partial or full), sometimes shorter still (whole tile rows
    # in the zero padding). With both factors shared the grid follows K and N.
    if su and sv:
        K = int(rng.integers(1, 4 * tk + 1))
    else:
        K = int(rng.integers((Tk - 1) * tk + 1 if rng.random() < 0.8 else 1, Tk * tk + 1))
    with_of = bool(rng.random() < 0.6) or (su and sv)
    if su and sv:
        N = int(rng.integers(1, 4 * tn + 1))
    elif with_of:
        N = int(rng.integers((Tn - 1) * tn + 1 if rng.random() < 0.8 else 1, Tn * tn + 1))
    else:
        N = Tn * tn
    n_lead = int(rng.integers(0, 4))
    lead = [int(x) for x in rng.integers(1, 5, size=n_lead)]
    if n_lead and rng.random() < 0.1:
        lead[int(rng.integers(0, n_lead))] = 0  # M = 0
    elif n_lead == 1 and rng.random() < 0.5:
        lead = [int(rng.integers(60, 200))]  # several 64-row blocks, a partial last one
    case = dict(tk=tk, tn=tn, r=r, Tk=Tk, Tn=Tn, shared_u=su, shared_v=sv, K=K, N=N, out_features=with_of,
                lead=lead, dt=dt)
    U = rng.standard_normal((1, 1, tk, r) if su else (Tk, Tn, tk, r)).astype(np.float32)
    V = rng.standard_normal((1, 1, r, tn) if sv else (Tk, Tn, r, tn)).astype(np.float32)
    A = rng.standard_normal(lead + [K]).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32) if rng.random() < 0.5 else None
    case["bias"] = bias is not None
    return case, A, U, V, bias, ({"out_features": N} if with_of else {})


def _check_tsvd(case, A, U, V, bias, attrs):
    dt = case["dt"]
    Y = _run("TSVDMatMul", [("A", A), ("U", U), ("V", V), ("bias", bias)], attrs, dt=dt)
    R, R_abs = tsvd_reference(_round(A, dt), _round(U, dt), _round(V, dt), _round(bias, dt), case["N"])
    assert Y.shape == R.shape, case
    assert np.all(np.isfinite(Y)), case
    tol = _F32_TOL * R_abs + _OUT_RTOL[dt] * np.abs(R) + 1e-30
    err = np.abs(Y - R)
    assert np.all(err <= tol), f"{case}: max |err| / tol = {np.max(err / tol) if err.size else 0:.3g}"


@pytest.mark.parametrize("dt,cases", [("f32", 60), ("f16", 20), ("bf16", 20)])
def test_tsvd_random(rng, dt, cases):
    for _ in range(cases):
        _check_tsvd(*_tsvd_case(rng, dt))


@pytest.mark.parametrize("shape", [
    # (lead, K, N, tk, tn, r, Tk, Tn, shared_u, shared_v): the corners the random draw rarely hits.
    ([130], 3000, 3, 1000, 3, 3, 3, 1, False, False),    # large K (several 256-deep blocks), tiny N
    ([7], 5, 2000, 5, 700, 5, 1, 3, False, False),        # tiny K, large N
    ([2, 70], 600, 600, 300, 300, 300, 2, 2, True, False),  # full rank, shared U
    ([2, 70], 600, 600, 300, 300, 300, 2, 2, False, True),  # full rank, shared V
    ([65], 10, 50, 4, 4, 2, 3, 2, True, True),            # both shared: grid from K and N
    ([], 1, 1, 1, 1, 1, 1, 1, False, False),              # everything 1, A a vector
    ([3, 0, 2], 10, 5, 4, 4, 2, 3, 2, False, False),      # M = 0
])
def test_tsvd_corners(rng, shape):
    lead, K, N, tk, tn, r, Tk, Tn, su, sv = shape
    U = rng.standard_normal((1, 1, tk, r) if su else (Tk, Tn, tk, r)).astype(np.float32)
    V = rng.standard_normal((1, 1, r, tn) if sv else (Tk, Tn, r, tn)).astype(np.float32)
    A = rng.standard_normal(lead + [K]).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    case = dict(lead=lead, K=K, N=N, tk=tk, tn=tn, r=r, Tk=Tk, Tn=Tn, shared_u=su, shared_v=sv, dt="f32")
    _check_tsvd(case, A, U, V, bias, {"out_features": N})


def test_tsvd_full_rank_equals_dense(rng):
    """At full rank (r = min(tk, tn)) the per-tile SVD is exact: Y equals the dense product."""
    K, N, tk, tn = 70, 45, 32, 16
    Tk, Tn = -(-K // tk), -(-N // tn)
    W = rng.standard_normal((Tk * tk, Tn * tn))
    U = np.zeros((Tk, Tn, tk, tn))
    V = np.zeros((Tk, Tn, tn, tn))
    for i in range(Tk):
        for j in range(Tn):
            u, s, vt = np.linalg.svd(W[i * tk:(i + 1) * tk, j * tn:(j + 1) * tn], full_matrices=False)
            U[i, j], V[i, j] = u * s, vt
    A = rng.standard_normal((3, 5, K)).astype(np.float32)
    Y = _run("TSVDMatMul", [("A", A), ("U", U.astype(np.float32)), ("V", V.astype(np.float32))],
             {"out_features": N})
    np.testing.assert_allclose(Y, A.astype(np.float64) @ W[:K, :N], rtol=0, atol=1e-4 * np.sqrt(K))


def test_tsvd_float16_fed_directly(rng):
    """fp16 tensors fed straight from numpy (no Cast): the same kernel type, output type fp16."""
    A = rng.standard_normal((4, 3, 50)).astype(np.float16)
    U = rng.standard_normal((2, 3, 32, 5)).astype(np.float16)
    V = rng.standard_normal((2, 3, 5, 11)).astype(np.float16)
    bias = rng.standard_normal(30).astype(np.float16)
    Y = _run("TSVDMatMul", [("A", A), ("U", U), ("V", V), ("bias", bias)], {"out_features": 30})
    assert Y.dtype == np.float16 and Y.shape == (4, 3, 30)
    R, R_abs = tsvd_reference(A.astype(np.float32), U.astype(np.float32), V.astype(np.float32),
                              bias.astype(np.float64), 30)
    assert np.all(np.abs(Y.astype(np.float64) - R) <= _F32_TOL * R_abs + _OUT_RTOL["f16"] * np.abs(R))


# ---- MultigrainAttention -----------------------------------------------------------------------

def attention_reference(q, k, v, mask, H, w, scale=None, gq=None, gk=None, gv=None):
    """float64, dense per batch row, straight from the contract:
    local query i: keys j with |i - j| <= w that are local (mask 1), plus every global key, with
    q/k/v; global query i: every non-padding key, with gq/gk/gv; padding rows 0."""
    B, S, E = q.shape
    D = E // H
    sc = 1.0 / np.sqrt(D) if scale is None else scale
    gq, gk, gv = (q if gq is None else gq), (k if gk is None else gk), (v if gv is None else gv)
    heads = lambda x: x.astype(np.float64).reshape(B, S, H, D).transpose(0, 2, 1, 3)  # [B, H, S, D]
    q, k, v, gq, gk, gv = map(heads, (q, k, v, gq, gk, gv))
    attention_reference.max_score = 0.0  # largest |score| used, for the float32 tolerance
    idx = np.arange(S)
    band = np.abs(idx[:, None] - idx[None, :]) <= w
    out = np.zeros((B, H, S, D))
    for b in range(B):
        m = np.asarray(mask[b])
        is_local, is_global, is_pad = m == 1, m == 2, m == 0
        allowed_local = (band & is_local[None, :]) | is_global[None, :]  # [S, S]
        allowed_global = np.broadcast_to(~is_pad[None, :], (S, S))
        for allowed, qq, kk, vv, rows in ((allowed_local, q, k, v, is_local),
                                          (allowed_global, gq, gk, gv, is_global)):
            if not rows.any():
                continue
            s = sc * qq[b][:, rows] @ kk[b].transpose(0, 2, 1)  # [H, R, S]
            s = np.where(allowed[rows][None], s, -np.inf)
            attention_reference.max_score = max(attention_reference.max_score, np.abs(s[np.isfinite(s)]).max())
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            out[b][:, rows] = p @ vv[b]
    return out.transpose(0, 2, 1, 3).reshape(B, S, E)


MASK_KINDS = ["local", "end_padding", "mid_padding", "few_globals", "globals_and_padding", "all_global",
              "row_all_padding", "many_globals", "uniform_012"]


def _mask(rng, kind, B, S, w, dtype):
    m = np.ones((B, S), np.int64)
    for b in range(B):  # every batch row drawn on its own: different globals/padding per row
        if kind in ("end_padding", "globals_and_padding"):
            m[b, int(rng.integers(1, S + 1)):] = 0
        if kind == "mid_padding":
            m[b, rng.random(S) < 0.3] = 0
        if kind in ("few_globals", "globals_and_padding", "mid_padding"):
            g = rng.integers(0, S, int(rng.integers(0, 4)))
            m[b, g] = 2
        if kind == "many_globals":  # usually G > w
            m[b, rng.random(S) < 0.4] = 2
        if kind == "all_global":
            m[b] = 2
        if kind == "uniform_012":
            m[b] = rng.integers(0, 3, S)
    if kind == "row_all_padding":
        m[int(rng.integers(0, B))] = 0
        m[m != 0] = rng.choice([1, 1, 1, 2], size=int((m != 0).sum()))
    return m.astype(dtype)


def _attention_case(rng, dt, S=None):
    B = int(rng.integers(1, 4))
    if S is None:
        S = int(rng.integers(1, 160)) if rng.random() < 0.85 else int(rng.integers(160, 701))
    H = int(rng.integers(1, 5))
    D = int(rng.choice([1, 3, 8, 16, 40, 64, 72]))
    w = int(rng.choice([0, 1, 2, 3, 7, 16, 33, 64, 128, max(S - 1, 0), S, S + 5, 1000]))
    kind = str(rng.choice(MASK_KINDS))
    mask = _mask(rng, kind, B, S, w, rng.choice([np.int32, np.int64]))
    f = lambda: (1.5 * rng.standard_normal((B, S, H * D))).astype(np.float32)
    q, k, v = f(), f(), f()
    glob = [f() if rng.random() < 0.5 else None for _ in range(3)]
    scale = float(rng.uniform(0.05, 1.0)) if rng.random() < 0.3 else None
    case = dict(B=B, S=S, H=H, D=D, w=w, mask=kind, mask_dtype=mask.dtype.name,
                globals_given=[g is not None for g in glob], scale=scale, dt=dt)
    return case, q, k, v, mask, glob, scale


def _check_attention(case, q, k, v, mask, glob, scale, attrs=None):
    dt = case["dt"]
    if attrs is None:
        attrs = {"num_heads": case["H"], "window": case["w"]}
        if scale is not None:
            attrs["scale"] = scale
    inputs = [("query", q), ("key", k), ("value", v), ("attention_mask", mask), ("global_query", glob[0]),
              ("global_key", glob[1]), ("global_value", glob[2])]
    Y = _run("MultigrainAttention", inputs, attrs, dt=dt)
    rq, rk, rv = (_round(x, dt) for x in (q, k, v))
    R = attention_reference(rq, rk, rv, mask, case["H"], case["w"], scale, *(_round(g, dt) for g in glob))
    assert Y.shape == R.shape, case
    assert np.all(np.isfinite(Y)), case
    # Padding rows are exactly 0.
    assert np.all(Y[np.asarray(mask) == 0] == 0), case
    # Outputs are convex combinations of value rows: the float32 error scales with max |value|,
    # and through exp(s - max) with the scores' size (a score carries ~|s|·2^-24 of rounding);
    # plus one output rounding for fp16/bf16.
    vmax = max(np.abs(x).max() for x in (rv, _round(glob[2], dt) if glob[2] is not None else rv)) if v.size else 1.0
    tol = (_F32_TOL + 4 * 2.0**-24 * attention_reference.max_score) * vmax + _OUT_RTOL[dt] * np.abs(R)
    err = np.abs(Y - R)
    assert np.all(err <= tol), f"{case}: max |err| / tol = {np.max(err / tol) if err.size else 0:.3g}"


@pytest.mark.parametrize("dt,cases", [("f32", 40), ("f16", 10), ("bf16", 10)])
def test_attention_random(rng, dt, cases):
    for _ in range(cases):
        _check_attention(*_attention_case(rng, dt))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_attention_every_mask_kind(rng, kind):
    """Each mask kind at least once per run, at a length past one 64-row block."""
    B, S, H, D = 2, int(rng.integers(65, 300)), 2, 8
    w = int(rng.choice([1, 5, 32]))
    mask = _mask(rng, kind, B, S, w, np.int64)
    f = lambda: rng.standard_normal((B, S, H * D)).astype(np.float32)
    case = dict(B=B, S=S, H=H, D=D, w=w, mask=kind, dt="f32")
    _check_attention(case, f(), f(), f(), mask, [f(), None, f()], None)


@pytest.mark.parametrize("window", [2**62, 2**63 - 1, 10**12])
def test_attention_huge_window(rng, window):
    """w past S sees every key; a window near INT64_MAX must not overflow i + w (it did)."""
    B, S, H, D = 2, 150, 2, 4
    mask = rng.integers(0, 3, (B, S)).astype(np.int64)
    f = lambda: rng.standard_normal((B, S, H * D)).astype(np.float32)
    _check_attention(dict(B=B, S=S, H=H, D=D, w=window, dt="f32"), f(), f(), f(), mask, [None] * 3, None)


def test_attention_int_scale_attribute(rng):
    """scale=1 written without a decimal point is an INT attribute: it is taken for its value
    (it used to be ignored silently, giving 1/sqrt(D))."""
    B, S, H, D = 1, 40, 2, 16
    mask = np.ones((B, S), np.int32)
    mask[0, [3, 30]] = 2
    f = lambda: rng.standard_normal((B, S, H * D)).astype(np.float32)
    case = dict(B=B, S=S, H=H, D=D, w=4, dt="f32")
    _check_attention(case, f(), f(), f(), mask, [None] * 3, 1.0, attrs={"num_heads": H, "window": 4, "scale": 1})


def test_attention_float16_fed_directly(rng):
    B, S, H, D = 2, 70, 3, 8
    mask = _mask(rng, "globals_and_padding", B, S, 4, np.int64)
    q, k, v = (rng.standard_normal((B, S, H * D)).astype(np.float16) for _ in range(3))
    Y = _run("MultigrainAttention", [("query", q), ("key", k), ("value", v), ("attention_mask", mask)],
             {"num_heads": H, "window": 4})
    assert Y.dtype == np.float16
    R = attention_reference(q, k, v, mask, H, 4)
    assert np.all(np.abs(Y.astype(np.float64) - R) <= _F32_TOL * np.abs(v).max() + _OUT_RTOL["f16"] * np.abs(R))


@pytest.mark.parametrize("B,S", [(0, 10), (2, 0)])
def test_attention_empty(rng, B, S):
    x = np.zeros((B, S, 8), np.float32)
    Y = _run("MultigrainAttention", [("query", x), ("key", x), ("value", x),
                                     ("attention_mask", np.ones((B, S), np.int64))], {"num_heads": 2, "window": 3})
    assert Y.shape == (B, S, 8)


# ---- bad input: a clear error naming the node, never a crash or a silent answer ---------------

def _f(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _tsvd_bad(rng):
    A, U, V = _f(rng, 3, 64), _f(rng, 2, 2, 32, 4), _f(rng, 2, 2, 4, 16)
    t = lambda a=A, u=U, v=V, b=None: [("A", a), ("U", u), ("V", v), ("bias", b)]
    return {
        "U rank 3": (t(u=_f(rng, 2, 32, 4)), {}, r"input 'U' must have rank 4"),
        "V rank 5": (t(v=_f(rng, 1, 2, 2, 4, 16)), {}, r"input 'V' must have rank 4"),
        "U zero dim": (t(u=_f(rng, 2, 2, 32, 0), v=_f(rng, 2, 2, 0, 16)), {}, r"'U' must have positive dims"),
        "A scalar": (t(a=np.array(1, np.float32)), {}, r"'A' must have rank >= 1"),
        "K = 0": (t(a=_f(rng, 3, 0)), {}, r"K = A.shape\[-1\] >= 1"),
        "r mismatch": (t(v=_f(rng, 2, 2, 5, 16)), {}, r"rank r = 4 but V .* has r = 5"),
        "grid mismatch": (t(v=_f(rng, 2, 3, 4, 16)), {}, r"2 x 2 tile grid but V .* has 2 x 3"),
        "grid 1x2 vs 2x1": (t(u=_f(rng, 1, 2, 32, 4), v=_f(rng, 2, 1, 4, 16)), {}, r"1 x 2 tile grid but V"),
        "K past grid": (t(a=_f(rng, 3, 65)), {}, r"K = 65 .* cover only Tk \* tk = 2 \* 32 = 64"),
        "N past grid": (t(), {"out_features": 33}, r"out_features = 33 is larger than Tn \* tn = 2 \* 16 = 32"),
        "N negative": (t(), {"out_features": -5}, r"out_features must be >= 1; got -5"),
        "N float attr": (t(), {"out_features": 30.0}, r"out_features must be an integer \(INT\) attribute"),
        "bias length": (t(b=_f(rng, 31)), {}, r"'bias' must have shape \[N\] = \[32\]; got \[31\]"),
        "bias 2-d": (t(b=_f(rng, 1, 32)), {}, r"'bias' must have shape \[N\] = \[32\]; got \[1, 32\]"),
        "U float16": (t(u=_f(rng, 2, 2, 32, 4, dtype=np.float16)), {}, r"no kernel def matches|[Tt]ype"),
        "A float64": (t(a=_f(rng, 3, 64, dtype=np.float64)), {}, r"tensor\(double\)"),
    }


def _attention_bad(rng):
    B, S, E = 2, 10, 8
    x = lambda *s: _f(rng, *s)
    ones = np.ones((B, S), np.int64)
    a = lambda q=None, k=None, v=None, m=ones, gk=None: [
        ("query", x(B, S, E) if q is None else q), ("key", x(B, S, E) if k is None else k),
        ("value", x(B, S, E) if v is None else v), ("attention_mask", m), ("global_query", None),
        ("global_key", gk), ("global_value", None)]
    attrs = {"num_heads": 2, "window": 2}
    bad_at = ones.copy()
    bad_at[1, 7] = 3
    return {
        "mask value 3": (a(m=bad_at), attrs, r"values must be 0 \(padding\), 1 \(local\) or 2 \(global\); got 3 at \[1, 7\]"),
        "mask value -1 int32": (a(m=np.full((B, S), -1, np.int32)), attrs, r"got -1 at \[0, 0\]"),
        "mask value 2^33+1": (a(m=np.full((B, S), 2**33 + 1, np.int64)), attrs, r"got 8589934593 at"),
        "mask float": (a(m=np.ones((B, S), np.float32)), attrs, r"'attention_mask' must be int32 or int64 .* got float32"),
        "mask bool": (a(m=np.ones((B, S), bool)), attrs, r"'attention_mask' must be int32 or int64 .* got bool"),
        "mask [B, S+1]": (a(m=np.ones((B, S + 1), np.int64)), attrs, r"shape \[B, S\] = \[2, 10\]; got \[2, 11\]"),
        "mask rank 3": (a(m=np.ones((B, S, 1), np.int64)), attrs, r"got \[2, 10, 1\]"),
        "E % H": (a(), {"num_heads": 3, "window": 2}, r"hidden size 8 .* not divisible by num_heads = 3"),
        "E = 0": (a(q=x(B, S, 0), k=x(B, S, 0), v=x(B, S, 0)), attrs, r"hidden size H\*D .* >= 1"),
        "key shape": (a(k=x(B, S, E + 2)), attrs, r"'key' must have the shape of 'query'"),
        "global_key shape": (a(gk=x(B, S + 1, E)), attrs, r"'global_key' must have the shape of 'query'"),
        "query rank 2": (a(q=x(S, E), k=x(S, E), v=x(S, E), m=np.ones((1, S), np.int64)), attrs,
                         r"'query' must have rank 3"),
        "num_heads 0": (a(), {"num_heads": 0, "window": 2}, r"num_heads must be >= 1; got 0"),
        "window -1": (a(), {"num_heads": 2, "window": -1}, r"window .* must be >= 0; got -1"),
        "num_heads missing": (a(), {"window": 2}, r"'num_heads' is required"),
        "window missing": (a(), {"num_heads": 2}, r"'window' is required"),
        "num_heads float": (a(), {"num_heads": 2.0, "window": 2}, r"'num_heads' must be an integer \(INT\)"),
        "scale nan": (a(), {**attrs, "scale": float("nan")}, r"scale must be finite; got nan"),
        "scale inf": (a(), {**attrs, "scale": float("inf")}, r"scale must be finite; got inf"),
    }


def _expect_error(op, inputs, attrs, pattern, symbolic):
    with pytest.raises(Exception, match=pattern) as info:
        _run(op, inputs, attrs, symbolic=symbolic, name="bad_node")
    msg = str(info.value)
    if "no kernel def" not in msg and "Type Error" not in msg:
        assert "bad_node" in msg, msg


@pytest.mark.parametrize("symbolic", [True, False], ids=["symbolic-shapes", "concrete-shapes"])
def test_tsvd_bad_inputs(rng, symbolic):
    for name, (inputs, attrs, pattern) in _tsvd_bad(rng).items():
        try:
            _expect_error("TSVDMatMul", inputs, attrs, pattern, symbolic)
        except BaseException as e:
            raise AssertionError(f"case {name!r}: {e}") from e


@pytest.mark.parametrize("symbolic", [True, False], ids=["symbolic-shapes", "concrete-shapes"])
def test_attention_bad_inputs(rng, symbolic):
    for name, (inputs, attrs, pattern) in _attention_bad(rng).items():
        try:
            _expect_error("MultigrainAttention", inputs, attrs, pattern, symbolic)
        except BaseException as e:
            raise AssertionError(f"case {name!r}: {e}") from e
