"""Benchmark of the MultigrainAttention CUDA kernel (through the test shim) against anchors measured
in the same run: dense flash SDPA, FlexAttention (compiled, block mask of the same pattern, globals
through a tensor lookup), HF LongformerSelfAttention (fp16, includes its 6 projections).

  python3 benchmarks/gpu_attention.py [--quick] [--json out.json]

--quick: B = 1, S = 4096 and 16384, G = 8 (first, scattered).

Time: CUDA events. Ours and SDPA: a CUDA graph of `--calls` back-to-back calls (rotating input
sets so that repeated calls do not hit L2), median over replays, per call. Flex and HF: eager,
median of per-call event pairs. TFLOP/s counts the useful FLOPs 4·B·H·S·(2w+1+G)·D. Parts: 'band'
runs the band CTAs alone (with the mask compaction), 'global' the global-row CTAs + combine (with
the compaction), 'compact' the compaction alone. 'ours' is the launcher's default (on Hopper, head
dims 40..64: the Hopper kernel with band and global-row CTAs in one grid). A/B columns in the same
run: '2strm' the Hopper kernel's band with the global rows (fused kernel) on a side stream, '1grid'
the fused kernel with both CTA kinds in one launch, '2strmF' the fused kernel's band CTAs with the
global rows on a side stream; 'bandF' / 'bndsync' the band alone in the fused kernel on warpgroup
MMAs / on mma.sync."""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "gpu"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cuda_timing  # noqa: E402
from attention_gpu_util import (  # noqa: E402
    BAND_FUSED, BAND_MMA_SYNC, SCHED_ONE_GRID, SCHED_TWO_STREAM, make_mask, run_op, workspace_bytes)

H, D, W = 12, 64, 256
PEAK = 739.0  # TFLOP/s, torch fp16 GEMM 8192³ on this H200 (shared/notes/anchors-h200.md)


def graph_time(fn, n_sets, calls, replays):
    """Median ms per call over `replays` replays of a graph of `calls` calls (set i % n_sets)."""
    return cuda_timing.graph_time(fn, n_sets, calls, replays) * 1e3


