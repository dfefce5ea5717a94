"""TSVD-common: tiled factors with one factor shared by all tiles of a layer.

Builds on `tsvd.py` (tiles, per-tile SVD, TSVDLinear, reports); the same TSVDLinear holds every
layout, because the op takes a shared factor as a [1, 1, ·, ·] tensor (ops spec):

| layout     | U                 | V                 | parameters (T = Tk·Tn tiles) |
|------------|-------------------|-------------------|------------------------------|
| `per-tile` | [Tk, Tn, tk, r]   | [Tk, Tn, r, tn]   | T·r·(tk + tn)                |
| `shared-v` | [Tk, Tn, tk, r]   | [1, 1, r, tn]     | T·tk·r + r·tn                |
| `shared-u` | [1, 1, tk, r]     | [Tk, Tn, r, tn]   | tk·r + T·r·tn                |

Initialisation of `shared-v` from W̃ [K, N]: stack all (zero-padded) tiles into a (T·tk) × tn
matrix; its top-r right-singular vectors are the best common row space (Eckart–Young on the
stack). Each tile's U is then the least-squares fit tile · V⁺ over the tile's real columns only
(a partial last tile column is not fitted to its zero padding). `shared-u` is the same on W̃ᵀ.
Finally every rank component is rescaled so U and V carry equal magnitudes (balanced factors, as
`tsvd.tiled_svd` does with √Σ).

A fine-tuned model is saved as an HF directory without the compressed layers' dense weights plus
`tsvd_factors.safetensors` and `tsvd_layout.json`; `restore_factors` (called by `models.load`)
puts the TSVDLinear layers back, so `python -m exporter <dir>` exports them as TSVDMatMul nodes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from . import tsvd

PER_TILE, SHARED_U, SHARED_V = "per-tile", "shared-u", "shared-v"
LAYOUTS = (PER_TILE, SHARED_U, SHARED_V)
LAYOUT_FILE, FACTORS_FILE = "tsvd_layout.json", "tsvd_factors.safetensors"
FORMAT = "ortops-tsvd-factors"


def layout_of(u: Tensor, v: Tensor) -> str:
    """The layout of a factor pair (never built here: both shared, read as one per-tile pair)."""
    u_shared, v_shared = u.shape[:2] == (1, 1), v.shape[:2] == (1, 1)
    if u_shared == v_shared:  # both [1, 1, ., .]: a single tile, per-tile by definition
        return PER_TILE
    return SHARED_U if u_shared else SHARED_V


def param_count(in_features: int, out_features: int, tile_k: int, tile_n: int, rank: int, layout: str) -> int:
    tiles = math.prod(tsvd.tile_grid(in_features, out_features, tile_k, tile_n))
    if layout == SHARED_V:
        return tiles * tile_k * rank + rank * tile_n
    if layout == SHARED_U:
        return tile_k * rank + tiles * rank * tile_n
    return tiles * rank * (tile_k + tile_n)


def rank_for_ratio(in_features: int, out_features: int, tile_k: int, tile_n: int, ratio: float,
                   layout: str) -> int:
    """Largest rank whose layout has at most K·N / ratio parameters (1 ≤ r ≤ min(tk, tn)): the
    same meaning of the ratio as `tsvd.rank_for_ratio`, which this equals for `per-tile`."""
    if layout == PER_TILE:
        return tsvd.rank_for_ratio(in_features, out_features, tile_k, tile_n, ratio)
    if ratio < 1:
        raise tsvd.TSVDConfigError(f"compression ratio must be >= 1, got {ratio}")
    per_rank = param_count(in_features, out_features, tile_k, tile_n, 1, layout)
    rank = math.floor(in_features * out_features / (ratio * per_rank))
    return max(1, min(rank, tile_k, tile_n))


def matched_per_tile_rank(in_features: int, out_features: int, tile_k: int, tile_n: int, rank: int,
                          layout: str) -> int:
    """The per-tile rank whose parameter count is closest to `layout` at `rank`."""
    target = param_count(in_features, out_features, tile_k, tile_n, rank, layout)
    per_rank = param_count(in_features, out_features, tile_k, tile_n, 1, PER_TILE)
    return max(1, min(round(target / per_rank), tile_k, tile_n))


def _balance(u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Rescales rank component i by s_i on V and 1/s_i on U so that the RMS per tile of U's
    column i equals that of V's row i (the product U·V is unchanged)."""
    u_rms = u.pow(2).sum(-2).mean((0, 1)).sqrt()  # (r,) norm of column i, averaged over U's tiles
    v_rms = v.pow(2).sum(-1).mean((0, 1)).sqrt()  # (r,)
    scale = (u_rms / v_rms.clamp_min(1e-30)).clamp_min(1e-30).sqrt()
    return u / scale, v * scale[:, None]


