"""GPU correctness of the TSVDMatMul CUDA launcher, through the test-only ctypes shim
(tests/gpu/build_shims.sh builds .device/shims/libtsvd_shim.so). Skipped without CUDA or shim.

Each case draws fresh random inputs in the tested dtype, poisons Y with NaN, runs the launcher on
torch's current stream and compares with the float64 reference of tests/reference.py. Tolerance:
the relative error (Frobenius) must stay within 2x that of torch computing the same function in
the same dtype (A @ W̃ with W̃ rounded to the dtype, cuBLAS) plus a small floor, and the largest
element error within 4x torch's plus a floor; every output element must be finite.
"""
from __future__ import annotations

import ctypes
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from reference import tsvd_matmul as ref_tsvd  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHIM = os.environ.get("ORTOPS_TSVD_SHIM", os.path.join(ROOT, ".device", "shims", "libtsvd_shim.so"))

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(not os.path.exists(SHIM), reason=f"no shim at {SHIM} (tests/gpu/build_shims.sh)"),
]

DTYPES = {"float32": (0, torch.float32), "float16": (1, torch.float16), "bfloat16": (2, torch.bfloat16)}
# Floors on top of 2x torch's error: relative (Frobenius) and per element (in units of ‖ref‖_rms).
FLOOR = {"float32": (1e-5, 1e-4), "float16": (1e-3, 8e-3), "bfloat16": (8e-3, 6e-2)}

_lib = None


def lib():
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL(SHIM)
        i64, p, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
        _lib.ortops_test_tsvd.argtypes = [i32, p, p, p, p, p] + [i64] * 8 + [i32, i32, p]
        _lib.ortops_test_tsvd.restype = i32
        _lib.ortops_test_tsvd_ex.argtypes = ([i32, p, p, p, p, p] + [i64] * 8 +
                                             [i32, i32, p, p, i32, i64, i64, i32, i32, i32, i32, i32])
        _lib.ortops_test_tsvd_ex.restype = i32
        _lib.ortops_test_tsvd_workspace_bytes.argtypes = [i32] + [i64] * 8 + [i32, i32]
        _lib.ortops_test_tsvd_workspace_bytes.restype = i64
        _lib.ortops_test_stream_counters_nonzero.argtypes = [p]
        _lib.ortops_test_stream_counters_nonzero.restype = i32
        _lib.ortops_test_new_stream.restype = p
        _lib.ortops_test_tsvd_path.argtypes = [i32] + [i64] * 8 + [i32, i32, i32]
        _lib.ortops_test_tsvd_path.restype = i32
        _lib.ortops_test_tsvd_decode.argtypes = [i32, p, p, p, p, p] + [i64] * 8 + [i32, i32, i32, p]
        _lib.ortops_test_tsvd_decode.restype = i32
    return _lib


def run_tsvd(A, U, V, bias, Y, K, N, Tk, Tn, tk, tn, r, su, sv, code, path=None, cap=-1, cfg=-1, splits=None,
             stages=0):
    """path None: the public launcher; 1 fused kernel, 2 two-stage (cap: T workspace bytes, cfg: ring),
    3 the fused Hopper kernel where it runs and fits (else the fused kernel), 4 the decode kernel
    likewise (splits: CTAs per cluster, stages: ring slots; 0 = the launcher's choice), 5 the
    two-stage Hopper GEMMs likewise (cap: T workspace bytes)."""
    M = A.numel() // K
    ptr = lambda t: ctypes.c_void_p(t.data_ptr()) if t is not None else None  # noqa: E731
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    if splits is not None:
        return lib().ortops_test_tsvd_decode(code, ptr(A), ptr(U), ptr(V), ptr(bias), ptr(Y), M, K, N, Tk, Tn, tk,
                                             tn, r, int(su), splits, stages, stream)
    if path is None:
        return lib().ortops_test_tsvd(code, ptr(A), ptr(U), ptr(V), ptr(bias), ptr(Y), M, K, N, Tk, Tn, tk, tn, r,
                                      int(su), int(sv), stream)
    return lib().ortops_test_tsvd_ex(code, ptr(A), ptr(U), ptr(V), ptr(bias), ptr(Y), M, K, N, Tk, Tn, tk, tn, r,
                                     int(su), int(sv), None, stream, path, -1, cap, cfg, -1, 3, -1, -1)


