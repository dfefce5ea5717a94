"""Runs one kernel case a few times through the test shims, for Nsight Compute (ncu) to profile.

  python3 benchmarks/profile_kernels.py tsvd K N M c tile [path]     # path: 0 auto, 1 fused, 2 two-stage, 3 Hopper, 4 decode, 5 two-stage Hopper GEMMs
  python3 benchmarks/profile_kernels.py attention B S G [placement]  # placement: first | scattered

fp16, the benchmark shapes (attention: 12 heads x 64, w = 256). Used by benchmarks/device_ncu.sh."""
from __future__ import annotations

import ctypes
import pathlib
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "gpu"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def tsvd(K, N, M, c, tile, path=0, reps=3):
    from gpu_tsvd import SHIM, load_shim
    lib = load_shim(SHIM)
    Tk, Tn = -(-K // tile), -(-N // tile)
    r = max(1, round(tile / (2 * c)))
    A = torch.randn(M, K, device="cuda", dtype=torch.float16)
    U = torch.randn(Tk, Tn, tile, r, device="cuda", dtype=torch.float16) * tile ** -0.5
    V = torch.randn(Tk, Tn, r, tile, device="cuda", dtype=torch.float16) * r ** -0.5
    Y = torch.empty(M, N, device="cuda", dtype=torch.float16)
    args = (M, K, N, Tk, Tn, tile, tile, r, 0, 0)
    wsb = lib.ortops_test_tsvd_workspace_bytes_ex(1, *args, path, -1, -1, -1)
    ws = torch.empty(max(wsb, 16), device="cuda", dtype=torch.uint8)
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    for _ in range(reps):
        rc = lib.ortops_test_tsvd_ex(1, A.data_ptr(), U.data_ptr(), V.data_ptr(), None, Y.data_ptr(), *args,
                                     ws.data_ptr(), stream, path, -1, -1, -1, -1, 3, -1, -1)
        assert rc == 0, f"CUDA error {rc}"
    torch.cuda.synchronize()


def attention(B, S, G, placement="first", reps=3):
    from attention_gpu_util import make_inputs, make_mask, run_op, workspace_bytes
    H, D, w = 12, 64, 256
    gen = torch.Generator().manual_seed(0)
    q, k, v, gq, gk, gv = make_inputs(B, S, H, D, torch.float16, True, gen)
    mask = torch.stack([make_mask(S, G, placement, S, gen) for _ in range(B)]).cuda()
    ws = torch.empty(workspace_bytes(B, S, H, D, w, torch.float16), device="cuda", dtype=torch.uint8)
    out = torch.empty_like(q)
    for _ in range(reps):
        rc, _ = run_op(q, k, v, gq, gk, gv, mask, H, w, out=out, workspace=ws)
        assert rc == 0, f"CUDA error {rc}"
    torch.cuda.synchronize()


if __name__ == "__main__":
    kind, rest = sys.argv[1], sys.argv[2:]
    if kind == "tsvd":
        tsvd(*map(int, rest))
    else:
        attention(*map(int, rest[:3]), *rest[3:])
