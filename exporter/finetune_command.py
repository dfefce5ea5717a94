"""The `finetune` subcommand: compress, fine-tune (TSVD-common, all factors, or LoRA), save a
model directory that `python -m exporter <dir>` exports."""

from __future__ import annotations

import argparse
import sys

HELP = "fine-tune a compressed model (TSVD-common, all factors) or the dense one with LoRA; save a model directory"
DESCRIPTION = """\
Compress the chosen layers to tiled factors and fine-tune on a local dataset, then save a model
directory (HF save_pretrained + tsvd_factors.safetensors + tsvd_layout.json + finetune.json) that
`python -m exporter DIR` exports with one com.ortops::TSVDMatMul node per compressed layer.

Modes: common = only the factor shared by all tiles of a layer trains (layout shared-v or
shared-u); factors = all U and V train (layout per-tile by default); lora = LoRA (peft) on the
dense model, merged before saving (the baseline; no compression).

MODEL is as for export: an HF directory, a .gguf file, or a built-in tiny config.
DATA: causal-lm takes a .txt file or JSONL ({"text": ...} per line); seq-cls takes JSONL with a
text and a label field. The last --eval-fraction of the data is the eval split.

Exit codes: 0 ok, 2 bad input (nothing written)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .export_command import _rank, _tile
    from .finetune import DEFAULT_LR, MODES
    from .finetune_data import TASKS
    from .tsvd_common import LAYOUTS

    parser.add_argument("model", help="HF model directory, .gguf file, or built-in tiny config name")
    parser.add_argument("--data", required=True, help="dataset: .txt or .jsonl")
    parser.add_argument("-o", "--output", required=True, help="output model directory (created)")
    parser.add_argument("--task", choices=TASKS, default="causal-lm", help="default causal-lm")
    parser.add_argument("--mode", choices=MODES, default="common", help="what trains (default common)")
    group = parser.add_argument_group("compression (as export's options; ignored by --mode lora)")
    group.add_argument("--compress", type=float, metavar="RATIO",
                       help="compression ratio c >= 1 per layer (default 2 unless --rank); the rank is the "
                            "largest whose layout stores at most K·N/c parameters")
    group.add_argument("--rank", type=_rank, metavar="R|full", help="rank instead of --compress")
    group.add_argument("--tile", type=_tile, metavar="SIZE|KxN", help="tile tk x tn (default 128, clamped)")
    group.add_argument("--modules", default="mlp", metavar="LIST",
                       help="layers to compress (or to adapt with LoRA): attention, mlp, lm_head, all (default mlp)")
    group.add_argument("--layout", choices=LAYOUTS,
                       help="factor layout (default shared-v for common, per-tile for factors)")
    group = parser.add_argument_group("training")
    group.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    group.add_argument("--lr", type=float, help="AdamW learning rate (default " +
                       ", ".join(f"{m} {lr:g}" for m, lr in DEFAULT_LR.items()) + ")")
    group.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    group.add_argument("--seq-len", type=int, default=128, help="tokens per example (default 128)")
    group.add_argument("--eval-every", type=int, default=25, help="evaluate every N steps (default 25)")
    group.add_argument("--eval-fraction", type=float, default=0.1, help="eval split share (default 0.1)")
    group.add_argument("--eval-batches", type=int, help="evaluate on at most N eval batches (default all)")
    group.add_argument("--lora-rank", type=int, default=8, help="LoRA rank (default 8)")
    group.add_argument("--text-field", default="text", help="JSONL text field (default text)")
    group.add_argument("--label-field", default="label", help="JSONL label field for seq-cls (default label)")
    group.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    group.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    group.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="training device (default cpu)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args) -> int:
    from pathlib import Path

    import torch

    from .cli import EXIT_OK, UsageError
    from .families import UnsupportedModel
    from .finetune import FinetuneError, FinetuneSettings, finetune
    from .finetune_data import DataError

    if args.compress is not None and args.rank is not None:
        raise UsageError("give --compress or --rank, not both")
    output = Path(args.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UsageError(f"output {output} exists and is not an empty directory")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device visible to PyTorch")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = FinetuneSettings(
        mode=args.mode, task=args.task, layout=args.layout,
        ratio=args.compress if args.compress is not None or args.rank is not None else 2.0,
        rank=args.rank, tile=args.tile, modules=args.modules, lora_rank=args.lora_rank, steps=args.steps,
        lr=args.lr, batch=args.batch, seq_len=args.seq_len, eval_every=args.eval_every,
        eval_fraction=args.eval_fraction, eval_batches=args.eval_batches, seed=args.seed,
        text_field=args.text_field, label_field=args.label_field, device=args.device)
    if args.rank is not None:
        settings.ratio = None
    try:
        finetune(args.model, args.data, str(output), settings, progress=args.progress, log=log)
    except (FinetuneError, DataError, UnsupportedModel, FileNotFoundError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    return EXIT_OK