# (leading dims of A, K, N, tk, tn, r, shared U, shared V, bias). N < Tn*tn and K < Tk*tk mark
# partial tiles; ranks 1, odd, multiple rank chunks (> 64) and full.
SHAPES = [
    ((), 300, 200, 64, 48, 5, False, False, True),        # partial tiles both ways, odd rank
    ((), 512, 384, 128, 128, 16, False, False, False),    # 16-byte path, r = 16
    ((), 512, 384, 128, 128, 32, False, False, True),
    ((), 256, 512, 256, 256, 64, False, False, True),     # tile 256, one k chunk column
    ((), 256, 256, 128, 128, 128, False, False, True),    # full rank, two rank chunks
    ((), 299, 257, 96, 80, 1, False, False, True),        # rank 1, odd K and N
    ((), 384, 300, 128, 100, 70, False, False, False),    # r = 70: a 64 chunk and a padded one
    ((), 384, 320, 128, 64, 24, True, False, True),       # shared U
    ((), 384, 320, 128, 64, 24, False, True, True),       # shared V (TSVD-common)
    ((), 330, 250, 128, 64, 8, True, True, False),        # both shared, partial tiles
    ((), 72, 40, 24, 16, 12, False, False, True),         # tiles smaller than a k chunk / column block
    ((), 1024, 1000, 128, 128, 24, False, False, True),   # two-stage: 8 x 24 T columns per tile row, partial N
]
# M >= 512 takes the two-stage path (tsvd_cuda_traits.h kTwoStageMinM; these shapes have N < 8192),
# smaller M the fused kernel; FORCED below runs each path at other M as well.
MS = [(1,), (3,), (2, 8), (17,), (4, 32), (1000,)]
# Forced paths (16-bit only): the fused kernel's large-M configuration (no longer chosen by M), and
# the two-stage path at small M and with a tiny T cap (row chunks of 128, the last one partial).
# cfg: the two-stage ring (0: k 32 x 4, 1: k 64 x 3; -1 default), both tested whatever the default.
FORCED = [(1, -1, -1, (300,)), (2, -1, 0, (1,)), (2, -1, 1, (17,)), (2, 1, 0, (2, 150)), (2, 1, 1, (300,)),
          (2, -1, 1, (1000,))]


def _case_id(s):
    lead, K, N, tk, tn, r, su, sv, b = s
    return f"K{K}N{N}t{tk}x{tn}r{r}{'_su' if su else ''}{'_sv' if sv else ''}{'_bias' if b else ''}"


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("lead", MS, ids=lambda m: "M" + "x".join(map(str, m)))
@pytest.mark.parametrize("shape", SHAPES, ids=_case_id)
def test_tsvd_cuda_matches_float64(shape, lead, dtype, rng):
    check_case(shape, lead, dtype, rng)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("forced", FORCED, ids=lambda f: f"path{f[0]}cap{f[1]}cfg{f[2]}M" + "x".join(map(str, f[3])))
@pytest.mark.parametrize("shape", SHAPES, ids=_case_id)
def test_tsvd_cuda_forced_path(shape, forced, dtype, rng):
    path, cap, cfg, lead = forced
    check_case(shape, lead, dtype, rng, path=path, cap=cap, cfg=cfg)


