"""Fine-tuning after tiled-SVD compression: TSVD-common, all factors, or LoRA on the dense model.

Modes (what trains; everything else is frozen):
- `common`: only the shared factor of each compressed layer (V [1, 1, r, tn] for layout
  `shared-v`, U [1, 1, tk, r] for `shared-u`): r·tn (or tk·r) parameters per layer.
- `factors`: every factor U and V of the compressed layers (any layout; `per-tile` by default).
- `lora`: no compression; LoRA adapters (peft) on the same selected layers of the dense model, as
  the baseline; merged into the weights before saving.
For seq-cls the new classification head (`score` / `classifier`) trains in every mode.

Output: an HF directory (`save_pretrained`, tokenizer when the model has one) whose compressed
layers are stored as `tsvd_factors.safetensors` + `tsvd_layout.json` (see tsvd_common), plus
`finetune.json` (settings, trainable counts, eval history). `python -m exporter <dir>` exports it:
the compressed layers become TSVDMatMul nodes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import compress, tsvd, tsvd_common
from .finetune_data import CAUSAL_LM, SEQ_CLS, Splits

MODES = ("common", "factors", "lora")
HEAD_NAMES = ("score", "classifier", "pre_classifier")  # HF seq-cls heads of the supported families
DEFAULT_LR = {"common": 2e-3, "factors": 2e-4, "lora": 1e-3}


class FinetuneError(ValueError):
    """Settings that cannot apply (the CLI reports it as a usage error)."""


@dataclass
class FinetuneSettings:
    mode: str = "common"
    task: str = CAUSAL_LM
    layout: str | None = None  # None: shared-v for common, per-tile for factors
    ratio: float | None = 2.0  # compression c (same meaning as export's --compress), or
    rank: int | None = None  # rank r instead of ratio (FULL_RANK = min(tk, tn))
    tile: tuple[int, int] | None = None  # None: 128 clamped per matrix, as export
    modules: str = "mlp"  # attention, mlp, lm_head, all
    lora_rank: int = 8
    lora_alpha: float | None = None  # None: 2·lora_rank
    steps: int = 100
    lr: float | None = None  # None: DEFAULT_LR[mode]
    batch: int = 8
    seq_len: int = 128
    eval_every: int = 25
    eval_fraction: float = 0.1
    eval_batches: int | None = None  # None: the whole eval split
    device: str = "cpu"  # where the model and batches run ("cuda": not tested on this CPU-only machine)
    seed: int = 0
    text_field: str = "text"
    label_field: str = "label"

    def resolved_layout(self) -> str | None:
        if self.mode == "lora":
            return None
        return self.layout or (tsvd_common.SHARED_V if self.mode == "common" else tsvd_common.PER_TILE)

    def check(self) -> None:
        if self.mode not in MODES:
            raise FinetuneError(f"unknown mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.layout is not None and self.layout not in tsvd_common.LAYOUTS:
            raise FinetuneError(f"unknown layout {self.layout!r}; choose from {', '.join(tsvd_common.LAYOUTS)}")
        if self.mode == "common" and self.resolved_layout() == tsvd_common.PER_TILE:
            raise FinetuneError("mode common trains the shared factor: use layout shared-v or shared-u")
        if self.mode != "lora" and (self.ratio is None) == (self.rank is None):
            raise FinetuneError("give a compression ratio or a rank, not both and not neither")
        if self.ratio is not None and self.ratio < 1:
            raise FinetuneError(f"compression ratio must be >= 1, got {self.ratio}")
        if min(self.steps, self.batch, self.eval_every, self.lora_rank) < 1 or self.seq_len < 2:
            raise FinetuneError("steps, batch, eval-every and lora-rank must be >= 1, seq-len >= 2")
        try:
            if not compress.parse_modules(self.modules):
                raise FinetuneError("no layers chosen: --modules none")
        except ValueError as error:
            raise FinetuneError(str(error)) from None
        if not 0 < self.eval_fraction < 1:
            raise FinetuneError(f"eval fraction must be in (0, 1), got {self.eval_fraction}")


# --- preparing the model ------------------------------------------------------------------------

def compress_model(model: nn.Module, family, settings: FinetuneSettings, log=print) -> list[tsvd_common.CommonReport]:
    """Replaces the selected layers by TSVDLinear in the settings' layout; returns the reports."""
    plan = compress.CompressionPlan(groups=compress.parse_modules(settings.modules), ratio=settings.ratio,
                                    rank=settings.rank, tile=settings.tile)
    compress.plan(model, family, plan)
    return tsvd_common.apply(model, plan, settings.resolved_layout(), log=log)


def _heads(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_children() if name in HEAD_NAMES]


