"""HF transformers' LongformerSelfAttention as the ground truth for MultigrainAttention: a tiny
random-init layer run in float64, eval mode, fed the way LongformerModel feeds it (sequence padded
to a multiple of 2w with padding tokens, mask as -10000 / 0 / +10000)."""
from __future__ import annotations

import numpy as np
import torch
from transformers import LongformerConfig
from transformers.models.longformer.modeling_longformer import LongformerSelfAttention


def make_layer(hidden, heads, window, seed, share_global_projections=False):
    """window: one-sided w (HF attention_window = 2w). share_global_projections copies the local
    q/k/v weights into the global ones, which is what the op computes when the global inputs are
    absent."""
    torch.manual_seed(seed)
    config = LongformerConfig(hidden_size=hidden, num_attention_heads=heads, attention_window=[2 * window],
                              num_hidden_layers=1, attention_probs_dropout_prob=0.0)
    layer = LongformerSelfAttention(config, layer_id=0).double().eval()
    if share_global_projections:
        with torch.no_grad():
            for local, glob in ((layer.query, layer.query_global), (layer.key, layer.key_global),
                                (layer.value, layer.value_global)):
                glob.weight.copy_(local.weight)
                glob.bias.copy_(local.bias)
    return layer


@torch.no_grad()
def projections(layer, hidden_states):
    """The op's inputs: local and global q/k/v projections, [B, S, H·D] float32 (query unscaled)."""
    h = torch.as_tensor(hidden_states, dtype=torch.float64)
    mods = (layer.query, layer.key, layer.value, layer.query_global, layer.key_global, layer.value_global)
    return [m(h).numpy().astype(np.float32) for m in mods]


@torch.no_grad()
def hf_output(layer, hidden_states, mask):
    """LongformerSelfAttention's output [B, S, E] in float64 for a 0/1/2 mask [B, S]."""
    h = torch.as_tensor(hidden_states, dtype=torch.float64)
    m = torch.as_tensor(np.asarray(mask), dtype=torch.long)
    B, S, E = h.shape
    chunk = 2 * layer.one_sided_attn_window_size
    pad = (-S) % chunk
    if pad:  # what LongformerModel._pad_to_window_size does
        h = torch.cat([h, torch.zeros(B, pad, E, dtype=h.dtype)], 1)
        m = torch.cat([m, torch.zeros(B, pad, dtype=m.dtype)], 1)
    ext = torch.zeros(m.shape, dtype=h.dtype)
    ext[m == 0] = -10000.0
    ext[m == 2] = 10000.0
    is_index_masked = m == 0
    is_index_global_attn = m == 2
    out = layer(h, attention_mask=ext, is_index_masked=is_index_masked, is_index_global_attn=is_index_global_attn,
                is_global_attn=bool(is_index_global_attn.any()))[0]
    return out[:, :S].numpy()
