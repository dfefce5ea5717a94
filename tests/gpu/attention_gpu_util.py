"""Helpers of the MultigrainAttention GPU tests and benchmark: the ctypes shim, float64 references
(dense masked attention in torch, and HF LongformerSelfAttention) and input generators.

Tensors: q, k, v, gq, gk, gv are [B, S, H*D]; mask is [B, S] int32/int64 with 0 padding,
1 local, 2 global; w is the one-sided window (HF attention_window / 2)."""
from __future__ import annotations

import ctypes
import math
import os
import pathlib

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIM_PATH = pathlib.Path(os.environ.get("ORTOPS_ATTENTION_SHIM", ROOT / ".device" / "shims" / "libattention_shim.so"))
DTYPE_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
CUDA_ERROR_INVALID_VALUE = 1
PARTS_BAND, PARTS_GLOBAL, PARTS_ALL = 1, 2, 3
# Schedule bits OR'ed into `parts` (the shim's encoding): the launcher's default, one grid with
# both CTA kinds, or global-row CTAs on a side stream forked from / joined to the caller's stream.
SCHED_DEFAULT, SCHED_ONE_GRID, SCHED_TWO_STREAM = 0, 4, 8
# OR'ed into `parts`: band tiles on mma.sync even where the sm_90a warpgroup-MMA (wgmma) band path
# is built (head dim 64, the launcher's default there); for A/B runs and to keep mma.sync tested.
BAND_MMA_SYNC = 16
# OR'ed into `parts`: every CTA in the fused kernel rather than the Hopper kernel (sm_90a build,
# head dims 40..64, the launcher's default there: the band, and in one grid the global rows too);
# for A/B runs and to keep the fused kernel tested.
BAND_FUSED = 32
# OR'ed into `parts`: with two streams, the band launched as an ordinary launch rather than a
# programmatic dependent of the compaction (the side stream's global rows are dispatched first).
BAND_NO_PDL = 64
# OR'ed into `parts`: the Hopper kernel's ring depth, 2 slots (the default) or 3.
RING_2_SLOTS, RING_3_SLOTS = 2 << 7, 3 << 7

_lib = None


def shim():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(SHIM_PATH))
        i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
        lib.ortops_test_attention_workspace.argtypes = [i, i, i, i, i, i]
        lib.ortops_test_attention_workspace.restype = ctypes.c_size_t
        lib.ortops_test_attention.argtypes = [i, i, i, i, i, f, i] + [p] * 7 + [i, p, p, p, i]
        lib.ortops_test_attention.restype = i
        if hasattr(lib, "ortops_test_attention_default_schedule"):  # older shims: one grid only
            lib.ortops_test_attention_default_schedule.argtypes = [i, i]
            lib.ortops_test_attention_default_schedule.restype = i
        _lib = lib
    return _lib


def default_schedule(B, S):
    """SCHED_ONE_GRID or SCHED_TWO_STREAM: what the launcher does with SCHED_DEFAULT at this size."""
    lib = shim()
    if not hasattr(lib, "ortops_test_attention_default_schedule"):
        return SCHED_ONE_GRID
    return lib.ortops_test_attention_default_schedule(B, S) << 2


def workspace_bytes(B, S, H, D, w, dtype):
    return shim().ortops_test_attention_workspace(B, S, H, D, w, DTYPE_CODE[dtype])


def run_op(q, k, v, gq, gk, gv, mask, H, w, scale=None, out=None, workspace=None, parts=PARTS_ALL):
    """Calls the launcher on torch's current stream; returns (cudaError as int, out)."""
    B, S, E = q.shape
    D = E // H
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    if out is None:
        out = torch.full_like(q, float("nan"))
    ptr = lambda t: ctypes.c_void_p(t.data_ptr()) if t is not None else None  # noqa: E731
    rc = shim().ortops_test_attention(
        B, S, H, D, w, scale, DTYPE_CODE[q.dtype], ptr(q), ptr(k), ptr(v), ptr(gq), ptr(gk), ptr(gv), ptr(mask),
        int(mask.dtype == torch.int64), ptr(out), ptr(workspace), ctypes.c_void_p(torch.cuda.current_stream().cuda_stream),
        parts)
    return rc, out


