"""ort-ops: ONNX Runtime custom ops for sparse attention and tiled-SVD low-rank matmul.

    import ort_ops
    sess = ort_ops.InferenceSession("model.onnx")          # library registered, CUDA EP first
    so.register_custom_ops_library(ort_ops.get_library_path())  # or register it yourself

The op library (libortops.so) is plain C++/CUDA without libpython: C++ apps and Triton Inference
Server load the file that get_library_path() names. Ops (domain com.ortops): TSVDMatMul and
MultigrainAttention, documented in docs/ops.md.
"""
from ._library import build_info, get_library_path
from ._session import InferenceSession, register_library

DOMAIN = "com.ortops"

__all__ = ["DOMAIN", "InferenceSession", "build_info", "get_library_path", "register_library"]
__version__ = "0.1.0"
