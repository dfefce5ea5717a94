"""An onnxruntime.InferenceSession with the op library registered."""
from __future__ import annotations

import os
from typing import Any, Sequence

from ._library import get_library_path

_REGISTERED_KEY = "ortops.library_registered"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:  # neither onnxruntime nor onnxruntime-gpu
        raise ImportError(
            "ort_ops needs ONNX Runtime: pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA), "
            "not both") from err
    return onnxruntime


def register_library(sess_options) -> Any:
    """Registers the op library on `sess_options` once (ORT rejects a second registration on the
    same options) and returns them."""
    try:
        if sess_options.get_session_config_entry(_REGISTERED_KEY) == "1":
            return sess_options
    except Exception:  # onnxruntime raises when the entry is absent
        pass
    sess_options.register_custom_ops_library(get_library_path())
    sess_options.add_session_config_entry(_REGISTERED_KEY, "1")
    return sess_options


def default_providers() -> list[str]:
    """CUDA EP first when this onnxruntime has it, then the CPU EP."""
    ort = _onnxruntime()
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def InferenceSession(model, sess_options=None, providers: Sequence | None = None, provider_options=None,
                     **kwargs):
    """onnxruntime.InferenceSession(model, ...) with the ort-ops library registered.

    model: a path, serialized bytes, or an onnx.ModelProto. providers=None picks the CUDA EP when
    this onnxruntime build has it (onnxruntime-gpu), else the CPU EP."""
    ort = _onnxruntime()
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif isinstance(model, os.PathLike):
        model = os.fspath(model)
    so = register_library(sess_options if sess_options is not None else ort.SessionOptions())
    if providers is None:
        providers = default_providers()
    return ort.InferenceSession(model, sess_options=so, providers=list(providers),
                                provider_options=provider_options, **kwargs)