def eager_time(fn, n_sets, reps, warmup=3):
    for i in range(warmup):
        fn(i % n_sets)
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for i, (a, b) in enumerate(ev):
        a.record()
        fn(i % n_sets)
        b.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in ev)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="B=1, S=4096 and 16384, G=8")
    ap.add_argument("--json", default=None)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--replays", type=int, default=15)
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--no-hf", action="store_true")
    ap.add_argument("--extra-parts", type=int, default=None,
                    help="also time the op with these shim option bits (e.g. 64: band not a dependent launch)")
    args = ap.parse_args()
    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)
    rows = []
    shapes = [(1, 4096), (1, 16384)] if args.quick else [(1, 1024), (1, 4096), (1, 16384), (8, 1024), (8, 4096),
                                                          (8, 16384)]
    for B, S in shapes:
        E = H * D
        set_bytes = 6 * B * S * E * 2
        n_sets = max(1, min(4, math.ceil(256e6 / set_bytes)))
        sets = [[torch.randn(B, S, E, generator=gen).to(dev, torch.float16) for _ in range(6)] for _ in range(n_sets)]
        out = torch.empty(B, S, E, device=dev, dtype=torch.float16)
        ws = torch.empty(workspace_bytes(B, S, H, D, W, torch.float16), dtype=torch.uint8, device=dev)
        # Dense flash SDPA anchor on the same data, [B, H, S, D].
        sd = [[t.view(B, S, H, D).transpose(1, 2).contiguous() for t in s[:3]] for s in sets]
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
            t_sdpa = graph_time(lambda i: torch.nn.functional.scaled_dot_product_attention(*sd[i]), n_sets,
                                args.calls, args.replays)
        for G in ((8,) if args.quick else (1, 8, 64)):
            for place in ("first", "scattered"):
                mask = torch.stack([make_mask(S, G, place, S, gen) for _ in range(B)]).to(dev)
                run = lambda i, parts=3: run_op(*sets[i], mask, H, W, out=out, workspace=ws, parts=parts)  # noqa
                rc, _ = run(0)
                assert rc == 0, f"launcher error {rc}"
                timed = lambda parts: graph_time(lambda i: run(i, parts), n_sets, args.calls, args.replays)  # noqa
                t = timed(3)  # the launcher's default
                t_one = timed(3 | SCHED_ONE_GRID | BAND_FUSED)  # the fused kernel, both CTA kinds in one grid
                t_two_fused = timed(3 | SCHED_TWO_STREAM | BAND_FUSED)
                t_two = timed(3 | SCHED_TWO_STREAM)  # band kernel; global rows (fused) on a side stream
                t_band = timed(1)
                # A/B in the same run: the band in the fused kernel (warpgroup MMAs; mma.sync).
                t_band_fused = timed(1 | BAND_FUSED)
                t_band_sync = timed(1 | BAND_FUSED | BAND_MMA_SYNC)
                t_glob = timed(2)
                t_comp = timed(0)
                t_eager = eager_time(run, n_sets, 30)
                t_extra = timed(3 | args.extra_parts) if args.extra_parts is not None else None
                flops = 4 * B * H * S * (2 * W + 1 + G) * D
                rows.append(dict(B=B, S=S, G=G, place=place, ms=t, ms_two_stream=t_two, ms_one_grid=t_one,
                                 ms_two_stream_fused=t_two_fused,
                                 ms_eager=t_eager, band_ms=t_band, band_fused_ms=t_band_fused,
                                 band_mma_sync_ms=t_band_sync, global_ms=t_glob, compact_ms=t_comp,
                                 tflops=flops / t / 1e9, sdpa_ms=t_sdpa))
                if t_extra is not None:
                    rows[-1]["ms_extra"] = t_extra
                    print(f"  with option bits {args.extra_parts}: {t_extra:.4f} ms", flush=True)
                print(f"B={B} S={S} G={G} {place}: {t:.4f} ms ({flops / t / 1e9:.0f} TFLOP/s) fused: 1grid {t_one:.4f} "
                      f"2strmF {t_two_fused:.4f} 2strm {t_two:.4f}; band {t_band:.4f} (fused {t_band_fused:.4f}, mma.sync {t_band_sync:.4f}) "
                      f"global {t_glob:.4f} compact {t_comp:.4f} eager {t_eager:.4f} sdpa {t_sdpa:.4f}", flush=True)
        del sets, sd, ws, out
        torch.cuda.empty_cache()

    # FlexAttention and HF anchors at the headline shape (compiles are slow: one shape).
    B, S, G = 1, 4096, 8
    gen = torch.Generator().manual_seed(1)
    x = [torch.randn(B, S, H * D, generator=gen).to(dev, torch.float16) for _ in range(3)]
    for place in ("first", "scattered"):
        mask = torch.stack([make_mask(S, G, place, S, gen)]).to(dev)
        row = next(r for r in rows if (r["B"], r["S"], r["G"], r["place"]) == (B, S, G, place))
        if not args.no_flex:
            try:
                from torch.nn.attention.flex_attention import create_block_mask, flex_attention
                m = mask.long()

                def mask_mod(b, h, q_idx, kv_idx):
                    mq, mk = m[b, q_idx], m[b, kv_idx]
                    local = (((q_idx - kv_idx).abs() <= W) & (mk == 1)) | (mk == 2)
                    return torch.where(mq == 2, mk != 0, local)

                bm = create_block_mask(mask_mod, B, None, S, S, device=dev)
                flex = torch.compile(flex_attention, fullgraph=True)
                qf = [t.view(B, S, H, D).transpose(1, 2).contiguous() for t in x]
                row["flex_ms"] = eager_time(lambda i: flex(*qf, block_mask=bm), 1, 30, warmup=3)
                row["flex_sparsity"] = bm.sparsity()
            except Exception as e:  # anchor only: report, don't fail the run
                print(f"flex anchor failed: {type(e).__name__}: {e}")
        if not args.no_hf:
            try:
                from attention_gpu_util import hf_longformer_attention  # noqa: F401
                from transformers import LongformerConfig
                from transformers.models.longformer.modeling_longformer import LongformerSelfAttention
                cfg = LongformerConfig(hidden_size=H * D, num_attention_heads=H, attention_window=[2 * W],
                                       attention_probs_dropout_prob=0.0)
                layer = LongformerSelfAttention(cfg, 0).eval().to(dev, torch.float16)
                ext = torch.zeros(B, S, device=dev, dtype=torch.float16)
                ext[mask == 0] = -10000.0
                ext[mask == 2] = 10000.0
                hid = x[0]

                def hf(i):
                    with torch.no_grad():
                        layer(hid, attention_mask=ext, is_index_masked=ext < 0, is_index_global_attn=ext > 0,
                              is_global_attn=True)

                row["hf_ms"] = eager_time(hf, 1, 10, warmup=2)
            except Exception as e:
                print(f"HF anchor failed: {type(e).__name__}: {e}")

    dev_name = torch.cuda.get_device_name()
    print(f"\n{dev_name}, torch {torch.__version__}, fp16, H={H} D={D} w={W}; ms per call (graph), "
          f"TFLOP/s on useful FLOPs, % of {PEAK:.0f}; 'ours' = the launcher's default schedule at that size")
    print(f"{'B':>2} {'S':>6} {'G':>3} {'place':9} {'ours':>7} {'TF/s':>5} {'%pk':>4} {'2strm':>7} {'1grid':>7} {'2strmF':>7} "
          f"{'band':>7} {'bandF':>7} {'bndsync':>7} {'global':>7} {'cmpct':>6} {'eager':>7} {'sdpa':>7} {'flex':>7} "
          f"{'hf':>7}")
    for r in rows:
        f = lambda k: f"{r[k]:7.4f}" if k in r else f"{'-':>7}"  # noqa: E731
        print(f"{r['B']:>2} {r['S']:>6} {r['G']:>3} {r['place']:9} {r['ms']:7.4f} {r['tflops']:5.0f} "
              f"{100 * r['tflops'] / PEAK:4.0f} {f('ms_two_stream')} {r['ms_one_grid']:7.4f} {r['ms_two_stream_fused']:7.4f} "
              f"{r['band_ms']:7.4f} {r['band_fused_ms']:7.4f} {r['band_mma_sync_ms']:7.4f} {r['global_ms']:7.4f} "
              f"{r['compact_ms']:6.4f} {r['ms_eager']:7.4f} {r['sdpa_ms']:7.4f} {f('flex_ms')} {f('hf_ms')}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(device=dev_name, torch=torch.__version__, rows=rows), fh, indent=1)


if __name__ == "__main__":
    main()
