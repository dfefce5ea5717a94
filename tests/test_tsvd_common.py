"""TSVD-common: TSVDLinear in every layout equals the op (ORT one-node graph, torch reference),
its backward, which parameters train in each fine-tuning mode, and finetune -> export -> ORT."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import reference as ref
from checks import assert_close
from onnx_graphs import run_single_node, tsvd_inputs

from exporter import finetune, models, tsvd, tsvd_common
from exporter.finetune_data import Splits

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]

LAYOUT_CASES = [
    # K, N, tile (tk, tn), rank, layout, bias, lead dims: every case has partial tiles in K and/or N
    (100, 70, (32, 16), 5, tsvd_common.PER_TILE, True, (7,)),
    (100, 70, (32, 16), 5, tsvd_common.SHARED_V, True, (2, 5)),
    (100, 70, (32, 16), 5, tsvd_common.SHARED_U, False, (3,)),
    (65, 33, (16, 8), 8, tsvd_common.SHARED_V, False, (1,)),
    (65, 33, (16, 8), 3, tsvd_common.SHARED_U, True, (2, 3, 4)),
    (129, 200, (64, 128), 16, tsvd_common.SHARED_V, True, (37,)),
]


def _torch_rng(rng) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**31)))


@pytest.mark.parametrize("k,n,tile,rank,layout,with_bias,lead", LAYOUT_CASES)
def test_module_equals_op(rng, k, n, tile, rank, layout, with_bias, lead):
    """TSVDLinear built from a random dense layer, in each layout: its forward == float64 reference
    == the TSVDMatMul node in ORT (ort_ops kernels) on the module's own factors."""
    gen = _torch_rng(rng)
    dense = torch.nn.Linear(k, n, bias=with_bias)
    with torch.no_grad():
        dense.weight.copy_(torch.randn(n, k, generator=gen))
    layer, report = tsvd_common.compress_layer("layer", dense, tile, layout, rank=rank)
    assert tsvd_common.layout_of(layer.u, layer.v) == layout
    shared = (1, 1)
    assert (layer.u.shape[:2] == shared) == (layout == tsvd_common.SHARED_U)
    assert (layer.v.shape[:2] == shared) == (layout == tsvd_common.SHARED_V)
    assert report.params == layer.u.numel() + layer.v.numel() == tsvd_common.param_count(k, n, *tile, rank, layout)

    x = torch.randn(*lead, k, generator=gen)
    with torch.no_grad():
        y = layer(x).numpy()
    u, v = layer.u.detach().numpy(), layer.v.detach().numpy()
    bias = None if layer.bias is None else layer.bias.detach().numpy()
    expected = ref.tsvd_matmul(x.numpy(), u, v, bias, out_features=n)
    assert_close(y, expected, atol=1e-4, rtol=1e-4, what=f"torch {layout}")
    y_ort = run_single_node("TSVDMatMul", tsvd_inputs(x.numpy(), u, v, bias), {"out_features": n})
    assert_close(y_ort, expected, atol=1e-4, rtol=1e-4, what=f"ORT {layout}")


@pytest.mark.parametrize("layout", tsvd_common.LAYOUTS)
def test_full_rank_is_exact_and_error_drops_with_rank(rng, layout):
    """At r = tk = tn every layout reproduces W̃ (partial tiles included); the relative error
    never grows with the rank (the shared basis of rank r is nested in that of rank r + 1)."""
    weight = torch.tensor(rng.standard_normal((50, 37)))
    u, v = tsvd_common.factors(weight, 16, 16, 16, layout)
    assert tsvd.relative_error(weight, u, v) < 1e-5
    errors = [tsvd.relative_error(weight, *tsvd_common.factors(weight, 16, 16, r, layout)) for r in (2, 6, 12)]
    assert errors[0] > errors[1] > errors[2] > 0


def test_shared_v_init_is_least_squares(rng):
    """Per-tile U of the shared-V init is the least-squares optimum for that V: the residual of
    each tile is orthogonal to V's rows (over the real columns; last tile column partial)."""
    k, n, tk, tn, r = 40, 44, 16, 16, 6
    weight = torch.tensor(rng.standard_normal((k, n)))
    u, v = tsvd_common.shared_v_factors(weight, tk, tn, r)
    tiles = tsvd._tiles(weight.double(), tk, tn)
    residual = tiles - u.double() @ v.double()  # (Tk, Tn, tk, tn)
    valid_last = n - 2 * tn
    grad_full = residual[:, :-1] @ v.double()[0, 0].t()
    grad_last = residual[:, -1, :, :valid_last] @ v.double()[0, 0, :, :valid_last].t()
    scale = float(weight.abs().max())
    assert float(grad_full.abs().max()) < 1e-4 * scale and float(grad_last.abs().max()) < 1e-4 * scale


