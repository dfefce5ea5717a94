"""Exporter building blocks: tiled SVD, the torch reference ops, the ONNX translation and the
ONNX function bodies (run on stock onnxruntime, i.e. without the op library)."""

import math

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from exporter import models, onnx_export, onnx_translation, schemas, tsvd
from exporter.families import LONGFORMER
from exporter.inputs import GraphModule, make_inputs, token_type_count


def assert_close(actual, expected, atol, rtol=0.0, what="output"):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    bad = ~(np.abs(actual - expected) <= atol + rtol * np.abs(expected))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} differ; first at {index}: "
                             f"{actual[index]} vs {expected[index]}; max abs {np.nanmax(np.abs(actual - expected)):.3e}; "
                             f"nonfinite {int((~np.isfinite(actual)).sum())}")


# --- tiled SVD --------------------------------------------------------------------------------

@pytest.mark.parametrize("k,n,tile", [(97, 59, (32, 16)), (64, 64, (64, 64)), (40, 130, (16, 48))])
def test_full_rank_tiles_reproduce_the_weight(k, n, tile):
    weight = torch.randn(k, n)
    u, v = tsvd.tiled_svd(weight, *tile, rank=min(tile))
    grid = tsvd.tile_grid(k, n, *tile)
    assert u.shape == (*grid, tile[0], min(tile)) and v.shape == (*grid, min(tile), tile[1])
    assert tsvd.relative_error(weight, u, v) < 1e-6


def test_truncation_error_is_the_optimal_one_per_tile():
    weight = torch.randn(48, 40, dtype=torch.float64)
    rank = 5
    u, v = tsvd.tiled_svd(weight, 16, 20, rank)
    # Eckart–Young: the squared error of each tile is the sum of its discarded squared singular values
    expected = 0.0
    for i in range(3):
        for j in range(2):
            sigma = torch.linalg.svdvals(weight[16 * i:16 * i + 16, 20 * j:20 * j + 20])
            expected += float((sigma[rank:] ** 2).sum())
    assert tsvd.relative_error(weight, u, v) == pytest.approx(math.sqrt(expected) / float(weight.norm()), rel=1e-4)


def test_rank_from_ratio_meets_the_ratio():
    for k, n, t, c in [(384, 1536, 128, 2.0), (576, 576, 128, 4.0), (64, 64, 32, 1.0), (97, 59, 16, 3.0)]:
        rank = tsvd.rank_for_ratio(k, n, t, t, c)
        assert tsvd.compression_ratio(k, n, t, t, rank) >= c or rank == 1
        assert rank == min(t, t) or tsvd.compression_ratio(k, n, t, t, rank + 1) < c
    with pytest.raises(tsvd.TSVDConfigError):
        tsvd.rank_for_ratio(64, 64, 32, 32, 0.5)
    with pytest.raises(tsvd.TSVDConfigError):
        tsvd.check_tile(64, 32, 32, 64)


def test_tsvd_linear_matches_the_dense_layer_at_full_rank():
    linear = torch.nn.Linear(70, 45)
    layer, report = tsvd.compress_layer("x", linear, (32, 16), rank=16)
    x = torch.randn(3, 5, 70)
    assert_close(layer(x).detach(), linear(x).detach(), atol=1e-5)
    assert report.params_before == 70 * 45 and report.params_after == layer.u.numel() + layer.v.numel()


# --- Longformer reference op vs stock HF --------------------------------------------------------

@pytest.mark.parametrize("seq", [7, 37])
def test_patched_longformer_equals_stock_hf(seq):
    """The reference op inside the patched model computes stock HF Longformer (which pads to
    the window), with globals anywhere, different per row, and a padded row."""
    loaded = models.load("longformer-tiny")
    feeds = make_inputs(LONGFORMER, loaded.model.config.vocab_size, 3, seq, seed=seq,
                        token_types=token_type_count(loaded.model, LONGFORMER))  # segment ids too
    wrapper = GraphModule(loaded.model, LONGFORMER)
    with torch.no_grad():
        stock = wrapper(**feeds)
        with LONGFORMER.export_patches(loaded.model):
            patched = wrapper(**feeds)
    assert feeds["global_attention_mask"].sum(1).gt(0).all() and feeds["attention_mask"].eq(0).any()
    assert_close(patched, stock, atol=2e-5, what="patched vs stock HF")


# --- translation + function bodies on stock onnxruntime -----------------------------------------

