"""GPU tests of the MultigrainAttention CUDA kernels, through the test-only C-ABI shim
(tests/gpu/build_shims.sh). Skipped without CUDA or without the built shim.

Reference: the op's definition as dense masked attention in float64 (torch, on the GPU), checked
against tests/reference.py and HF LongformerSelfAttention. Each check draws fresh random inputs
(seed printed), poisons the output with NaN first and requires every element written."""
from __future__ import annotations

import os
import random

import pytest

torch = pytest.importorskip("torch")
from attention_gpu_util import (  # noqa: E402
    BAND_FUSED, BAND_MMA_SYNC, BAND_NO_PDL, CUDA_ERROR_INVALID_VALUE, PARTS_ALL, RING_2_SLOTS, RING_3_SLOTS, PARTS_BAND, PARTS_GLOBAL, SCHED_ONE_GRID, SCHED_TWO_STREAM, SHIM_PATH,
    describe_mismatch, hf_longformer_attention, make_inputs, make_mask, rel_err, run_op, torch_reference,
    workspace_bytes)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or not SHIM_PATH.exists(),
                                reason="needs a CUDA device and the shim (tests/gpu/build_shims.sh)")

# ‖out − ref‖ / ‖ref‖ bounds per dtype: fp32 arithmetic; fp16 / bf16 operands of the tensor cores
# (P is rounded to the input type before P·V, as in flash attention).
REL_TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
ABS_TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 1e-1}
SEED = int(os.environ.get("ORTOPS_TEST_SEED", random.SystemRandom().randrange(1 << 30)))
RESULTS = []  # (case, dtype, rel_err, max_abs) for the summary printed by the device script


def check(name, dtype, out, ref, bad_rows=()):
    for b in bad_rows:
        assert torch.isnan(out[b]).all(), f"{name}: batch row {b} has an invalid mask value and must be all NaN"
    keep = [b for b in range(out.shape[0]) if b not in bad_rows]
    out, ref = out[keep], ref[keep]
    err = rel_err(out, ref)
    max_abs = (out.double() - ref).abs().max().item() if out.numel() else 0.0
    RESULTS.append((name, str(dtype).replace("torch.", ""), err, max_abs))
    ok = not torch.isnan(out).any().item() and err <= REL_TOL[dtype] and max_abs <= ABS_TOL[dtype]
    assert ok, f"{name} seed={SEED}: rel={err:.3g} max_abs={max_abs:.3g} " + describe_mismatch(out, ref, ABS_TOL[dtype])


def case(name, B, S, H, D, w, dtype, rows, separate_globals=True, mask64=False, seed_offset=0):
    """rows: per batch row (globals, placement, valid tokens)."""
    gen = torch.Generator().manual_seed(SEED + seed_offset)
    mask = torch.stack([make_mask(S, g, pl, valid, gen) for g, pl, valid in rows])
    mask = (mask.long() if mask64 else mask).cuda()
    x = make_inputs(B, S, H, D, dtype, separate_globals, gen)
    rc, out = run_op(*x, mask, H, w)
    assert rc == 0, f"{name}: launcher returned cudaError {rc}"
    torch.cuda.synchronize()
    check(name, dtype, out, torch_reference(*x, mask, H, w))
    return x, mask, out


DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("D", [32, 64, 128])
@pytest.mark.parametrize("w", [0, 1, 7, 64, 256])
def test_grid(dtype, D, w):
    # S = 577: not a multiple of 64 nor of w; row 0 globals scattered + padding, row 1 globals first.
    case(f"grid D={D} w={w}", 2, 577, 2, D, w, dtype, [(5, "scattered", 530), (3, "first", 577)],
         seed_offset=D * 1000 + w)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def test_s_equals_2w(dtype):
    case("S=2w", 1, 512, 3, 64, 256, dtype, [(8, "first", 512)], separate_globals=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def test_many_globals(dtype):
    # G = 100 > w = 32 and > 64 (a second global tile), a row without globals, a row cut short.
    case("G>w, G>64", 3, 1000, 2, 64, 32, dtype, [(100, "scattered", 1000), (0, "first", 1000), (70, "first", 333)])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def test_all_global_and_all_padding(dtype):
    case("all global / all padding", 3, 200, 2, 32, 7, dtype, [(200, "first", 200), (0, "first", 0), (1, "first", 1)])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("D", [8, 40, 96])
def test_other_head_dims(dtype, D):
    case(f"D={D}", 2, 300, 3, D, 16, dtype, [(4, "scattered", 280), (2, "first", 300)], mask64=True)


def test_long_sequences():
    case("S=4096 H=12 G=64 scattered", 1, 4096, 12, 64, 256, torch.float16, [(64, "scattered", 4096)])
    case("S=2048 D=128 G=100/8", 2, 2048, 4, 128, 256, torch.bfloat16, [(100, "scattered", 2048), (8, "first", 1900)])
    # 16 key splits of the global rows (S > 8192).
    case("S=9000 splits=16", 1, 9000, 1, 64, 64, torch.float16, [(20, "scattered", 8999)])


BAND_PATHS = {"default": 0, "fused wgmma": BAND_FUSED, "fused mma.sync": BAND_FUSED | BAND_MMA_SYNC,
              "global rows on a side stream": SCHED_TWO_STREAM,
              "side stream, band not a dependent launch": SCHED_TWO_STREAM | BAND_NO_PDL}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("w", [0, 7, 100, 256])
def test_band_paths_agree(dtype, w):
    # Head dim 64 on Hopper (sm_90a build): by default the Hopper kernel runs band and global-row
    # CTAs in one grid (every other D = 40..64 test on that GPU goes through it); with two streams
    # it runs the band and the fused kernel the global rows; BAND_FUSED keeps everything in the
    # fused kernel (warpgroup MMAs), BAND_MMA_SYNC there on mma.sync (what other GPUs run). Each against
    # the float64 reference, and against each other (same rounding points: they differ only by
    # fp32 accumulation order).
    B, S, H, D = 2, 1111, 3, 64
    gen = torch.Generator().manual_seed(SEED + 77 + w)
    mask = torch.stack([make_mask(S, 6, "scattered", 1050, gen), make_mask(S, 70, "first", S, gen)]).cuda()
    x = make_inputs(B, S, H, D, dtype, True, gen)
    ref = torch_reference(*x, mask, H, w)
    outs = []
    for name, extra in BAND_PATHS.items():
        rc, out = run_op(*x, mask, H, w, parts=PARTS_ALL | extra)
        assert rc == 0, f"{name}: launcher returned cudaError {rc}"
        torch.cuda.synchronize()
        check(f"band path {name} w={w}", dtype, out, ref)
        outs.append(out)
    for name, out in zip(list(BAND_PATHS)[1:], outs[1:]):
        diff = (outs[0].double() - out.double()).abs().max().item()
        assert diff <= ABS_TOL[dtype] / 2, f"default and {name} band paths differ by {diff:.3g} (seed={SEED})"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("w", [0, 37, 256])
def test_narrow_global_blocks(dtype, w):
    # The Hopper kernel takes 1..16 and 17..32 global keys as one narrow block (m64n16 / m64n32)
    # after the band's blocks, and 33.. as 64-key blocks: both edges of each width, per batch row,
    # with padding; w = 0 puts the narrow block right after a one-block range.
    rows = [(1, "scattered", 600), (16, "scattered", 640), (17, "first", 640), (32, "scattered", 500),
            (33, "scattered", 640), (16, "first", 64)]
    case(f"narrow global blocks w={w}", len(rows), 640, 2, 64, w, dtype, rows, seed_offset=w)


@pytest.mark.parametrize("ring", [RING_2_SLOTS, RING_3_SLOTS], ids=["2_slots", "3_slots"])
def test_forced_ring_depths(ring):
    # Both ring depths of the Hopper kernel (2 slots is the default, 3 an A/B option): global rows
    # walking two tiles (G = 100), a narrow global block, padding, an int64 mask.
    B, S, H, D, w = 2, 1000, 3, 64, 100
    gen = torch.Generator().manual_seed(SEED + ring)
    mask = torch.stack([make_mask(S, 100, "scattered", 990, gen), make_mask(S, 12, "first", S, gen)]).long().cuda()
    x = make_inputs(B, S, H, D, torch.float16, True, gen)
    rc, out = run_op(*x, mask, H, w, parts=PARTS_ALL | ring)
    assert rc == 0, f"launcher returned cudaError {rc}"
    torch.cuda.synchronize()
    check(f"ring {ring >> 7} slots", torch.float16, out, torch_reference(*x, mask, H, w))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=lambda d: str(d).replace("torch.", ""))
