"""Example and validation inputs: the graph's input names and random, seeded values.

Validation inputs cover the cases that break exports: a padded batch row, global tokens at
different places in different rows (Longformer), a batch size and sequence length other than
the export's.
"""

from __future__ import annotations

import torch

from .families import Family

INPUT_IDS, ATTENTION_MASK, GLOBAL_ATTENTION_MASK = "input_ids", "attention_mask", "global_attention_mask"


def input_names(family: Family) -> list[str]:
    names = [INPUT_IDS, ATTENTION_MASK]
    if family.global_attention:
        names.append(GLOBAL_ATTENTION_MASK)
    return names


def make_inputs(family: Family, vocab_size: int, batch: int, seq: int, *, seed: int,
                device: str = "cpu") -> dict[str, torch.Tensor]:
    """input_ids [B, S] int64; attention_mask [B, S] int64 (1 = token, 0 = padding: the last row
    loses its last quarter when B > 1); global_attention_mask [B, S] (1 = global) for Longformer,
    row b with globals at b and at S_valid − 1 − 2b (clamped), so rows differ."""
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
    return {name: value.to(device) for name, value in inputs.items()}


class GraphModule(torch.nn.Module):
    """The HF model with the graph's signature: named integer inputs -> one output tensor
    (last_hidden_state [B, S, E] for encoders, logits [B, S, V] for decoders)."""

    def __init__(self, model: torch.nn.Module, family: Family):
        super().__init__()
        self.model = model
        self.family = family

    def forward(self, input_ids, attention_mask, global_attention_mask=None):
        kwargs = {INPUT_IDS: input_ids, ATTENTION_MASK: attention_mask}
        if self.family.global_attention:
            kwargs[GLOBAL_ATTENTION_MASK] = global_attention_mask
        if self.family.kind == "decoder":
            kwargs["use_cache"] = False
        return getattr(self.model(**kwargs), self.family.output_name)
