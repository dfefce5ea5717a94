"""Models beyond the built-in tiny configs: HF directories of other classes in the supported
families, random-init and saved locally, exported and validated by the CLI. Sequence classifiers
export with their head (logits [B, labels]); other encoder task heads export their base model;
Mistral, Qwen2/3 and Gemma 1/2 are Llama-family decoders; XLM-RoBERTa and Electra use BERT's module
names; DistilBERT, Phi-3 (fused qkv/gate_up), OPT and GPT-NeoX have their own; a decoder task head
is refused."""
import json

import numpy as np
import onnxruntime
import pytest
import torch
import transformers as tf

from exporter import cli, families, finetune, models
from exporter.inputs import GraphModule, make_inputs


def save(tmp_path, model):
    directory = tmp_path / type(model).__name__
    model.save_pretrained(directory)
    return directory


ENCODER = dict(vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3)
DISTILBERT = dict(vocab_size=300, dim=48, hidden_dim=96, n_layers=2, n_heads=3)
DECODER = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=256)
DECODER_1 = {**DECODER, "num_hidden_layers": 1}  # base models: one layer keeps the test short
OPT = dict(vocab_size=300, hidden_size=64, ffn_dim=96, num_attention_heads=4, max_position_embeddings=128)
NEOX = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_attention_heads=4, max_position_embeddings=256)