def test_band_kernel_ring_and_ranges(dtype):
    # The Hopper band kernel's load ring: one-block key ranges with 4 gathered global blocks (the
    # ring wraps on gathered blocks, G = 200 > 3 slots of 64), a window wider than the sequence
    # (every tile walks all of it), a sequence shorter than one tile, D = 48 (zero-filled columns).
    case("w=0, G=200 gathered ring", 1, 700, 2, 64, 0, dtype, [(200, "scattered", 690)])
    case("w >= S", 2, 300, 2, 64, 1000, dtype, [(3, "scattered", 290), (0, "first", 300)])
    case("S < 64", 2, 20, 2, 64, 5, dtype, [(2, "scattered", 17), (1, "first", 20)])
    case("D=48 G=65", 2, 1000, 3, 48, 130, dtype, [(65, "scattered", 1000), (1, "first", 999)], mask64=True)
    # G = 400: global tiles 1..6, so global-row CTAs walk two tiles each (the ring runs on across
    # tiles); a row with G = 0 beside it, and G = 64 exactly (tile 0 only).
    case("G=400 global CTAs walk tiles", 3, 1500, 2, 64, 32, dtype,
         [(400, "scattered", 1480), (0, "first", 1500), (64, "first", 1500)])
    # >= 16 CTAs per SM of band work (2560 here): the 2-slot ring, 4 CTAs per SM.
    rows = [((3 * b) % 70, "scattered" if b % 2 else "first", 1024 - 13 * b) for b in range(40)]
    case("2-slot ring", 40, 1024, 4, 64, 100, dtype, rows)


@pytest.mark.parametrize("scale", [0.0, -0.3, 2.5])
def test_any_finite_scale(scale):
    # The contract allows any finite scale. The band kernel folds a positive scale into its
    # exponent and multiplies the scores first otherwise; every band path against float64.
    gen = torch.Generator().manual_seed(SEED + 29)
    B, S, H, D, w = 2, 400, 2, 64, 60
    mask = torch.stack([make_mask(S, 4, "scattered", 380, gen), make_mask(S, 1, "first", S, gen)]).cuda()
    x = make_inputs(B, S, H, D, torch.float16, True, gen)
    ref = torch_reference(*x, mask, H, w, scale=scale)
    for name, extra in BAND_PATHS.items():
        rc, out = run_op(*x, mask, H, w, scale=scale, parts=PARTS_ALL | extra)
        assert rc == 0, f"{name}: launcher returned cudaError {rc}"
        torch.cuda.synchronize()
        check(f"scale={scale} band path {name}", torch.float16, out, ref)


def test_unaligned_mask_falls_back():
    # A mask whose data is not 16-byte aligned cannot be a TMA source: the launcher runs the fused
    # kernel's band instead, with the same result.
    gen = torch.Generator().manual_seed(SEED + 23)
    B, S, H, D, w = 2, 333, 2, 64, 40
    dense = torch.stack([make_mask(S, 5, "scattered", 320, gen), make_mask(S, 2, "first", S, gen)])
    store = torch.zeros(B * S + 1, dtype=torch.int32, device="cuda")
    mask = store[1:].view(B, S)
    mask.copy_(dense)
    assert mask.data_ptr() % 16 != 0
    x = make_inputs(B, S, H, D, torch.float16, True, gen)
    rc, out = run_op(*x, mask, H, w)
    assert rc == 0
    torch.cuda.synchronize()
    check("unaligned mask", torch.float16, out, torch_reference(*x, dense.cuda(), H, w))


