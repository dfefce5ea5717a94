"""Export-time rewrites of HF Longformer: each self-attention becomes one MultigrainAttention.

Stock HF Longformer does not export with a dynamic sequence length (data-dependent guards in
`_chunk`, as_strided strides frozen at export time) and pads every input to a window multiple.
Inside `export_patches(model)`:
- every LongformerSelfAttention projects q/k/v and the global q/k/v with its own Linears (or
  their TSVDLinear replacements) and calls `ortops::multigrain_attention` once;
- `LongformerModel._pad_to_window_size` is a no-op: the op takes any S;
- the [B, 1, S, S] float mask that transformers 5.x builds only to read one row of it becomes
  its [B, 1, 1, S] form, so the graph holds no O(S²) tensor.
The patched model computes the same function as stock HF (checked in tests/test_exporter_ops.py).
"""

from __future__ import annotations

import contextlib
import math
import types

import torch

from . import torch_ops  # noqa: F401  (registers torch.ops.ortops.*)
from .torch_ops import MASK_GLOBAL, MASK_LOCAL, MASK_PADDING


def _self_attention_forward(self, hidden_states, attention_mask=None, is_index_masked=None,
                            is_index_global_attn=None, is_global_attn=None, output_attentions=False):
    """hidden_states [B, S, E]; is_index_masked / is_index_global_attn [B, S] bool (HF's)."""
    if output_attentions:
        raise NotImplementedError("output_attentions is not available with MultigrainAttention")
    mask = torch.full_like(is_index_masked, MASK_LOCAL, dtype=torch.int64)
    mask = mask.masked_fill(is_index_global_attn, MASK_GLOBAL).masked_fill(is_index_masked, MASK_PADDING)
    out = torch.ops.ortops.multigrain_attention(
        self.query(hidden_states), self.key(hidden_states), self.value(hidden_states), mask,
        self.query_global(hidden_states), self.key_global(hidden_states), self.value_global(hidden_states),
        self.num_heads, self.one_sided_attn_window_size, 1.0 / math.sqrt(self.head_dim),
    )
    return (out,)


def _no_padding(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, pad_token_id):
    return 0, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds


def _row_mask(config, inputs_embeds, attention_mask, **kwargs):
    """Additive mask [B, 1, 1, S]: 0 where attention_mask is 1, dtype-min where 0."""
    dtype = inputs_embeds.dtype
    keep = attention_mask.to(dtype)[:, None, None, :]
    return (1.0 - keep) * torch.finfo(dtype).min


@contextlib.contextmanager
def export_patches(model: torch.nn.Module):
    """Applies the rewrites above to `model` (instance-level) for the duration of the block."""
    from transformers.models.longformer import modeling_longformer as hf

    patched = []
    for module in model.modules():
        if isinstance(module, hf.LongformerSelfAttention):
            module.forward = types.MethodType(_self_attention_forward, module)
            patched.append(module)
        elif isinstance(module, hf.LongformerModel):
            module._pad_to_window_size = types.MethodType(_no_padding, module)
            patched.append(module)
    original_mask = hf.create_bidirectional_mask
    hf.create_bidirectional_mask = _row_mask
    try:
        yield model
    finally:
        hf.create_bidirectional_mask = original_mask
        for module in patched:
            module.__dict__.pop("forward", None)
            module.__dict__.pop("_pad_to_window_size", None)



@contextlib.contextmanager
def reference_patches(model: torch.nn.Module):
    """Lets *stock* HF Longformer (the validation reference) run per-layer windows that do not all
    divide the largest one (e.g. [6, 8]): HF pads the input to a multiple of max(attention_window),
    but every layer needs a multiple of its own window, so pad to their least common multiple
    instead. Padding tokens are masked out and cut off again, so the function is unchanged."""
    from transformers.models.longformer import modeling_longformer as hf

    patched = []
    for module in model.modules():
        windows = getattr(getattr(module, "config", None), "attention_window", None)
        if isinstance(module, hf.LongformerModel) and isinstance(windows, (list, tuple)):
            multiple = math.lcm(*windows)
            if multiple != max(windows) and "_pad_to_window_size" not in module.__dict__:
                module._pad_to_window_size = types.MethodType(_lcm_padding(multiple), module)
                patched.append(module)
    try:
        yield model
    finally:
        for module in patched:
            module.__dict__.pop("_pad_to_window_size", None)


def _lcm_padding(multiple: int):
    def pad(self, *args, **kwargs):
        windows = self.config.attention_window
        self.config.attention_window = multiple  # the only forward-time reader of this field
        try:
            return type(self)._pad_to_window_size(self, *args, **kwargs)
        finally:
            self.config.attention_window = windows
    return pad
