"""TSVDMatMul CUDA kernel vs cuBLAS (torch.matmul on the dense weight) and plain global low-rank
(two matmuls, same parameter count), all float16, measured in the same run.

Kernel-level (no ORT): our launcher through the test shim (tests/gpu/build_shims.sh). Each
measurement captures a CUDA graph of L calls that rotate over enough weight sets to exceed the
60 MB L2 (so weights come from HBM, as in a real model), replays it, and reports the median of
replay time / L: no host overhead, launch gaps shrunk as in a graph-captured model.

Usage: python benchmarks/gpu_tsvd.py [--quick | --large] [--out DIR]
--large: the large-M grid of the two-stage path: every row also times the fused kernel (path 1,
M <= 1024) and the two-stage path (path 2) with the default T cap and with no cap, so the
threshold and the row-chunk size can be read off one run.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_timing  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHIM = os.environ.get("ORTOPS_TSVD_SHIM", os.path.join(ROOT, ".device", "shims", "libtsvd_shim.so"))
L2_BYTES = 60e6
SHAPES = [(768, 3072), (3072, 768), (4096, 4096), (4096, 14336)]
MS = [1, 16, 128, 1024, 8192]
CS = [2, 4, 8]
TILES = [128, 256]


def load_shim(path):
    lib = ctypes.CDLL(path)
    i64, p, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    lib.ortops_test_tsvd_ws.argtypes = [i32, p, p, p, p, p] + [i64] * 8 + [i32, i32, p, p]
    lib.ortops_test_tsvd_ws.restype = i32
    lib.ortops_test_tsvd_workspace_bytes.argtypes = [i32] + [i64] * 8 + [i32, i32]
    lib.ortops_test_tsvd_workspace_bytes.restype = i64
    if hasattr(lib, "ortops_test_tsvd_ex"):
        lib.ortops_test_tsvd_ex.argtypes = ([i32, p, p, p, p, p] + [i64] * 8 +
                                            [i32, i32, p, p, i32, i64, i64, i32, i32, i32, i32, i32])
        lib.ortops_test_tsvd_ex.restype = i32
        lib.ortops_test_tsvd_workspace_bytes_ex.argtypes = [i32] + [i64] * 8 + [i32, i32, i32, i64, i64, i32]
        lib.ortops_test_tsvd_workspace_bytes_ex.restype = i64
    return lib


# --large: (K, N, M) combinations; variants (name, path, T cap bytes; -1 = default).
# (most informative first, so a timeout drops the least).
LARGE = [(4096, 4096, M) for M in (1024, 8192, 128, 256, 512, 1)] + \
        [(4096, 14336, M) for M in (1024, 8192, 128, 256)] + \
        [(K, N, M) for K, N in SHAPES[:2] for M in (128, 1024)]
# name, path, T cap, ring (0: k32 x 4, 1: k64 x 3), pdl (-1 default, 0 off), stage mask (1/2: one stage
# only, timing only), fused kernel's CTAs per SM for its split (-1 default), split sums (-1 default:
# in-kernel; 0 finalize kernel), smallest M, largest M.
VARIANTS = [("fused", 1, -1, -1, -1, 3, -1, -1, 17, 1024),
            ("two", 2, -1, 0, -1, 3, -1, -1, 1, 1 << 30),
            ("two_k64", 2, -1, 1, -1, 3, -1, -1, 128, 1 << 30),
            ("two_nopdl", 2, -1, 0, 0, 3, -1, -1, 128, 1 << 30),
            ("two_nocap", 2, 1 << 40, 0, -1, 3, -1, -1, 1024, 1 << 30),
            ("two_k64_cap128M", 2, 128 << 20, 1, -1, 3, -1, -1, 1024, 1 << 30),
            ("stage1_only", 2, -1, 0, -1, 1, -1, -1, 1, 1 << 30),
            ("stage2_only", 2, -1, 0, -1, 2, -1, -1, 1, 1 << 30)]
# --variants small: the split sums added up in the main kernel (the default under graph capture,
# which these timings use, is the separate finalize kernel; outside a capture it is in-kernel).
SMALL_VARIANTS = [("in_kernel", 0, -1, -1, -1, 3, -1, 1, 1, 256)]
# --variants hopper: the fused Hopper kernel (path 3, also below its default threshold) against the
# two-stage path and the fused mma.sync kernel, in one run.
HOPPER_VARIANTS = [("wgmma", 3, -1, -1, -1, 3, -1, -1, 1, 1 << 30),
                   ("two", 2, -1, -1, -1, 3, -1, -1, 128, 1 << 30),
                   ("fused_sync", 1, -1, -1, -1, 3, -1, -1, 128, 1 << 30)]
# --variants hopper2: the two-stage Hopper GEMMs (path 5; s1 / s2: one stage alone, timing only; a
# 32 MB T cap: row chunks whose T stays in L2) against the fused Hopper kernel (path 3), in one run.
HOPPER2_VARIANTS = [("wgmma", 3, -1, -1, -1, 3, -1, -1, 1, 1 << 30),
                    ("gemm2", 5, -1, -1, -1, 3, -1, -1, 1, 1 << 30),
                    ("gemm2_s1", 5, -1, -1, -1, 1, -1, -1, 1, 1 << 30),
                    ("gemm2_s2", 5, -1, -1, -1, 2, -1, -1, 1, 1 << 30),
                    ("gemm2_32M", 5, 32 << 20, -1, -1, 3, -1, -1, 1024, 1 << 30)]
HOPPER2_AB = HOPPER2_VARIANTS[:2]  # --variants hopper2_ab: the two alone (policy sweeps)

# --variants decode: the fused mma.sync kernel (path 1, the default at M <= 16 before the decode
# kernel) beside the default (the decode kernel where it fits), in one run.
DECODE_VARIANTS = [("fused_sync", 1, -1, -1, -1, 3, -1, -1, 1, 16)]
# --variants decode_sweep: the decode kernel's cluster size (s: CTAs per cluster) and ring depth
# (st: slots), each forced with the other left to the launcher (the shim passes them for path 4 in
# the fused kernel's CTAs-per-SM and ring fields); loads / mma time the TMA loads alone and the
# products alone (stage mask 1 / 2) at the launcher's cluster size and ring.
DECODE_SWEEP = DECODE_VARIANTS + [(f"s{s}", 4, -1, -1, -1, 3, s, -1, 1, 16) for s in (1, 2, 4, 8)] + \
    [(f"st{st}", 4, -1, st, -1, 3, -1, -1, 1, 16) for st in (2, 4, 8)] + \
    [("loads", 4, -1, -1, -1, 1, -1, -1, 1, 16), ("mma", 4, -1, -1, -1, 2, -1, -1, 1, 16)]


def n_sets_for(bytes_per_set):
    if os.environ.get("ORTOPS_BENCH_SETS"):  # experiments: fewer sets keep the weights in L2
        return int(os.environ["ORTOPS_BENCH_SETS"])
    return max(2, min(32, math.ceil(2 * L2_BYTES / max(bytes_per_set, 1))))


def time_graph(fn_list, min_calls=20, replays=10):
    """fn_list: callables, one per weight set. Returns (median seconds per call, all replays)."""
    calls = max(1, math.ceil(min_calls / len(fn_list))) * len(fn_list)
    times = cuda_timing.graph_times(lambda i: fn_list[i](), len(fn_list), calls, replays)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer sizes (smoke run)")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--shim", default=SHIM, help="launcher build to time (A/B of kernel versions)")
    ap.add_argument("--label", default="", help="suffix of the JSON file name")
    ap.add_argument("--ab-shim", default=None,
                    help="a second launcher build, timed row by row beside --shim as variant 'base' (A/B in one run)")
    ap.add_argument("--large", action="store_true", help="large-M grid, fused vs two-stage variants")
    ap.add_argument("--variants", choices=["none", "large", "small", "hopper", "hopper2", "hopper2_ab", "decode", "decode_sweep"], default=None,
                    help="variants timed beside the default (default: large with --large, else none)")
    ap.add_argument("--ms", default=None, help="comma-separated M values (default: the issue's grid)")
    ap.add_argument("--shapes", default=None, help="comma-separated KxN (default: the issue's four)")
    args = ap.parse_args()
    shapes, ms = (SHAPES[2:3], [1, 1024]) if args.quick else (SHAPES, MS)
    if args.ms:
        ms = [int(x) for x in args.ms.split(",")]
    if args.shapes:
        shapes = [tuple(int(v) for v in x.split("x")) for x in args.shapes.split(",")]
    combos = LARGE if args.large else [(K, N, M) for K, N in shapes for M in ms]
    vsel = args.variants or ("large" if args.large else "none")
    variant_list = {"none": [], "large": VARIANTS, "small": SMALL_VARIANTS, "hopper": HOPPER_VARIANTS, "hopper2": HOPPER2_VARIANTS, "hopper2_ab": HOPPER2_AB,
                    "decode": DECODE_VARIANTS, "decode_sweep": DECODE_SWEEP}[vsel]
    lib = load_shim(args.shim)
    lib_base = load_shim(args.ab_shim) if args.ab_shim else None
    dev = "cuda"
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    bw_copy = cuda_timing.copy_bandwidth(int(2e9))
    print(f"# {props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}, "
          f"copy bandwidth {bw_copy / 1e12:.2f} TB/s (read + write)", flush=True)
    rows = []
    stream_ptr = lambda: ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)  # noqa: E731
    Ws, WKN = None, None
    for K, N, M in combos:
        if WKN != (K, N):
            Ws = None
            torch.cuda.empty_cache()
            dense_w = K * N * 2
            nd = n_sets_for(dense_w)
            Ws = [torch.randn(K, N, device=dev, dtype=torch.float16) * K ** -0.5 for _ in range(nd)]
            WKN = (K, N)
        if True:
            A = torch.randn(M, K, device=dev, dtype=torch.float16)
            Yd = torch.empty(M, N, device=dev, dtype=torch.float16)
            t_dense, _ = time_graph([lambda W=W: torch.matmul(A, W, out=Yd) for W in Ws])
            for c in CS:
                R = max(1, round(K * N / (c * (K + N))))
                nl = n_sets_for(R * (K + N) * 2)
                lr = [(torch.randn(K, R, device=dev, dtype=torch.float16) * K ** -0.5,
                       torch.randn(R, N, device=dev, dtype=torch.float16) * R ** -0.5) for _ in range(nl)]
                H = torch.empty(M, R, device=dev, dtype=torch.float16)
                t_lr, _ = time_graph([lambda u=u, v=v: torch.matmul(torch.matmul(A, u, out=H), v, out=Yd)
                                      for u, v in lr])
                del lr, H
                for t in TILES:
                    Tk, Tn = -(-K // t), -(-N // t)
                    r = max(1, round(t * t / (c * 2 * t)))
                    fb = Tk * Tn * r * 2 * t * 2
                    ns = n_sets_for(fb)
                    facs = [(torch.randn(Tk, Tn, t, r, device=dev, dtype=torch.float16) * t ** -0.5,
                             torch.randn(Tk, Tn, r, t, device=dev, dtype=torch.float16) * r ** -0.5)
                            for _ in range(ns)]
                    Y = torch.empty(M, N, device=dev, dtype=torch.float16)
                    wsb = lib.ortops_test_tsvd_workspace_bytes(1, M, K, N, Tk, Tn, t, t, r, 0, 0)
                    ws = torch.empty(max(wsb, 16), device=dev, dtype=torch.uint8)

                    def call(U, V):
                        rc = lib.ortops_test_tsvd_ws(1, A.data_ptr(), U.data_ptr(), V.data_ptr(), None, Y.data_ptr(),
                                                     M, K, N, Tk, Tn, t, t, r, 0, 0, ws.data_ptr(), stream_ptr())
                        if rc != 0:
                            raise RuntimeError(f"tsvd launcher: CUDA error {rc}")
                    t_ts, all_t = time_graph([lambda U=U, V=V: call(U, V) for U, V in facs])
                    # The dense product of the first set's reconstructed weight, against which every
                    # launcher (default, A/B build, variants) is checked after its timing.
                    U0, V0 = facs[0]
                    W0 = torch.einsum("ijkr,ijrn->ikjn", U0.float(), V0.float()).reshape(Tk * t, Tn * t)[:K, :N]
                    ref = A.float() @ W0
                    del W0

                    def rel_err_of(launch):
                        launch(U0, V0)
                        return ((Y.float() - ref).norm() / ref.norm()).item()
                    variants = {}
                    if lib_base is not None:  # the other build's default launcher, same inputs
                        wsb_b = lib_base.ortops_test_tsvd_workspace_bytes(1, M, K, N, Tk, Tn, t, t, r, 0, 0)
                        ws_b = torch.empty(max(wsb_b, 16), device=dev, dtype=torch.uint8)

                        def bcall(U, V):
                            rc = lib_base.ortops_test_tsvd_ws(1, A.data_ptr(), U.data_ptr(), V.data_ptr(), None,
                                                              Y.data_ptr(), M, K, N, Tk, Tn, t, t, r, 0, 0,
                                                              ws_b.data_ptr(), stream_ptr())
                            if rc != 0:
                                raise RuntimeError(f"tsvd launcher (base): CUDA error {rc}")
                        bt, _ = time_graph([lambda U=U, V=V: bcall(U, V) for U, V in facs])
                        variants["base"] = dict(us=bt * 1e6, ws_MB=wsb_b / 1e6, rel_err=rel_err_of(bcall))
                        del ws_b
                    for vname, vpath, vcap, vcfg, vpdl, vmask, vps, vsum, vmin, vmax in variant_list:
                        if not vmin <= M <= vmax:
                            continue  # fused at M = 8192: ~1-4 ms (docs/tsvd_cuda.md, run 3)
                        vb = lib.ortops_test_tsvd_workspace_bytes_ex(1, M, K, N, Tk, Tn, t, t, r, 0, 0, vpath, -1, vcap,
                                                                     vps)
                        vws = torch.empty(max(vb, 16), device=dev, dtype=torch.uint8)

                        def vcall(U, V, vpath=vpath, vcap=vcap, vws=vws, vcfg=vcfg, vpdl=vpdl, vmask=vmask, vps=vps,
                                  vsum=vsum):
                            rc = lib.ortops_test_tsvd_ex(1, A.data_ptr(), U.data_ptr(), V.data_ptr(), None,
                                                         Y.data_ptr(), M, K, N, Tk, Tn, t, t, r, 0, 0,
                                                         vws.data_ptr(), stream_ptr(), vpath, -1, vcap, vcfg, vpdl,
                                                         vmask, vps, vsum)
                            if rc != 0:
                                raise RuntimeError(f"tsvd launcher ({vname}): CUDA error {rc}")
                        vt, _ = time_graph([lambda U=U, V=V: vcall(U, V) for U, V in facs])
                        if vmask != 3:  # one stage only: time, no result
                            variants[vname] = dict(us=vt * 1e6, ws_MB=vb / 1e6, rel_err=float("nan"))
                            del vws
                            continue
                        variants[vname] = dict(us=vt * 1e6, ws_MB=vb / 1e6, rel_err=rel_err_of(vcall))
                        del vws
                    rel = rel_err_of(call)  # sanity: the same function as the dense reconstructed weight
                    bytes_moved = fb + M * K * 2 + M * N * 2
                    row = dict(K=K, N=N, M=M, c=c, tile=t, r=r, dense_us=t_dense * 1e6, lowrank_us=t_lr * 1e6,
                               tsvd_us=t_ts * 1e6, speedup=t_dense / t_ts, vs_lowrank=t_lr / t_ts,
                               tsvd_TBps=bytes_moved / t_ts / 1e12, roofline=bytes_moved / t_ts / bw_copy,
                               dense_TBps=(dense_w + M * K * 2 + M * N * 2) / t_dense / 1e12,
                               tsvd_tflops=2 * M * Tk * Tn * r * 2 * t / t_ts / 1e12, rel_err=rel,
                               spread=(max(all_t) - min(all_t)) / t_ts, workspace=wsb, variants=variants)
                    rows.append(row)
                    os.makedirs(args.out, exist_ok=True)  # after every row: a timeout keeps what ran
                    with open(os.path.join(args.out, f"gpu_tsvd{args.label}.json"), "w") as f:
                        json.dump(dict(card=props.name, shim=args.shim, date=time.strftime("%Y-%m-%d"),
                                       torch=torch.__version__, copy_TBps=bw_copy / 1e12, rows=rows), f, indent=1)
                    print(f"K{K:5d} N{N:5d} M{M:5d} c{c} t{t:3d} r{r:3d} | dense {row['dense_us']:8.1f} us"
                          f" | lowrank {row['lowrank_us']:8.1f} | tsvd {row['tsvd_us']:8.1f}"
                          f" | x{row['speedup']:5.2f} (target {0.8 * c if M <= 16 else 0.6 * c:.1f})"
                          f" vs-lr x{row['vs_lowrank']:4.2f} | {row['tsvd_TBps']:.2f} TB/s"
                          f" {row['tsvd_tflops']:6.1f} TF/s | err {rel:.1e}"
                          + "".join(f" | {k} {v['us']:.1f} err {v['rel_err']:.0e}" for k, v in variants.items()),
                          flush=True)
                    del facs, U0, V0, ref, Y, ws
            del A, Yd
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"gpu_tsvd{args.label}.json"), "w") as f:
        json.dump(dict(card=props.name, shim=args.shim, date=time.strftime("%Y-%m-%d"), torch=torch.__version__,
                       copy_TBps=bw_copy / 1e12, rows=rows), f, indent=1)
    # Targets of issue 4 for K x N >= 4096 x 4096.
    big = [r for r in rows if r["K"] * r["N"] >= 4096 * 4096]
    miss = [r for r in big if (r["M"] <= 16 and r["speedup"] < 0.8 * r["c"])
            or (r["M"] >= 1024 and r["speedup"] < 0.6 * r["c"]) or r["vs_lowrank"] < 1]
    print(f"\n# targets (K*N >= 4096^2): {len(big) - len(miss)} of {len(big)} rows meet speedup and low-rank targets")
    print("| K x N | M | c | tile | cuBLAS us | low-rank us | TSVD us | speedup | vs low-rank | TB/s | roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['K']}x{r['N']} | {r['M']} | {r['c']} | {r['tile']} | {r['dense_us']:.1f} | {r['lowrank_us']:.1f} |"
              f" {r['tsvd_us']:.1f} | {r['speedup']:.2f} | {r['vs_lowrank']:.2f} | {r['tsvd_TBps']:.2f} |"
              f" {r['roofline']:.0%} |")


if __name__ == "__main__":
    sys.exit(main())
