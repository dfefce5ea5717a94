"""Both ops on ONNX Runtime's CUDA EP (onnxruntime-gpu and a CUDA build of the library needed;
skipped otherwise): sessions with session.disable_cpu_ep_fallback prove the CUDA kernels are what
runs; results in float32, float16 and bfloat16 against the float64 references."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import ort_ops  # noqa: E402
import reference as ref  # noqa: E402

pytestmark = pytest.mark.gpu
if not (torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()):
    pytest.skip("needs a CUDA GPU and onnxruntime-gpu", allow_module_level=True)
try:
    if not ort_ops.build_info()["cuda"]:
        pytest.skip("this ort-ops build has no CUDA kernels", allow_module_level=True)
except FileNotFoundError:
    pytest.skip("ort-ops library not built", allow_module_level=True)

TYPES = {"float32": (TensorProto.FLOAT, torch.float32), "float16": (TensorProto.FLOAT16, torch.float16),
         "bfloat16": (TensorProto.BFLOAT16, torch.bfloat16)}
# Norm-relative error bounds against float64 on the same (rounded) inputs.
REL_TOL = {"float32": 5e-4, "float16": 4e-3, "bfloat16": 3e-2}


def cuda_session(model):
    so = ort.SessionOptions()
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort_ops.InferenceSession(model, sess_options=so, providers=["CUDAExecutionProvider"])


def cast_wrapped_model(op_type, inputs, attrs, dtype):
    """float32 graph inputs -> Cast(T) -> op -> Cast(float32): every node runs on the CUDA EP."""
    elem = TYPES[dtype][0]
    nodes, graph_inputs, op_inputs = [], [], []
    for name, arr in inputs.items():
        if arr is None:
            op_inputs.append("")
            continue
        if arr.dtype in (np.int32, np.int64):
            graph_inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
            op_inputs.append(name)
            continue
        graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, arr.shape))
        nodes.append(helper.make_node("Cast", [name], [name + "_t"], to=elem))
        op_inputs.append(name + "_t")
    while op_inputs and op_inputs[-1] == "":
        op_inputs.pop()
    nodes.append(helper.make_node(op_type, op_inputs, ["y_t"], domain=ort_ops.DOMAIN, name="op", **attrs))
    nodes.append(helper.make_node("Cast", ["y_t"], ["Y"], to=TensorProto.FLOAT))
    graph = helper.make_graph(nodes, "g", graph_inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(ort_ops.DOMAIN, 1)])
    model.ir_version = 10
    return model


def rounded(arr, dtype):
    """The float32 array as the kernel sees it after the Cast to `dtype`, in float64."""
    if arr is None or arr.dtype in (np.int32, np.int64):
        return arr
    return torch.from_numpy(arr).to(TYPES[dtype][1]).double().numpy()


def rel_err(y, expected):
    return float(np.linalg.norm(y - expected) / np.linalg.norm(expected))


@pytest.mark.parametrize("dtype", list(TYPES))
@pytest.mark.parametrize("lead,K,N,tile,r,shared", [((1,), 768, 3072, 128, 16, None), ((3, 5), 300, 200, 64, 5, None),
                                                     ((33,), 512, 256, 128, 128, None), ((16,), 256, 320, 128, 8, "U"),
                                                     ((70,), 384, 256, 128, 12, "V")])
def test_tsvd_on_cuda_ep(dtype, lead, K, N, tile, r, shared):
    rng = np.random.default_rng()
    Tk, Tn = -(-K // tile), -(-N // tile)
    U = (rng.standard_normal((1, 1, tile, r) if shared == "U" else (Tk, Tn, tile, r)) / np.sqrt(tile)).astype(np.float32)
    V = (rng.standard_normal((1, 1, r, tile) if shared == "V" else (Tk, Tn, r, tile)) / np.sqrt(r)).astype(np.float32)
    A = rng.standard_normal(lead + (K,)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    inputs = {"A": A, "U": U, "V": V, "bias": bias}
    sess = cuda_session(cast_wrapped_model("TSVDMatMul", inputs, {"out_features": N}, dtype))
    y = sess.run(None, inputs)[0]
    expected = ref.tsvd_matmul(*(rounded(x, dtype) for x in (A, U, V, bias)), out_features=N)
    assert np.isfinite(y).all()
    assert rel_err(y, expected) < REL_TOL[dtype], rel_err(y, expected)


def hf_like_mask(rng, B, S, n_globals, pad):
    mask = np.ones((B, S), np.int64)
    for b in range(B):
        if pad[b]:
            mask[b, S - pad[b]:] = 0
        mask[b, rng.choice(S - pad[b], size=n_globals[b], replace=False)] = 2
    return mask


@pytest.mark.parametrize("dtype", list(TYPES))
@pytest.mark.parametrize("B,S,H,D,w,G,with_globals", [(2, 300, 2, 64, 32, (3, 0), True), (1, 517, 4, 32, 64, (70,), True),
                                                       (2, 130, 2, 128, 7, (1, 5), False)])
def test_attention_on_cuda_ep(dtype, B, S, H, D, w, G, with_globals):
    rng = np.random.default_rng()
    x = [rng.standard_normal((B, S, H * D)).astype(np.float32) for _ in range(6)]
    mask = hf_like_mask(rng, B, S, G, [S // 7, 0][:B] if B > 1 else [S // 7])
    globals_in = x[3:] if with_globals else [None, None, None]
    inputs = {"query": x[0], "key": x[1], "value": x[2], "attention_mask": mask, "global_query": globals_in[0],
              "global_key": globals_in[1], "global_value": globals_in[2]}
    sess = cuda_session(cast_wrapped_model("MultigrainAttention", inputs, {"num_heads": H, "window": w}, dtype))
    y = sess.run(None, {k: v for k, v in inputs.items() if v is not None})[0]
    r = [rounded(a, dtype) for a in x]
    expected = ref.multigrain_attention(r[0], r[1], r[2], mask, H, w, *((r[3:]) if with_globals else (None,) * 3))
    assert np.isfinite(y).all()
    assert rel_err(y, expected) < REL_TOL[dtype], rel_err(y, expected)
    assert np.all(y[mask == 0] == 0)


def test_attention_invalid_mask_on_gpu_gives_nan_not_silence():
    rng = np.random.default_rng()
    B, S, H, D = 2, 64, 2, 32
    x = [rng.standard_normal((B, S, H * D)).astype(np.float32) for _ in range(3)]
    mask = np.ones((B, S), np.int64)
    mask[1, 5] = 7
    inputs = {"query": x[0], "key": x[1], "value": x[2], "attention_mask": mask}
    y = cuda_session(cast_wrapped_model("MultigrainAttention", inputs, {"num_heads": H, "window": 8}, "float16")).run(None, inputs)[0]
    assert np.isnan(y[1]).all() and np.isfinite(y[0]).all()


def test_iobinding_poisoned_output_fully_written():
    """float16 through IO binding with a NaN-filled output buffer on the device."""
    rng = np.random.default_rng()
    M, K, N, t, r = 37, 256, 384, 128, 16
    A = torch.randn(M, K, device="cuda", dtype=torch.float16)
    U = (torch.randn(2, 3, t, r, device="cuda") / t ** 0.5).half()
    V = (torch.randn(2, 3, r, t, device="cuda") / r ** 0.5).half()
    Y = torch.full((M, N), float("nan"), device="cuda", dtype=torch.float16)
    g = helper.make_graph([helper.make_node("TSVDMatMul", ["A", "U", "V"], ["Y"], domain=ort_ops.DOMAIN)], "g",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT16, list(a.shape)) for n, a in (("A", A), ("U", U), ("V", V))],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT16, [M, N])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(ort_ops.DOMAIN, 1)])
    model.ir_version = 10
    sess = cuda_session(model)
    io = sess.io_binding()
    for n, a in (("A", A), ("U", U), ("V", V)):
        io.bind_input(n, "cuda", 0, np.float16, list(a.shape), a.data_ptr())
    io.bind_output("Y", "cuda", 0, np.float16, [M, N], Y.data_ptr())
    torch.cuda.synchronize()
    sess.run_with_iobinding(io)
    torch.cuda.synchronize()
    expected = ref.tsvd_matmul(A.double().cpu().numpy(), U.double().cpu().numpy(), V.double().cpu().numpy())
    y = Y.double().cpu().numpy()
    assert not np.isnan(y).any()
    assert rel_err(y, expected) < REL_TOL["float16"]
    del rng
