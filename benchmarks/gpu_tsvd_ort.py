"""TSVDMatMul vs ORT MatMul (cuBLAS), plain global low-rank (two MatMuls) and MatMulNBits (4-bit,
block 32), all as ORT CUDA-EP sessions in float16 with IO binding (issue 4's benchmark).

Each model holds L independent nodes with distinct weights on one input A (so weights stream from
HBM and the per-Run overhead is shared); time per node = median Run time / L. Needs onnxruntime-gpu
and a CUDA build of the op library (ORTOPS_LIBRARY or the installed package); on the lab's GPU
machine: `source /tmp/ort-gpu/env.sh` first. Not yet run (2026-11-29): written beside the
kernel-level benchmarks/gpu_tsvd.py, whose numbers docs/tsvd_cuda.md reports.

Usage: python benchmarks/gpu_tsvd_ort.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import ort_ops  # noqa: E402

SHAPES = [(768, 3072), (3072, 768), (4096, 4096), (4096, 14336)]
MS, CS, TILES = [1, 16, 128, 1024, 8192], [2, 4, 8], [128, 256]
F16 = TensorProto.FLOAT16
MAX_WEIGHT_BYTES = 1.5e9  # one model < 2 GB protobuf limit


def n_nodes(bytes_per_node):
    return int(max(2, min(48, MAX_WEIGHT_BYTES // max(bytes_per_node, 1))))


def model(nodes, inits, K, outs):
    g = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("A", F16, ["M", K])],
                          [helper.make_tensor_value_info(o, F16, None) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.ortops", 1),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 10  # the onnx package may write a newer IR than the onnxruntime build reads
    return m.SerializeToString()


def f16(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float16)


def build(kind, K, N, rng, c=None, t=None):
    nodes, inits, outs = [], [], []
    if kind == "dense":
        L = n_nodes(K * N * 2)
        for i in range(L):
            inits.append(numpy_helper.from_array(f16(rng, K, N, scale=K ** -0.5), f"W{i}"))
            nodes.append(helper.make_node("MatMul", ["A", f"W{i}"], [f"Y{i}"]))
    elif kind == "lowrank":
        R = max(1, round(K * N / (c * (K + N))))
        L = n_nodes(R * (K + N) * 2)
        for i in range(L):
            inits += [numpy_helper.from_array(f16(rng, K, R, scale=K ** -0.5), f"U{i}"),
                      numpy_helper.from_array(f16(rng, R, N, scale=R ** -0.5), f"V{i}")]
            nodes += [helper.make_node("MatMul", ["A", f"U{i}"], [f"H{i}"]),
                      helper.make_node("MatMul", [f"H{i}", f"V{i}"], [f"Y{i}"])]
    elif kind == "tsvd":
        Tk, Tn, r = -(-K // t), -(-N // t), max(1, round(t / (2 * c)))
        L = n_nodes(Tk * Tn * r * 2 * t * 2)
        for i in range(L):
            inits += [numpy_helper.from_array(f16(rng, Tk, Tn, t, r, scale=t ** -0.5), f"U{i}"),
                      numpy_helper.from_array(f16(rng, Tk, Tn, r, t, scale=r ** -0.5), f"V{i}")]
            nodes.append(helper.make_node("TSVDMatMul", ["A", f"U{i}", f"V{i}"], [f"Y{i}"], domain="com.ortops",
                                          out_features=N))
    elif kind == "nbits":  # 4-bit, block 32: B [N, K/32, 16] uint8, scales [N * K/32] fp16
        nb = K // 32
        L = n_nodes(N * nb * 16)
        for i in range(L):
            inits += [numpy_helper.from_array(rng.integers(0, 256, (N, nb, 16), dtype=np.uint8), f"B{i}"),
                      numpy_helper.from_array(f16(rng, N * nb, scale=0.01), f"S{i}")]
            nodes.append(helper.make_node("MatMulNBits", ["A", f"B{i}", f"S{i}"], [f"Y{i}"], domain="com.microsoft",
                                          K=K, N=N, bits=4, block_size=32))
    outs = [n.output[0] for n in nodes if n.output[0].startswith("Y")]
    return model(nodes, inits, K, outs), outs


def time_session(blob, outs, M, K, N, reps=20):
    import onnxruntime as ort
    so = ort.SessionOptions()
    sess = ort_ops.InferenceSession(blob, sess_options=so, providers=["CUDAExecutionProvider"])
    a = ort.OrtValue.ortvalue_from_numpy(np.random.standard_normal((M, K)).astype(np.float16), "cuda", 0)
    io = sess.io_binding()
    io.bind_ortvalue_input("A", a)
    for o in outs:
        io.bind_ortvalue_output(o, ort.OrtValue.ortvalue_from_shape_and_type((M, N), np.float16, "cuda", 0))
    for _ in range(3):
        sess.run_with_iobinding(io)
    ts = []
    for _ in range(reps):
        io.synchronize_inputs()
        t0 = time.perf_counter()
        sess.run_with_iobinding(io)
        io.synchronize_outputs()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) / len(outs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    shapes, ms = (SHAPES[2:3], [1, 1024]) if args.quick else (SHAPES, MS)
    rng = np.random.default_rng(0)
    rows = []
    for K, N in shapes:
        cache = {}
        for M in ms:
            def t_of(kind, c=None, t=None):
                key = (kind, c, t)
                if key not in cache:
                    cache[key] = build(kind, K, N, rng, c, t)
                return time_session(*cache[key], M, K, N)
            dense = t_of("dense")
            nbits = t_of("nbits") if M <= 16 else float("nan")
            for c in CS:
                lr = t_of("lowrank", c)
                for t in TILES:
                    ts = t_of("tsvd", c, t)
                    rows.append(dict(K=K, N=N, M=M, c=c, tile=t, matmul_us=dense * 1e6, lowrank_us=lr * 1e6,
                                     nbits_us=nbits * 1e6, tsvd_us=ts * 1e6, speedup=dense / ts))
                    print(f"K{K} N{N} M{M} c{c} t{t}: MatMul {dense * 1e6:.1f} us, low-rank {lr * 1e6:.1f}, "
                          f"MatMulNBits {nbits * 1e6:.1f}, TSVD {ts * 1e6:.1f} (x{dense / ts:.2f})", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu_tsvd_ort.json"), "w") as f:
        json.dump(dict(date=time.strftime("%Y-%m-%d"), onnx=onnx.__version__, rows=rows), f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
