"""The two ops on the PyTorch side: torch.library custom ops with eager references and fakes.

Being opaque custom ops is what makes the dynamo exporter emit ONE node per call (it cannot look
inside), and `register_fake` gives it shapes for dynamic batch and sequence. The eager bodies are
the reference implementation of the ops spec: dense and simple, not fast.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

# --- TSVDMatMul -------------------------------------------------------------------------------


def tile_grid(u: Tensor, v: Tensor, in_features: int, out_features: int) -> tuple[int, int]:
    """(Tk, Tn) of the tile grid; a shared factor ([1, 1, ., .]) takes the grid from the other one
    or, when both are shared, from K and N."""
    tk, tn = u.shape[-2], v.shape[-1]
    grid_k = max(u.shape[0], v.shape[0])
    grid_n = max(u.shape[1], v.shape[1])
    if grid_k == 1:
        grid_k = math.ceil(in_features / tk)
    if grid_n == 1:
        grid_n = math.ceil(out_features / tn)
    return grid_k, grid_n


def dense_weight(u: Tensor, v: Tensor, in_features: int, out_features: int) -> Tensor:
    """W̃ [K, N] from the factors U [Tk, Tn, tk, r] and V [Tk, Tn, r, tn] (either may be shared)."""
    grid_k, grid_n = tile_grid(u, v, in_features, out_features)
    tk, tn = u.shape[-2], v.shape[-1]
    tiles = torch.matmul(u, v).expand(grid_k, grid_n, tk, tn)  # (Tk, Tn, tk, tn)
    full = tiles.permute(0, 2, 1, 3).reshape(grid_k * tk, grid_n * tn)
    return full[:in_features, :out_features]


@torch.library.custom_op("ortops::tsvd_matmul", mutates_args=())
def tsvd_matmul(a: Tensor, u: Tensor, v: Tensor, bias: Optional[Tensor], out_features: int) -> Tensor:
    """Y [..., N] = A [..., K] · W̃ [K, N] (+ bias [N]); see `dense_weight` for W̃."""
    weight = dense_weight(u, v, a.shape[-1], out_features).to(a.dtype)
    y = torch.matmul(a, weight)
    if bias is not None:
        y = y + bias.to(a.dtype)
    return y


@tsvd_matmul.register_fake
def _(a, u, v, bias, out_features):
    return a.new_empty((*a.shape[:-1], out_features))


# --- MultigrainAttention ----------------------------------------------------------------------

MASK_PADDING, MASK_LOCAL, MASK_GLOBAL = 0, 1, 2


def _heads(x: Tensor, num_heads: int) -> Tensor:
    batch, seq, hidden = x.shape
    return x.float().view(batch, seq, num_heads, hidden // num_heads).transpose(1, 2)  # (B, H, S, D)


@torch.library.custom_op("ortops::multigrain_attention", mutates_args=())
def multigrain_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor,
    global_query: Optional[Tensor],
    global_key: Optional[Tensor],
    global_value: Optional[Tensor],
    num_heads: int,
    window: int,
    scale: float,
) -> Tensor:
    """HF LongformerSelfAttention (eval) as dense masked attention, O(S²) memory.

    query/key/value and the optional global_* are [B, S, H·D] projections (query unscaled);
    attention_mask [B, S] holds 0 = padding, 1 = local, 2 = global. A local query sees the
    local keys within |i − j| ≤ window plus every global key once; a global query sees every
    non-padding key through the global projections; padding query rows are 0. Softmax in float32.
    """
    gq = query if global_query is None else global_query
    gk = key if global_key is None else global_key
    gv = value if global_value is None else global_value
    seq = query.shape[1]
    mask = attention_mask
    key_local = (mask == MASK_LOCAL)[:, None, None, :]  # (B, 1, 1, S)
    key_global = (mask == MASK_GLOBAL)[:, None, None, :]
    key_valid = (mask != MASK_PADDING)[:, None, None, :]
    pos = torch.arange(seq, device=query.device)
    in_band = (pos[:, None] - pos[None, :]).abs() <= window  # (S, S)
    lowest = torch.finfo(torch.float32).min

    local_scores = scale * _heads(query, num_heads) @ _heads(key, num_heads).transpose(-1, -2)
    local_scores = local_scores.masked_fill(~((in_band & key_local) | key_global), lowest)
    local_out = local_scores.softmax(-1) @ _heads(value, num_heads)  # (B, H, S, D)

    global_scores = scale * _heads(gq, num_heads) @ _heads(gk, num_heads).transpose(-1, -2)
    global_scores = global_scores.masked_fill(~key_valid, lowest)
    global_out = global_scores.softmax(-1) @ _heads(gv, num_heads)

    out = torch.where((mask == MASK_GLOBAL)[:, None, :, None], global_out, local_out)
    out = out.masked_fill((mask == MASK_PADDING)[:, None, :, None], 0.0)
    return out.transpose(1, 2).reshape(query.shape).to(query.dtype)


@multigrain_attention.register_fake
def _(query, key, value, attention_mask, global_query, global_key, global_value, num_heads, window, scale):
    return torch.empty_like(query)
