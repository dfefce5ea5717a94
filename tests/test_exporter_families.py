"""Models beyond the built-in tiny configs: HF directories of other classes in the supported
families (task heads export their base model; Mistral and Qwen2 are Llama-family decoders),
random-init and saved locally, exported and validated by the CLI."""
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
    "longformer-qa": lambda: tf.LongformerForQuestionAnswering(tf.LongformerConfig(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        attention_window=[16, 6], max_position_embeddings=600, pad_token_id=1)),
}
NODES = {"mistral": {"TSVDMatMul": 14}, "qwen2": {"TSVDMatMul": 14}, "bert-masked-lm": {"TSVDMatMul": 12},
         "longformer-qa": {"TSVDMatMul": 18, "MultigrainAttention": 2}}


@pytest.mark.parametrize("name", list(MODELS))
def test_directory_of_other_class_exports_and_validates(tmp_path, name):
    directory = save(tmp_path, MODELS[name]())
    output = tmp_path / f"{name}.onnx"
    assert cli.main([str(directory), "--compress", "2", "--tile", "32", "-o", str(output)]) == 0
    report = json.loads(output.with_name(f"{name}.report.json").read_text())
    assert report["custom_nodes"] == NODES[name]
    assert report["validation"]["passed"]
    assert report["validation"]["custom_kernels_ran"]
