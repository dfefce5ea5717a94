"""Supported model families, in ONE table keyed by the HF class name.

A family says which module names are attention projections, MLP layers and the LM head (the
targets of `--modules`), what the exported graph returns, whether it takes a global attention
mask, and which export-time rewrites it needs. Adding a model that fits an existing family is one
line in `FAMILIES`; nothing else in the exporter names a model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from dataclasses import dataclass
from typing import Callable, ContextManager

from torch import nn

from . import longformer


def _no_patches(model: nn.Module) -> ContextManager:
    return contextlib.nullcontext(model)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "encoder" (last_hidden_state), "decoder" (logits [B, S, V]), "classifier" (logits [B, labels])
    attention: tuple[str, ...]  # regexes matched at the end of module names
    mlp: tuple[str, ...]
    lm_head: tuple[str, ...] = ()
    global_attention: bool = False  # takes `global_attention_mask`
    export_patches: Callable[[nn.Module], ContextManager] = _no_patches
    output: str = ""  # the graph's output when not the kind's default (a decoder's base model)
    reference_patches: Callable[[nn.Module], ContextManager] = _no_patches  # for stock eager runs

    @property
    def output_name(self) -> str:
        if self.output:
            return self.output
        return "last_hidden_state" if self.kind == "encoder" else "logits"

    def module_names(self, model: nn.Module, groups: set[str]) -> list[str]:
        """Names of the Linear/Conv1D modules in the chosen groups ("attention", "mlp", "lm_head")."""
        patterns = [p for g in sorted(groups) for p in getattr(self, g)]
        regex = re.compile("(^|\\.)(" + "|".join(patterns) + ")$") if patterns else None
        names = []
        for name, module in model.named_modules():
            is_matmul = isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"
            if regex and is_matmul and regex.search(name):
                names.append(name)
        return names


_BERT_ATTENTION = (r"attention\.self\.(query|key|value)", r"attention\.output\.dense")
_BERT_MLP = (r"intermediate\.dense", r"layer\.\d+\.output\.dense")

BERT = Family("bert", "encoder", _BERT_ATTENTION, _BERT_MLP)
LONGFORMER = Family(
    "longformer", "encoder",
    attention=(r"attention\.self\.(query|key|value)(_global)?", r"attention\.output\.dense"),
    mlp=_BERT_MLP, global_attention=True, export_patches=longformer.export_patches,
    reference_patches=longformer.reference_patches,
)
GPT2 = Family("gpt2", "decoder", attention=(r"attn\.c_attn", r"attn\.c_proj"),
              mlp=(r"mlp\.c_fc", r"mlp\.c_proj"), lm_head=(r"lm_head",))
LLAMA = Family("llama", "decoder", attention=(r"self_attn\.(q|k|v|o)_proj",),
               mlp=(r"mlp\.(gate|up|down)_proj",), lm_head=(r"lm_head",))
DISTILBERT = Family("distilbert", "encoder", attention=(r"attention\.(q|k|v|out)_lin",), mlp=(r"ffn\.lin(1|2)",))
# Phi-3: fused qkv_proj [E, (H + 2·KV)·D] and gate_up_proj [E, 2·I], one TSVDMatMul each
PHI3 = Family("phi3", "decoder", attention=(r"self_attn\.(qkv|o)_proj",),
              mlp=(r"mlp\.(gate_up|down)_proj",), lm_head=(r"lm_head",))
OPT = Family("opt", "decoder", attention=(r"self_attn\.(q|k|v|out)_proj",), mlp=(r"fc(1|2)",),
             lm_head=(r"lm_head",))
# GPT-NeoX (Pythia): fused query_key_value, interleaved per head (the matrix is compressed as is)
GPT_NEOX = Family("gpt_neox", "decoder", attention=(r"attention\.(query_key_value|dense)",),
                  mlp=(r"mlp\.dense_(h_to_4h|4h_to_h)",), lm_head=(r"lm_head",))

# Sequence classifiers: the same layers plus their head (never compressed), output logits [B, labels]
BERT_CLASSIFIER = dataclasses.replace(BERT, kind="classifier")
LONGFORMER_CLASSIFIER = dataclasses.replace(LONGFORMER, kind="classifier")
DISTILBERT_CLASSIFIER = dataclasses.replace(DISTILBERT, kind="classifier")  # head: pre_classifier + classifier
# A decoder's base model (GPT2Model, LlamaModel, ...) has no LM head: causal, but its output is
# last_hidden_state [B, S, E]
GPT2_BASE = dataclasses.replace(GPT2, lm_head=(), output="last_hidden_state")
LLAMA_BASE = dataclasses.replace(LLAMA, lm_head=(), output="last_hidden_state")
PHI3_BASE = dataclasses.replace(PHI3, lm_head=(), output="last_hidden_state")
OPT_BASE = dataclasses.replace(OPT, lm_head=(), output="last_hidden_state")
GPT_NEOX_BASE = dataclasses.replace(GPT_NEOX, lm_head=(), output="last_hidden_state")

FAMILIES: dict[str, Family] = {
    "LongformerModel": LONGFORMER,
    "LongformerForSequenceClassification": LONGFORMER_CLASSIFIER,
    "BertModel": BERT,
    "BertForSequenceClassification": BERT_CLASSIFIER,
    "RobertaModel": BERT,
    "RobertaForSequenceClassification": BERT_CLASSIFIER,
    # BERT module names (attention.self.query, ..., intermediate.dense, output.dense); Electra's
    # embeddings_project (embedding_size != hidden_size) is neither group, so never compressed
    "XLMRobertaModel": BERT,
    "XLMRobertaForSequenceClassification": BERT_CLASSIFIER,
    "ElectraModel": BERT,
    "ElectraForSequenceClassification": BERT_CLASSIFIER,
    "DistilBertModel": DISTILBERT,
    "DistilBertForSequenceClassification": DISTILBERT_CLASSIFIER,
    "GPT2Model": GPT2_BASE,
    "GPT2LMHeadModel": GPT2,
    "LlamaModel": LLAMA_BASE,
    "LlamaForCausalLM": LLAMA,
    # Llama-family decoders with the same module names (q/k/v/o_proj, gate/up/down_proj)
    "MistralModel": LLAMA_BASE,
    "MistralForCausalLM": LLAMA,
    "Qwen2Model": LLAMA_BASE,
    "Qwen2ForCausalLM": LLAMA,
    "Qwen3Model": LLAMA_BASE,  # + q_norm/k_norm (RMSNorm, not matmuls)
    "Qwen3ForCausalLM": LLAMA,
    "GemmaModel": LLAMA_BASE,
    "GemmaForCausalLM": LLAMA,
    "Gemma2Model": LLAMA_BASE,  # + sliding-window layers, attention and final logit soft-capping
    "Gemma2ForCausalLM": LLAMA,
    "Phi3Model": PHI3_BASE,
    "Phi3ForCausalLM": PHI3,
    "OPTModel": OPT_BASE,
    "OPTForCausalLM": OPT,
    "GPTNeoXModel": GPT_NEOX_BASE,
    "GPTNeoXForCausalLM": GPT_NEOX,
}

# configs that name no architecture (GGUF files, bare configs) load as the family's model for
# their model_type
DEFAULT_CLASS_FOR_MODEL_TYPE = {
    "longformer": "LongformerModel",
    "bert": "BertModel",
    "roberta": "RobertaModel",
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "xlm-roberta": "XLMRobertaModel",
    "electra": "ElectraModel",
    "distilbert": "DistilBertModel",
    "qwen3": "Qwen3ForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "opt": "OPTForCausalLM",
    "gpt_neox": "GPTNeoXForCausalLM",
}


# Encoders whose task head the table does not list (BertForMaskedLM, LongformerForQuestionAnswering,
# ...) export their base model: its weights load from the checkpoint and only the head is left
# out. Decoders get no such fallback: a CausalLM built from another head's checkpoint would have a
# freshly initialised lm_head, a different model.
BASE_CLASS_FOR_ENCODER_MODEL_TYPE = {"longformer": "LongformerModel", "bert": "BertModel", "roberta": "RobertaModel",
                                     "xlm-roberta": "XLMRobertaModel", "electra": "ElectraModel",
                                     "distilbert": "DistilBertModel"}


class UnsupportedModel(ValueError):
    pass


def supported_list() -> str:
    return ", ".join(sorted(FAMILIES))


def family_for(class_name: str) -> Family:
    try:
        return FAMILIES[class_name]
    except KeyError:
        raise UnsupportedModel(f"unsupported architecture {class_name!r}; supported: {supported_list()}") from None