@pytest.mark.parametrize("shared_u,shared_v", [(False, False), (True, False), (False, True)])
def test_backward_matches_gradcheck(rng, shared_u, shared_v):
    """The registered backward of ortops::tsvd_matmul against finite differences (float64)."""
    gen = _torch_rng(rng)
    k, n, tk, tn, r = 37, 21, 16, 8, 3
    grid = (-(-k // tk), -(-n // tn))
    a = torch.randn(2, 3, k, dtype=torch.float64, generator=gen).requires_grad_()
    u = torch.randn(*((1, 1) if shared_u else grid), tk, r, dtype=torch.float64, generator=gen).requires_grad_()
    v = torch.randn(*((1, 1) if shared_v else grid), r, tn, dtype=torch.float64, generator=gen).requires_grad_()
    bias = torch.randn(n, dtype=torch.float64, generator=gen).requires_grad_()
    assert torch.autograd.gradcheck(lambda *t: torch.ops.ortops.tsvd_matmul(*t, n), (a, u, v, bias))


def _tiny_compressed(mode: str, layout: str | None = None):
    loaded = models.load("llama-tiny")
    settings = finetune.FinetuneSettings(mode=mode, layout=layout, ratio=2.0, tile=(32, 32), modules="mlp")
    settings.check()
    if mode == "lora":
        model = finetune.add_lora(loaded.model, loaded.family, settings)
    else:
        finetune.compress_model(loaded.model, loaded.family, settings, log=lambda _: None)
        model = loaded.model
    return model, finetune.set_trainable(model, mode)


@pytest.mark.parametrize("mode,layout", [("common", "shared-v"), ("common", "shared-u"), ("factors", "per-tile"),
                                         ("factors", "shared-v"), ("lora", None)])
def test_only_intended_parameters_get_gradients(mode, layout):
    model, trainable = _tiny_compressed(mode, layout)
    ids = torch.randint(3, 1000, (2, 12), generator=torch.Generator().manual_seed(1))
    model.train()
    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    expected = set()
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if mode == "lora":
            wanted = "lora_A" in name or "lora_B" in name
        elif mode == "common":
            wanted = leaf == {"shared-v": "v", "shared-u": "u"}[layout] and ".mlp." in name
        else:
            wanted = leaf in ("u", "v") and ".mlp." in name
        assert p.requires_grad == wanted, f"{name}: requires_grad {p.requires_grad}, expected {wanted}"
        if wanted:
            expected.add(name)
    if mode == "lora":  # B starts at 0, so A's gradient is 0 at step 0: B must have one
        expected = {name for name in expected if "lora_B" in name}
    assert with_grad == expected
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    if mode == "common":  # one [1, 1, ., .] factor per compressed layer, nothing per tile
        shapes = {tuple(p.shape[:2]) for p in model.parameters() if p.requires_grad}
        assert shapes == {(1, 1)}


def test_short_finetune_lowers_training_loss():
    """20 steps of TSVD-common on a fixed batch set: mean training loss of the last 5 steps is below
    that of the first 5 (a frozen model would keep them equal up to batch noise: same batches)."""
    model, _ = _tiny_compressed("common", "shared-v")
    gen = torch.Generator().manual_seed(2)
    # a learnable signal: token t+1 = token t + 1 (mod 900) from random starts
    starts = torch.randint(3, 900, (8, 1), generator=gen)
    ids = (starts + torch.arange(16)) % 900 + 3
    splits = Splits({"input_ids": ids[:6]}, {"input_ids": ids[6:]})
    settings = finetune.FinetuneSettings(mode="common", steps=20, batch=6, eval_every=20, lr=1e-2, seq_len=16)
    losses = []

    def recording_loss(batch):
        loss, correct = finetune.batch_loss(model, batch, "causal-lm")
        if model.training:
            losses.append(loss.item())
        return loss, correct

    history = finetune.train(model, splits, settings, loss_fn=recording_loss, progress=False, log=lambda _: None)
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05, losses
    assert history[-1]["eval_loss"] < history[0]["eval_loss"]


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                            "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})


def test_finetune_cli_then_export_validates(tmp_path):
    """python -m exporter finetune (TSVD-common, shared-v) -> model directory -> python -m exporter
    DIR: one TSVDMatMul per compressed layer, validated through ORT, shared V in the graph."""
    import pydoc_data.topics as topics

    data = tmp_path / "text.txt"
    data.write_text("\n".join(topics.topics[name] for name in sorted(topics.topics)[:6]))
    out = tmp_path / "tuned"
    run = _cli("finetune", "llama-tiny", "--data", str(data), "-o", str(out), "--compress", "2", "--tile", "32",
               "--steps", "3", "--eval-every", "3", "--batch", "2", "--seq-len", "16", "--eval-batches", "1",
               "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    layout = json.loads((out / tsvd_common.LAYOUT_FILE).read_text())
    assert len(layout["layers"]) == 6 and {e["layout"] for e in layout["layers"].values()} == {"shared-v"}
    meta = json.loads((out / "finetune.json").read_text())
    assert meta["history"][-1]["step"] == 3

    # the saved directory loads back with the trained factors, not the initial ones
    reloaded = models.load(str(out)).model
    layers = tsvd_common.tsvd_layers(reloaded)
    assert set(layers) == set(layout["layers"])
    fresh = models.load("llama-tiny").model
    name = next(iter(layers))
    initial, _ = tsvd_common.compress_layer(name, fresh.get_submodule(name), (32, 32), "shared-v", ratio=2.0)
    assert torch.equal(layers[name].u, initial.u)  # U froze
    assert not torch.equal(layers[name].v, initial.v)  # shared V trained

    onnx_path = tmp_path / "tuned.onnx"
    run = _cli(str(out), "-o", str(onnx_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "tuned.report.json").read_text())
    assert report["custom_nodes"] == {"TSVDMatMul": 6}
    assert report["validation"]["passed"] and report["validation"]["custom_kernels_ran"]
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    shapes = {tuple(i.dims) for i in graph.initializer}
    assert (1, 1) + tuple(layers[name].v.shape[2:]) in shapes


def test_plan_ratio_means_stored_parameters():
    """--compress c gives each layout the largest rank with at most K·N/c parameters."""
    for layout in tsvd_common.LAYOUTS:
        for ratio in (1.5, 2, 4):
            rank = tsvd_common.rank_for_ratio(576, 1536, 128, 128, ratio, layout)
            assert tsvd_common.param_count(576, 1536, 128, 128, rank, layout) <= 576 * 1536 / ratio
            if rank < 128:
                assert tsvd_common.param_count(576, 1536, 128, 128, rank + 1, layout) > 576 * 1536 / ratio


def test_seq_cls_common_trains_shared_factors_and_head(tmp_path):
    """seq-cls through the API: JSONL with string labels, TSVD-common; the new head and the shared
    V train, nothing else; the saved directory records accuracy and reloads its factors."""
    data = tmp_path / "cls.jsonl"
    words = ["alpha", "beta", "gamma", "delta"]
    data.write_text("\n".join(json.dumps({"text": f"{words[i % 4]} {i}", "label": "ab"[i % 2]}) for i in range(24)))
    settings = finetune.FinetuneSettings(mode="common", task="seq-cls", tile=(32, 32), steps=2, batch=4,
                                         seq_len=12, eval_every=2, eval_fraction=0.25)
    result = finetune.finetune("llama-tiny", str(data), str(tmp_path / "out"), settings, progress=False,
                               log=lambda _: None)
    layers = 6  # gate/up (64 -> 160) and down (160 -> 64) in 2 decoder layers
    shared_v = layers * tsvd_common.rank_for_ratio(64, 160, 32, 32, 2.0, "shared-v") * 32  # r x tn each
    head = 64 * 2  # score: hidden 64 -> 2 labels, no bias
    assert result.trainable_params == shared_v + head
    assert {"eval_accuracy", "eval_loss"} <= set(result.history[-1])
    assert 0.0 <= result.history[-1]["eval_accuracy"] <= 1.0
    assert len(tsvd_common.restore_factors(models.load("llama-tiny").model, tmp_path / "out")) == layers