MODELS = {
    "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256)),
    "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256)),
    "bert-masked-lm": lambda: tf.BertForMaskedLM(tf.BertConfig(
        vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3)),
    "bert-seq-cls": lambda: tf.BertForSequenceClassification(tf.BertConfig(
        vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3, num_labels=4)),
    "longformer-seq-cls": lambda: tf.LongformerForSequenceClassification(tf.LongformerConfig(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        attention_window=[8, 12], max_position_embeddings=600, pad_token_id=1, num_labels=3)),
    "longformer-qa": lambda: tf.LongformerForQuestionAnswering(tf.LongformerConfig(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        attention_window=[16, 6], max_position_embeddings=600, pad_token_id=1)),
    # XLM-RoBERTa checkpoints have one token type (no token_type_ids input), Electra two
    "xlm-roberta": lambda: tf.XLMRobertaModel(tf.XLMRobertaConfig(
        **ENCODER, max_position_embeddings=130, pad_token_id=1, type_vocab_size=1)),
    "xlm-roberta-seq-cls": lambda: tf.XLMRobertaForSequenceClassification(tf.XLMRobertaConfig(
        **ENCODER, max_position_embeddings=130, pad_token_id=1, type_vocab_size=1, num_labels=5)),
    "xlm-roberta-masked-lm": lambda: tf.XLMRobertaForMaskedLM(tf.XLMRobertaConfig(
        **ENCODER, max_position_embeddings=130, pad_token_id=1, type_vocab_size=1)),
    "electra": lambda: tf.ElectraModel(tf.ElectraConfig(**ENCODER, embedding_size=32)),
    "electra-seq-cls": lambda: tf.ElectraForSequenceClassification(tf.ElectraConfig(
        **ENCODER, embedding_size=32, num_labels=3)),
    "electra-pretraining": lambda: tf.ElectraForPreTraining(tf.ElectraConfig(**ENCODER, embedding_size=32)),
    "distilbert": lambda: tf.DistilBertModel(tf.DistilBertConfig(**DISTILBERT)),
    "distilbert-seq-cls": lambda: tf.DistilBertForSequenceClassification(tf.DistilBertConfig(
        **DISTILBERT, num_labels=4)),
    "distilbert-masked-lm": lambda: tf.DistilBertForMaskedLM(tf.DistilBertConfig(**DISTILBERT)),
    "qwen3": lambda: tf.Qwen3ForCausalLM(tf.Qwen3Config(**DECODER, head_dim=16)),
    "qwen3-base": lambda: tf.Qwen3Model(tf.Qwen3Config(**DECODER_1, head_dim=16)),
    "gemma": lambda: tf.GemmaForCausalLM(tf.GemmaConfig(**DECODER, head_dim=16)),
    "gemma-base": lambda: tf.GemmaModel(tf.GemmaConfig(**DECODER_1, head_dim=16)),
    # layer 0 sliding (window 8 < the validation's 45 tokens), layer 1 full; logit soft-capping on
    "gemma2": lambda: tf.Gemma2ForCausalLM(tf.Gemma2Config(**DECODER, head_dim=16, sliding_window=8)),
    "gemma2-base": lambda: tf.Gemma2Model(tf.Gemma2Config(**DECODER_1, head_dim=16, sliding_window=8)),
    "phi3": lambda: tf.Phi3ForCausalLM(tf.Phi3Config(**DECODER, pad_token_id=0)),
    "phi3-base": lambda: tf.Phi3Model(tf.Phi3Config(**DECODER_1, pad_token_id=0, partial_rotary_factor=0.5)),
    "opt": lambda: tf.OPTForCausalLM(tf.OPTConfig(**OPT, num_hidden_layers=2, word_embed_proj_dim=64)),
    # OPT-350m's layout: embeddings projected in and out, post-norm
    "opt-base": lambda: tf.OPTModel(tf.OPTConfig(**OPT, num_hidden_layers=1, word_embed_proj_dim=32,
                                                 do_layer_norm_before=False)),
    "gpt-neox": lambda: tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**NEOX, num_hidden_layers=2)),
    "gpt-neox-base": lambda: tf.GPTNeoXModel(tf.GPTNeoXConfig(**NEOX, num_hidden_layers=1,
                                                              use_parallel_residual=False)),
}
NODES = {"mistral": {"TSVDMatMul": 14}, "qwen2": {"TSVDMatMul": 14}, "bert-masked-lm": {"TSVDMatMul": 12},
         "bert-seq-cls": {"TSVDMatMul": 12}, "longformer-seq-cls": {"TSVDMatMul": 18, "MultigrainAttention": 2},
         "longformer-qa": {"TSVDMatMul": 18, "MultigrainAttention": 2},
         # 2 layers x (q, k, v, o + 2 MLP) for the encoders
         "xlm-roberta": {"TSVDMatMul": 12}, "xlm-roberta-seq-cls": {"TSVDMatMul": 12},
         "xlm-roberta-masked-lm": {"TSVDMatMul": 12}, "electra": {"TSVDMatMul": 12},
         "electra-seq-cls": {"TSVDMatMul": 12}, "electra-pretraining": {"TSVDMatMul": 12},
         "distilbert": {"TSVDMatMul": 12}, "distilbert-seq-cls": {"TSVDMatMul": 12},
         "distilbert-masked-lm": {"TSVDMatMul": 12},
         # Llama family: 7 a layer; Phi-3 and GPT-NeoX (fused qkv, fused gate_up / 2 MLP): 4; OPT: 6
         "qwen3": {"TSVDMatMul": 14}, "qwen3-base": {"TSVDMatMul": 7}, "gemma": {"TSVDMatMul": 14},
         "gemma-base": {"TSVDMatMul": 7}, "gemma2": {"TSVDMatMul": 14}, "gemma2-base": {"TSVDMatMul": 7},
         "phi3": {"TSVDMatMul": 8}, "phi3-base": {"TSVDMatMul": 4}, "opt": {"TSVDMatMul": 12},
         "opt-base": {"TSVDMatMul": 6}, "gpt-neox": {"TSVDMatMul": 8}, "gpt-neox-base": {"TSVDMatMul": 4}}