def shared_v_factors(weight_kn: Tensor, tile_k: int, tile_n: int, rank: int) -> tuple[Tensor, Tensor]:
    """U [Tk, Tn, tk, r] per tile and one shared V [1, 1, r, tn] for W̃ [K, N] (float32)."""
    k, n = weight_kn.shape
    tsvd.check_tile(k, n, tile_k, tile_n)
    if not 1 <= rank <= min(tile_k, tile_n):
        raise tsvd.TSVDConfigError(f"rank {rank} outside 1..{min(tile_k, tile_n)} for tile {tile_k}x{tile_n}")
    tiles = tsvd._tiles(weight_kn.detach().to(torch.float64), tile_k, tile_n)  # (Tk, Tn, tk, tn)
    _, _, right_t = torch.linalg.svd(tiles.reshape(-1, tile_n), full_matrices=False)
    basis = right_t[:rank]  # (r, tn), orthonormal rows: for full tiles tile · V⁺ = tile · Vᵀ
    u = torch.matmul(tiles, basis.t())  # (Tk, Tn, tk, r)
    valid_n = n - (tiles.shape[1] - 1) * tile_n
    if valid_n < tile_n:  # last tile column: fit only its real columns
        u[:, -1] = torch.matmul(tiles[:, -1, :, :valid_n], torch.linalg.pinv(basis[:, :valid_n]))
    u, v = _balance(u, basis[None, None])
    return u.float().contiguous(), v.float().contiguous()


def shared_u_factors(weight_kn: Tensor, tile_k: int, tile_n: int, rank: int) -> tuple[Tensor, Tensor]:
    """One shared U [1, 1, tk, r] and V [Tk, Tn, r, tn] per tile: `shared_v_factors` of W̃ᵀ,
    transposed back (tile (i, j) of W̃ is tile (j, i) of W̃ᵀ, transposed)."""
    u_t, v_t = shared_v_factors(weight_kn.t(), tile_n, tile_k, rank)  # (Tn, Tk, tn, r), (1, 1, r, tk)
    return v_t.transpose(-1, -2).contiguous(), u_t.permute(1, 0, 3, 2).contiguous()


def factors(weight_kn: Tensor, tile_k: int, tile_n: int, rank: int, layout: str) -> tuple[Tensor, Tensor]:
    if layout == SHARED_V:
        return shared_v_factors(weight_kn, tile_k, tile_n, rank)
    if layout == SHARED_U:
        return shared_u_factors(weight_kn, tile_k, tile_n, rank)
    if layout == PER_TILE:
        return tsvd.tiled_svd(weight_kn, tile_k, tile_n, rank)
    raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")


@dataclass
class CommonReport:
    """One layer in a layout, next to plain per-tile TSVD at ≈ the same parameter count."""
    name: str
    in_features: int  # K
    out_features: int  # N
    tile: tuple[int, int]
    layout: str
    rank: int
    params: int
    relative_error: float
    per_tile_rank: int
    per_tile_params: int
    per_tile_error: float

    @property
    def ratio(self) -> float:
        return self.in_features * self.out_features / self.params

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": round(self.ratio, 4)}

    def line(self) -> str:
        return (f"{self.name}: {self.in_features}x{self.out_features} tile {self.tile[0]}x{self.tile[1]} "
                f"{self.layout} r={self.rank} ({self.params} params, {self.ratio:.2f}x) rel.err "
                f"{self.relative_error:.4f} | per-tile r={self.per_tile_rank} ({self.per_tile_params} params) "
                f"rel.err {self.per_tile_error:.4f}")


