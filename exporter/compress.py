"""Applying TSVD to a whole model: which layers, which tile and rank, with progress and a report.

The arithmetic lives in `tsvd.py`; this module decides per layer (tile clamped to the matrix
unless given explicitly, rank from the ratio or given), checks every layer before touching any,
and measures how close the compressed model stays to the original.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from . import tsvd
from .families import Family

MODULE_GROUPS = ("attention", "mlp", "lm_head")
DEFAULT_TILE = 128


@dataclass
class CompressionPlan:
    groups: set[str]
    ratio: float | None = None  # c; or
    rank: int | None = None  # r, None with ratio; FULL_RANK for min(tk, tn)
    tile: tuple[int, int] | None = None  # None: DEFAULT_TILE clamped to each matrix
    layers: list[tuple[str, tuple[int, int], int]] = field(default_factory=list)  # (name, tile, rank)


FULL_RANK = -1


def parse_modules(text: str) -> set[str]:
    groups = set()
    for word in (w.strip() for w in text.split(",") if w.strip()):
        if word == "all":
            groups |= {"attention", "mlp"}
        elif word == "none":
            continue
        elif word in MODULE_GROUPS:
            groups.add(word)
        else:
            raise ValueError(f"unknown module group {word!r}; choose from attention, mlp, lm_head, all, none")
    return groups


def plan(model: nn.Module, family: Family, plan: CompressionPlan) -> CompressionPlan:
    """Resolves tile and rank for every selected layer; raises tsvd.TSVDConfigError on any
    layer that cannot take them, before anything is changed."""
    names = family.module_names(model, plan.groups)
    if plan.groups and not names:
        raise tsvd.TSVDConfigError(f"no {'/'.join(sorted(plan.groups))} layers found in this model")
    for name in names:
        weight_kn, _ = tsvd.weight_kn_of(model.get_submodule(name))
        k, n = weight_kn.shape
        if plan.tile is None:
            tile = (min(DEFAULT_TILE, k), min(DEFAULT_TILE, n))
        else:
            tile = plan.tile
            try:
                tsvd.check_tile(k, n, *tile)
            except tsvd.TSVDConfigError as error:
                raise tsvd.TSVDConfigError(f"{error} of {name}") from None
        if plan.rank == FULL_RANK:
            rank = min(tile)
        elif plan.rank is not None:
            rank = plan.rank
            if rank > min(tile):
                raise tsvd.TSVDConfigError(f"rank {rank} exceeds the tile {tile[0]}x{tile[1]} of {name}")
        else:
            rank = tsvd.rank_for_ratio(k, n, *tile, plan.ratio)
        plan.layers.append((name, tile, rank))
    return plan


def apply(model: nn.Module, plan: CompressionPlan, log=print) -> list[tsvd.LayerReport]:
    """Replaces every planned layer by a TSVDLinear; prints one line per layer as it goes."""
    reports = []
    start = time.perf_counter()
    for index, (name, tile, rank) in enumerate(plan.layers, 1):
        layer, report = tsvd.compress_layer(name, model.get_submodule(name), tile, rank=rank)
        tsvd.replace_module(model, name, layer)
        reports.append(report)
        log(f"[tsvd {index}/{len(plan.layers)} {time.perf_counter() - start:.1f}s] {report.line()}")
    return reports


def summary(reports: list[tsvd.LayerReport]) -> dict:
    before = sum(r.params_before for r in reports)
    after = sum(r.params_after for r in reports)
    return {"layers_compressed": len(reports), "weight_params_before": before, "weight_params_after": after,
            "ratio": round(before / after, 4) if after else None}


def fidelity(before: torch.Tensor, after: torch.Tensor, attention_mask: torch.Tensor, kind: str) -> dict:
    """Cosine between original and compressed outputs on the same inputs: mean-pooled embeddings
    per row for encoders (sentence-embedding use), logit vectors per valid token for decoders,
    class-logit vectors per row for classifiers."""
    valid = attention_mask.bool()
    if kind == "classifier":
        metric = "cosine of class logits per row"
    elif kind == "encoder":
        weights = valid[..., None].float()
        before = (before * weights).sum(1) / weights.sum(1)
        after = (after * weights).sum(1) / weights.sum(1)
        metric = "cosine of mean-pooled embeddings"
    else:
        before, after = before[valid], after[valid]
        metric = "cosine of per-token logits"
    cosine = torch.nn.functional.cosine_similarity(before.double(), after.double(), dim=-1)
    return {"metric": metric, "mean": float(cosine.mean()), "min": float(cosine.min())}
