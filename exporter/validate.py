"""Validation: the exported model in onnxruntime against the PyTorch model, same weights.

The runtime is `ort_ops.InferenceSession` (kernel library registered) when `ort_ops` imports,
otherwise stock onnxruntime, which runs the ONNX function bodies. A profiling run records which
op types actually executed, so the report says whether the library's kernels ran.
The feeds are inputs.make_inputs': where the graph takes token_type_ids they are random and
non-zero, so a graph that drops the segment embeddings fails.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
import torch

from . import schemas
from .inputs import TOKEN_TYPE_IDS

# (atol, rtol) per dtype: pass iff |ort − torch| ≤ atol + rtol·|torch| everywhere (numpy.allclose)
DEFAULT_TOLERANCE = {"float32": (1e-4, 1e-4), "float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2)}


@dataclass
class ValidationResult:
    runtime: str
    batch: int
    seq_len: int
    max_abs: float
    max_rel: float  # max_abs / max |torch|
    atol: float
    rtol: float
    passed: bool
    custom_kernels_ran: bool
    first_bad_index: list | None
    nonfinite: int

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        where = "" if self.first_bad_index is None else f" first bad index {self.first_bad_index}"
        return (f"validation {verdict}: B={self.batch} S={self.seq_len} max abs {self.max_abs:.3e}"
                f" max rel {self.max_rel:.3e} (atol {self.atol:g}, rtol {self.rtol:g}) on {self.runtime}"
                f"; custom kernels ran: {self.custom_kernels_ran}{where}")


def _providers(device: str) -> list[str]:
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]


def make_session(path: str, device: str, make_options=None):
    """(session, runtime description). With ort_ops installed its kernels run; should the library
    reject the model (a build or runtime mismatch), stock onnxruntime runs the ONNX function bodies
    instead, and the description says why (then "custom kernels ran" is False).
    `make_options()` gives fresh SessionOptions: ort_ops registers its library on the object."""
    import onnxruntime

    make_options = make_options or onnxruntime.SessionOptions

    fallback_reason = "ort_ops not installed"
    try:
        import ort_ops
    except ImportError:
        ort_ops = None
    if ort_ops is not None:
        try:
            session = ort_ops.InferenceSession(path, providers=_providers(device), sess_options=make_options())
            return session, "ort_ops library kernels"
        except Exception as error:  # onnxruntime raises several unrelated types here
            fallback_reason = "ort_ops rejected the model: " + str(error).splitlines()[0][-160:]
    session = onnxruntime.InferenceSession(path, sess_options=make_options(), providers=_providers(device))
    return session, f"stock onnxruntime with ONNX function bodies ({fallback_reason})"


def run_onnx(path: str, feeds: dict[str, np.ndarray], device: str) -> tuple[np.ndarray, str, set[str]]:
    """Runs once with profiling; returns (first output, runtime description, op types executed)."""
    import onnxruntime

    with tempfile.TemporaryDirectory() as profile_dir:
        def profiling_options():
            options = onnxruntime.SessionOptions()
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(profile_dir, "profile")
            options.log_severity_level = 3  # a rejected model is reported by make_session
            return options

        session, runtime = make_session(path, device, profiling_options)
        output = session.run(None, feeds)[0]
        profile = session.end_profiling()  # this session's file (a rejected one may leave another)
        with open(profile) as f:
            op_types = {e["args"]["op_name"] for e in json.load(f) if "op_name" in e.get("args", {})}
    return output, runtime, op_types


def compare(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> dict:
    if actual.shape != expected.shape:  # broadcasting would compare the wrong elements
        raise ValueError(f"onnxruntime output shape {list(actual.shape)} != PyTorch's {list(expected.shape)}")
    actual = actual.astype(np.float64)
    expected = expected.astype(np.float64)
    diff = np.abs(actual - expected)
    nonfinite = int((~np.isfinite(actual)).sum())
    bad = ~(diff <= atol + rtol * np.abs(expected))  # NaN counts as bad
    scale = float(np.abs(expected).max()) or 1.0
    max_abs = float(np.nanmax(diff)) if diff.size else 0.0
    first_bad = [int(i) for i in np.argwhere(bad)[0]] if bad.any() else None
    return dict(max_abs=max_abs, max_rel=max_abs / scale, passed=not bad.any(), first_bad_index=first_bad,
                nonfinite=nonfinite)


def validate(path: str, reference: torch.nn.Module, feeds: dict[str, torch.Tensor], *, atol: float,
             rtol: float, device: str) -> ValidationResult:
    """`reference` maps the feeds (by name) to the output tensor, in PyTorch eager."""
    if TOKEN_TYPE_IDS in feeds and not feeds[TOKEN_TYPE_IDS].any():  # HF's default: proves nothing
        raise ValueError("token_type_ids are all zero: the validation would not see the segment embeddings")
    with torch.no_grad():
        expected = reference(**feeds).float().cpu().numpy()
    output, runtime, op_types = run_onnx(path, {k: v.cpu().numpy() for k, v in feeds.items()}, device)
    custom = {s.name for s in schemas.ALL_OPS}
    batch, seq_len = next(iter(feeds.values())).shape
    return ValidationResult(
        runtime=runtime, batch=batch, seq_len=seq_len, atol=atol, rtol=rtol,
        custom_kernels_ran=bool(op_types & custom),
        **compare(output.astype(np.float32), expected, atol, rtol),
    )