class _OpsModule(torch.nn.Module):
    """Both ops, with the optional-input and shared-factor variants the contract allows."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.u = torch.nn.Parameter(torch.randn(3, 2, 16, 4, generator=gen))  # K = 40 of 48: partial
        self.v = torch.nn.Parameter(torch.randn(3, 2, 4, 16, generator=gen))  # N = 24 of 32: partial
        self.u_shared = torch.nn.Parameter(torch.randn(1, 1, 16, 4, generator=gen))
        self.bias = torch.nn.Parameter(torch.randn(24, generator=gen))

    def forward(self, x, mask):
        y = torch.ops.ortops.tsvd_matmul(x, self.u, self.v, self.bias, 24)
        y2 = torch.ops.ortops.tsvd_matmul(x, self.u_shared, self.v, None, 24)
        return torch.ops.ortops.multigrain_attention(y, y2, y, mask, None, 2 * y2, None, 4, 3, 0.3)


def _mask(batch, seq):
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[0, seq - 3:] = 0
    mask[0, seq // 2] = 2
    mask[-1, [1, seq - 4]] = 2  # the last row: globals anywhere, other than row 0's
    return mask


@pytest.fixture(scope="module")
def ops_model(tmp_path_factory):
    model = _OpsModule().eval()
    example = (torch.randn(2, 9, 40), _mask(2, 9))
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    with torch.no_grad(), onnx_export._quiet(True):
        program = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=(dims, dims),
                                    custom_translation_table=onnx_translation.TRANSLATION_TABLE,
                                    opset_version=20)
    proto = program.model_proto
    from exporter import onnx_functions
    proto.functions.extend(onnx_functions.function_protos(20))
    path = str(tmp_path_factory.mktemp("ops") / "ops.onnx")
    onnx.save(proto, path)
    return model, proto, path


def test_graph_has_the_custom_nodes_attributes_and_opset(ops_model):
    _, proto, path = ops_model
    nodes = [n for n in proto.graph.node if n.domain == schemas.DOMAIN]
    assert sorted(n.op_type for n in nodes) == ["MultigrainAttention", "TSVDMatMul", "TSVDMatMul"]
    assert (schemas.DOMAIN, schemas.DOMAIN_VERSION) in {(i.domain, i.version) for i in proto.opset_import}
    attention = next(n for n in nodes if n.op_type == "MultigrainAttention")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in attention.attribute}
    assert attrs["num_heads"] == 4 and attrs["window"] == 3 and attrs["scale"] == pytest.approx(0.3)
    assert len(attention.input) == 7  # absent globals become the local inputs
    matmuls = [n for n in nodes if n.op_type == "TSVDMatMul"]
    assert [len([i for i in n.input if i]) for n in matmuls] == [4, 3]  # bias, then none
    assert all(onnx.helper.get_attribute_value(n.attribute[0]) == 24 for n in matmuls)
    onnx.checker.check_model(path, full_check=True)
    for node, schema in ((attention, schemas.MULTIGRAIN_ATTENTION), (matmuls[0], schemas.TSVD_MATMUL)):
        assert {a.name for a in node.attribute} <= {a.name for a in schema.attributes}


@pytest.mark.parametrize("batch,seq", [(1, 5), (3, 23)])
def test_function_bodies_on_stock_onnxruntime_match_the_reference(ops_model, batch, seq):
    model, _, path = ops_model
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])  # no library
    # scaled so the scores stay O(1): near one-hot softmaxes would amplify float32 rounding
    x = 0.1 * torch.randn(batch, seq, 40, generator=torch.Generator().manual_seed(batch * 100 + seq))
    mask = _mask(batch, seq)
    names = [i.name for i in session.get_inputs()]
    out = session.run(None, {names[0]: x.numpy(), names[1]: mask.numpy()})[0]
    with torch.no_grad():
        expected = model(x, mask).numpy()
    assert out.shape == (batch, seq, 24)
    assert_close(out, expected, atol=1e-5, rtol=1e-4, what="function bodies vs torch reference")
    assert (mask == 0).any() and np.all(out[mask.numpy() == 0] == 0)  # padding rows are 0


def test_library_kernels_run_when_registered(ops_model):
    pytest.importorskip("ort_ops")
    from exporter import validate

    _, _, path = ops_model
    x, mask = torch.randn(2, 11, 40), _mask(2, 11)
    names = [i.name for i in onnxruntime.InferenceSession(path).get_inputs()]
    _, runtime, op_types = validate.run_onnx(path, {names[0]: x.numpy(), names[1]: mask.numpy()}, "cpu")
    assert runtime == "ort_ops library kernels"
    assert {"TSVDMatMul", "MultigrainAttention"} <= op_types


def test_schema_docs_list_every_input_and_attribute():
    for schema in schemas.ALL_OPS:
        text = schemas.markdown(schema)
        assert all(f"| {i.name}" in text for i in schema.inputs)
        assert all(f"| {a.name}" in text for a in schema.attributes)
        assert onnx.defs.has(schema.name, schema.domain)  # registered on import of the translation
