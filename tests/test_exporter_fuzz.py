"""Configs and options the other exporter tests do not pick: quirks of the supported families that
broke the exporter once (base decoder models, opset 23, sliding windows, GQA with one KV head,
per-layer Longformer windows larger than the sequence, small position tables), bad input that
must be one line and exit 2, and a validation that must fail when the ONNX output is wrong.

Every model is random-init, tiny, one or two layers, saved to a temporary HF directory."""
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import transformers as tf

from exporter import cli, models, validate
from exporter.inputs import GraphModule, make_inputs, token_type_count

SMALL = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4)


def save(root, name, model):
    directory = root / name
    model.save_pretrained(directory)
    return directory


def export(tmp_path, *args, name="model.onnx"):
    output = tmp_path / name
    code = cli.main([*map(str, args), "-o", str(output)])
    report_file = output.with_name(output.stem + ".report.json")
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    return code, output, report


def independent_check(path, directory, batch=3, seq=21):
    """The written model on stock onnxruntime (function bodies) against the uncompressed HF model
    loaded afresh, at a batch and length of our own."""
    loaded = models.load(str(directory))
    feeds = make_inputs(loaded.family, loaded.model.config.vocab_size, batch, seq, seed=11,
                        token_types=token_type_count(loaded.model, loaded.family))
    with torch.no_grad():
        expected = GraphModule(loaded.model, loaded.family)(**feeds).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_models")
    torch.manual_seed(0)
    dirs = {
        "gpt2-base": save(root, "gpt2-base", tf.GPT2Model(tf.GPT2Config(
            vocab_size=300, n_embd=48, n_layer=1, n_head=3, n_positions=128, bos_token_id=0, eos_token_id=0))),
        "llama-base": save(root, "llama-base", tf.LlamaModel(tf.LlamaConfig(
            **SMALL, num_key_value_heads=2, head_dim=24, attention_bias=True))),
        "mistral-sw": save(root, "mistral-sw", tf.MistralForCausalLM(tf.MistralConfig(
            **SMALL, num_key_value_heads=1, sliding_window=8))),
        "bert-32pos": save(root, "bert-32pos", tf.BertModel(tf.BertConfig(**SMALL, max_position_embeddings=32))),
        "llama-dynamic-rope": save(root, "llama-dynamic-rope", tf.LlamaForCausalLM(tf.LlamaConfig(
            **SMALL, num_key_value_heads=2, rope_scaling={"rope_type": "dynamic", "factor": 2.0}))),
        "longformer-3": save(root, "longformer-3", tf.LongformerForSequenceClassification(tf.LongformerConfig(
            **{**SMALL, "num_hidden_layers": 3}, attention_window=[4, 14, 64], max_position_embeddings=200,
            pad_token_id=1, num_labels=2))),
    }
    odd = root / "longformer-odd-window"  # HF refuses odd windows when it builds the model
    odd.mkdir()
    for file in dirs["longformer-3"].iterdir():
        (odd / file.name).write_bytes(file.read_bytes())
    config = json.loads((odd / "config.json").read_text())
    config["attention_window"] = [4, 5, 64]
    (odd / "config.json").write_text(json.dumps(config))
    dirs["longformer-odd-window"] = odd
    dirs["longformer-window-2"] = save(root, "longformer-window-2", tf.LongformerModel(tf.LongformerConfig(
        **{**SMALL, "num_hidden_layers": 2}, attention_window=[4, 2], max_position_embeddings=200, pad_token_id=1)))
    bad = root / "bad-json"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    dirs["bad-json"] = bad
    junk = root / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 8)
    dirs["junk.gguf"] = junk
    return dirs


# --- bad input: exit 2, one line, nothing written -----------------------------------------------