OUTPUT_LAST_DIM = {"bert-seq-cls": 4, "longformer-seq-cls": 3, "bert-masked-lm": 48, "longformer-qa": 64,
                   "mistral": 300, "qwen2": 300,
                   "xlm-roberta": 48, "xlm-roberta-seq-cls": 5, "xlm-roberta-masked-lm": 48, "electra": 48,
                   "electra-seq-cls": 3, "electra-pretraining": 48, "distilbert": 48, "distilbert-seq-cls": 4,
                   "distilbert-masked-lm": 48, "qwen3": 300, "qwen3-base": 64, "gemma": 300, "gemma-base": 64,
                   "gemma2": 300, "gemma2-base": 64, "phi3": 300, "phi3-base": 64, "opt": 300,
                   "opt-base": 32,  # OPT-350m's layout: project_out to word_embed_proj_dim
                   "gpt-neox": 300, "gpt-neox-base": 64}
# the class the report names: another encoder head exports its base model
EXPORTED_CLASS = {"bert-masked-lm": "BertModel", "longformer-qa": "LongformerModel",
                  "xlm-roberta-masked-lm": "XLMRobertaModel", "electra-pretraining": "ElectraModel",
                  "distilbert-masked-lm": "DistilBertModel"}
# graphs with a token_type_ids input (type_vocab_size > 1: the BERT, Longformer and Electra configs here)
TOKEN_TYPES = {"bert-masked-lm", "bert-seq-cls", "longformer-seq-cls", "longformer-qa", "electra", "electra-seq-cls",
               "electra-pretraining"}


@pytest.mark.parametrize("name", list(MODELS))
def test_directory_of_other_class_exports_and_validates(tmp_path, name):
    model = MODELS[name]()
    directory = save(tmp_path, model)
    output = tmp_path / f"{name}.onnx"
    assert cli.main([str(directory), "--compress", "2", "--tile", "32", "-o", str(output)]) == 0
    report = json.loads(output.with_name(f"{name}.report.json").read_text())
    assert report["class"] == EXPORTED_CLASS.get(name, type(model).__name__)
    assert report["custom_nodes"] == NODES[name]
    assert ("token_type_ids" in report["inputs"]) == (name in TOKEN_TYPES)
    assert report["output_shape"][0] == "batch" and report["output_shape"][-1] == OUTPUT_LAST_DIM[name]
    assert report["validation"]["passed"]
    assert report["validation"]["custom_kernels_ran"]


def test_decoder_task_head_is_refused(tmp_path, capsys):
    """A CausalLM rebuilt from a classifier checkpoint would have a random lm_head: refused, exit 2."""
    directory = save(tmp_path, tf.LlamaForSequenceClassification(tf.LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, pad_token_id=0)))
    output = tmp_path / "x.onnx"
    assert cli.main([str(directory), "-o", str(output)]) == 2
    assert "unsupported architecture 'LlamaForSequenceClassification'" in capsys.readouterr().err
    assert not output.exists()


