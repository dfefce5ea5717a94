"""Where models come from: built-in tiny random-init configs, local HF directories, GGUF files.

Nothing is ever downloaded: directories load with `local_files_only=True`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .families import BASE_CLASS_FOR_ENCODER_MODEL_TYPE, DEFAULT_CLASS_FOR_MODEL_TYPE, FAMILIES, Family, UnsupportedModel, family_for, supported_list

SEED = 0  # the tiny models are random-init; a fixed seed makes every run build the same weights


def _tiny_configs() -> dict:
    import transformers as tf

    common = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128)
    return {
        "longformer-tiny": ("LongformerModel", lambda: tf.LongformerConfig(
            **common, attention_window=[8, 4], max_position_embeddings=1026, pad_token_id=1)),
        "bert-tiny": ("BertModel", lambda: tf.BertConfig(**common, max_position_embeddings=1024)),
        "roberta-tiny": ("RobertaModel", lambda: tf.RobertaConfig(
            **common, max_position_embeddings=1026, pad_token_id=1)),
        "gpt2-tiny": ("GPT2LMHeadModel", lambda: tf.GPT2Config(
            vocab_size=1000, n_embd=64, n_layer=2, n_head=4, n_positions=1024, bos_token_id=0, eos_token_id=0)),
        "llama-tiny": ("LlamaForCausalLM", lambda: tf.LlamaConfig(
            **{**common, "intermediate_size": 160}, num_key_value_heads=2, max_position_embeddings=1024)),
    }


TINY_NAMES = ("longformer-tiny", "bert-tiny", "roberta-tiny", "gpt2-tiny", "llama-tiny")


@dataclass
class LoadedModel:
    model: nn.Module
    class_name: str
    family: Family
    source: str


def _class(class_name: str):
    import transformers

    return getattr(transformers, class_name)


def resolve_source(source: str) -> tuple[str, str | None, str | None]:
    """(kind, directory, gguf file name) for a CLI input; raises FileNotFoundError/ValueError."""
    if source in TINY_NAMES:
        return "tiny", None, None
    path = Path(source)
    if path.is_file() and path.suffix == ".gguf":
        return "gguf", str(path.parent), path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{source}: no config.json (not a Hugging Face model directory)")
        return "dir", str(path), None
    if path.exists():
        raise FileNotFoundError(f"{source}: not a model directory or .gguf file")
    raise FileNotFoundError(
        f"{source}: no such directory, and not a built-in config ({', '.join(TINY_NAMES)})")


def architecture_of(source: str) -> str:
    """The HF class a source loads as, found from its config alone (cheap: no weights)."""
    kind, directory, gguf = resolve_source(source)
    if kind == "tiny":
        return _tiny_configs()[source][0]
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(directory, gguf_file=gguf, local_files_only=True)
    if config.architectures and config.architectures[0] in FAMILIES:
        return config.architectures[0]
    if not config.architectures and config.model_type in DEFAULT_CLASS_FOR_MODEL_TYPE:
        return DEFAULT_CLASS_FOR_MODEL_TYPE[config.model_type]
    if config.model_type in BASE_CLASS_FOR_ENCODER_MODEL_TYPE:
        # e.g. BertForMaskedLM: export its BertModel (the task head is not in the graph)
        return BASE_CLASS_FOR_ENCODER_MODEL_TYPE[config.model_type]
    named = config.architectures[0] if config.architectures else f"model_type {config.model_type!r}"
    raise UnsupportedModel(f"unsupported architecture {named!r}; supported: {supported_list()}")


def load(source: str) -> LoadedModel:
    """Loads the model in float32, eval mode, eager attention (the reference for validation)."""
    class_name = architecture_of(source)
    family = family_for(class_name)
    kind, directory, gguf = resolve_source(source)
    cls = _class(class_name)
    if kind == "tiny":
        config = _tiny_configs()[source][1]()
        config._attn_implementation = "eager"
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
            model = cls(config)
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from . import tsvd_common

        with tsvd_common.expected_missing_weights(directory if kind == "dir" else None):
            model = cls.from_pretrained(directory, gguf_file=gguf, local_files_only=True,
                                        attn_implementation="eager", dtype=torch.float32)
        if kind == "dir":  # a fine-tuned directory: its compressed layers come back as TSVDLinear
            tsvd_common.restore_factors(model, directory)
    return LoadedModel(model.eval(), class_name, family, source)


def max_sequence_length(model: nn.Module) -> int | None:
    """The longest sequence the model's learned position table takes (BERT: max_position_embeddings;
    RoBERTa/Longformer: minus pad_token_id + 1, where their positions start; GPT-2: n_positions;
    OPT: its table's rows minus its `offset`, 2), or None for rotary models (Llama family), which
    have no table to run off the end of."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and name.rpartition(".")[2] in ("position_embeddings", "wpe",
                                                                            "embed_positions"):
            offset = module.padding_idx + 1 if module.padding_idx is not None else getattr(module, "offset", 0)
            return module.num_embeddings - offset
    return None
