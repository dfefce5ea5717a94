"""TSVDMatMul vs ORT MatMul (cuBLAS), plain global low-rank (two MatMuls, same parameter count) and
MatMulNBits (4-bit, block 32; M <= 16), all as ORT CUDA-EP sessions in float16 with IO binding
(issue 4's benchmark).

Each model holds L independent nodes with distinct weights on one input A, L chosen so a model's
weights (up to 256 MB) stream from HBM, not the 60 MB L2, and the per-Run overhead is shared; time
per node = median Run time / L. One session per (K x N, kind) serves every M (A's first dim is
symbolic). Weights are slices of one random pool at distinct offsets (distinct bytes per node,
no per-model random generation). "roofline": bytes the node must move (factors + A + Y) / time,
as a fraction of the copy bandwidth measured in the same run (torch device-to-device copy).
Needs onnxruntime-gpu and a CUDA build of the op library (ORTOPS_LIBRARY or the installed
package); on the lab's GPU machine `source /tmp/ort-gpu/env.sh` first.

--cuda-graph: also time M <= 16 with the CUDA EP's graph capture (enable_cuda_graph: one session
per M, Runs replay a captured graph, so ORT's per-node host work drops out) for MatMul,
MatMulNBits, low-rank and TSVD at c = 4, on the K x N >= 4096 x 4096 shapes: how a decode loop
that captures its step sees the ops.

Usage: python benchmarks/gpu_tsvd_ort.py [--quick] [--ms 1,16] [--shapes 4096x4096] [--cuda-graph] [--out DIR]
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
MAX_WEIGHT_BYTES = 256e6  # per model: 4x the 60 MB L2, well under the 2 GB protobuf limit
_POOL = None


def n_nodes(bytes_per_node):
    return int(max(2, min(48, MAX_WEIGHT_BYTES // max(bytes_per_node, 1))))


def pool_slice(n, offset, dtype=np.float16):
    """n values of a shared random pool (64 Mi fp16 normals) starting at a node-specific offset
    (unscaled: the values only have to be finite and distinct per node for a timing)."""
    global _POOL
    if _POOL is None:
        _POOL = np.random.default_rng(0).standard_normal(1 << 26, dtype=np.float32).astype(np.float16)
    if dtype == np.uint8:
        raw = _POOL.view(np.uint8)
        start = (offset * 7919) % (raw.size - n) if raw.size > n else 0
        return np.resize(raw[start:start + n], n)
    start = (offset * 7919) % (_POOL.size - n) if _POOL.size > n else 0
    return np.resize(_POOL[start:start + n], n)


def model(nodes, inits, K, outs):
    g = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("A", F16, ["M", K])],
                          [helper.make_tensor_value_info(o, F16, None) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.ortops", 1),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 10  # the onnx package may write a newer IR than the onnxruntime build reads
    return m.SerializeToString()


def init(name, shape, offset, dtype=np.float16):
    return numpy_helper.from_array(pool_slice(int(np.prod(shape)), offset, dtype).reshape(shape), name)


def build(kind, K, N, c=None, t=None):
    """(serialized model, output names, weight bytes per node)."""
    nodes, inits = [], []
    if kind == "dense":
        per = K * N * 2
        for i in range(n_nodes(per)):
            inits.append(init(f"W{i}", (K, N), i))
            nodes.append(helper.make_node("MatMul", ["A", f"W{i}"], [f"Y{i}"]))
    elif kind == "lowrank":
        R = max(1, round(K * N / (c * (K + N))))
        per = R * (K + N) * 2
        for i in range(n_nodes(per)):
            inits += [init(f"U{i}", (K, R), 2 * i), init(f"V{i}", (R, N), 2 * i + 1)]
            nodes += [helper.make_node("MatMul", ["A", f"U{i}"], [f"H{i}"]),
                      helper.make_node("MatMul", [f"H{i}", f"V{i}"], [f"Y{i}"])]
    elif kind == "tsvd":
        Tk, Tn, r = -(-K // t), -(-N // t), max(1, round(t / (2 * c)))
        per = Tk * Tn * r * 2 * t * 2
        for i in range(n_nodes(per)):
            inits += [init(f"U{i}", (Tk, Tn, t, r), 2 * i), init(f"V{i}", (Tk, Tn, r, t), 2 * i + 1)]
            nodes.append(helper.make_node("TSVDMatMul", ["A", f"U{i}", f"V{i}"], [f"Y{i}"], domain="com.ortops",
                                          out_features=N))
    elif kind == "nbits":  # 4-bit, block 32: B [N, K/32, 16] uint8, scales [N * K/32] fp16
        nb = K // 32
        per = N * nb * 16 + N * nb * 2
        for i in range(n_nodes(per)):
            inits += [init(f"B{i}", (N, nb, 16), 2 * i, dtype=np.uint8), init(f"S{i}", (N * nb,), 2 * i + 1)]
            nodes.append(helper.make_node("MatMulNBits", ["A", f"B{i}", f"S{i}"], [f"Y{i}"], domain="com.microsoft",
                                          K=K, N=N, bits=4, block_size=32))
    outs = [n.output[0] for n in nodes if n.output[0].startswith("Y")]
    return model(nodes, inits, K, outs), outs, per


class Bench:
    """One CUDA-EP session of a model; times a Run at any M with IO-bound device buffers."""

    def __init__(self, blob, outs, K, N, cuda_graph=False):
        import onnxruntime as ort
        self.ort, self.outs, self.K, self.N = ort, outs, K, N
        ep = ("CUDAExecutionProvider", {"enable_cuda_graph": "1"}) if cuda_graph else "CUDAExecutionProvider"
        self.sess = ort_ops.InferenceSession(blob, sess_options=ort.SessionOptions(), providers=[ep])

    def time(self, M, reps=20):
        ort = self.ort
        a = ort.OrtValue.ortvalue_from_numpy(np.random.standard_normal((M, self.K)).astype(np.float16), "cuda", 0)
        io = self.sess.io_binding()
        io.bind_ortvalue_input("A", a)
        ys = [ort.OrtValue.ortvalue_from_shape_and_type((M, self.N), np.float16, "cuda", 0) for _ in self.outs]
        for o, y in zip(self.outs, ys):
            io.bind_ortvalue_output(o, y)
        for _ in range(3):
            self.sess.run_with_iobinding(io)
        ts = []
        for _ in range(reps):
            io.synchronize_inputs()
            t0 = time.perf_counter()
            self.sess.run_with_iobinding(io)
            io.synchronize_outputs()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) / len(self.outs)


def copy_bandwidth():
    try:  # torch (CUDA build) measures it; without torch the roofline column reads nan
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import cuda_timing
    except ImportError:
        return float("nan")
    return cuda_timing.copy_bandwidth()


def graph_mode(K, N, ms, bw, out):
    """CUDA-graph rows (c = 4) for one K x N: a session per (kind, M); a timeout keeps what ran."""
    if K * N < 4096 * 4096 or not ms:
        return []
    rows, c = [], 4
    kinds = [("dense", None, None), ("nbits", None, None), ("lowrank", c, None), ("tsvd", c, 128), ("tsvd", c, 256)]
    built = {k: build(k[0], K, N, *k[1:]) for k in kinds}
    for M in ms:
        t = {}
        for k in kinds:
            blob, outs, per = built[k]
            try:
                t[k] = Bench(blob, outs, K, N, cuda_graph=True).time(M)
            except Exception as e:  # noqa: BLE001 (reported, not hidden)
                print(f"graph mode {k} M{M}: {type(e).__name__}: {str(e)[:300]}", flush=True)
                t[k] = float("nan")
        for tile in (128, 256):
            ts = t[("tsvd", c, tile)]
            moved = built[("tsvd", c, tile)][2] + M * (K + N) * 2
            rows.append(dict(K=K, N=N, M=M, c=c, tile=tile, matmul_us=t[kinds[0]] * 1e6, nbits_us=t[kinds[1]] * 1e6,
                             lowrank_us=t[kinds[2]] * 1e6, tsvd_us=ts * 1e6, speedup=t[kinds[0]] / ts,
                             vs_lowrank=t[kinds[2]] / ts, vs_nbits=t[kinds[1]] / ts, roofline=moved / ts / bw))
            print(f"[graph] K{K} N{N} M{M} c{c} t{tile}: MatMul {t[kinds[0]] * 1e6:.1f} us, NBits "
                  f"{t[kinds[1]] * 1e6:.1f}, low-rank {t[kinds[2]] * 1e6:.1f}, TSVD {ts * 1e6:.1f}", flush=True)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "gpu_tsvd_ort_graph.json")
    old = json.load(open(path))["rows"] if os.path.exists(path) else []
    with open(path, "w") as f:
        json.dump(dict(date=time.strftime("%Y-%m-%d"), rows=old + rows), f, indent=1)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ms", default=None, help="comma-separated M values")
    ap.add_argument("--shapes", default=None, help="comma-separated KxN")
    ap.add_argument("--cuda-graph", action="store_true", help="also time M <= 16 under CUDA-graph replay")
    ap.add_argument("--graph-only", action="store_true", help="only the CUDA-graph rows")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    shapes, ms = (SHAPES[2:3], [1, 1024]) if args.quick else (SHAPES, MS)
    if args.ms:
        ms = [int(x) for x in args.ms.split(",")]
    if args.shapes:
        shapes = [tuple(int(v) for v in x.split("x")) for x in args.shapes.split(",")]
    import onnxruntime as ort
    bw = copy_bandwidth()
    print(f"# onnxruntime {ort.__version__}, copy bandwidth {bw / 1e12:.2f} TB/s", flush=True)
    rows, graph_rows = [], []
    for K, N in shapes:
        if args.cuda_graph or args.graph_only:
            graph_rows += graph_mode(K, N, [m for m in ms if m <= 16], bw, args.out)
        if args.graph_only:
            continue
        kinds = [("dense", None, None)] + [("lowrank", c, None) for c in CS] + \
                [("tsvd", c, t) for c in CS for t in TILES] + ([("nbits", None, None)] if min(ms) <= 16 else [])
        times, per_bytes = {}, {}
        for kind, c, t in kinds:  # one session at a time (GPU memory), every M on it
            blob, outs, per = build(kind, K, N, c, t)
            b = Bench(blob, outs, K, N)
            del blob
            per_bytes[(kind, c, t)] = per
            for M in ms:
                if kind == "nbits" and M > 16:
                    continue
                times[(kind, c, t, M)] = b.time(M)
            del b
        for M in ms:
            dense = times[("dense", None, None, M)]
            nbits = times.get(("nbits", None, None, M), float("nan"))
            for c in CS:
                lr = times[("lowrank", c, None, M)]
                for t in TILES:
                    ts = times[("tsvd", c, t, M)]
                    moved = per_bytes[("tsvd", c, t)] + M * (K + N) * 2
                    rows.append(dict(K=K, N=N, M=M, c=c, tile=t, matmul_us=dense * 1e6, lowrank_us=lr * 1e6,
                                     nbits_us=nbits * 1e6, tsvd_us=ts * 1e6, speedup=dense / ts,
                                     vs_lowrank=lr / ts, vs_nbits=nbits / ts, roofline=moved / ts / bw))
                    print(f"K{K} N{N} M{M} c{c} t{t}: MatMul {dense * 1e6:.1f} us, low-rank {lr * 1e6:.1f}, "
                          f"MatMulNBits {nbits * 1e6:.1f}, TSVD {ts * 1e6:.1f} (x{dense / ts:.2f}, "
                          f"roofline {moved / ts / bw:.0%})", flush=True)
        os.makedirs(args.out, exist_ok=True)  # after every shape: a timeout keeps what ran
        with open(os.path.join(args.out, "gpu_tsvd_ort.json"), "w") as f:
            json.dump(dict(date=time.strftime("%Y-%m-%d"), onnxruntime=ort.__version__, onnx=onnx.__version__,
                           copy_TBps=bw / 1e12, rows=rows), f, indent=1)
    if graph_rows:
        print("\nCUDA-graph replay (enable_cuda_graph), c = 4:\n")
        print("| K×N | M | tile | ORT MatMul µs | low-rank µs | MatMulNBits µs | TSVDMatMul µs | vs MatMul | vs low-rank |"
              " vs NBits | roofline |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in graph_rows:
            print(f"| {r['K']}×{r['N']} | {r['M']} | {r['tile']} | {r['matmul_us']:.1f} | {r['lowrank_us']:.1f} |"
                  f" {r['nbits_us']:.1f} | {r['tsvd_us']:.1f} | {r['speedup']:.2f}× | {r['vs_lowrank']:.2f}× |"
                  f" {r['vs_nbits']:.2f}× | {r['roofline']:.0%} |")
    print("\n| K×N | M | c | tile | ORT MatMul µs | low-rank µs | MatMulNBits µs | TSVDMatMul µs | vs MatMul |"
          " target | vs low-rank | vs NBits | roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        target = 0.8 * r["c"] if r["M"] <= 16 else 0.6 * r["c"] if r["M"] >= 1024 else float("nan")
        nb = f"{r['nbits_us']:.1f}" if r["nbits_us"] == r["nbits_us"] else "—"
        vnb = f"{r['vs_nbits']:.2f}×" if r["vs_nbits"] == r["vs_nbits"] else "—"
        tg = f"{target:.1f}×" if target == target else "—"
        print(f"| {r['K']}×{r['N']} | {r['M']} | {r['c']} | {r['tile']} | {r['matmul_us']:.1f} | {r['lowrank_us']:.1f} |"
              f" {nb} | {r['tsvd_us']:.1f} | {r['speedup']:.2f}× | {tg} | {r['vs_lowrank']:.2f}× | {vnb} |"
              f" {r['roofline']:.0%} |")


if __name__ == "__main__":
    sys.exit(main())
