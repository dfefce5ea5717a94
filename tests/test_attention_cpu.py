"""MultigrainAttention CPU kernel against HF's LongformerSelfAttention (float64, eval) and the
definition-level reference of tests/reference.py."""
import numpy as np
import pytest

import reference as ref
from checks import assert_close
from hf_longformer import hf_output, make_layer, projections
from onnx_graphs import attention_inputs, run_single_node

from ort_ops import _cpu_kernels

TOL = dict(atol=2e-5, rtol=1e-4)


def mask_with(rng, B, S, globals_per_row, pad_per_row):
    """0/1/2 mask: `pad_per_row[b]` padding tokens at the end of row b, globals at the given
    positions (or a random choice of that many non-padding positions when an int)."""
    mask = np.ones((B, S), np.int64)
    for b in range(B):
        if pad_per_row[b]:
            mask[b, S - pad_per_row[b]:] = 0
        g = globals_per_row[b]
        if isinstance(g, int):
            g = rng.choice(S - pad_per_row[b], size=g, replace=False)
        mask[b, list(g)] = 2
    return mask


HF_CASES = [
    # B, S, heads, D, w, globals per row, padding per row
    (2, 37, 2, 8, 4, [[0, 5], [36]], [3, 0]),             # S not a multiple of 2w, padding, different globals
    (1, 16, 2, 8, 4, [[]], [0]),                           # S = 2w, no globals
    (2, 50, 3, 8, 3, [12, 0], [0, 7]),                     # G > w in row 0, none in row 1
    (3, 45, 4, 4, 6, [[44], [0, 1, 2], 5], [0, 4, 10]),   # globals at the end, start, anywhere
    (1, 70, 2, 16, 2, [[3, 40]], [5]),                     # w = 2, D = 16 (HF breaks at w = 1)
    (2, 129, 2, 8, 32, [3, 1], [20, 0]),                   # several query blocks of 64
]


@pytest.mark.parametrize("share", [False, True], ids=["global-projections", "local-only"])
@pytest.mark.parametrize("B,S,H,D,w,globs,pads", HF_CASES)
def test_matches_hf_longformer(rng, B, S, H, D, w, globs, pads, share):
    layer = make_layer(H * D, H, w, seed=int(rng.integers(1 << 30)), share_global_projections=share)
    hidden = rng.standard_normal((B, S, H * D))
    mask = mask_with(rng, B, S, globs, pads)
    q, k, v, gq, gk, gv = projections(layer, hidden)
    expected = hf_output(layer, hidden, mask)
    globals_in = (None, None, None) if share else (gq, gk, gv)
    y = run_single_node("MultigrainAttention", attention_inputs(q, k, v, mask, *globals_in),
                        {"num_heads": H, "window": w})
    assert_close(y, expected, **TOL, what="ORT vs HF")
    y_np = _cpu_kernels.multigrain_attention(q, k, v, mask.astype(np.int32), *globals_in, num_heads=H, window=w)
    assert_close(y_np, expected, **TOL, what="pybind11 vs HF")


@pytest.mark.parametrize("B,S,H,D,w,G", [(2, 200, 2, 16, 20, 9), (1, 300, 1, 32, 64, 3), (2, 66, 3, 8, 1, 0),
                                         (1, 30, 2, 8, 0, 2)])  # w = 0: self + globals only
def test_matches_definition_reference(rng, B, S, H, D, w, G):
    q, k, v, gq, gk, gv = (rng.standard_normal((B, S, H * D)).astype(np.float32) for _ in range(6))
    mask = mask_with(rng, B, S, [G] * B, [int(rng.integers(0, S // 4)) for _ in range(B)])
    scale = float(rng.uniform(0.05, 0.3))
    expected = ref.multigrain_attention(q, k, v, mask, H, w, gq, gk, gv, scale=scale)
    y = run_single_node("MultigrainAttention", attention_inputs(q, k, v, mask.astype(np.int32), gq, gk, gv),
                        {"num_heads": H, "window": w, "scale": scale})
    assert_close(y, expected, **TOL)


def test_padding_rows_are_zero_and_some_globals_only(rng):
    """Only one of the three global projections given: the others fall back to the local ones."""
    B, S, H, D, w = 1, 40, 2, 8, 5
    q, k, v, gk = (rng.standard_normal((B, S, H * D)).astype(np.float32) for _ in range(4))
    mask = mask_with(rng, B, S, [[7, 30]], [6])
    y = run_single_node("MultigrainAttention", attention_inputs(q, k, v, mask, None, gk, None),
                        {"num_heads": H, "window": w})
    assert_close(y, ref.multigrain_attention(q, k, v, mask, H, w, None, gk, None), **TOL)
    assert np.all(y[0, -6:] == 0)


def test_long_sequence_costs_no_quadratic_memory(rng):
    """S = 8192 with w = 32: a dense S x S float32 score matrix per head would be 256 MiB; the
    kernel's work and memory follow S·(w + G). Checked against the reference on sampled rows."""
    B, S, H, D, w = 1, 8192, 2, 16, 32
    q, k, v = (rng.standard_normal((B, S, H * D)).astype(np.float32) for _ in range(3))
    mask = mask_with(rng, B, S, [4], [100])
    y = _cpu_kernels.multigrain_attention(q, k, v, mask, num_heads=H, window=w)
    rows = np.concatenate([np.flatnonzero(mask[0] == 2), rng.choice(S, 20, replace=False)])
    for i in rows:
        keys = (np.abs(np.arange(S) - i) <= w) & (mask[0] == 1) | (mask[0] == 2)
        if mask[0, i] == 2:
            keys = mask[0] != 0
        if mask[0, i] == 0:
            assert np.all(y[0, i] == 0)
            continue
        for h in range(H):
            sl = slice(h * D, (h + 1) * D)
            s = (k[0][keys][:, sl].astype(np.float64) @ q[0, i, sl]) / np.sqrt(D)
            p = np.exp(s - s.max())
            p /= p.sum()
            assert_close(y[0, i, sl], p @ v[0][keys][:, sl], **TOL, what=f"row {i} head {h}")


@pytest.mark.parametrize("B,S,H,D,w", [(1, 10, 2, 4, 20), (2, 1, 1, 3, 0), (1, 5, 1, 5, 2), (3, 7, 7, 1, 1),
                                       (2, 33, 3, 2, 4)])
def test_random_masks_tiny_heads_and_windows_past_the_sequence(rng, B, S, H, D, w):
    """Mask values drawn at random (whole rows of padding or of globals happen), D down to 1,
    window larger than S."""
    q, k, v = (rng.standard_normal((B, S, H * D)).astype(np.float32) for _ in range(3))
    mask = rng.integers(0, 3, size=(B, S))
    y = run_single_node("MultigrainAttention", attention_inputs(q, k, v, mask), {"num_heads": H, "window": w})
    assert_close(y, ref.multigrain_attention(q, k, v, mask, H, w), **TOL)
