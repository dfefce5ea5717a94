"""Tiled truncated SVD: factors, the module that runs them, and the per-layer report.

Reusable on its own (TSVD-common fine-tuning builds on it). Conventions, as in the ops spec:
a layer computes Y = A · W̃ (+ bias) with W̃ of shape K × N (K = in_features, N = out_features),
so W̃ = Wᵀ for nn.Linear and W̃ = W for HF's Conv1D. W̃ is cut into Tk × Tn tiles of tk × tn
(partial last tiles zero-padded) and each tile is stored as U[i, j] · V[i, j] with
U [Tk, Tn, tk, r] and V [Tk, Tn, r, tn]. A shared factor is stored as [1, 1, ·, ·].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from . import torch_ops  # noqa: F401  (registers torch.ops.ortops.tsvd_matmul)
from . import tsvd_autograd  # noqa: F401  (its backward: TSVDLinear trains)


class TSVDConfigError(ValueError):
    """A tile or rank that cannot apply to a matrix (the CLI reports it as a usage error)."""


def tile_grid(in_features: int, out_features: int, tile_k: int, tile_n: int) -> tuple[int, int]:
    """(Tk, Tn): tiles along K and N, the last ones possibly partial."""
    return math.ceil(in_features / tile_k), math.ceil(out_features / tile_n)


def compression_ratio(in_features: int, out_features: int, tile_k: int, tile_n: int, rank: int) -> float:
    """c = K·N / (Tk·Tn·r·(tk + tn)) for per-tile factors."""
    grid_k, grid_n = tile_grid(in_features, out_features, tile_k, tile_n)
    return in_features * out_features / (grid_k * grid_n * rank * (tile_k + tile_n))


def rank_for_ratio(in_features: int, out_features: int, tile_k: int, tile_n: int, ratio: float) -> int:
    """The largest rank whose compression is at least `ratio` (at least 1, at most min(tk, tn))."""
    if ratio < 1:
        raise TSVDConfigError(f"compression ratio must be >= 1, got {ratio}")
    grid_k, grid_n = tile_grid(in_features, out_features, tile_k, tile_n)
    rank = math.floor(in_features * out_features / (ratio * grid_k * grid_n * (tile_k + tile_n)))
    return max(1, min(rank, tile_k, tile_n))


def check_tile(in_features: int, out_features: int, tile_k: int, tile_n: int) -> None:
    if tile_k > in_features or tile_n > out_features:
        raise TSVDConfigError(
            f"tile {tile_k}x{tile_n} is larger than the {in_features}x{out_features} matrix (K x N)")


def _tiles(weight_kn: Tensor, tile_k: int, tile_n: int) -> Tensor:
    """W̃ [K, N] -> zero-padded tiles [Tk, Tn, tk, tn]."""
    k, n = weight_kn.shape
    grid_k, grid_n = tile_grid(k, n, tile_k, tile_n)
    padded = weight_kn.new_zeros(grid_k * tile_k, grid_n * tile_n)
    padded[:k, :n] = weight_kn
    return padded.view(grid_k, tile_k, grid_n, tile_n).permute(0, 2, 1, 3)


def tiled_svd(weight_kn: Tensor, tile_k: int, tile_n: int, rank: int) -> tuple[Tensor, Tensor]:
    """Per-tile truncated SVD of W̃ [K, N], batched over all tiles in one torch.linalg.svd.

    Returns U [Tk, Tn, tk, r], V [Tk, Tn, r, tn] in float32 with Σ split as √Σ on both sides
    (balanced factors keep fp16/bf16 ranges alike). Optimal rank-r per tile (Eckart–Young).
    """
    check_tile(*weight_kn.shape, tile_k, tile_n)
    if not 1 <= rank <= min(tile_k, tile_n):
        raise TSVDConfigError(f"rank {rank} outside 1..{min(tile_k, tile_n)} for tile {tile_k}x{tile_n}")
    # float64: tiles are small, and the SVD's own error then never shows in the report
    tiles = _tiles(weight_kn.detach().to(torch.float64), tile_k, tile_n)
    left, sigma, right_t = torch.linalg.svd(tiles, full_matrices=False)
    root = sigma[..., :rank].sqrt()
    u = left[..., :rank] * root[..., None, :]
    v = root[..., :, None] * right_t[..., :rank, :]
    return u.float().contiguous(), v.float().contiguous()


def relative_error(weight_kn: Tensor, u: Tensor, v: Tensor) -> float:
    """‖W̃ − UV‖_F / ‖W̃‖_F over the real (unpadded) K × N region."""
    k, n = weight_kn.shape
    approx = torch_ops.dense_weight(u.detach().double(), v.detach().double(), k, n)
    exact = weight_kn.detach().double()
    return float(torch.linalg.norm(exact - approx) / torch.linalg.norm(exact).clamp_min(1e-30))


class TSVDLinear(nn.Module):
    """y = x · W̃ (+ bias) with W̃ in tiled factors; forward is the `ortops::tsvd_matmul` op,
    so export yields one `com.ortops::TSVDMatMul` node.

    x [..., K] -> y [..., N]; U [Tk, Tn, tk, r] or [1, 1, tk, r]; V [Tk, Tn, r, tn] or
    [1, 1, r, tn]; bias [N] or None.
    """

    def __init__(self, u: Tensor, v: Tensor, bias: Tensor | None, out_features: int):
        super().__init__()
        self.u = nn.Parameter(u)
        self.v = nn.Parameter(v)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.out_features = out_features

    @classmethod
    def from_weight(cls, weight_kn: Tensor, bias: Tensor | None, tile_k: int, tile_n: int, rank: int):
        u, v = tiled_svd(weight_kn, tile_k, tile_n, rank)
        bias = None if bias is None else bias.detach().float().clone()
        return cls(u, v, bias, weight_kn.shape[1])

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.ortops.tsvd_matmul(x, self.u, self.v, self.bias, self.out_features)

    def extra_repr(self) -> str:
        return f"u={tuple(self.u.shape)}, v={tuple(self.v.shape)}, out_features={self.out_features}"


def weight_kn_of(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """(W̃ [K, N], bias) of an nn.Linear or an HF Conv1D (whose weight is already [in, out])."""
    if isinstance(module, nn.Linear):
        return module.weight.t(), module.bias
    if type(module).__name__ == "Conv1D":
        return module.weight, module.bias
    raise TypeError(f"cannot take a K x N weight from {type(module).__name__}")


@dataclass
class LayerReport:
    name: str
    in_features: int  # K
    out_features: int  # N
    tile: tuple[int, int]  # (tk, tn)
    grid: tuple[int, int]  # (Tk, Tn)
    rank: int
    relative_error: float
    params_before: int
    params_after: int

    @property
    def ratio(self) -> float:
        return self.params_before / self.params_after

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": round(self.ratio, 4)}

    def line(self) -> str:
        return (f"{self.name}: {self.in_features}x{self.out_features} tile {self.tile[0]}x{self.tile[1]}"
                f" rank {self.rank} rel.err {self.relative_error:.3e}"
                f" params {self.params_before} -> {self.params_after} ({self.ratio:.2f}x)")


def compress_layer(name: str, module: nn.Module, tile: tuple[int, int], *,
                   ratio: float | None = None, rank: int | None = None) -> tuple[TSVDLinear, LayerReport]:
    """One Linear/Conv1D -> TSVDLinear plus its report; give either `ratio` or `rank`."""
    weight_kn, bias = weight_kn_of(module)
    k, n = weight_kn.shape
    tile_k, tile_n = tile
    check_tile(k, n, tile_k, tile_n)
    if rank is None:
        rank = rank_for_ratio(k, n, tile_k, tile_n, ratio)
    layer = TSVDLinear.from_weight(weight_kn, bias, tile_k, tile_n, rank)
    layer.to(weight_kn.device)
    report = LayerReport(
        name=name, in_features=k, out_features=n, tile=(tile_k, tile_n),
        grid=tile_grid(k, n, tile_k, tile_n), rank=rank,
        relative_error=relative_error(weight_kn, layer.u, layer.v),
        params_before=k * n, params_after=layer.u.numel() + layer.v.numel(),
    )
    return layer, report


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