def set_trainable(model: nn.Module, mode: str, task: str = CAUSAL_LM) -> int:
    """Freezes everything, then unfreezes what `mode` trains (plus the seq-cls head); returns the
    number of trainable parameters. (For `lora`, call on the peft model: only adapters train.)"""
    if mode == "lora":  # peft already froze all but the adapters and modules_to_save (the head)
        return trainable_count(model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    layers = tsvd_common.tsvd_layers(model)
    if not layers:
        raise FinetuneError("the model has no compressed (TSVDLinear) layers to train")
    for layer in layers.values():
        chosen = tsvd_common.shared_factors(layer) if mode == "common" else [layer.u, layer.v]
        if mode == "common" and not chosen:
            raise FinetuneError("mode common needs a shared-factor layout (shared-v or shared-u)")
        for parameter in chosen:
            parameter.requires_grad_(True)
    if task == SEQ_CLS:
        for name, parameter in model.named_parameters():
            if name.startswith(tuple(f"{head}." for head in _heads(model))):
                parameter.requires_grad_(True)
    return trainable_count(model)


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def add_lora(model: nn.Module, family, settings: FinetuneSettings) -> nn.Module:
    """peft LoRA on the selected Linear layers (Conv1D too: peft handles GPT-2's)."""
    from peft import LoraConfig, get_peft_model

    targets = family.module_names(model, compress.parse_modules(settings.modules))
    if not targets:
        raise FinetuneError(f"no {settings.modules} layers found for LoRA")
    config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha or 2 * settings.lora_rank,
                        lora_dropout=0.0, target_modules=targets, modules_to_save=_heads(model) or None,
                        fan_in_fan_out=type(model.get_submodule(targets[0])).__name__ == "Conv1D")
    return get_peft_model(model, config)


# --- training -----------------------------------------------------------------------------------

def batch_loss(model: nn.Module, batch: dict, task: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean loss, correct-prediction count for seq-cls else None). causal-lm: next-token loss of
    every position; seq-cls: cross-entropy of the label."""
    if task == CAUSAL_LM:
        output = model(input_ids=batch["input_ids"], labels=batch["input_ids"], use_cache=False)
        return output.loss, None
    output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    return output.loss, (output.logits.argmax(-1) == batch["labels"]).sum()


@torch.no_grad()
def evaluate(model: nn.Module, splits: Splits, task: str, batch: int, max_batches: int | None = None,
             loss_fn=None, device: str = "cpu") -> dict:
    """Mean eval loss (token-weighted for causal-lm: all blocks have S tokens), perplexity for
    causal-lm, accuracy for seq-cls."""
    loss_fn = loss_fn or (lambda b: batch_loss(model, b, task))
    was_training = model.training
    model.eval()
    total, count, correct = 0.0, 0, 0
    for index, chunk in enumerate(splits.batches("eval", batch)):
        if max_batches is not None and index >= max_batches:
            break
        chunk = {k: v.to(device) for k, v in chunk.items()}
        loss, right = loss_fn(chunk)
        size = next(iter(chunk.values())).shape[0]
        total, count = total + float(loss) * size, count + size
        correct += 0 if right is None else int(right)
    model.train(was_training)
    result = {"loss": total / count}
    if task == CAUSAL_LM:
        result["perplexity"] = math.exp(result["loss"])
    else:
        result["accuracy"] = correct / count
    return result


def train(model: nn.Module, splits: Splits, settings: FinetuneSettings, *, loss_fn=None,
          progress: bool = True, log=print) -> list[dict]:
    """AdamW on the trainable parameters for `settings.steps` steps (cycling through shuffled
    training batches, a new seed per pass), evaluating every `eval_every` steps and at the end.
    `loss_fn(batch) -> (loss, correct)` defaults to `batch_loss`. Returns the history: one dict per
    evaluation with step, train_loss (mean since the previous evaluation), eval metrics, seconds."""
    from tqdm.auto import tqdm

    loss_fn = loss_fn or (lambda b: batch_loss(model, b, settings.task))
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise FinetuneError("nothing to train: no parameter requires grad")
    lr = settings.lr or DEFAULT_LR[settings.mode]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    history, losses, start = [], [], time.perf_counter()

    def batches():
        epoch = 0
        while True:
            yield from splits.batches("train", settings.batch, seed=settings.seed + epoch)
            epoch += 1

    def evaluation(step):
        metrics = evaluate(model, splits, settings.task, settings.batch, settings.eval_batches, loss_fn,
                           settings.device)
        entry = {"step": step, "train_loss": sum(losses) / len(losses) if losses else None,
                 **{f"eval_{k}": v for k, v in metrics.items()}, "seconds": time.perf_counter() - start}
        history.append(entry)
        losses.clear()
        shown = ", ".join(f"{k} {v:.4f}" for k, v in entry.items() if k not in ("step", "seconds") and v is not None)
        (bar.write if bar is not None else log)(f"[finetune] step {step}: {shown}")

    bar = None
    model.train()
    evaluation(0)
    bar = tqdm(total=settings.steps, desc=f"finetune ({settings.mode})", disable=not progress, dynamic_ncols=True)
    for step, batch in zip(range(1, settings.steps + 1), batches()):
        loss, _ = loss_fn({k: v.to(settings.device) for k, v in batch.items()})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        bar.update(1)
        if step % settings.eval_every == 0 or step == settings.steps:
            evaluation(step)
    bar.close()
    model.eval()
    return history


# --- the whole run ------------------------------------------------------------------------------

@dataclass
class FinetuneResult:
    output: str
    trainable_params: int
    history: list[dict]
    compression: dict | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def to_classifier(model: nn.Module, num_labels: int) -> nn.Module:
    """The family's *ForSequenceClassification on the same backbone weights (the head is new)."""
    import transformers

    config = model.config
    config.num_labels = num_labels
    if config.pad_token_id is None:  # decoders find each row's last token through it
        config.pad_token_id = config.eos_token_id if isinstance(config.eos_token_id, int) else 0
    classifier = transformers.AutoModelForSequenceClassification.from_config(config)
    classifier.base_model.load_state_dict(model.base_model.state_dict())
    return classifier.eval()


