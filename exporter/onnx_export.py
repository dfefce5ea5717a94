"""Graph capture and ONNX assembly: dynamo export, function bodies, metadata, checks.

Path: `torch.onnx.export(..., dynamo=True)` with the torch.library custom ops translated by
`onnx_translation.TRANSLATION_TABLE`; then the ONNX function bodies are appended so stock
onnxruntime can run the model, and the report goes into metadata_props.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass

import onnx
import torch

from . import onnx_functions, onnx_translation, schemas
from .families import Family
from .inputs import GraphModule, input_names, token_type_count

MIN_OPSET, MAX_OPSET = 18, 23
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's hard limit is 2 GiB per file


@dataclass
class ExportSettings:
    opset: int = 20
    dynamic_batch: bool = True
    dynamic_seq: bool = True


def _dynamic_shapes(names: list[str], settings: ExportSettings) -> dict:
    axes = {}
    if settings.dynamic_batch:
        axes[0] = torch.export.Dim("batch")
    if settings.dynamic_seq:
        axes[1] = torch.export.Dim("sequence")
    return {name: dict(axes) for name in names}


@contextlib.contextmanager
def _quiet(enabled: bool):
    """Hides the exporter's progress prints, warnings and registry log lines (they are noise to
    a CLI user; `--verbose` shows them)."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _keep_module_attributes(model: torch.nn.Module):
    """torch.export runs the forward on FakeTensors. A module that caches a tensor as a plain
    attribute on its first call (HF longrope's `long_inv_freq`, Phi-3 128k / Phi-3.5) would keep a
    FakeTensor, and later eager runs of the same model (the validation reference) silently compute
    wrong values with it. Any attribute the capture left as a FakeTensor is put back as it was
    (removed if new: the module recomputes it on its next call)."""
    from torch._subclasses.fake_tensor import FakeTensor

    before = {id(m): dict(vars(m)) for m in model.modules()}
    try:
        yield
    finally:
        for module in model.modules():
            old = before.get(id(module), {})
            for key, value in list(vars(module).items()):
                if isinstance(value, FakeTensor):
                    if key in old and not isinstance(old[key], FakeTensor):
                        setattr(module, key, old[key])
                    else:
                        delattr(module, key)


def _optimize(program) -> None:
    """What `optimize=True` does (constant folding, dead code), minus onnxscript's opset-23
    fusions: its RotaryEmbedding fusion writes cos/sin caches of batch 1 ([1, S, D/2] from HF's
    position_ids), which ONNX's RotaryEmbedding(23) and onnxruntime reject at any batch size."""
    import onnxscript.optimizer

    onnxscript.optimizer.optimize_ir(program.model)


def export_graph(model: torch.nn.Module, family: Family, example: dict[str, torch.Tensor],
                 settings: ExportSettings, *, verbose: bool = False) -> onnx.ModelProto:
    """Captures the model (with its family's export rewrites) and returns the ONNX model,
    function bodies included. The exporter's own chatter is swallowed unless `verbose`.
    `example` must hold exactly the graph's inputs (make_inputs with token_type_count's types)."""
    wrapper = GraphModule(model, family).eval()
    names = input_names(family, token_type_count(model, family))
    if list(example) != names:  # the capture would name the inputs wrongly or drop one
        raise ValueError(f"export example inputs {list(example)} != the graph's {names}")
    with _keep_module_attributes(model), family.export_patches(model), _quiet(not verbose), torch.no_grad():
        program = torch.onnx.export(
            wrapper, args=(), kwargs=example, dynamo=True,
            custom_translation_table=onnx_translation.TRANSLATION_TABLE,
            dynamic_shapes=_dynamic_shapes(names, settings),
            input_names=names, output_names=[family.output_name],
            opset_version=settings.opset, optimize=False, verbose=verbose,
        )
        _optimize(program)
    proto = program.model_proto
    used = {n.op_type for n in proto.graph.node if n.domain == schemas.DOMAIN}
    proto.functions.extend(f for f in onnx_functions.function_protos(settings.opset) if f.name in used)
    return proto


def custom_nodes(proto: onnx.ModelProto) -> dict[str, int]:
    """Count of `com.ortops` nodes by op type."""
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        if node.domain == schemas.DOMAIN:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def set_metadata(proto: onnx.ModelProto, entries: dict[str, str]) -> None:
    for key, value in entries.items():
        prop = next((p for p in proto.metadata_props if p.key == key), None) or proto.metadata_props.add()
        prop.key, prop.value = key, value


def save(proto: onnx.ModelProto, path: str) -> list[str]:
    """Writes the model (weights in `<name>.data` beside it when too big for one file);
    returns the files written."""
    if proto.ByteSize() < EXTERNAL_DATA_BYTES:
        onnx.save_model(proto, path)
        return [path]
    location = os.path.basename(path) + ".data"
    onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location=location)
    return [path, os.path.join(os.path.dirname(path), location)]


def check(path: str, output_name: str) -> list:
    """onnx.checker full check, then strict shape inference; returns the output's inferred dims
    (ints or symbolic names). Raises when the output has no inferred shape."""
    onnx.checker.check_model(path, full_check=True)
    inferred_path = path + ".inferred"
    try:
        onnx.shape_inference.infer_shapes_path(path, inferred_path, strict_mode=True)
        inferred = onnx.load(inferred_path, load_external_data=False)
    finally:
        if os.path.exists(inferred_path):
            os.remove(inferred_path)
    output = next(o for o in inferred.graph.output if o.name == output_name)
    dims = output.type.tensor_type.shape.dim
    if not output.type.tensor_type.HasField("shape") or not dims:
        raise RuntimeError(f"shape inference gave no shape for output {output_name!r}")
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
