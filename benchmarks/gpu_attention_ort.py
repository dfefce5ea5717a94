"""MultigrainAttention vs ONNX Runtime's com.microsoft:LongformerAttention, both as ORT CUDA-EP
sessions (IO binding, device buffers: no host copies timed), fp16, 12 heads x 64, w = 256.

LongformerAttention fuses its QKV projections and needs S % 2w == 0, G <= w and globals first;
for that comparison our graph has the same projections as ORT MatMul + Add + Split in front of
one MultigrainAttention node. "ours, attention only" takes the projections as inputs. Each model
holds 8 independent copies (distinct weights) so one Run's fixed cost is spread; times are per copy.

    source /tmp/ort-gpu/env.sh && python benchmarks/gpu_attention_ort.py [--quick]
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import time

import numpy as np
import torch  # first: loads the CUDA libraries onnxruntime-gpu needs
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import ort_ops

COPIES = 8
H, D, W = 12, 64, 256
E = H * D


def model_of(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "bench", inputs, outputs, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1),
                                                helper.make_opsetid(ort_ops.DOMAIN, 1)])
    m.ir_version = 10
    return m


def fp16_info(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT16, shape)


def build_models(B, S, rng):
    weights = [(rng.standard_normal((E, 3 * E)) * 0.03).astype(np.float16) for _ in range(2 * COPIES)]
    biases = [(rng.standard_normal(3 * E) * 0.03).astype(np.float16) for _ in range(2 * COPIES)]
    outs = [fp16_info(f"out{i}", [B, S, E]) for i in range(COPIES)]
    # ORT LongformerAttention
    inits, nodes = [], []
    for i in range(COPIES):
        inits += [numpy_helper.from_array(weights[2 * i], f"w{i}"), numpy_helper.from_array(biases[2 * i], f"b{i}"),
                  numpy_helper.from_array(weights[2 * i + 1], f"gw{i}"), numpy_helper.from_array(biases[2 * i + 1], f"gb{i}")]
        nodes.append(helper.make_node("LongformerAttention", ["hidden", f"w{i}", f"b{i}", "mask_f16", f"gw{i}", f"gb{i}", "global_i32"],
                                      [f"out{i}"], domain="com.microsoft", num_heads=H, window=W))
    ins = [fp16_info("hidden", [B, S, E]), fp16_info("mask_f16", [B, S]),
           helper.make_tensor_value_info("global_i32", TensorProto.INT32, [B, S])]
    ort_longformer = model_of(nodes, ins, outs, inits)
    # ours with the same projections
    nodes = []
    split = numpy_helper.from_array(np.array([E, E, E], np.int64), "split3")
    inits2 = [split]
    for i in range(COPIES):
        inits2 += [numpy_helper.from_array(weights[2 * i], f"w{i}"), numpy_helper.from_array(biases[2 * i], f"b{i}"),
                   numpy_helper.from_array(weights[2 * i + 1], f"gw{i}"), numpy_helper.from_array(biases[2 * i + 1], f"gb{i}")]
        for p, (w, b) in (("l", (f"w{i}", f"b{i}")), ("g", (f"gw{i}", f"gb{i}"))):
            nodes += [helper.make_node("MatMul", ["hidden", w], [f"{p}mm{i}"]),
                      helper.make_node("Add", [f"{p}mm{i}", b], [f"{p}qkv{i}"]),
                      helper.make_node("Split", [f"{p}qkv{i}", "split3"], [f"{p}q{i}", f"{p}k{i}", f"{p}v{i}"], axis=2)]
        nodes.append(helper.make_node("MultigrainAttention", [f"lq{i}", f"lk{i}", f"lv{i}", "mask012", f"gq{i}", f"gk{i}", f"gv{i}"],
                                      [f"out{i}"], domain=ort_ops.DOMAIN, num_heads=H, window=W))
    ins = [fp16_info("hidden", [B, S, E]), helper.make_tensor_value_info("mask012", TensorProto.INT32, [B, S])]
    ours_full = model_of(nodes, ins, outs, inits2)
    # ours, attention only
    names = ["q", "k", "v", "gq", "gk", "gv"]
    nodes = [helper.make_node("MultigrainAttention", names[:3] + ["mask012"] + names[3:], [f"out{i}"], domain=ort_ops.DOMAIN,
                              num_heads=H, window=W) for i in range(COPIES)]
    ins = [fp16_info(n, [B, S, E]) for n in names] + [helper.make_tensor_value_info("mask012", TensorProto.INT32, [B, S])]
    ours_attn = model_of(nodes, ins, outs, [])
    return ort_longformer, ours_full, ours_attn


def session(model):
    so = ort.SessionOptions()
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort_ops.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CUDAExecutionProvider"])


def bind_and_time(sess, feeds: dict, outs: list, runs):
    io = sess.io_binding()
    for name, t in feeds.items():
        elem = {torch.float16: np.float16, torch.int32: np.int32}[t.dtype]
        io.bind_input(name, "cuda", 0, elem, list(t.shape), t.data_ptr())
    for i, t in enumerate(outs):
        io.bind_output(f"out{i}", "cuda", 0, np.float16, list(t.shape), t.data_ptr())
    torch.cuda.synchronize()
    for _ in range(3):
        sess.run_with_iobinding(io)
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        sess.run_with_iobinding(io)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / COPIES


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    configs = [(1, 4096, 8)] if args.quick else [(1, 1024, 8), (1, 4096, 8), (1, 4096, 64), (1, 16384, 8), (8, 4096, 8)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# {datetime.date.today()} {torch.cuda.get_device_name()} onnxruntime-gpu {ort.__version__} commit {commit}")
    print("| B | S | G | ORT LongformerAttention (+proj) | ours (+same proj) | speedup | ours attention only | max rel diff |")
    print("|---|---|---|---|---|---|---|---|")
    for B, S, G in configs:
        longformer, ours_full, ours_attn = build_models(B, S, rng)
        hidden = (torch.randn(B, S, E, device="cuda") * 0.5).half()
        glob = torch.zeros(B, S, dtype=torch.int32, device="cuda")
        glob[:, :G] = 1  # LongformerAttention needs globals first
        mask012 = (1 + glob).int()
        mask_f16 = torch.zeros(B, S, dtype=torch.float16, device="cuda")
        outs_a = [torch.empty(B, S, E, dtype=torch.float16, device="cuda") for _ in range(COPIES)]
        outs_b = [torch.empty(B, S, E, dtype=torch.float16, device="cuda") for _ in range(COPIES)]
        t_lf = bind_and_time(session(longformer), {"hidden": hidden, "mask_f16": mask_f16, "global_i32": glob}, outs_a, args.runs)
        t_ours = bind_and_time(session(ours_full), {"hidden": hidden, "mask012": mask012}, outs_b, args.runs)
        diff = max(float(((a.float() - b.float()).norm() / b.float().norm()).item()) for a, b in zip(outs_a, outs_b))
        qkv = {n: (torch.randn(B, S, E, device="cuda") * 0.5).half() for n in ("q", "k", "v", "gq", "gk", "gv")}
        t_attn = bind_and_time(session(ours_attn), dict(qkv, mask012=mask012), outs_b, args.runs)
        print(f"| {B} | {S} | {G} | {t_lf * 1e3:.3f} ms | {t_ours * 1e3:.3f} ms | {t_lf / t_ours:.2f}x | "
              f"{t_attn * 1e3:.4f} ms | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
