"""The `export` subcommand: load -> compress -> export -> check -> write -> validate.

Every check of the user's input runs before anything is written; files are assembled in a
hidden temporary directory next to the output and moved into place only when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HELP = "export a Hugging Face model to ONNX with com.ortops nodes (default subcommand)"
DESCRIPTION = """\
Export a Hugging Face model to ONNX. Longformer self-attention becomes one
com.ortops::MultigrainAttention node per layer; with --compress or --rank the chosen Linear/Conv1D
layers become com.ortops::TSVDMatMul nodes (per-tile truncated SVD). ONNX function bodies make the
model run on stock onnxruntime too; validation runs it (through ort_ops when installed) against
PyTorch with the same weights at another batch size and sequence length.

MODEL is a local Hugging Face directory (config.json + weights; read offline), a .gguf file, or a
built-in random-init config: longformer-tiny, bert-tiny, roberta-tiny, gpt2-tiny, llama-tiny.

Exit codes: 0 ok, 1 validation above tolerance or export failure, 2 bad input (nothing written)."""

DTYPES = ("float32", "float16", "bfloat16")


def _tile(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"tile must be SIZE or KxN, got {text!r}") from None
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"tile must be SIZE or KxN with positive sizes, got {text!r}")
    return sizes * 2 if len(sizes) == 1 else sizes


def _rank(text: str) -> int:
    from .compress import FULL_RANK

    if text == "full":
        return FULL_RANK
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rank must be a positive integer or 'full', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"rank must be >= 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="HF model directory, .gguf file, or built-in tiny config name")
    parser.add_argument("-o", "--output", help="output .onnx path (default: ./<model name>.onnx); the "
                        "report goes beside it as <name>.report.json")
    group = parser.add_argument_group("compression (tiled SVD -> TSVDMatMul)")
    group.add_argument("--compress", type=float, metavar="RATIO",
                       help="compression ratio c >= 1 per layer: rank r = floor(K·N / (c·Tk·Tn·(tk+tn)))")
    group.add_argument("--rank", type=_rank, metavar="R|full",
                       help="per-tile rank instead of --compress; 'full' = min(tk, tn), exact")
    group.add_argument("--tile", type=_tile, metavar="SIZE|KxN",
                       help="tile tk x tn; must fit every chosen matrix (default 128, clamped per matrix)")
    group.add_argument("--modules", metavar="LIST",
                       help="comma list of attention, mlp, lm_head, all (= attention,mlp), none; default "
                            "'all' when compressing. Embeddings are never compressed; lm_head only if named")
    group = parser.add_argument_group("graph")
    group.add_argument("--dtype", choices=DTYPES, default="float32", help="weights/activations type (default float32)")
    group.add_argument("--opset", type=int, default=20, help="standard ONNX opset, 18..23 (default 20)")
    group.add_argument("--dynamic-batch", action=argparse.BooleanOptionalAction, default=True,
                       help="symbolic batch axis (default on)")
    group.add_argument("--dynamic-seq", action=argparse.BooleanOptionalAction, default=True,
                       help="symbolic sequence axis (default on)")
    group.add_argument("--batch", type=int, default=2, help="batch size of the export example (default 2)")
    group.add_argument("--seq-len", type=int, default=32, help="sequence length of the export example (default 32)")
    group.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="device for compression, capture and validation (default cpu)")
    group = parser.add_argument_group("validation")
    group.add_argument("--no-validate", dest="validate", action="store_false", help="skip validation")
    group.add_argument("--validate-batch", type=int, help="validation batch (default: --batch + 1 if dynamic)")
    group.add_argument("--validate-seq-len", type=int,
                       help="validation sequence length (default: --seq-len + 13 if dynamic)")
    group.add_argument("--atol", type=float, help="absolute tolerance (default per dtype: 1e-4, 1e-2, 5e-2)")
    group.add_argument("--rtol", type=float, help="relative tolerance (default per dtype: 1e-4, 1e-2, 5e-2)")
    group.add_argument("--seed", type=int, default=0, help="seed of the random validation inputs (default 0)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the torch exporter's own output")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def step(title: str):
    log(f"[exporter] {title} ...")
    start = time.perf_counter()
    yield
    log(f"[exporter] {title}: done in {time.perf_counter() - start:.1f}s")


def _check_output(output: Path) -> None:
    from .cli import UsageError

    parent = output.parent
    if output.is_dir():
        raise UsageError(f"output {output} is a directory")
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} does not exist")
    try:  # a real write, since os.access says yes to root on read-only mounts
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise UsageError(f"output directory {parent} is not writable ({error.strerror})") from None


def _check_arguments(args) -> tuple:
    """Validates everything knowable without the model; returns (output path, modules, (atol, rtol))."""
    from .cli import UsageError
    from .compress import parse_modules
    from .onnx_export import MAX_OPSET, MIN_OPSET
    from .validate import DEFAULT_TOLERANCE

    if args.compress is not None and args.rank is not None:
        raise UsageError("give --compress or --rank, not both")
    if args.compress is not None and not args.compress >= 1:
        raise UsageError(f"--compress ratio must be >= 1, got {args.compress}")
    compressing = args.compress is not None or args.rank is not None
    try:
        groups = parse_modules(args.modules if args.modules is not None else ("all" if compressing else "none"))
    except ValueError as error:
        raise UsageError(str(error)) from None
    if groups and not compressing:
        raise UsageError("--modules needs --compress or --rank")
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise UsageError(f"--opset must be in {MIN_OPSET}..{MAX_OPSET}, got {args.opset}")
    if args.batch < 1 or args.seq_len < 2:
        raise UsageError("--batch must be >= 1 and --seq-len >= 2")
    if args.dynamic_batch and args.batch < 2:
        raise UsageError("a dynamic batch axis needs an export example with --batch >= 2")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device visible to PyTorch")
    name = Path(args.model.rstrip("/")).stem or "model"
    output = Path(args.output) if args.output else Path.cwd() / f"{name}.onnx"
    _check_output(output)
    atol, rtol = DEFAULT_TOLERANCE[args.dtype]
    return output, groups, (args.atol if args.atol is not None else atol, args.rtol if args.rtol is not None else rtol)


def _first_line(error: BaseException) -> str:
    """One readable line of an exception: the torch exporter's own summary line when it has one
    (its message is a page of advice), else the first line (plus the next when that one only
    introduces it, as in transformers' config validation errors)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("## Exception summary") and index + 1 < len(lines):
            return lines[index + 1]
    if not lines:
        return type(error).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def _check_sequence_lengths(args, model) -> None:
    """Batch and sequence lengths of the export example and the validation against the model:
    explicit values that cannot run are usage errors; the default validation length stays within
    the model's position table. Sets args.validate_batch / args.validate_seq_len."""
    from .cli import UsageError
    from .models import max_sequence_length

    limit = max_sequence_length(model)
    if limit is not None and args.seq_len > limit:
        raise UsageError(f"--seq-len {args.seq_len} exceeds the model's {limit} positions")
    for option, value, dynamic, exported in (("--validate-batch", args.validate_batch, args.dynamic_batch, args.batch),
                                             ("--validate-seq-len", args.validate_seq_len, args.dynamic_seq, args.seq_len)):
        if value is None:
            continue
        if value < 1:
            raise UsageError(f"{option} must be >= 1, got {value}")
        if not dynamic and value != exported:
            raise UsageError(f"{option} {value} differs from the export example's {exported} on a static axis")
    if args.validate_seq_len is not None and limit is not None and args.validate_seq_len > limit:
        raise UsageError(f"--validate-seq-len {args.validate_seq_len} exceeds the model's {limit} positions")
    if args.validate_batch is None:
        args.validate_batch = args.batch + 1 if args.dynamic_batch else args.batch
    if args.validate_seq_len is None:
        seq = args.seq_len + 13 if args.dynamic_seq else args.seq_len
        if limit is not None and seq > limit:  # another length than the export's when there is room
            seq = limit if limit != args.seq_len else max(2, args.seq_len - 1)
        args.validate_seq_len = seq


def run(args) -> int:
    from .cli import EXIT_FAILED, EXIT_OK, PROG, UsageError
    from .families import UnsupportedModel, family_for
    from . import models, tsvd

    output, groups, (atol, rtol) = _check_arguments(args)
    try:
        family_for(models.architecture_of(args.model))  # fail fast, before loading weights
    except (FileNotFoundError, UnsupportedModel, OSError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    except Exception as error:  # a config transformers cannot read
        raise UsageError(f"cannot read the config of {args.model}: {_first_line(error)}") from None
    try:
        with step(f"loading {args.model}"):
            loaded = models.load(args.model)
    except (FileNotFoundError, UnsupportedModel, OSError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    except Exception as error:  # e.g. a config that transformers' model class rejects
        raise UsageError(f"cannot load {args.model}: {_first_line(error)}") from None
    _check_sequence_lengths(args, loaded.model)
    _check_model_config(loaded.model)
    from . import compress

    plan = compress.CompressionPlan(groups=groups, ratio=args.compress, rank=args.rank, tile=args.tile)
    try:
        compress.plan(loaded.model, loaded.family, plan)
    except tsvd.TSVDConfigError as error:
        raise UsageError(str(error)) from None

    from .pipeline import export_and_validate

    try:
        passed = export_and_validate(args, loaded, plan, output, atol, rtol, step, log)
    except Exception as error:  # nothing is left half-written (write_atomically)
        if args.verbose:
            raise
        print(f"{PROG}: error: export failed: {type(error).__name__}: {_first_line(error)} "
              "(--verbose shows the traceback)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if passed else EXIT_FAILED


def _check_model_config(model) -> None:
    """Configs known not to capture with a dynamic sequence axis, or with no PyTorch reference to
    validate against, refused before any work."""
    from .cli import UsageError

    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) == "longformer":
        windows = config.attention_window
        windows = list(windows) if isinstance(windows, (list, tuple)) else [windows]
        if min(windows) < 4:
            raise UsageError(f"attention_window {min(windows)} (layer {windows.index(min(windows))}): HF "
                             "LongformerSelfAttention fails on windows below 4, so there is no PyTorch model "
                             "to compress or validate against")
    rope = getattr(config, "rope_scaling", None) or getattr(config, "rope_parameters", None) or {}
    rope_type = rope.get("rope_type", rope.get("type")) if isinstance(rope, dict) else None
    if rope_type == "dynamic":
        raise UsageError("rope_type 'dynamic' (dynamic NTK RoPE) is not supported: its frequencies depend on "
                         "the sequence length through a data-dependent branch that torch.export cannot capture")


def write_atomically(output: Path, write) -> list[Path]:
    """Calls write(tmp_model_path) -> [files] in a hidden temp dir beside `output`, then moves the
    files into place; on any error removes the temp dir, leaving nothing behind."""
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        written = [Path(p) for p in write(str(tmp_dir / output.name))]
        final = []
        for path in written:
            target = output.parent / path.name
            os.replace(path, target)
            final.append(target)
        return final
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
