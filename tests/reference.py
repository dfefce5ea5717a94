"""Float64 NumPy references of the two ops, written from docs/ops.md independently of the kernels
(dense and simple on purpose: they are the ground truth, not fast)."""
from __future__ import annotations

import numpy as np


def tsvd_dense_weight(U, V, K, N):
    """W̃[:K, :N] from the factors: tile (i, j) = U[i, j] @ V[i, j]; [1, 1, ., .] is shared."""
    U = np.asarray(U, np.float64)
    V = np.asarray(V, np.float64)
    tk, r = U.shape[2:]
    tn = V.shape[3]
    grid_u, grid_v = U.shape[:2], V.shape[:2]
    Tk = grid_u[0] if grid_u != (1, 1) else (grid_v[0] if grid_v != (1, 1) else -(-K // tk))
    Tn = grid_u[1] if grid_u != (1, 1) else (grid_v[1] if grid_v != (1, 1) else -(-N // tn))
    W = np.zeros((Tk * tk, Tn * tn))
    for i in range(Tk):
        for j in range(Tn):
            u = U[0, 0] if grid_u == (1, 1) else U[i, j]
            v = V[0, 0] if grid_v == (1, 1) else V[i, j]
            W[i * tk:(i + 1) * tk, j * tn:(j + 1) * tn] = u @ v
    return W[:K, :N]


def tsvd_matmul(A, U, V, bias=None, out_features=None):
    A = np.asarray(A, np.float64)
    K = A.shape[-1]
    tn = V.shape[3]
    if out_features is None:
        grid = U.shape[:2] if U.shape[:2] != (1, 1) else V.shape[:2]
        out_features = grid[1] * tn
    W = tsvd_dense_weight(U, V, K, out_features)
    Y = A @ W
    if bias is not None:
        Y = Y + np.asarray(bias, np.float64)
    return Y


def multigrain_attention(q, k, v, mask, num_heads, window, gq=None, gk=None, gv=None, scale=None):
    """Longformer self-attention by the definition: per query, the set of keys it sees."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    gq = q if gq is None else np.asarray(gq, np.float64)
    gk = k if gk is None else np.asarray(gk, np.float64)
    gv = v if gv is None else np.asarray(gv, np.float64)
    B, S, E = q.shape
    D = E // num_heads
    scale = 1.0 / np.sqrt(D) if scale is None else scale
    out = np.zeros((B, S, E))
    split = lambda x, b: x[b].reshape(S, num_heads, D).transpose(1, 0, 2)  # noqa: E731  [H, S, D]
    for b in range(B):
        m = np.asarray(mask[b])
        is_global = m == 2
        is_pad = m == 0
        qh, kh, vh = split(q, b), split(k, b), split(v, b)
        gqh, gkh, gvh = split(gq, b), split(gk, b), split(gv, b)
        idx = np.arange(S)
        for i in range(S):
            if is_pad[i]:
                continue
            if is_global[i]:
                keys = ~is_pad
                s = scale * np.einsum("hd,hsd->hs", gqh[:, i], gkh[:, keys])
                p = np.exp(s - s.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                o = np.einsum("hs,hsd->hd", p, gvh[:, keys])
            else:
                keys = ((np.abs(idx - i) <= window) & (m == 1)) | is_global
                s = scale * np.einsum("hd,hsd->hs", qh[:, i], kh[:, keys])
                p = np.exp(s - s.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                o = np.einsum("hs,hsd->hd", p, vh[:, keys])
            out[b, i] = o.reshape(E)
    return out
