"""The export pipeline once the input is known good: compress, capture, check, write, validate.

Report (printed, written as <output>.report.json, and — without the validation part, which
comes after — stored in the ONNX metadata_props under `ortops.report`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import compress, inputs, onnx_export, schemas, validate
from .export_command import write_atomically, write_json
from .inputs import GraphModule

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
REPORT_KEY = "ortops.report"


def report_path(output: Path) -> Path:
    return output.with_name(output.stem + ".report.json")


def export_and_validate(args, loaded, plan, output: Path, atol: float, rtol: float, step, log) -> bool:
    model, family = loaded.model.to(args.device), loaded.family
    vocab = model.config.vocab_size
    dynamic = args.dynamic_batch, args.dynamic_seq
    val_batch = args.validate_batch or (args.batch + 1 if dynamic[0] else args.batch)
    val_seq = args.validate_seq_len or (args.seq_len + 13 if dynamic[1] else args.seq_len)
    token_types = inputs.token_type_count(model, family)  # > 0: token_type_ids is a graph input
    feeds = inputs.make_inputs(family, vocab, val_batch, val_seq, seed=args.seed + 1, device=args.device,
                               token_types=token_types)
    report = {
        "source": loaded.source, "class": loaded.class_name, "family": family.name,
        "dtype": args.dtype, "opset": args.opset,
        "dynamic_axes": {"batch": dynamic[0], "sequence": dynamic[1]},
        "export_example": {"batch": args.batch, "seq_len": args.seq_len},
        "inputs": inputs.input_names(family, token_types),
    }

    if plan.layers:
        with torch.no_grad(), family.reference_patches(model):
            original = GraphModule(model, family)(**feeds).float()
        with step(f"tiled SVD of {len(plan.layers)} layers"):
            layers = compress.apply(model, plan, log=log)
        with torch.no_grad(), family.reference_patches(model):
            compressed = GraphModule(model, family)(**feeds).float()
        fidelity = compress.fidelity(original, compressed, feeds[inputs.ATTENTION_MASK], family.kind)
        del original, compressed
        report["compression"] = {**compress.summary(layers), "layers": [r.as_dict() for r in layers],
                                 "fidelity_vs_uncompressed": fidelity}
        log(f"[exporter] compression: {report['compression']['ratio']}x on {len(layers)} layers; "
            f"{fidelity['metric']} vs uncompressed: mean {fidelity['mean']:.6f}, min {fidelity['min']:.6f}")

    model.to(TORCH_DTYPES[args.dtype])
    example = inputs.make_inputs(family, vocab, args.batch, args.seq_len, seed=args.seed, device=args.device,
                                 token_types=token_types)
    settings = onnx_export.ExportSettings(args.opset, *dynamic)
    with step("ONNX export (torch dynamo)"):
        proto = onnx_export.export_graph(model, family, example, settings, verbose=args.verbose)
    report["custom_nodes"] = onnx_export.custom_nodes(proto)
    report["domain"] = {"name": schemas.DOMAIN, "version": schemas.DOMAIN_VERSION}
    onnx_export.set_metadata(proto, {REPORT_KEY: json.dumps(report)})

    def write(tmp_model_path: str) -> list[str]:
        files = onnx_export.save(proto, tmp_model_path)
        with step("checking (onnx.checker full_check, shape inference)"):
            report["output_shape"] = onnx_export.check(tmp_model_path, family.output_name)
        tmp_report = report_path(Path(tmp_model_path))
        write_json(tmp_report, report)
        return files + [str(tmp_report)]

    written = write_atomically(output, write)
    del proto
    log(f"[exporter] wrote {', '.join(str(p) for p in written)}")
    log(f"[exporter] custom nodes: {report['custom_nodes'] or 'none'}; output shape {report['output_shape']}")
    if not args.validate:
        return True

    with step(f"validation at B={val_batch} S={val_seq}"):
        try:
            with family.reference_patches(model):
                result = validate.validate(str(output), GraphModule(model, family).eval(), feeds,
                                           atol=atol, rtol=rtol, device=args.device)
        except Exception as error:  # a runtime that cannot run the model is a failed validation
            log(f"[exporter] validation could not run: {type(error).__name__}: {str(error).splitlines()[0]}")
            if args.dtype == "bfloat16" and args.device == "cpu" and "NOT_IMPLEMENTED" in str(error):
                # ort_ops' own kernels take bfloat16 on the CPU; onnxruntime's CPU EP lacks some
                # standard ops in bfloat16, so such a model validates only on the GPU.
                log("[exporter] hint: onnxruntime's CPU EP has no bfloat16 kernel for a standard op of this model; "
                    "validate with --device cuda (onnxruntime-gpu), or export float16/float32, or pass --no-validate")
            report["validation"] = {"passed": False, "error": str(error).splitlines()[0]}
            write_json(report_path(output), report)
            return False
    print(result.line(), flush=True)
    report["validation"] = result.as_dict()
    write_json(report_path(output), report)
    return result.passed