def torch_reference(q, k, v, gq, gk, gv, mask, H, w, scale=None):
    """The op by its definition, dense masked attention in float64 on q's device ([S, S] per head)."""
    B, S, E = q.shape
    D = E // H
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    out = torch.zeros(B, S, E, dtype=torch.float64, device=q.device)
    idx = torch.arange(S, device=q.device)
    band = (idx[:, None] - idx[None, :]).abs() <= w
    for b in range(B):
        m = mask[b].to(q.device).long()
        heads = lambda x: x[b].double().view(S, H, D).transpose(0, 1)  # noqa: E731  [H, S, D]

        def attend(qq, kk, vv, allowed):
            s = scale * qq @ kk.transpose(1, 2)
            s = s.masked_fill(~allowed, float("-inf"))
            return torch.softmax(s, -1).nan_to_num(0.0) @ vv

        local_allowed = (band & (m[None, :] == 1)) | (m[None, :] == 2)
        global_allowed = (m[None, :] != 0).expand(S, S)
        o_loc = attend(heads(q), heads(k), heads(v), local_allowed)
        o_glob = attend(heads(gq), heads(gk), heads(gv), global_allowed)
        o = torch.where((m == 2)[None, :, None], o_glob, o_loc)
        o = torch.where((m == 0)[None, :, None], torch.zeros_like(o), o)
        out[b] = o.transpose(0, 1).reshape(S, E)
    return out


def make_mask(S, globals_, placement, valid, gen):
    """One mask row: the first `valid` tokens are real (rest padding), `globals_` of them global,
    either the first ones ('first') or at random positions ('scattered')."""
    m = torch.zeros(S, dtype=torch.int32)
    m[:valid] = 1
    g = min(globals_, valid)
    if placement == "first":
        m[:g] = 2
    else:
        m[torch.randperm(valid, generator=gen)[:g]] = 2
    return m


def make_inputs(B, S, H, D, dtype, separate_globals, gen, device="cuda"):
    shape = (B, S, H * D)
    t = lambda: torch.randn(shape, generator=gen).to(device=device, dtype=dtype)  # noqa: E731
    q, k, v = t(), t(), t()
    gq, gk, gv = (t(), t(), t()) if separate_globals else (q, k, v)
    return q, k, v, gq, gk, gv


def hf_longformer_attention(hidden, mask, H, w, dtype=torch.float64, device="cpu", seed=0):
    """HF LongformerSelfAttention (eval) on hidden [B, S, E] (S a multiple of 2w); returns
    (output, q, k, v, gq, gk, gv) with the projections it used, unscaled, in float64."""
    from transformers import LongformerConfig
    from transformers.models.longformer.modeling_longformer import LongformerSelfAttention

    B, S, E = hidden.shape
    torch.manual_seed(seed)
    cfg = LongformerConfig(hidden_size=E, num_attention_heads=H, attention_window=[2 * w],
                           attention_probs_dropout_prob=0.0)
    layer = LongformerSelfAttention(cfg, layer_id=0).eval().to(device=device, dtype=dtype)
    hs = hidden.to(device=device, dtype=dtype)
    m = mask.to(device)
    ext = torch.zeros(B, S, dtype=dtype, device=device)
    ext[m == 0] = -10000.0
    ext[m == 2] = 10000.0
    with torch.no_grad():
        out = layer(hs, attention_mask=ext, is_index_masked=ext < 0, is_index_global_attn=ext > 0,
                    is_global_attn=bool((ext > 0).any()))[0]
        projs = [lin(hs) for lin in (layer.query, layer.key, layer.value, layer.query_global, layer.key_global,
                                     layer.value_global)]
    out = out.masked_fill((m == 0)[:, :, None], 0.0)  # HF leaves padding rows' values; the op zeroes them
    return (out, *projs)


def rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm().clamp_min(1e-300)).item()


def describe_mismatch(out, ref, tol_abs):
    """Where the first bad element is, and how many NaN/inf (Liger-style verbose message)."""
    o = out.double()
    nan, inf = torch.isnan(o).sum().item(), torch.isinf(o).sum().item()
    bad = ((o - ref).abs() > tol_abs) | torch.isnan(o)
    first = bad.nonzero()[0].tolist() if bad.any() else None
    msg = f"nan={nan} inf={inf} bad={bad.sum().item()} first_bad={first}"
    if first:
        msg += f" out={o[tuple(first)].item():.6g} ref={ref[tuple(first)].item():.6g}"
    return msg