@pytest.mark.parametrize("source,args,message", [
    ("bert-tiny", ["--validate-batch", "-1"], "--validate-batch must be >= 1"),
    ("bert-tiny", ["--validate-seq-len", "0"], "--validate-seq-len must be >= 1"),
    ("bert-tiny", ["--no-dynamic-seq", "--validate-seq-len", "40"], "static axis"),
    ("bert-32pos", ["--seq-len", "40"], "exceeds the model's 32 positions"),
    ("bert-32pos", ["--validate-seq-len", "33"], "exceeds the model's 32 positions"),
    ("llama-dynamic-rope", [], "rope_type 'dynamic'"),
    ("longformer-odd-window", [], "has to be an even value"),
    ("longformer-window-2", [], "attention_window 2 (layer 1)"),
    ("bad-json", [], "not a valid JSON file"),
    ("junk.gguf", [], "cannot read the config"),
    ("mistral-sw", ["--compress", "2", "--tile", "16x32"], "of model.layers.0.self_attn.k_proj"),
    ("llama-base", ["--rank", "2", "--modules", "lm_head"], "no lm_head layers"),
    ("gpt2-tiny", ["--compress", "nan"], "ratio must be >= 1"),
    ("gpt2-tiny", ["--tile", "32x"], "tile must be SIZE or KxN"),
    ("gpt2-tiny", ["--rank", "0"], "rank must be >= 1"),
    ("gpt2-tiny", ["--modules", "mlp"], "--modules needs --compress or --rank"),
    ("gpt2-tiny", ["--opset", "17"], "--opset must be in 18..23"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, model_dirs, source, args, message):
    source = model_dirs.get(source, source)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(SystemExit) if message.startswith(("tile must", "rank must")) else _no_exit() as exited:
        code = cli.main([str(source), *args, "-o", str(out_dir / "m.onnx")])
    if exited is not None:
        code = exited.value.code
    err = [line for line in capsys.readouterr().err.splitlines()  # progress lines may precede the error
           if line.strip() and not line.startswith(("[exporter]", "[transformers]")) and "Loading weights" not in line]
    assert code == 2
    assert len(err) == 1 and err[0].startswith("ortops-export") and "error:" in err[0] and message in err[0], err
    assert "Traceback" not in err[0]
    assert list(out_dir.iterdir()) == []


class _no_exit:
    value = None

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# --- validation can fail ------------------------------------------------------------------------

def test_compare_refuses_a_shape_mismatch_and_nan():
    expected = np.ones((3, 5, 4), np.float32)
    with pytest.raises(ValueError, match="shape"):
        validate.compare(np.ones((1, 5, 4), np.float32), expected, 1e-4, 1e-4)  # would broadcast
    wrong = expected.copy()
    wrong[2, 4, 3] = np.nan
    result = validate.compare(wrong, expected, 1e-4, 1e-4)
    assert not result["passed"] and result["first_bad_index"] == [2, 4, 3] and result["nonfinite"] == 1


def test_wrong_onnx_output_fails_validation_with_exit_1(tmp_path, monkeypatch, model_dirs):
    """A model whose runtime output is off by 1e-3 at one element must not validate. Also: the
    small position table (32) keeps the default validation length (seq + 13 = 45) inside it."""
    run_onnx = validate.run_onnx

    def perturbed(path, feeds, device):
        output, runtime, ops = run_onnx(path, feeds, device)
        output = output.copy()
        output[-1, 3, 5] += 1e-3
        return output, runtime, ops

    monkeypatch.setattr(validate, "run_onnx", perturbed)
    code, output, report = export(tmp_path, model_dirs["bert-32pos"])
    assert code == 1
    assert output.exists()  # the model itself was fine to write; the report says it failed
    val = report["validation"]
    assert val["passed"] is False and val["first_bad_index"] == [2, 3, 5]
    # 32 + 13 would run off the position table: the longest other length (export: 32) instead
    assert (val["batch"], val["seq_len"]) == (3, 31)


def test_validation_fails_when_the_runtime_ignores_segment_ids(tmp_path, monkeypatch, model_dirs):
    """The validation feeds non-zero token_type_ids: a runtime that sees only segment A (as a graph
    without the input would) must fail it."""
    run_onnx = validate.run_onnx
    seen = {}

    def segment_a_only(path, feeds, device):
        seen.update(feeds)
        return run_onnx(path, {**feeds, "token_type_ids": np.zeros_like(feeds["token_type_ids"])}, device)

    monkeypatch.setattr(validate, "run_onnx", segment_a_only)
    code, output, report = export(tmp_path, model_dirs["bert-32pos"], "--seq-len", "8")
    assert code == 1 and report["validation"]["passed"] is False
    assert report["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert seen["token_type_ids"].any()


# --- exports that used to crash or produce an unrunnable model ----------------------------------

@pytest.mark.parametrize("name,args,hidden,nodes", [
    ("gpt2-base", ["--compress", "2", "--tile", "16x32"], 48, {"TSVDMatMul": 4}),
    ("llama-base", [], 64, {}),
])
def test_decoder_base_model_outputs_last_hidden_state(tmp_path, model_dirs, name, args, hidden, nodes):
    """GPT2Model / LlamaModel (no LM head) are listed as supported; they have no `logits`."""
    code, output, report = export(tmp_path, model_dirs[name], *args)
    assert code == 0, report
    assert report["output_shape"] == ["batch", "sequence", hidden]
    assert report["custom_nodes"] == nodes
    assert report["validation"]["passed"] and report["validation"]["custom_kernels_ran"] == bool(nodes)
    assert [o.name for o in onnx.load(str(output)).graph.output] == ["last_hidden_state"]
    if not nodes:
        independent_check(output, model_dirs[name])


def test_llama_opset_23_runs_at_another_batch(tmp_path):
    """onnxscript's opset-23 RotaryEmbedding fusion wrote cos/sin caches of batch 1, which
    onnxruntime rejects: the export must stay unfused and run at B = 3."""
    code, output, report = export(tmp_path, "llama-tiny", "--opset", "23", "--rank", "3", "--modules", "mlp")
    assert code == 0, report.get("validation") if report else None
    proto = onnx.load(str(output))
    assert "RotaryEmbedding" not in {n.op_type for n in proto.graph.node}
    assert report["validation"]["passed"] and report["validation"]["batch"] == 3


def test_mistral_gqa_one_kv_head_sliding_window_shorter_than_validation(tmp_path, model_dirs):
    code, output, report = export(tmp_path, model_dirs["mistral-sw"], "--compress", "3", "--tile", "16",
                                  "--modules", "attention,lm_head")
    assert code == 0, report
    assert report["custom_nodes"] == {"TSVDMatMul": 5}
    assert report["validation"]["passed"] and report["validation"]["seq_len"] > 8  # past the window


def test_longformer_per_layer_windows_larger_than_the_sequence(tmp_path, model_dirs):
    """Windows 4, 14 and 64 (one-sided 2, 7, 32) in one model, exported from a 3-token example and
    validated at S = 16: the last window covers the whole sequence."""
    directory = model_dirs["longformer-3"]
    code, output, report = export(tmp_path, directory, "--seq-len", "3", "--compress", "2", "--tile", "32",
                                  "--modules", "attention")
    assert code == 0, report
    assert report["custom_nodes"] == {"MultigrainAttention": 3, "TSVDMatMul": 21}
    windows = sorted(next(a.i for a in n.attribute if a.name == "window") for n in onnx.load(str(output)).graph.node if n.op_type == "MultigrainAttention")
    assert windows == [2, 7, 32]
    assert report["validation"]["passed"] and report["validation"]["custom_kernels_ran"]
    assert report["compression"]["fidelity_vs_uncompressed"]["min"] > 0.5


def test_longformer_windows_that_do_not_divide_the_largest(tmp_path, model_dirs):
    """Stock HF pads to max(attention_window) = 64, which layer 2 (window 14) cannot take: the
    validation reference pads to lcm(4, 14, 64) instead. Checked independently here through the
    same padding, and the report's fidelity must be computed (no crash of the stock model)."""
    directory = model_dirs["longformer-3"]
    code, output, report = export(tmp_path, directory, "--no-validate")
    assert code == 0
    loaded = models.load(str(directory))
    feeds = make_inputs(loaded.family, loaded.model.config.vocab_size, 2, 40, seed=11,
                        token_types=token_type_count(loaded.model, loaded.family))
    with torch.no_grad(), pytest.raises(AssertionError, match="multiple of 14"):
        GraphModule(loaded.model, loaded.family)(**feeds)  # stock HF alone: why the patch exists
    with torch.no_grad(), loaded.family.reference_patches(loaded.model):
        expected = GraphModule(loaded.model, loaded.family)(**feeds).numpy()
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    actual = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)
