"""TSVDMatMul CPU kernel, through ONNX Runtime and through the pybind11 module, against the
float64 reference of tests/reference.py."""
import numpy as np
import pytest

import reference as ref
from checks import assert_close
from onnx_graphs import run_single_node, tsvd_inputs

from ort_ops import _cpu_kernels


def random_factors(rng, K, N, tk, tn, r, shared_u=False, shared_v=False):
    Tk, Tn = -(-K // tk), -(-N // tn)
    U = rng.standard_normal((1, 1, tk, r) if shared_u else (Tk, Tn, tk, r)).astype(np.float32)
    V = rng.standard_normal((1, 1, r, tn) if shared_v else (Tk, Tn, r, tn)).astype(np.float32)
    return (U / np.sqrt(tk)).astype(np.float32), (V / np.sqrt(r)).astype(np.float32)


def tile_svd(W, tk, tn, r):
    """Per-tile truncated SVD of W [K, N] (zero-padded to the grid), factors as the op takes them."""
    K, N = W.shape
    Tk, Tn = -(-K // tk), -(-N // tn)
    Wp = np.zeros((Tk * tk, Tn * tn))
    Wp[:K, :N] = W
    U = np.zeros((Tk, Tn, tk, r), np.float32)
    V = np.zeros((Tk, Tn, r, tn), np.float32)
    for i in range(Tk):
        for j in range(Tn):
            u, s, vt = np.linalg.svd(Wp[i * tk:(i + 1) * tk, j * tn:(j + 1) * tn], full_matrices=False)
            k = min(r, s.size)
            U[i, j, :, :k] = u[:, :k] * np.sqrt(s[:k])
            V[i, j, :k, :] = np.sqrt(s[:k])[:, None] * vt[:k]
    return U, V


CASES = [
    # lead dims, K, N, tk, tn, r, shared_u, shared_v, bias
    ((7,), 100, 70, 32, 16, 4, False, False, True),      # partial tiles in K and N
    ((2, 5), 128, 96, 64, 32, 1, False, False, False),   # rank 1, two leading dims
    ((2, 3, 4), 65, 33, 16, 8, 3, False, False, True),   # three leading dims, tiny partial tiles
    ((1,), 300, 200, 64, 128, 8, False, False, False),   # M = 1 (decode)
    ((37,), 300, 200, 64, 128, 8, True, False, True),    # shared U
    ((37,), 300, 200, 64, 128, 8, False, True, True),    # shared V (TSVD-common)
    ((130,), 256, 384, 128, 128, 16, False, False, True),  # several row blocks
    ((3,), 129, 65, 64, 32, 5, True, True, False),       # both shared (needs out_features)
]


@pytest.mark.parametrize("lead,K,N,tk,tn,r,su,sv,with_bias", CASES)
def test_tsvd_matches_reference(rng, lead, K, N, tk, tn, r, su, sv, with_bias):
    U, V = random_factors(rng, K, N, tk, tn, r, su, sv)
    A = rng.standard_normal(lead + (K,)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32) if with_bias else None
    expected = ref.tsvd_matmul(A, U, V, bias, out_features=N)
    y_ort = run_single_node("TSVDMatMul", tsvd_inputs(A, U, V, bias), {"out_features": N})
    assert_close(y_ort, expected, atol=1e-4, rtol=1e-4, what="ORT")
    y_np = _cpu_kernels.tsvd_matmul(A, U, V, bias, out_features=N)
    assert_close(y_np, expected, atol=1e-4, rtol=1e-4, what="pybind11")


def test_out_features_defaults_to_grid_width(rng):
    U, V = random_factors(rng, 64, 96, 32, 32, 4)
    A = rng.standard_normal((5, 64)).astype(np.float32)
    y = run_single_node("TSVDMatMul", tsvd_inputs(A, U, V), {})
    assert y.shape == (5, 96)
    assert_close(y, ref.tsvd_matmul(A, U, V), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("r", [1, 2, 7, 16])
def test_ranks_from_one_to_full(rng, r):
    """Truncating the per-tile SVD of a real weight: error shrinks with rank, and at full rank
    (r = min(tk, tn) = 16) the op equals the dense product."""
    K, N, tk, tn = 80, 48, 16, 16
    W = rng.standard_normal((K, N))
    A = rng.standard_normal((9, K)).astype(np.float32)
    U, V = tile_svd(W, tk, tn, r)
    y = run_single_node("TSVDMatMul", tsvd_inputs(A, U, V), {"out_features": N})
    assert_close(y, ref.tsvd_matmul(A, U, V, out_features=N), atol=1e-4, rtol=1e-4, what=f"r={r}")
    dense = A.astype(np.float64) @ W
    rel = np.linalg.norm(y - dense) / np.linalg.norm(dense)
    if r == 16:
        assert rel < 1e-5, f"full rank must equal the dense product; rel err {rel:.2e}"
    else:
        assert rel > 1e-3, "a truncated rank cannot be exact on a random weight"


def test_full_rank_partial_tiles_equal_dense(rng):
    K, N, tk, tn = 70, 50, 32, 16
    W = rng.standard_normal((K, N))
    bias = rng.standard_normal(N).astype(np.float32)
    A = rng.standard_normal((2, 3, K)).astype(np.float32)
    U, V = tile_svd(W, tk, tn, 16)
    y = run_single_node("TSVDMatMul", tsvd_inputs(A, U, V, bias), {"out_features": N})
    assert_close(y, A.astype(np.float64) @ W + bias, atol=1e-4, rtol=1e-4)


def test_large_problem_uses_many_threads_consistently(rng):
    """Same answer with 1 thread and with the pool (work split over row blocks x tile columns)."""
    U, V = random_factors(rng, 512, 640, 128, 128, 24)
    A = rng.standard_normal((300, 512)).astype(np.float32)
    one = _cpu_kernels.tsvd_matmul(A, U, V, None, threads=1)
    many = _cpu_kernels.tsvd_matmul(A, U, V, None, threads=4)
    np.testing.assert_array_equal(one, many)


def test_portable_gemm_path_gives_the_same_answers(tmp_path):
    """The kernels' portable GEMM (machines without AVX2/FMA) checked on this machine through
    ORTOPS_CPU_PORTABLE=1 in a subprocess: both ops against the float64 references."""
    import subprocess
    import sys
    script = tmp_path / "portable.py"
    script.write_text(
        "import sys; sys.path.insert(0, %r)\n" % str(__import__("pathlib").Path(__file__).parent) +
        "import numpy as np, reference as ref\n"
        "from ort_ops import _cpu_kernels as ck\n"
        "rng = np.random.default_rng(7)\n"
        "U = rng.standard_normal((3, 4, 32, 5)).astype(np.float32); V = rng.standard_normal((3, 4, 5, 16)).astype(np.float32)\n"
        "A = rng.standard_normal((13, 90)).astype(np.float32); b = rng.standard_normal(60).astype(np.float32)\n"
        "y = ck.tsvd_matmul(A, U, V, b, out_features=60)\n"
        "assert np.abs(y - ref.tsvd_matmul(A, U, V, b, 60)).max() < 1e-3\n"
        "q, k, v = (rng.standard_normal((2, 70, 16)).astype(np.float32) for _ in range(3))\n"
        "m = np.ones((2, 70), np.int64); m[0, [3, 50]] = 2; m[1, -9:] = 0\n"
        "o = ck.multigrain_attention(q, k, v, m, num_heads=2, window=5)\n"
        "assert np.abs(o - ref.multigrain_attention(q, k, v, m, 2, 5)).max() < 1e-4\n"
        "print('ok')\n")
    env = dict(__import__("os").environ, ORTOPS_CPU_PORTABLE="1")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("trial", range(8))
def test_random_shapes(rng, trial):
    """Fresh random geometry each run: K, N, tile sizes, rank, sharing, bias, leading dims."""
    tk, tn = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    K, N = int(rng.integers(1, 3 * tk + 1)), int(rng.integers(1, 3 * tn + 1))
    r = int(rng.integers(1, min(tk, tn) + 1))
    su, sv = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
    lead = tuple(int(x) for x in rng.integers(1, 5, size=int(rng.integers(0, 3))))
    U, V = random_factors(rng, K, N, tk, tn, r, su, sv)
    A = rng.standard_normal(lead + (K,)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32) if rng.integers(0, 2) else None
    y = run_single_node("TSVDMatMul", tsvd_inputs(A, U, V, bias), {"out_features": N})
    assert_close(y, ref.tsvd_matmul(A, U, V, bias, out_features=N), atol=1e-4, rtol=1e-4,
                 what=f"K={K} N={N} tile={tk}x{tn} r={r} shared_u={su} shared_v={sv} lead={lead}")
