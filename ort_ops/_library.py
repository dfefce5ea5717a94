"""Where the op library is, and what it was built with."""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import json
import os
import sys
from pathlib import Path

_LIBRARY_NAME = "libortops.so"


def get_library_path() -> str:
    """Absolute path of the op library to pass to `SessionOptions.register_custom_ops_library`.

    The environment variable ORTOPS_LIBRARY overrides it (a custom build)."""
    override = os.environ.get("ORTOPS_LIBRARY")
    if override:
        if not Path(override).is_file():
            raise FileNotFoundError(f"ORTOPS_LIBRARY={override} is not a file")
        return str(Path(override).resolve())
    for folder in _candidate_folders():
        candidate = folder / _LIBRARY_NAME
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"{_LIBRARY_NAME} was not found next to the ort_ops package; build it with "
        "`pip install .` (or set ORTOPS_LIBRARY to a built library)")


def _candidate_folders():
    yield Path(__file__).resolve().parent
    # Editable installs keep built files apart from the sources: find them through the compiled
    # Python module that the same build installs beside the library.
    spec = importlib.util.find_spec("ort_ops._cpu_kernels")
    if spec is not None and spec.origin:
        yield Path(spec.origin).resolve().parent
    # Imported from a source checkout while the built package is installed elsewhere on the path.
    for entry in sys.path:
        if entry:
            yield Path(entry) / "ort_ops"


@functools.lru_cache(maxsize=None)
def _build_info_of(path: str) -> dict:
    lib = ctypes.CDLL(path)
    lib.OrtOpsBuildInfo.restype = ctypes.c_char_p
    return json.loads(lib.OrtOpsBuildInfo().decode())


def build_info() -> dict:
    """What the library was built with, read from the library itself: version, ort_api_version
    (of the headers), ort_headers_from, cuda (bool), cuda_version, cuda_architectures, compiler."""
    path = get_library_path()
    info = dict(_build_info_of(path))
    info["library"] = path
    return info