def test_finetuned_classifier_exports_with_its_head(tmp_path):
    """finetune seq-cls (TSVD-common) saves a BertForSequenceClassification directory; the export
    restores its factors, keeps the trained head and validates."""
    data = tmp_path / "data.jsonl"
    rows = [{"text": " ".join(["good", "fine", "great"][i % 3] if i % 2 else ["bad", "poor"][i % 2]
                              for _ in range(6)), "label": i % 2} for i in range(48)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    tuned = tmp_path / "tuned"
    assert cli.main(["finetune", "bert-tiny", "--data", str(data), "--task", "seq-cls", "--mode", "common",
                     "--compress", "2", "--tile", "32", "--steps", "4", "--seq-len", "16", "--no-progress",
                     "-o", str(tuned)]) == 0
    output = tmp_path / "tuned.onnx"
    assert cli.main([str(tuned), "-o", str(output)]) == 0
    report = json.loads(output.with_name("tuned.report.json").read_text())
    assert report["class"] == "BertForSequenceClassification"
    compressed = len(json.loads((tuned / "tsvd_layout.json").read_text())["layers"])
    assert compressed == 4  # finetune's default --modules mlp: 2 layers x 2
    assert report["custom_nodes"] == {"TSVDMatMul": compressed} and report["output_shape"][-1] == 2
    assert report["validation"]["passed"] and report["validation"]["custom_kernels_ran"]


def test_model_type_maps_agree_with_the_table():
    """Every family's model_type maps (configs without `architectures`) to a listed class of that
    model_type; encoder model_types (and only those) fall back to their base model."""
    type_of = {name: getattr(tf, name).config_class.model_type for name in families.FAMILIES}
    assert set(type_of.values()) == set(families.DEFAULT_CLASS_FOR_MODEL_TYPE)
    for model_type, name in families.DEFAULT_CLASS_FOR_MODEL_TYPE.items():
        assert type_of[name] == model_type
        # not a classifier: a bare config carries no trained head
        assert families.FAMILIES[name].kind in ("encoder", "decoder")
    encoder_types = {t for name, t in type_of.items() if families.FAMILIES[name].kind != "decoder"}
    assert set(families.BASE_CLASS_FOR_ENCODER_MODEL_TYPE) == encoder_types
    for model_type, name in families.BASE_CLASS_FOR_ENCODER_MODEL_TYPE.items():
        assert type_of[name] == model_type and families.FAMILIES[name].kind == "encoder"


@pytest.mark.parametrize("model_type", ["xlm-roberta", "electra", "distilbert", "qwen3", "gemma", "gemma2", "phi3",
                                        "opt", "gpt_neox"])
def test_config_without_architectures_maps_by_model_type(tmp_path, model_type):
    tf.AutoConfig.for_model(model_type).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()).get("architectures") is None
    assert models.architecture_of(str(tmp_path)) == families.DEFAULT_CLASS_FOR_MODEL_TYPE[model_type]


def test_phi3_longrope_validates_on_both_sides_of_the_original_length(tmp_path):
    """Phi-3 128k / Phi-3.5 (longrope): short factors up to original_max_position_embeddings, long
    ones beyond, chosen in the graph. Exported at 32 tokens with no compression (so the capture is
    the model's first forward, which caches its long frequencies as a FakeTensor unless the exporter
    puts the attribute back), validated at 45 > 40; the file then matches a freshly loaded model at
    20 and 60 tokens."""
    directory = save(tmp_path, tf.Phi3ForCausalLM(tf.Phi3Config(
        **DECODER_1, pad_token_id=0, original_max_position_embeddings=40,
        rope_scaling={"rope_type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(8)],
                      "long_factor": [2.0 + 0.5 * i for i in range(8)]})))
    output = tmp_path / "phi3.onnx"
    assert cli.main([str(directory), "--seq-len", "32", "--validate-seq-len", "45", "-o", str(output)]) == 0
    assert json.loads(output.with_name("phi3.report.json").read_text())["validation"]["passed"]
    loaded = models.load(str(directory))
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    for seq in (20, 60):
        feeds = make_inputs(loaded.family, 300, 2, seq, seed=5)
        with torch.no_grad():
            expected = GraphModule(loaded.model, loaded.family)(**feeds).numpy()
        actual = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
        np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)
    # the two factor sets really differ (else this test could not tell them apart)
    rope = loaded.model.model.rotary_emb
    assert not torch.allclose(rope.original_inv_freq, rope.long_inv_freq)


def test_opt_position_table_limits_the_sequence(tmp_path, capsys):
    """OPT's learned positions start at offset 2: max_position_embeddings tokens fit, one more is
    refused up front (exit 2) instead of failing inside the export."""
    model = tf.OPTForCausalLM(tf.OPTConfig(**{**OPT, "max_position_embeddings": 40}, num_hidden_layers=1))
    assert models.max_sequence_length(model) == 40
    directory = save(tmp_path, model)
    assert cli.main([str(directory), "--seq-len", "41", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "--seq-len 41 exceeds the model's 40 positions" in capsys.readouterr().err


def test_distilbert_classifier_head_is_trained_whole():
    """DistilBERT's seq-cls head is pre_classifier + classifier: finetune trains (and LoRA saves) both."""
    model = tf.DistilBertForSequenceClassification(tf.DistilBertConfig(**DISTILBERT, num_labels=2))
    assert finetune._heads(model) == ["pre_classifier", "classifier"]
