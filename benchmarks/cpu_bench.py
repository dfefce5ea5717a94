"""CPU benchmark of the two ops against their anchors, measured in one run.

TSVDMatMul vs ORT's own MatMul (both as ONNX Runtime sessions, 8 independent nodes per model so
per-Run overhead is amortised, weights as initializers) at compression 2, 4, 8 and tile 128;
MultigrainAttention (with its six projections as ORT MatMuls in the same graph) vs HF's
LongformerSelfAttention in PyTorch, both fp32.

    python benchmarks/cpu_bench.py [--quick] [--markdown out.md]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

import ort_ops

NODES = 8  # independent nodes per model: one Run amortises its overhead over 8 products


def median_time(fn, min_runs=5, min_seconds=1.0):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_of(nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, "bench", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(ort_ops.DOMAIN, 1)])
    model.ir_version = 10
    return model


def session(model):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort_ops.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])


def tsvd_rank(K, N, tile, c):
    Tk, Tn = -(-K // tile), -(-N // tile)
    return max(1, round(K * N / (c * Tk * Tn * 2 * tile)))


def bench_tsvd(M, K, N, c, tile, rng):
    x = helper.make_tensor_value_info("A", TensorProto.FLOAT, [M, K])
    outs = [helper.make_tensor_value_info(f"Y{i}", TensorProto.FLOAT, [M, N]) for i in range(NODES)]
    Tk, Tn, r = -(-K // tile), -(-N // tile), tsvd_rank(K, N, tile, c)
    dense_nodes, dense_inits, tsvd_nodes, tsvd_inits = [], [], [], []
    for i in range(NODES):
        W = rng.standard_normal((K, N)).astype(np.float32)
        dense_inits.append(numpy_helper.from_array(W, f"W{i}"))
        dense_nodes.append(helper.make_node("MatMul", ["A", f"W{i}"], [f"Y{i}"]))
        U = rng.standard_normal((Tk, Tn, tile, r)).astype(np.float32)
        V = rng.standard_normal((Tk, Tn, r, tile)).astype(np.float32)
        tsvd_inits += [numpy_helper.from_array(U, f"U{i}"), numpy_helper.from_array(V, f"V{i}")]
        tsvd_nodes.append(helper.make_node("TSVDMatMul", ["A", f"U{i}", f"V{i}"], [f"Y{i}"], domain=ort_ops.DOMAIN,
                                           out_features=N))
    A = rng.standard_normal((M, K)).astype(np.float32)
    dense = session(model_of(dense_nodes, [x], outs, dense_inits))
    tsvd = session(model_of(tsvd_nodes, [x], outs, tsvd_inits))
    t_dense = median_time(lambda: dense.run(None, {"A": A})) / NODES
    t_tsvd = median_time(lambda: tsvd.run(None, {"A": A})) / NODES
    real_c = K * N / (Tk * Tn * r * 2 * tile)
    return t_dense, t_tsvd, r, real_c


def bench_attention(S, rng, heads=12, head_dim=64, window=256, n_globals=8):
    from transformers import LongformerConfig
    from transformers.models.longformer.modeling_longformer import LongformerSelfAttention

    E = heads * head_dim
    config = LongformerConfig(hidden_size=E, num_attention_heads=heads, attention_window=[2 * window],
                              attention_probs_dropout_prob=0.0)
    layer = LongformerSelfAttention(config, layer_id=0).eval()
    hidden = torch.randn(1, S, E)
    mask = torch.ones(1, S, dtype=torch.long)
    mask[0, torch.randperm(S)[:n_globals]] = 2
    ext = torch.zeros(1, S)
    ext[mask == 2] = 10000.0

    def hf():
        with torch.no_grad():
            layer(hidden, attention_mask=ext, is_index_masked=mask == 0, is_index_global_attn=mask == 2,
                  is_global_attn=True)

    # ORT: the same six projections as MatMul + Add, then one MultigrainAttention node.
    inits, nodes = [], []
    names = ["query", "key", "value", "global_query", "global_key", "global_value"]
    mods = [layer.query, layer.key, layer.value, layer.query_global, layer.key_global, layer.value_global]
    for name, mod in zip(names, mods):
        inits += [numpy_helper.from_array(mod.weight.detach().numpy().T.copy(), f"{name}_w"),
                  numpy_helper.from_array(mod.bias.detach().numpy(), f"{name}_b")]
        nodes += [helper.make_node("MatMul", ["hidden", f"{name}_w"], [f"{name}_mm"]),
                  helper.make_node("Add", [f"{name}_mm", f"{name}_b"], [name])]
    nodes.append(helper.make_node("MultigrainAttention", names[:3] + ["mask"] + names[3:], ["out"],
                                  domain=ort_ops.DOMAIN, num_heads=heads, window=window))
    ins = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, S, E]),
           helper.make_tensor_value_info("mask", TensorProto.INT64, [1, S])]
    full = session(model_of(nodes, ins, [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, S, E])], inits))
    feeds = {"hidden": hidden.numpy(), "mask": mask.numpy()}
    # Attention alone: the projections as inputs.
    proj = {n: m(hidden).detach().numpy() for n, m in zip(names, mods)}
    attn_in = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, S, E]) for n in names]
    attn_in.append(helper.make_tensor_value_info("mask", TensorProto.INT64, [1, S]))
    attn = session(model_of([nodes[-1]], attn_in, [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, S, E])], []))
    attn_feeds = dict(proj, mask=mask.numpy())
    return median_time(hf), median_time(lambda: full.run(None, feeds)), median_time(lambda: attn.run(None, attn_feeds))


def cpu_name():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer shapes (smoke run)")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    head = (f"{datetime.date.today()} | {cpu_name()} | {threads} threads | onnxruntime {ort.__version__} | "
            f"torch {torch.__version__} | ort-ops commit {git_commit()}")
    lines = [f"Measured {head}", "", "### TSVDMatMul vs ORT MatMul (fp32, tile 128, time per product)", "",
             "| M | K x N | c (rank) | ORT MatMul | TSVDMatMul | speedup |", "|---|---|---|---|---|---|"]
    Ms = [1, 64] if args.quick else [1, 64, 1024]
    shapes = [(768, 768)] if args.quick else [(768, 768), (768, 3072), (3072, 768)]
    for M in Ms:
        for K, N in shapes:
            for c in (2, 4, 8):
                t_dense, t_tsvd, r, real_c = bench_tsvd(M, K, N, c, 128, rng)
                lines.append(f"| {M} | {K} x {N} | {real_c:.1f} (r={r}) | {t_dense * 1e6:.1f} us | {t_tsvd * 1e6:.1f} us "
                             f"| {t_dense / t_tsvd:.2f}x |")
                print(lines[-1], flush=True)
    lines += ["", "### MultigrainAttention vs HF LongformerSelfAttention (fp32, B = 1, 12 x 64, w = 256, 8 globals "
              "scattered)", "", "| S | HF PyTorch (with projections) | ORT: projections + MultigrainAttention | "
              "speedup | MultigrainAttention alone |", "|---|---|---|---|---|"]
    for S in ([1024] if args.quick else [1024, 4096]):
        t_hf, t_full, t_attn = bench_attention(S, rng)
        lines.append(f"| {S} | {t_hf * 1e3:.2f} ms | {t_full * 1e3:.2f} ms | {t_hf / t_full:.2f}x | {t_attn * 1e3:.2f} ms |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print("\n" + text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
