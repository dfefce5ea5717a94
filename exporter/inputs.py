"""Example and validation inputs: the graph's input names and random, seeded values.

Validation inputs cover the cases that break exports: a padded batch row, global tokens at
different places in different rows (Longformer), random non-zero segment ids (so a graph that
ignores token_type_ids fails), a batch size and sequence length other than the export's.
"""

from __future__ import annotations

import inspect

import torch

from .families import Family

INPUT_IDS, ATTENTION_MASK, GLOBAL_ATTENTION_MASK = "input_ids", "attention_mask", "global_attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"


def token_type_count(model: torch.nn.Module, family: Family) -> int:
    """How many segment types the graph's token_type_ids input takes; 0 = no such input.

    Only when the embeddings have a token-type table of more than one row (BERT-style
    `type_vocab_size > 1`) and the forward takes the ids: with one row (RoBERTa and Longformer
    checkpoints) the input could only ever be zero. Decoders never get it (GPT-2's forward takes
    token_type_ids, but embeds them through its word table, not a segment table)."""
    if family.kind == "decoder":
        return 0
    types = getattr(getattr(model, "config", None), "type_vocab_size", None) or 0
    if types < 2 or TOKEN_TYPE_IDS not in inspect.signature(model.forward).parameters:
        return 0
    return types


def input_names(family: Family, token_types: int = 0) -> list[str]:
    """The graph's inputs in order; `token_types` as token_type_count gives it."""
    names = [INPUT_IDS, ATTENTION_MASK]
    if family.global_attention:
        names.append(GLOBAL_ATTENTION_MASK)
    if token_types:
        names.append(TOKEN_TYPE_IDS)
    return names


def make_inputs(family: Family, vocab_size: int, batch: int, seq: int, *, seed: int,
                device: str = "cpu", token_types: int = 0) -> dict[str, torch.Tensor]:
    """input_ids [B, S] int64; attention_mask [B, S] int64 (1 = token, 0 = padding: the last row
    loses its last quarter when B > 1); global_attention_mask [B, S] (1 = global) for Longformer,
    row b with globals at b and at S_valid − 1 − 2b (clamped), so rows differ; token_type_ids
    [B, S] int64 when `token_types` > 0: uniform in 0..token_types − 1, the first column set to the
    last type so no row is all segment A (drawn last: the other inputs are the same without it)."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (batch, seq), generator=gen)
    attention_mask = torch.ones(batch, seq, dtype=torch.int64)
    valid = [seq] * batch
    if batch > 1:
        valid[-1] = max(1, seq - max(1, seq // 4))
        attention_mask[-1, valid[-1]:] = 0
    inputs = {INPUT_IDS: input_ids, ATTENTION_MASK: attention_mask}
    if family.global_attention:
        global_mask = torch.zeros(batch, seq, dtype=torch.int64)
        for row in range(batch):
            global_mask[row, row % valid[row]] = 1
            global_mask[row, max(0, valid[row] - 1 - 2 * row)] = 1
        inputs[GLOBAL_ATTENTION_MASK] = global_mask
    if token_types:
        token_type_ids = torch.randint(0, token_types, (batch, seq), generator=gen)
        token_type_ids[:, 0] = token_types - 1
        inputs[TOKEN_TYPE_IDS] = token_type_ids
    return {name: value.to(device) for name, value in inputs.items()}


class GraphModule(torch.nn.Module):
    """The HF model with the graph's signature: named integer inputs -> one output tensor
    (last_hidden_state [B, S, E] for encoders, logits [B, S, V] for decoders)."""

    def __init__(self, model: torch.nn.Module, family: Family):
        super().__init__()
        self.model = model
        self.family = family
        self.token_types = token_type_count(model, family)

    def forward(self, input_ids, attention_mask, global_attention_mask=None, token_type_ids=None):
        kwargs = {INPUT_IDS: input_ids, ATTENTION_MASK: attention_mask}
        if self.family.global_attention:
            kwargs[GLOBAL_ATTENTION_MASK] = global_attention_mask
        if self.token_types:  # None (not fed, eager only) is HF's all-zero default
            kwargs[TOKEN_TYPE_IDS] = token_type_ids
        if self.family.kind == "decoder":
            kwargs["use_cache"] = False
        return getattr(self.model(**kwargs), self.family.output_name)