def test_deterministic_and_parts():
    x, mask, out = case("repeat", 2, 1500, 4, 64, 100, torch.float16, [(9, "scattered", 1500), (3, "first", 1200)])
    rc, again = run_op(*x, mask, 4, 100)
    assert rc == 0 and torch.equal(out, again), "two runs on the same inputs differ: a race"
    # The timing parts (band alone, global rows alone) together write what the op writes.
    part = torch.full_like(out, float("nan"))
    assert run_op(*x, mask, 4, 100, out=part, parts=PARTS_BAND)[0] == 0
    assert run_op(*x, mask, 4, 100, out=part, parts=PARTS_GLOBAL)[0] == 0
    assert torch.equal(part, out)


@pytest.mark.parametrize("sched", [SCHED_ONE_GRID, SCHED_TWO_STREAM], ids=["one_grid", "two_stream"])
def test_cuda_graph_capture(sched):
    gen = torch.Generator().manual_seed(SEED + 7)
    B, S, H, D, w = 2, 700, 2, 64, 50
    mask = torch.stack([make_mask(S, 6, "scattered", 650, gen), make_mask(S, 2, "first", 700, gen)]).cuda()
    x = make_inputs(B, S, H, D, torch.float16, True, gen)
    ws = torch.empty(workspace_bytes(B, S, H, D, w, torch.float16), dtype=torch.uint8, device="cuda")
    out = torch.full_like(x[0], float("nan"))
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up on the capture stream (the two-stream schedule makes its side stream)
        assert run_op(*x, mask, H, w, out=out, workspace=ws, parts=PARTS_ALL | sched)[0] == 0
    s.synchronize()
    out.fill_(float("nan"))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=s):
        rc, _ = run_op(*x, mask, H, w, out=out, workspace=ws, parts=PARTS_ALL | sched)
    assert rc == 0
    graph.replay()
    torch.cuda.synchronize()
    check(f"graph replay sched={sched}", torch.float16, out, torch_reference(*x, mask, H, w))
    out.fill_(float("nan"))  # a second replay writes everything again
    graph.replay()
    torch.cuda.synchronize()
    check(f"graph replay 2 sched={sched}", torch.float16, out, torch_reference(*x, mask, H, w))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_two_stream_equals_one_grid(dtype):
    # The fused kernel's CTAs in one grid or on two streams: same CTAs, other launch, so
    # bit-identical output, the int64 mask and an invalid row included. (On Hopper the default one
    # grid is the Hopper kernel: checked against the reference below.)
    gen = torch.Generator().manual_seed(SEED + 17)
    B, S, H, D, w = 3, 1300, 3, 64, 64
    mask = torch.stack([make_mask(S, 9, "scattered", 1250, gen), make_mask(S, 70, "first", S, gen),
                        make_mask(S, 3, "scattered", S, gen)])
    mask[2, 500] = 9
    mask = mask.long().cuda()
    x = make_inputs(B, S, H, D, dtype, True, gen)
    rc1, one = run_op(*x, mask, H, w, parts=PARTS_ALL | SCHED_ONE_GRID | BAND_FUSED)
    rc2, two = run_op(*x, mask, H, w, parts=PARTS_ALL | SCHED_TWO_STREAM | BAND_FUSED)
    torch.cuda.synchronize()
    assert rc1 == 0 and rc2 == 0
    assert torch.equal(one[:2], two[:2]) and torch.isnan(two[2]).all()
    ref = torch_reference(*x, mask.clamp(max=2), H, w)
    check("two streams", dtype, two, ref, bad_rows=(2,))
    # The default (on Hopper: the Hopper kernel, band and global rows in one grid), same inputs.
    rc3, dflt = run_op(*x, mask, H, w)
    torch.cuda.synchronize()
    assert rc3 == 0
    check("default schedule", dtype, dflt, ref, bad_rows=(2,))