def compress_layer(name: str, module: nn.Module, tile: tuple[int, int], layout: str, *,
                   ratio: float | None = None, rank: int | None = None,
                   compare: bool = True) -> tuple[tsvd.TSVDLinear, CommonReport]:
    """One Linear/Conv1D -> TSVDLinear in `layout`, plus its report (give `ratio` or `rank`).
    compare=False skips the per-tile SVD of the comparison (its fields are then 0 / nan)."""
    weight_kn, bias = tsvd.weight_kn_of(module)
    k, n = weight_kn.shape
    tile_k, tile_n = tile
    tsvd.check_tile(k, n, tile_k, tile_n)
    if rank is None:
        rank = rank_for_ratio(k, n, tile_k, tile_n, ratio, layout)
    u, v = factors(weight_kn, tile_k, tile_n, rank, layout)
    bias = None if bias is None else bias.detach().float().clone()
    layer = tsvd.TSVDLinear(u, v, bias, n).to(weight_kn.device)
    error = tsvd.relative_error(weight_kn, u, v)
    per_rank = matched_per_tile_rank(k, n, tile_k, tile_n, rank, layout)
    if not compare:
        per_error = float("nan")
    elif layout == PER_TILE and per_rank == rank:
        per_error = error
    else:
        per_error = tsvd.relative_error(weight_kn, *tsvd.tiled_svd(weight_kn, tile_k, tile_n, per_rank))
    report = CommonReport(
        name=name, in_features=k, out_features=n, tile=(tile_k, tile_n), layout=layout, rank=rank,
        params=u.numel() + v.numel(), relative_error=error, per_tile_rank=per_rank,
        per_tile_params=param_count(k, n, tile_k, tile_n, per_rank, PER_TILE), per_tile_error=per_error,
    )
    return layer, report


def apply(model: nn.Module, plan, layout: str, *, compare: bool = True, log=print) -> list[CommonReport]:
    """Replaces every layer of a `compress.plan`-resolved plan by a TSVDLinear in `layout`.
    The plan's tile applies as resolved; its rank too when it was given (plan.rank), otherwise
    the rank comes from plan.ratio with this layout's parameter count."""
    reports = []
    for index, (name, tile, rank) in enumerate(plan.layers, 1):
        module = model.get_submodule(name)
        given = {"rank": rank} if plan.ratio is None else {"ratio": plan.ratio}
        layer, report = compress_layer(name, module, tile, layout, compare=compare, **given)
        tsvd.replace_module(model, name, layer)
        reports.append(report)
        log(f"[tsvd-common {index}/{len(plan.layers)}] {report.line()}")
    return reports


def summary(reports: list[CommonReport]) -> dict:
    dense = sum(r.in_features * r.out_features for r in reports)
    params = sum(r.params for r in reports)
    per_tile = sum(r.per_tile_params for r in reports)

    def weighted(attr):  # error averaged with the layers' dense sizes as weights
        return sum(getattr(r, attr) * r.in_features * r.out_features for r in reports) / max(dense, 1)

    return {"layers": len(reports), "dense_params": dense, "params": params,
            "ratio": round(dense / params, 4) if params else None, "mean_relative_error": weighted("relative_error"),
            "per_tile_params": per_tile, "per_tile_mean_relative_error": weighted("per_tile_error")}


# --- which parameters train ---------------------------------------------------------------------

def tsvd_layers(model: nn.Module) -> dict[str, tsvd.TSVDLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, tsvd.TSVDLinear)}


def shared_factors(layer: tsvd.TSVDLinear) -> list[nn.Parameter]:
    """The factor(s) of shape [1, 1, ·, ·] that every tile uses (empty for per-tile layers)."""
    layout = layout_of(layer.u, layer.v)
    return [layer.u] if layout == SHARED_U else [layer.v] if layout == SHARED_V else []


