"""Backward of `ortops::tsvd_matmul`, so TSVDLinear trains (TSVD-common and all-factors fine-tuning).

A torch.library custom op has no autograd until one is registered; the forward stays the opaque op
(one TSVDMatMul node at export), and this backward is its closed form. With W̃ the K × N weight
assembled from the tiles U[i, j] · V[i, j] (`torch_ops.dense_weight`):

    dA = dY · W̃ᵀ        dW̃ = Aᵀ · dY (rows of all leading dims)      dbias = Σ dY
    dW̃ cut into zero-padded tiles G[i, j] [tk, tn]:  dU[i, j] = G[i, j] · V[i, j]ᵀ,  dV[i, j] = U[i, j]ᵀ · G[i, j]

A shared factor ([1, 1, ·, ·]) takes the sum over all tiles. Padding rows/columns of a partial
tile get zero gradient, as the op ignores them.
"""

from __future__ import annotations

import torch

from . import torch_ops


def _setup_context(ctx, inputs, output):
    a, u, v, bias, out_features = inputs
    ctx.save_for_backward(a, u, v)
    ctx.out_features = out_features
    ctx.bias_dtype = None if bias is None else bias.dtype


def _backward(ctx, grad_y):
    a, u, v = ctx.saved_tensors
    k, n = a.shape[-1], ctx.out_features
    grad_a = grad_u = grad_v = grad_bias = None
    rows = grad_y.reshape(-1, n)  # (M, N)
    if ctx.needs_input_grad[0]:
        weight = torch_ops.dense_weight(u, v, k, n).to(grad_y.dtype)  # (K, N)
        grad_a = torch.matmul(grad_y, weight.t())
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        grid_k, grid_n = torch_ops.tile_grid(u, v, k, n)
        tk, tn = u.shape[-2], v.shape[-1]
        grad_w = rows.new_zeros(grid_k * tk, grid_n * tn)
        grad_w[:k, :n] = torch.matmul(a.reshape(-1, k).t().to(rows.dtype), rows)
        grad_tiles = grad_w.view(grid_k, tk, grid_n, tn).permute(0, 2, 1, 3)  # (Tk, Tn, tk, tn)
        if ctx.needs_input_grad[1]:
            grad_u = torch.matmul(grad_tiles, v.to(rows.dtype).transpose(-1, -2)).sum_to_size(u.shape).to(u.dtype)
        if ctx.needs_input_grad[2]:
            grad_v = torch.matmul(u.to(rows.dtype).transpose(-1, -2), grad_tiles).sum_to_size(v.shape).to(v.dtype)
    if ctx.bias_dtype is not None and ctx.needs_input_grad[3]:
        grad_bias = rows.sum(0).to(ctx.bias_dtype)
    return grad_a, grad_u, grad_v, grad_bias, None


torch_ops.tsvd_matmul.register_autograd(_backward, setup_context=_setup_context)
