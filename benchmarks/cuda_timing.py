"""CUDA-graph timing shared by the kernel-level GPU benchmarks (gpu_tsvd.py, gpu_attention.py):
`calls` back-to-back calls captured in one graph (call i uses input set i % n_sets, so sets can
rotate past the L2), replayed; per-call time of each replay from CUDA events. No host overhead,
launch gaps as in a graph-captured model."""
from __future__ import annotations

import statistics

import torch


def graph_times(fn, n_sets: int, calls: int, replays: int) -> list[float]:
    """Seconds per call, one value per replay. fn(i) enqueues call i on the current stream."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up outside the graph: lazy loading, handles, autotuning
        for i in range(max(3, min(n_sets, calls))):
            fn(i % n_sets)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        for i in range(calls):
            fn(i % n_sets)
    for _ in range(2):
        g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e-3 / calls)
    del g
    return times


def graph_time(fn, n_sets: int, calls: int, replays: int) -> float:
    """Median seconds per call (see graph_times)."""
    return statistics.median(graph_times(fn, n_sets, calls, replays))


def copy_bandwidth(nbytes: int = 1 << 30) -> float:
    """Device-to-device copy rate, bytes read + written per second (median of 5 copies): the
    memory roofline the benchmarks report against."""
    x = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    y.copy_(x)
    ts = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        y.copy_(x)
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e-3)
    del x, y
    torch.cuda.empty_cache()
    return 2 * nbytes / statistics.median(ts)
