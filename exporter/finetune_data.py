"""Local datasets for fine-tuning: a text file or JSONL, tokenised into fixed-size batches.

- causal-lm: a .txt file (whole text) or JSONL with a text field per line; all texts are
  tokenised, concatenated and cut into blocks of `seq_len` tokens. The LAST `eval_fraction` of the
  blocks is the eval split (held-out text, not shuffled into training).
- seq-cls: JSONL with a text field and a label field (int, or strings mapped to 0..L-1 in sorted
  order); each text is truncated/padded to `seq_len`; a seeded shuffle, then the eval split.

Tokeniser: the model's own (HF directory, or the GGUF file's), else bytes: id = byte + 3, for the
random-init built-ins, which ship none (needs vocab ≥ 259).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

CAUSAL_LM, SEQ_CLS = "causal-lm", "seq-cls"
TASKS = (CAUSAL_LM, SEQ_CLS)
BYTE_OFFSET = 3  # ids 0..2 stay free (bos/eos/pad of the tiny configs)


class DataError(ValueError):
    """A dataset that cannot serve the task (the CLI reports it as a usage error)."""


class ByteTokenizer:
    """Stand-in for models without a tokenizer: one token per UTF-8 byte."""
    pad_token_id = 0

    def __call__(self, text: str) -> list[int]:
        return [b + BYTE_OFFSET for b in text.encode("utf-8")]


def load_tokenizer(source: str, vocab_size: int):
    """(encode: str -> list[int], HF tokenizer to save beside the model or None)."""
    from . import models

    kind, directory, gguf = models.resolve_source(source)
    if kind != "tiny":
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf, local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError):
            tokenizer = None  # a directory without tokenizer files
        if tokenizer is not None:
            return (lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]), tokenizer
    if vocab_size < 256 + BYTE_OFFSET:
        raise DataError(f"no tokenizer for {source}, and its vocabulary ({vocab_size}) is too small for bytes")
    return ByteTokenizer(), None


def _read_jsonl(path: Path, fields: tuple[str, ...]) -> list[tuple]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not JSON ({error.msg})") from None
        missing = [f for f in fields if f not in record]
        if missing:
            raise DataError(f"{path}:{number}: missing field {missing[0]!r}")
        rows.append(tuple(record[f] for f in fields))
    return rows


@dataclass
class Splits:
    """Token tensors of the two splits. causal-lm: input_ids [n, S] (every token counts);
    seq-cls: input_ids [n, S], attention_mask [n, S] (1 = token, 0 = padding), labels [n]."""
    train: dict[str, torch.Tensor]
    eval: dict[str, torch.Tensor]
    num_labels: int | None = None

    def batches(self, split: str, batch: int, *, seed: int | None = None):
        """Yields dicts of [batch, ...] slices; shuffled with `seed` (training), in order without."""
        data = self.train if split == "train" else self.eval
        count = next(iter(data.values())).shape[0]
        order = (torch.randperm(count, generator=torch.Generator().manual_seed(seed)) if seed is not None
                 else torch.arange(count))
        for start in range(0, count, batch):
            index = order[start:start + batch]
            yield {k: v[index] for k, v in data.items()}


def _split_count(count: int, eval_fraction: float) -> int:
    n_eval = max(1, round(count * eval_fraction))
    if count - n_eval < 1:
        raise DataError(f"only {count} examples/blocks: too few for a train and an eval split")
    return n_eval


def load_splits(path: str | Path, task: str, encode, seq_len: int, *, eval_fraction: float = 0.1,
                text_field: str = "text", label_field: str = "label", pad_token_id: int = 0,
                seed: int = 0, max_blocks: int | None = None) -> Splits:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset {path}: no such file")
    is_jsonl = path.suffix in (".jsonl", ".json")
    if task == CAUSAL_LM:
        texts = [row[0] for row in _read_jsonl(path, (text_field,))] if is_jsonl else [path.read_text("utf-8")]
        ids = [t for text in texts for t in encode(text)]
        count = len(ids) // seq_len
        if max_blocks is not None:
            count = min(count, max_blocks)
        if count < 2:
            raise DataError(f"{path}: {len(ids)} tokens make fewer than 2 blocks of {seq_len}")
        blocks = torch.tensor(ids[:count * seq_len], dtype=torch.int64).view(count, seq_len)
        n_eval = _split_count(count, eval_fraction)
        return Splits({"input_ids": blocks[:-n_eval]}, {"input_ids": blocks[-n_eval:]})
    if task != SEQ_CLS:
        raise DataError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if not is_jsonl:
        raise DataError("seq-cls needs a JSONL file with a text and a label field")
    rows = _read_jsonl(path, (text_field, label_field))
    labels = [row[1] for row in rows]
    if all(isinstance(x, int) for x in labels):
        label_ids, num_labels = labels, max(labels) + 1
    else:
        names = sorted({str(x) for x in labels})
        label_ids, num_labels = [names.index(str(x)) for x in labels], len(names)
    if num_labels < 2:
        raise DataError(f"{path}: seq-cls needs at least 2 labels")
    input_ids = torch.full((len(rows), seq_len), pad_token_id, dtype=torch.int64)
    mask = torch.zeros(len(rows), seq_len, dtype=torch.int64)
    for i, (text, _) in enumerate(rows):
        tokens = encode(text)[:seq_len] or [pad_token_id]
        input_ids[i, :len(tokens)] = torch.tensor(tokens)
        mask[i, :len(tokens)] = 1
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    data = {"input_ids": input_ids[order], "attention_mask": mask[order],
            "labels": torch.tensor(label_ids, dtype=torch.int64)[order]}
    n_eval = _split_count(len(rows), eval_fraction)
    return Splits({k: v[:-n_eval] for k, v in data.items()}, {k: v[-n_eval:] for k, v in data.items()},
                  num_labels)