def check_case(shape, lead, dtype, rng, path=None, cap=-1, cfg=-1, misalign_a=False, splits=None, stages=0,
               poison_ignored=False):
    """poison_ignored: the factor entries the contract ignores (U's rows past K in the last tile row,
    V's columns past N in the last tile column; per-tile factors only) hold Inf / NaN."""
    _, K, N, tk, tn, r, su, sv, with_bias = shape
    code, tdt = DTYPES[dtype]
    Tk, Tn = -(-K // tk), -(-N // tn)
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(int(rng.integers(2**62)))
    randn = lambda *s, scale=1.0: (torch.randn(*s, generator=g, device=dev, dtype=torch.float64) * scale).to(tdt)  # noqa: E731
    A = randn(*lead, K)
    if misalign_a:  # the same values 2 bytes past a 16-byte boundary: no 16-byte copies of A
        A = torch.cat([A.new_zeros(1), A.reshape(-1)])[1:].view(A.shape)
        assert A.data_ptr() % 16 != 0
    U = randn(*((1, 1) if su else (Tk, Tn)), tk, r, scale=tk ** -0.5)
    V = randn(*((1, 1) if sv else (Tk, Tn)), r, tn, scale=r ** -0.5)
    bias = randn(N) if with_bias else None
    if poison_ignored:
        k_last, n_last = K - (Tk - 1) * tk, N - (Tn - 1) * tn
        assert not su and not sv and (k_last < tk or n_last < tn), "nothing to poison"
        U[Tk - 1, :, k_last:, :] = float("inf")
        V[:, Tn - 1, :, n_last:] = float("nan")
    Y = torch.full((*lead, N), float("nan"), device=dev, dtype=tdt)

    rc = run_tsvd(A, U, V, bias, Y, K, N, Tk, Tn, tk, tn, r, su, sv, code, path=path, cap=cap, cfg=cfg,
                  splits=splits, stages=stages)
    assert rc == 0, f"launcher returned CUDA error {rc}"

    to64 = lambda t: t.double().cpu().numpy()  # noqa: E731
    ref = ref_tsvd(to64(A), to64(U), to64(V), None if bias is None else to64(bias), out_features=N)
    # torch in the same dtype: dense reconstructed weight rounded to the dtype, one cuBLAS matmul.
    from reference import tsvd_dense_weight
    W = torch.from_numpy(tsvd_dense_weight(to64(U), to64(V), K, N)).to(dev).to(tdt)
    Yt = A @ W + (bias if bias is not None else 0)
    y = to64(Y)
    n_bad = int((~np.isfinite(y)).sum())
    if n_bad:
        first = np.unravel_index(int(np.argmax(~np.isfinite(y))), y.shape)
        pytest.fail(f"{n_bad} non-finite outputs (unwritten or overflow); first at {first}")
    norm = np.linalg.norm(ref) + 1e-300
    rms = norm / np.sqrt(ref.size)
    err, err_t = np.linalg.norm(y - ref) / norm, np.linalg.norm(to64(Yt) - ref) / norm
    mx, mx_t = np.abs(y - ref).max() / rms, np.abs(to64(Yt) - ref).max() / rms
    f_rel, f_max = FLOOR[dtype]
    where = np.unravel_index(int(np.argmax(np.abs(y - ref))), y.shape)
    print(f"rel err {err:.2e} (torch {err_t:.2e}); max err {mx:.2e} rms (torch {mx_t:.2e}) at {where}")
    assert err <= 2 * err_t + f_rel, f"relative error {err:.3e} > 2 x torch {err_t:.3e} + {f_rel}"
    assert mx <= 4 * mx_t + f_max, f"max error {mx:.3e} rms at {where} > 4 x torch {mx_t:.3e} + {f_max}"


# ---- the fused Hopper kernel (sm_90a warpgroup MMAs; path 3) ----
# (K, N, tk, tn, r, shared U, bias): every shape fits it (tile 128 / 256, r <= 64 and a multiple of 8,
# K and tk multiples of 8, V per tile). Partial tile rows whose last k chunk is short (tk 96, 200,
# K 264), partial tile columns and a CTA with one of its two tiles past N (N 640, 1000), ranks
# padded to 16 / 32 / 64 (8, 24, 40, 48), shared U; tile rows of one k chunk (tk 64, 32) and a single
# tile row (K 96).
WGMMA_SHAPES = [
    (1024, 1024, 128, 128, 16, False, True),
    (1000, 1000, 128, 128, 24, False, True),
    (768, 640, 96, 128, 40, False, False),
    (512, 768, 256, 256, 64, False, True),
    (600, 520, 200, 256, 32, True, True),
    (512, 384, 128, 128, 8, False, True),
    (264, 256, 128, 128, 48, False, False),
    # One k chunk per tile row (tk <= 64: every step starts a row), and a single tile row.
    (512, 640, 64, 128, 32, False, True),
    (320, 512, 32, 256, 64, True, False),
    (96, 384, 128, 128, 16, False, True),
]
WGMMA_MS = [(1,), (130,), (3, 100), (1000,)]
PATH_WGMMA = 5  # tsvd::Path::kWgmma


def _on_sm90():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("lead", WGMMA_MS, ids=lambda m: "M" + "x".join(map(str, m)))
@pytest.mark.parametrize("shape", WGMMA_SHAPES, ids=lambda s: "K{}N{}t{}x{}r{}{}{}".format(
    *s[:5], "_su" if s[5] else "", "_bias" if s[6] else ""))
def test_tsvd_wgmma_matches_float64(shape, lead, dtype, rng):
    K, N, tk, tn, r, su, with_bias = shape
    M = int(np.prod(lead))
    path = lib().ortops_test_tsvd_path(DTYPES[dtype][0], M, K, N, -(-K // tk), -(-N // tn), tk, tn, r, int(su), 0, 3)
    if _on_sm90():  # elsewhere the forced path falls back to the fused kernel, still checked below
        assert path == PATH_WGMMA, f"the Hopper kernel was not chosen (path {path})"
    check_case(((), K, N, tk, tn, r, su, False, with_bias), lead, dtype, rng, path=3)


# Forced paths of the Hopper kernels: 3 the fused one, 5 the two-stage GEMMs.
@pytest.mark.parametrize("path", [3, 5])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(600, 520, 256, 256, 32), (1000, 700, 96, 128, 16), (264, 1000, 128, 128, 40)],
                         ids=lambda s: "K{}N{}t{}x{}r{}".format(*s))
def test_tsvd_hopper_ignored_entries_poisoned(shape, dtype, path, rng):
    """The Hopper kernels' partial last tile row loads U through its own tensor map, whose rows end
    at K: Inf in U's rows past K (and NaN in V's columns past N, computed but never stored) must not
    reach the output."""
    K, N, tk, tn, r = shape
    check_case(((), K, N, tk, tn, r, False, False, True), (300,), dtype, rng, path=path, poison_ignored=True)


@pytest.mark.parametrize("path", [3, 5])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_tsvd_hopper_misaligned_a_falls_back(dtype, path, rng):
    """A not 16-byte aligned (no TMA): the launcher takes the fused kernel instead, same answer."""
    check_case(((), 512, 512, 128, 128, 16, False, False, True), (300,), dtype, rng, path=path, misalign_a=True)


def test_tsvd_wgmma_default_policy():
    """By default the Hopper kernel runs where it was measured faster (docs/tsvd_cuda.md, seventh
    session, runs 16 and 24): every shape it fits from M = 128 on, rank 8 included, and from M = 17
    on for weights of 4096 x 4096 elements or more; shared V, fp32 and smaller M keep their paths."""
    if not _on_sm90():
        pytest.skip("the Hopper kernel runs on compute capability 9.0 only")
    def q(dt, M, r, sv=0, tn=128, N=4096):
        return lib().ortops_test_tsvd_path(DTYPES[dt][0], M, 4096, N, 32, N // tn, 128, tn, r, 0, sv, 0)
    # (where the two-stage Hopper GEMMs are preferred instead: test_tsvd_wgmma_gemm_default_policy)
    assert q("float16", 1024, 32) == PATH_WGMMA and q("bfloat16", 8192, 64, tn=256) == PATH_WGMMA
    assert q("float16", 128, 32) == PATH_WGMMA and q("float16", 256, 32, tn=256, N=14336) == PATH_WGMMA
    assert q("float16", 64, 32, N=768) != PATH_WGMMA and q("float16", 127, 16, N=768) != PATH_WGMMA  # small weight
    assert q("float16", 64, 32) == PATH_WGMMA and q("float16", 17, 16, N=14336) == PATH_WGMMA  # large weight
    assert q("float16", 16, 32) != PATH_WGMMA           # the decode kernel's range
    assert q("float16", 128, 16, tn=256) == PATH_WGMMA and q("float16", 256, 16, tn=256, N=14336) == PATH_WGMMA
    assert q("float16", 256, 8) == PATH_WGMMA and q("float16", 511, 8) == PATH_WGMMA  # rank 8, c = 8
    assert q("float16", 128, 8, N=14336) == PATH_WGMMA and q("float16", 2048, 32, N=14336) == PATH_WGMMA
    assert q("float16", 1024, 32, sv=1) != PATH_WGMMA   # shared V
    assert q("float16", 1024, 40) == PATH_WGMMA and q("float16", 1024, 36) != PATH_WGMMA  # r % 8
    assert q("float32", 1024, 32) != PATH_WGMMA


# ---- the two-stage Hopper GEMMs (sm_90a; path 5 forces them, launcher path 7) ----
# (K, N, tk, tn, r, bias): per-tile U and V (a shared factor keeps the fused kernels). The fused
# Hopper kernel's shapes without shared U, plus rows of many tiles whose stage-1 column blocks
# (256 / kR tiles each) end part-way (N 4352: 34 tiles of kR 16; N 2304, tn 256: 9 tiles of kR 32),
# a tile-row count that leaves stage 2's last k chunk half empty (K 600, tk 200, kR 32: 3 x 32 rows).
WGMMA_GEMM_SHAPES = [(K, N, tk, tn, r, b) for K, N, tk, tn, r, su, b in WGMMA_SHAPES if not su] + [
    (2048, 4352, 128, 128, 16, True),
    (320, 2304, 64, 256, 24, False),
    (600, 520, 200, 256, 32, True),
]
PATH_WGMMA_GEMM = 7  # tsvd::Path::kWgmmaGemm


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("lead", WGMMA_MS, ids=lambda m: "M" + "x".join(map(str, m)))
@pytest.mark.parametrize("shape", WGMMA_GEMM_SHAPES, ids=lambda s: "K{}N{}t{}x{}r{}{}".format(
    *s[:5], "_bias" if s[5] else ""))
def test_tsvd_wgmma_gemm_matches_float64(shape, lead, dtype, rng):
    K, N, tk, tn, r, with_bias = shape
    M = int(np.prod(lead))
    path = lib().ortops_test_tsvd_path(DTYPES[dtype][0], M, K, N, -(-K // tk), -(-N // tn), tk, tn, r, 0, 0, 5)
    if _on_sm90():  # elsewhere the forced path falls back to the fused kernel, still checked below
        assert path == PATH_WGMMA_GEMM, f"the two-stage Hopper GEMMs were not chosen (path {path})"
    check_case(((), K, N, tk, tn, r, False, False, with_bias), lead, dtype, rng, path=5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape,M", [((512, 512, 256, 256, 64), 6000), ((1024, 1024, 128, 128, 16), 9000),
                                     ((768, 512, 256, 256, 32), 4097)], ids=lambda x: str(x))
def test_tsvd_wgmma_gemm_long_items(shape, M, dtype, rng):
    """Few panels and many rows: each CTA walks long runs of 64-row units through its ring many
    times over, the two consumer warpgroups taking turns (the ping-pong order of stage 1)."""
    K, N, tk, tn, r = shape
    check_case(((), K, N, tk, tn, r, False, False, True), (M,), dtype, rng, path=5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("cap", [1, 300 * 1024])
def test_tsvd_wgmma_gemm_row_chunks(cap, dtype, rng):
    """A T workspace cap smaller than T: rows go in chunks of 128 (cap 1) or of the most that fit,
    the last chunk partial, each chunk's stage 1 overwriting the T its predecessor's stage 2 read."""
    check_case(((), 1000, 1000, 128, 128, 24, False, False, True), (1000,), dtype, rng, path=5, cap=cap)
    check_case(((), 512, 768, 256, 256, 64, False, False, True), (2, 333), dtype, rng, path=5, cap=cap)


def test_tsvd_wgmma_gemm_default_policy():
    """By default the two-stage Hopper GEMMs run where they were measured faster than the fused
    Hopper kernel (docs/tsvd_cuda.md, eighth session, runs 5 and 6): from M = 512, ranks (padded to
    16 / 32 / 64) of at most an eighth of the tile width, on 128-column tiles or weights of 4096 x
    4096 elements or more, tk <= 256, per-tile U and V, 16-bit types."""
    if not _on_sm90():
        pytest.skip("the Hopper kernels run on compute capability 9.0 only")

    def q(dt, M, r, tn=128, tk=128, K=4096, N=4096, su=0, sv=0):
        return lib().ortops_test_tsvd_path(DTYPES[dt][0], M, K, N, -(-K // tk), -(-N // tn), tk, tn, r, su, sv, 0)
    G = PATH_WGMMA_GEMM
    assert q("float16", 512, 16) == G and q("bfloat16", 8192, 8) == G and q("float16", 1024, 16, N=14336) == G
    assert q("float16", 8192, 32, tn=256, tk=256) == G and q("float16", 2048, 16, tn=256, tk=256, N=14336) == G
    assert q("float16", 1024, 16, K=768, N=3072) == G  # 128-column tiles of a small weight
    assert q("float16", 511, 16) != G                   # below M = 512
    assert q("float16", 8192, 24) != G and q("float16", 8192, 64, tn=256, tk=256) != G  # rank > tile / 8
    assert q("float16", 2048, 32, tn=256, tk=256, K=768, N=3072) != G  # 256-column tiles of a small weight
    assert q("float16", 2048, 16, tk=512) != G          # tk > 256: U of a tile row does not stay resident
    assert q("float16", 2048, 16, su=1) != G and q("float16", 2048, 16, sv=1) != G  # shared factors
    assert q("float32", 2048, 16) != G


# ---- the decode kernel (M <= 16, sm_90: TMA ring, tile-row splits summed across a cluster; path 4) ----
# (K, N, tk, tn, r, shared U, bias): tile sides multiples of 64 up to 256, ranks padded to 16 / 32 / 64
# (the three TMA swizzle spans of U: 32, 64, 128 bytes; r = 8, 24, 40, 48), partial last tile rows
# (K 1000, 600, 264: U rows past K zeroed in shared memory) and columns (N 1000, 520, 448), tn below
# the register tile (64, 192), shared U, a single tile row (K 96), and many tile rows (cluster of 8).
DECODE_SHAPES = [
    (4096, 1024, 128, 128, 16, False, True),
    (1000, 1000, 128, 128, 24, False, True),
    (768, 640, 64, 128, 40, False, False),
    (512, 768, 256, 256, 64, False, True),
    (600, 520, 192, 256, 32, True, True),
    (512, 384, 128, 64, 8, False, True),
    (264, 448, 128, 192, 48, False, False),
    (96, 384, 128, 128, 16, False, True),
]
DECODE_MS = [(1,), (5,), (16,), (2, 7)]
PATH_DECODE = 6  # tsvd::Path::kDecode


def _decode_id(s):
    return "K{}N{}t{}x{}r{}{}{}".format(*s[:5], "_su" if s[5] else "", "_bias" if s[6] else "")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("lead", DECODE_MS, ids=lambda m: "M" + "x".join(map(str, m)))
@pytest.mark.parametrize("shape", DECODE_SHAPES, ids=_decode_id)
def test_tsvd_decode_matches_float64(shape, lead, dtype, rng):
    K, N, tk, tn, r, su, with_bias = shape
    M = int(np.prod(lead))
    path = lib().ortops_test_tsvd_path(DTYPES[dtype][0], M, K, N, -(-K // tk), -(-N // tn), tk, tn, r, int(su), 0, 4)
    if _on_sm90():  # elsewhere the forced path falls back to the fused kernel, still checked below
        assert path == PATH_DECODE, f"the decode kernel was not chosen (path {path})"
    check_case(((), K, N, tk, tn, r, su, False, with_bias), lead, dtype, rng, path=4)


@pytest.mark.parametrize("splits", [1, 2, 3, 5, 8])
def test_tsvd_decode_cluster_sizes(splits, rng):
    """Every cluster size, including ones that split the tile rows and the columns unevenly."""
    check_case(((), 2000, 1000, 128, 128, 16, False, False, True), (9,), "float16", rng, splits=splits)
    check_case(((), 1100, 700, 64, 256, 32, False, False, True), (16,), "bfloat16", rng, splits=splits)


@pytest.mark.parametrize("stages", [2, 3, 4, 5, 8])
def test_tsvd_decode_ring_depths(stages, rng):
    """Rings of every depth wrapping many times (one CTA takes all tile rows), including depths that
    are not a multiple of the 4 consumer warps (the launcher rounds them so a slot has one consumer)
    and the 72 KB slots of tile 256 / r 64."""
    check_case(((), 4096, 512, 128, 128, 16, False, False, True), (5,), "float16", rng, splits=1, stages=stages)
    check_case(((), 2048, 512, 256, 256, 64, False, False, True), (16,), "bfloat16", rng, splits=1, stages=stages)


@pytest.mark.parametrize("path", [None, 4, 1, 2, 3, 5])
@pytest.mark.parametrize("M", [1, 16, 300])
def test_tsvd_ignored_factor_entries_do_not_leak(path, M, rng):
    """Inf in U's rows past K and NaN in V's columns past N (entries the contract ignores) leave
    the output finite and right, on every path."""
    check_case(((), 1000, 1000, 128, 128, 24, False, False, True), (M,), "float16", rng, path=path,
               poison_ignored=True)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_tsvd_decode_misaligned_a_falls_back(dtype, rng):
    """A not 16-byte aligned (no TMA): the launcher takes the fused kernel instead, same answer."""
    check_case(((), 512, 512, 128, 128, 16, False, False, True), (3,), dtype, rng, path=4, misalign_a=True)


def test_tsvd_decode_default_policy():
    """By default the decode kernel runs for M <= 16 wherever it fits: 16-bit types, V per tile,
    tile sides multiples of 64 up to 256, r <= 64 a multiple of 8, K % 8 == 0."""
    if not _on_sm90():
        pytest.skip("measured and enabled on compute capability 9.0")
    def q(dt, M, r, tk=128, tn=128, K=4096, N=4096, sv=0):
        return lib().ortops_test_tsvd_path(DTYPES[dt][0], M, K, N, -(-K // tk), -(-N // tn), tk, tn, r, 0, sv, 0)
    assert q("float16", 1, 16) == PATH_DECODE and q("bfloat16", 16, 64, tk=256, tn=256) == PATH_DECODE
    assert q("float16", 8, 32, N=14336) == PATH_DECODE and q("float16", 1, 8, tn=64, K=1000) == PATH_DECODE
    assert q("float16", 17, 16) != PATH_DECODE              # above one m16 block
    assert q("float16", 1, 16, sv=1) != PATH_DECODE         # shared V
    assert q("float16", 1, 16, tk=96) != PATH_DECODE and q("float16", 1, 16, tn=320) != PATH_DECODE
    assert q("float16", 1, 72) != PATH_DECODE and q("float16", 1, 12) != PATH_DECODE
    assert q("float16", 1, 16, K=4092) != PATH_DECODE       # K % 8
    assert q("float32", 1, 16) != PATH_DECODE


# ---- split sums added up inside the main kernel (last CTA per output block, per-stream counters) ----
# Small M with many tile rows: the fused kernel splits the tile rows across CTAs. (K, N, tk, tn, r,
# bias, leading dims): partial tiles, odd rank, the 64-row configuration (M = 40) and tile 256.
SPLIT_CASES = [(4096, 384, 128, 128, 16, True, (1,)), (3000, 200, 96, 80, 7, False, (5,)),
               (4096, 512, 256, 256, 32, True, (16,)), (2048, 300, 64, 64, 8, True, (40,)),
               (4100, 130, 128, 64, 12, False, (2, 3))]


def _split_inputs(case, dtype, seed):
    K, N, tk, tn, r, with_bias, lead = case
    _, tdt = DTYPES[dtype]
    Tk, Tn = -(-K // tk), -(-N // tn)
    g = torch.Generator(device="cuda").manual_seed(seed)
    randn = lambda *s, scale=1.0: (torch.randn(*s, generator=g, device="cuda", dtype=torch.float64) * scale).to(tdt)  # noqa: E731
    A = randn(*lead, K)
    U = randn(Tk, Tn, tk, r, scale=tk ** -0.5)
    V = randn(Tk, Tn, r, tn, scale=r ** -0.5)
    bias = randn(N) if with_bias else None
    return A, U, V, bias, (K, N, Tk, Tn, tk, tn, r)


def _run_split(A, U, V, bias, dims, dtype, split_sum, stream):
    """One launch on `stream` (no wait). split_sum: -1 the library's default (the finalize kernel
    while kInKernelSplitSumWhenEager is off), 0 finalize kernel, 1 in-kernel whenever the stream has
    counters. Returns Y."""
    K, N, Tk, Tn, tk, tn, r = dims
    code, tdt = DTYPES[dtype]
    M = A.numel() // K
    Y = torch.full((*A.shape[:-1], N), float("nan"), device="cuda", dtype=tdt)
    ws_bytes = lib().ortops_test_tsvd_workspace_bytes(code, M, K, N, Tk, Tn, tk, tn, r, 0, 0)
    assert ws_bytes > 0, "case does not split the tile rows (no partial sums): pick more tile rows"
    ws = torch.empty(ws_bytes, device="cuda", dtype=torch.uint8)
    ptr = lambda t: ctypes.c_void_p(t.data_ptr()) if t is not None else None  # noqa: E731
    rc = lib().ortops_test_tsvd_ex(code, ptr(A), ptr(U), ptr(V), ptr(bias), ptr(Y), M, K, N, Tk, Tn, tk, tn, r,
                                   0, 0, ptr(ws), ctypes.c_void_p(stream.cuda_stream), 0, -1, -1, -1, -1, 3, -1,
                                   split_sum)
    assert rc == 0, f"launcher returned CUDA error {rc}"
    Y._keep_ws = ws  # the workspace must outlive the (asynchronous) launch
    return Y


def _counters_nonzero(stream):
    return lib().ortops_test_stream_counters_nonzero(ctypes.c_void_p(stream.cuda_stream))


def _assert_same_sum(y, y_ref, what):
    """The in-kernel and finalize sums add the same fp32 partials in different orders: equal up to
    fp32 rounding, i.e. at most an ulp or two of the 16-bit output."""
    assert torch.isfinite(y).all(), f"{what}: outputs left unwritten (NaN poison)"
    a, b = y.float(), y_ref.float()
    tol = 2 * torch.finfo(y.dtype).eps * b.abs() + 1e-5 * b.abs().max()
    bad = int(((a - b).abs() > tol).sum())
    assert bad == 0, f"{what}: {bad} outputs differ by more than fp32 rounding"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", SPLIT_CASES, ids=lambda c: f"K{c[0]}N{c[1]}t{c[2]}x{c[3]}r{c[4]}M{c[6]}")
def test_split_sum_in_kernel(case, dtype, rng):
    """In-kernel sums: right against float64, deterministic, equal to the finalize kernel's up to
    fp32 rounding; the stream's counters are back at zero afterwards."""
    A, U, V, bias, dims = _split_inputs(case, dtype, int(rng.integers(2**62)))
    stream = torch.cuda.current_stream()
    _run_split(A, U, V, bias, dims, dtype, 1, stream)  # first call on the stream makes its counters
    torch.cuda.synchronize()
    assert _counters_nonzero(stream) == 0, "the stream has no zeroed counter array after a launch"
    y_in = _run_split(A, U, V, bias, dims, dtype, 1, stream)
    y_again = _run_split(A, U, V, bias, dims, dtype, 1, stream)
    y_default = _run_split(A, U, V, bias, dims, dtype, -1, stream)  # the eager default, either path
    y_fin = _run_split(A, U, V, bias, dims, dtype, 0, stream)
    torch.cuda.synchronize()
    _assert_same_sum(y_in, y_fin, "in-kernel vs finalize")
    assert torch.equal(y_in, y_again), "in-kernel split sum is not deterministic"
    assert torch.equal(y_default, y_in) or torch.equal(y_default, y_fin), "the default is neither path"
    assert _counters_nonzero(stream) == 0, "a launch left counters non-zero"
    K, N, Tk, Tn, tk, tn, r = dims
    to64 = lambda t: t.double().cpu().numpy()  # noqa: E731
    ref = ref_tsvd(to64(A), to64(U), to64(V), None if bias is None else to64(bias), out_features=N)
    err = np.linalg.norm(to64(y_in) - ref) / np.linalg.norm(ref)
    assert err < FLOOR[dtype][0] * 10, f"relative error {err:.2e}"


def test_split_sum_counters_survive_back_to_back_launches(rng):
    """40 in-kernel launches of different grids on one stream, no waits between them, then on two
    streams interleaved: each launch must find its counters zeroed by the one before (else a block
    elects no last CTA and its outputs stay NaN, or one elects two)."""
    dtype = "float16"
    sets = [_split_inputs(c, dtype, int(rng.integers(2**62))) for c in SPLIT_CASES]
    s1, s2 = torch.cuda.Stream(), torch.cuda.Stream()
    for s in (s1, s2):
        s.wait_stream(torch.cuda.current_stream())
    expected = []
    for A, U, V, bias, dims in sets:  # one at a time, waited for
        expected.append(_run_split(A, U, V, bias, dims, dtype, 1, s1))
        torch.cuda.synchronize()
    outs = []
    for k in range(40):
        idx = k % len(sets)
        stream = s1 if k < 20 or k % 2 else s2
        A, U, V, bias, dims = sets[idx]
        outs.append((idx, _run_split(A, U, V, bias, dims, dtype, 1, stream)))
    torch.cuda.synchronize()
    for k, (idx, y) in enumerate(outs):
        assert torch.equal(y, expected[idx]), f"launch {k} (case {idx}) differs from the same launch run alone"
    assert _counters_nonzero(s1) == 0 and _counters_nonzero(s2) == 0, "counters left non-zero"


@pytest.mark.parametrize("warm,split_sum", [(True, -1), (True, 1), (False, 1)],
                         ids=["default-finalize", "in-kernel", "first-use-in-capture"])
def test_split_sum_under_graph_capture(warm, split_sum, rng):
    """Captured launches replay correctly with new inputs: the default (finalize kernel inside a
    capture), in-kernel sums on a stream that has counters, and a stream whose first use is the
    capture (no allocation inside it: the finalize kernel)."""
    dtype = "float16"
    A, U, V, bias, dims = _split_inputs(SPLIT_CASES[0], dtype, int(rng.integers(2**62)))
    s = torch.cuda.ExternalStream(lib().ortops_test_new_stream())  # never used before
    s.wait_stream(torch.cuda.current_stream())
    if warm:
        with torch.cuda.stream(s):
            _run_split(A, U, V, bias, dims, dtype, 1, s)
        torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    A_in = A.clone()
    with torch.cuda.graph(g, stream=s):
        Y = _run_split(A_in, U, V, bias, dims, dtype, split_sum, s)
    for _ in range(3):
        A_new, *_ = _split_inputs(SPLIT_CASES[0], dtype, int(rng.integers(2**62)))
        A_in.copy_(A_new)
        Y.fill_(float("nan"))
        g.replay()
        expect = _run_split(A_new, U, V, bias, dims, dtype, 0, torch.cuda.current_stream())
        torch.cuda.synchronize()
        _assert_same_sum(Y, expect, "replayed graph")
    if warm:
        assert _counters_nonzero(s) == 0, "replays left counters non-zero"
