"""The ONNX contract of the two custom ops, written down once.

Everything that names an op input, attribute or the domain reads it from here: the torch
translation (`onnx_translation.py`), the ONNX function bodies (`onnx_functions.py`), the schema
registration that onnxscript needs, and the tables in docs/exporter.md (`python -m exporter.schemas`
prints them). The semantics themselves are in the project's ops spec.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "com.ortops"
DOMAIN_VERSION = 1
FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")
INDEX_TYPES = ("tensor(int32)", "tensor(int64)")


@dataclass(frozen=True)
class OpInput:
    name: str
    shape: str
    doc: str
    type_var: str = "T"
    optional: bool = False


@dataclass(frozen=True)
class OpAttribute:
    name: str
    kind: str  # "int" or "float"
    doc: str
    required: bool


@dataclass(frozen=True)
class OpSchema:
    name: str
    doc: str
    inputs: tuple[OpInput, ...]
    attributes: tuple[OpAttribute, ...]
    output_shape: str
    domain: str = DOMAIN
    version: int = DOMAIN_VERSION

    @property
    def qualified_name(self) -> str:
        return f"{self.domain}::{self.name}"

    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]


TSVD_MATMUL = OpSchema(
    name="TSVDMatMul",
    doc="Y = A · W̃ (+ bias); W̃ (K×N) stored per tile (i, j) as U[i,j] · V[i,j].",
    inputs=(
        OpInput("A", "[..., K]", "activations, any number of leading dims"),
        OpInput("U", "[Tk, Tn, tk, r] or [1, 1, tk, r]", "left factors (second form: shared by all tiles)"),
        OpInput("V", "[Tk, Tn, r, tn] or [1, 1, r, tn]", "right factors (second form: TSVD-common)"),
        OpInput("bias", "[N]", "added to every output row", optional=True),
    ),
    attributes=(
        OpAttribute("out_features", "int", "N; default Tn·tn (partial last tile column when smaller)", False),
    ),
    output_shape="[..., N]",
)

MULTIGRAIN_ATTENTION = OpSchema(
    name="MultigrainAttention",
    doc="HF LongformerSelfAttention (eval) for any S; mask 0 = padding, 1 = local, 2 = global.",
    inputs=(
        OpInput("query", "[B, S, H·D]", "local query projection, not yet scaled"),
        OpInput("key", "[B, S, H·D]", "local key projection"),
        OpInput("value", "[B, S, H·D]", "local value projection"),
        OpInput("attention_mask", "[B, S]", "0 = padding, 1 = local, 2 = global", type_var="I"),
        OpInput("global_query", "[B, S, H·D]", "HF query_global projection", optional=True),
        OpInput("global_key", "[B, S, H·D]", "HF key_global projection", optional=True),
        OpInput("global_value", "[B, S, H·D]", "HF value_global projection", optional=True),
    ),
    attributes=(
        OpAttribute("num_heads", "int", "H", True),
        OpAttribute("window", "int", "one-sided window w (HF attention_window / 2)", True),
        OpAttribute("scale", "float", "score scale; default 1/√D", False),
    ),
    output_shape="[B, S, H·D]",
)

ALL_OPS = (TSVD_MATMUL, MULTIGRAIN_ATTENTION)


def _to_onnx_schema(schema: OpSchema):
    from onnx import defs

    formal = defs.OpSchema.FormalParameter
    option = defs.OpSchema.FormalParameterOption
    attr_types = {"int": defs.OpSchema.AttrType.INT, "float": defs.OpSchema.AttrType.FLOAT}
    type_vars = {i.type_var for i in schema.inputs}
    constraints = [("T", list(FLOAT_TYPES), "float types")]
    if "I" in type_vars:
        constraints.append(("I", list(INDEX_TYPES), "mask index types"))
    return defs.OpSchema(
        schema.name,
        schema.domain,
        schema.version,
        schema.doc,
        inputs=[
            formal(i.name, i.type_var, i.doc, param_option=option.Optional if i.optional else option.Single)
            for i in schema.inputs
        ],
        outputs=[formal("Y", "T", schema.output_shape)],
        type_constraints=constraints,
        attributes=[
            defs.OpSchema.Attribute(a.name, attr_types[a.kind], a.doc, required=a.required)
            for a in schema.attributes
        ],
    )


def register_onnx_schemas() -> None:
    """Registers both schemas with onnx.defs (idempotent): onnxscript looks ops up there."""
    from onnx import defs

    for schema in ALL_OPS:
        if not defs.has(schema.name, schema.domain):
            defs.register_schema(_to_onnx_schema(schema))


def markdown(schema: OpSchema) -> str:
    """The op's inputs and attributes as the markdown tables used in docs/exporter.md."""
    lines = [f"### `{schema.qualified_name}` (version {schema.version})", "", schema.doc, "",
             "| input | shape | note |", "|---|---|---|"]
    for i in schema.inputs:
        suffix = " (optional)" if i.optional else ""
        lines.append(f"| {i.name}{suffix} | {i.shape} | {i.doc} |")
    lines += ["", "| attribute | type | note |", "|---|---|---|"]
    for a in schema.attributes:
        suffix = "" if a.required else " (optional)"
        lines.append(f"| {a.name}{suffix} | {a.kind} | {a.doc} |")
    lines += ["", f"Output `Y`: {schema.output_shape}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n".join(markdown(s) for s in ALL_OPS))
