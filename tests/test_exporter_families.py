"""Models beyond the built-in tiny configs: HF directories of other classes in the supported
families, random-init and saved locally, exported and validated by the CLI. Sequence classifiers
export with their head (logits [B, labels]); other encoder task heads export their base model;
Mistral and Qwen2 are Llama-family decoders; a decoder task head is refused."""
import json

import pytest
import transformers as tf

from exporter import cli


def save(tmp_path, model):
    directory = tmp_path / type(model).__name__
    model.save_pretrained(directory)
    return directory


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
}
NODES = {"mistral": {"TSVDMatMul": 14}, "qwen2": {"TSVDMatMul": 14}, "bert-masked-lm": {"TSVDMatMul": 12},
         "bert-seq-cls": {"TSVDMatMul": 12}, "longformer-seq-cls": {"TSVDMatMul": 18, "MultigrainAttention": 2},
         "longformer-qa": {"TSVDMatMul": 18, "MultigrainAttention": 2}}
OUTPUT_LAST_DIM = {"bert-seq-cls": 4, "longformer-seq-cls": 3, "bert-masked-lm": 48, "longformer-qa": 64,
                   "mistral": 300, "qwen2": 300}


@pytest.mark.parametrize("name", list(MODELS))
def test_directory_of_other_class_exports_and_validates(tmp_path, name):
    directory = save(tmp_path, MODELS[name]())
    output = tmp_path / f"{name}.onnx"
    assert cli.main([str(directory), "--compress", "2", "--tile", "32", "-o", str(output)]) == 0
    report = json.loads(output.with_name(f"{name}.report.json").read_text())
    assert report["custom_nodes"] == NODES[name]
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