def test_two_stream_concurrent_threads():
    # Several host threads, each on its own stream, enqueue the two-stream schedule at once (side
    # streams made concurrently, events never shared between callers): every result exact.
    import threading
    gen = torch.Generator().manual_seed(SEED + 19)
    B, S, H, D, w = 1, 900, 2, 64, 40
    mask = make_mask(S, 5, "scattered", S, gen)[None].cuda()
    x = make_inputs(B, S, H, D, torch.float16, True, gen)
    rc, ref_out = run_op(*x, mask, H, w, parts=PARTS_ALL | SCHED_TWO_STREAM)
    torch.cuda.synchronize()
    assert rc == 0
    check("two streams, one thread", torch.float16, ref_out, torch_reference(*x, mask, H, w))
    n_threads, reps = 4, 6
    outs = [[torch.full_like(x[0], float("nan")) for _ in range(reps)] for _ in range(n_threads)]
    wss = [torch.empty(workspace_bytes(B, S, H, D, w, torch.float16), dtype=torch.uint8, device="cuda")
           for _ in range(n_threads)]
    streams = [torch.cuda.Stream() for _ in range(n_threads)]
    rcs = []

    def worker(t):
        with torch.cuda.stream(streams[t]):
            for r in range(reps):
                rcs.append(run_op(*x, mask, H, w, out=outs[t][r], workspace=wss[t], parts=PARTS_ALL | SCHED_TWO_STREAM)[0])

    for st in streams:
        st.wait_stream(torch.cuda.current_stream())
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    torch.cuda.synchronize()
    assert rcs == [0] * (n_threads * reps)
    for t in range(n_threads):
        for r in range(reps):
            assert torch.equal(outs[t][r], ref_out), f"thread {t} call {r} differs"


def test_invalid_mask_value_gives_nan_row():
    gen = torch.Generator().manual_seed(SEED + 11)
    B, S, H, D, w = 2, 256, 2, 64, 8
    mask = torch.stack([make_mask(S, 3, "scattered", 256, gen), make_mask(S, 3, "scattered", 256, gen)])
    mask[1, 17] = 5
    mask = mask.cuda()
    for dtype in DTYPES:
        x = make_inputs(B, S, H, D, dtype, False, gen)
        rc, out = run_op(*x, mask, H, w)
        assert rc == 0
        torch.cuda.synchronize()
        check("invalid mask value", dtype, out, torch_reference(*x, mask.clamp(max=2), H, w), bad_rows=(1,))


@pytest.mark.parametrize("D", [36, 136, 4])
def test_unsupported_head_dim_is_rejected(D):
    gen = torch.Generator().manual_seed(SEED)
    mask = torch.ones(1, 64, dtype=torch.int32, device="cuda")
    x = make_inputs(1, 64, 2, D, torch.float16, False, gen)
    rc, _ = run_op(*x, mask, 2, 8)
    assert rc == CUDA_ERROR_INVALID_VALUE


def test_matches_hf_longformer_self_attention():
    pytest.importorskip("transformers")
    gen = torch.Generator().manual_seed(SEED + 13)
    B, S, H, D, w = 2, 512, 4, 64, 32  # HF needs S % 2w == 0
    mask = torch.stack([make_mask(S, 7, "scattered", 470, gen), make_mask(S, 40, "scattered", 512, gen)])
    hidden = torch.randn(B, S, H * D, generator=gen, dtype=torch.float64)
    ref, *proj = hf_longformer_attention(hidden, mask, H, w, dtype=torch.float64, device="cuda", seed=SEED)
    mask = mask.cuda()
    for dtype in DTYPES:
        x = [p.to(dtype).contiguous() for p in proj]
        rc, out = run_op(*x, mask, H, w)
        assert rc == 0
        torch.cuda.synchronize()
        # HF runs its softmax in float32 even in a float64 model: ~1e-8 from the float64 definition.
        check("HF LongformerSelfAttention fp64", dtype, out, ref)


def teardown_module(module):
    path = os.environ.get("ORTOPS_TEST_RESULTS")
    if path:
        with open(path, "w") as f:
            f.write(f"seed {SEED}\n")
            for name, dt, err, mx in RESULTS:
                f.write(f"{name:34s} {dt:9s} rel={err:.3e} max_abs={mx:.3e}\n")