def save(model: nn.Module, output: str | Path, tokenizer=None, metadata: dict | None = None) -> list[str]:
    """HF save_pretrained without the compressed layers' tensors, their factors + layout JSON, the
    tokenizer, and finetune.json; returns the file names."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    layers = tsvd_common.tsvd_layers(model)
    model.save_pretrained(output, state_dict=tsvd_common.dense_state_dict(model) if layers else None)
    if layers:
        tsvd_common.save_factors(model, output)
    if tokenizer is not None:
        tokenizer.save_pretrained(output)
    if metadata is not None:
        (output / "finetune.json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    return sorted(p.name for p in output.iterdir())


def finetune(source: str, data: str, output: str, settings: FinetuneSettings, *, progress: bool = True,
             log=print) -> FinetuneResult:
    """Load `source`, compress (common/factors) or wrap with LoRA, train on `data`, save to `output`."""
    from . import finetune_data

    settings.check()
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    from . import models

    loaded = models.load(source)
    model, family = loaded.model, loaded.family
    if settings.task == CAUSAL_LM and family.kind != "decoder":
        raise FinetuneError(f"causal-lm needs a decoder model; {loaded.class_name} is an encoder")
    encode, tokenizer = finetune_data.load_tokenizer(source, model.config.vocab_size)
    pad_id = model.config.pad_token_id
    if pad_id is None:
        pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    splits = finetune_data.load_splits(data, settings.task, encode, settings.seq_len,
                                       eval_fraction=settings.eval_fraction, text_field=settings.text_field,
                                       label_field=settings.label_field, pad_token_id=pad_id, seed=settings.seed)
    if settings.task == SEQ_CLS:
        model.config.pad_token_id = pad_id
        if not (family.kind == "classifier" and model.config.num_labels == splits.num_labels):
            model = to_classifier(model, splits.num_labels)  # else: keep the classifier's trained head
    too_big = int(splits.train["input_ids"].max())
    if too_big >= model.config.vocab_size:
        raise FinetuneError(f"token id {too_big} outside the model's vocabulary ({model.config.vocab_size})")
    log(f"[finetune] {source}: {splits.train['input_ids'].shape[0]} train / {splits.eval['input_ids'].shape[0]} "
        f"eval examples of {settings.seq_len} tokens")

    compression = None
    if settings.mode == "lora":
        model = add_lora(model, family, settings)
    else:
        try:
            reports = compress_model(model, family, settings, log=log)
        except tsvd.TSVDConfigError as error:
            raise FinetuneError(str(error)) from None
        compression = {**tsvd_common.summary(reports), "layout": settings.resolved_layout(),
                       "layers": [r.as_dict() for r in reports]}
    trainable = set_trainable(model, settings.mode, settings.task)
    model.to(settings.device)
    log(f"[finetune] mode {settings.mode}: {trainable} trainable parameters")
    history = train(model, splits, settings, progress=progress, log=log)
    if settings.mode == "lora":
        model = model.merge_and_unload()
    model.to("cpu")
    seconds = time.perf_counter() - start
    metadata = {"source": source, "data": str(data), "settings": asdict(settings), "trainable_params": trainable,
                "compression": compression, "history": history, "seconds": seconds}
    save(model, output, tokenizer, metadata)
    log(f"[finetune] saved {output} ({seconds:.1f}s)")
    return FinetuneResult(str(output), trainable, history, compression, seconds)