# --- saving and restoring -----------------------------------------------------------------------

def dense_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's state dict without the TSVDLinear layers (they go to FACTORS_FILE)."""
    prefixes = tuple(name + "." for name in tsvd_layers(model))
    return {k: v for k, v in model.state_dict().items() if not k.startswith(prefixes)}


def save_factors(model: nn.Module, directory: str | Path, extra: dict | None = None) -> dict:
    """Writes FACTORS_FILE (`<layer>.u`, `<layer>.v`, `<layer>.bias`) and LAYOUT_FILE; returns the
    layout description."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors, layers = {}, {}
    for name, layer in tsvd_layers(model).items():
        tensors[f"{name}.u"] = layer.u.detach().float().contiguous().cpu()
        tensors[f"{name}.v"] = layer.v.detach().float().contiguous().cpu()
        if layer.bias is not None:
            tensors[f"{name}.bias"] = layer.bias.detach().float().contiguous().cpu()
        layers[name] = {"layout": layout_of(layer.u, layer.v), "u_shape": list(layer.u.shape),
                        "v_shape": list(layer.v.shape), "out_features": layer.out_features,
                        "bias": layer.bias is not None}
    save_file(tensors, str(directory / FACTORS_FILE))
    description = {"format": FORMAT, "version": 1, "factors_file": FACTORS_FILE, "layers": layers, **(extra or {})}
    (directory / LAYOUT_FILE).write_text(json.dumps(description, indent=2) + "\n")
    return description


def has_factors(directory: str | Path) -> bool:
    return (Path(directory) / LAYOUT_FILE).is_file()


class _MissingReportFilter(logging.Filter):
    """Drops transformers' load report when all it says is MISSING: the compressed layers' dense
    weights are absent from a fine-tuned directory by design (restore_factors replaces them).
    A report with any other status (unexpected, mismatched, conversion) still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "LOAD REPORT" not in text:
            return True
        return not ("MISSING" in text and not any(s in text for s in ("UNEXPECTED", "MISMATCH", "CONVERSION")))


@contextlib.contextmanager
def expected_missing_weights(directory: str | Path | None):
    """Around from_pretrained of `directory`: quiet about the weights FACTORS_FILE replaces."""
    if directory is None or not has_factors(directory):
        yield
        return
    logger, quiet = logging.getLogger("transformers.modeling_utils"), _MissingReportFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def restore_factors(model: nn.Module, directory: str | Path) -> list[str]:
    """Replaces the layers listed in LAYOUT_FILE by TSVDLinear with the saved factors; returns their
    names (none when the directory has no LAYOUT_FILE). Raises ValueError on a mismatch."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not has_factors(directory):
        return []
    description = json.loads((directory / LAYOUT_FILE).read_text())
    if description.get("format") != FORMAT:
        raise ValueError(f"{directory / LAYOUT_FILE}: not a {FORMAT} file")
    tensors = load_file(str(directory / description["factors_file"]))
    for name, entry in description["layers"].items():
        old = model.get_submodule(name)
        weight_kn, _ = tsvd.weight_kn_of(old)
        u, v = tensors[f"{name}.u"], tensors[f"{name}.v"]
        if list(u.shape) != entry["u_shape"] or list(v.shape) != entry["v_shape"]:
            raise ValueError(f"{name}: factor shapes differ from {LAYOUT_FILE}")
        if (u.shape[-2] * max(u.shape[0], v.shape[0]) < weight_kn.shape[0]
                or entry["out_features"] != weight_kn.shape[1]):
            raise ValueError(f"{name}: factors do not cover the {tuple(weight_kn.shape)} layer")
        bias = tensors.get(f"{name}.bias")
        layer = tsvd.TSVDLinear(u, v, bias, entry["out_features"]).to(weight_kn.device)
        tsvd.replace_module(model, name, layer)
    return list(description["layers"])

