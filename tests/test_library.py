"""The op library as a product: where it is, what it was built with, how it loads (plain .so,
two exported symbols, no libpython), registration many times from many threads, output shapes
known to ORT, concurrent runs."""
import ctypes
import os
import subprocess
import threading

import numpy as np
import onnxruntime as ort
import pytest

from onnx_graphs import attention_inputs, single_node_model, tsvd_inputs

import ort_ops


def test_library_path_and_build_info():
    path = ort_ops.get_library_path()
    assert os.path.isfile(path) and path.endswith("libortops.so")
    info = ort_ops.build_info()
    assert info["library"] == path
    assert isinstance(info["cuda"], bool)
    assert info["ort_api_version"] >= 17
    assert info["ort_api_version"] <= int(ort.get_version_string().split(".")[1]), \
        "the library must not be built against headers newer than the runtime"
    if info["cuda"]:
        assert "90" in info["cuda_architectures"] and "80" in info["cuda_architectures"]


def test_library_override_by_environment(monkeypatch, tmp_path):
    real = ort_ops.get_library_path()
    monkeypatch.setenv("ORTOPS_LIBRARY", real)
    assert ort_ops.get_library_path() == real
    monkeypatch.setenv("ORTOPS_LIBRARY", str(tmp_path / "missing.so"))
    with pytest.raises(FileNotFoundError, match="ORTOPS_LIBRARY"):
        ort_ops.get_library_path()


def test_plain_shared_library_without_libpython():
    path = ort_ops.get_library_path()
    needed = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    assert "libpython" not in needed and "libonnxruntime" not in needed
    symbols = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    exported = sorted(line.split()[-1] for line in symbols.splitlines() if " T " in line)
    assert exported == ["OrtOpsBuildInfo", "RegisterCustomOps"]
    lib = ctypes.CDLL(path)  # loads without ONNX Runtime in the process's symbol table too
    assert lib.RegisterCustomOps


def tsvd_model_and_feeds(rng):
    A = rng.standard_normal((4, 64)).astype(np.float32)
    U = rng.standard_normal((2, 2, 32, 4)).astype(np.float32)
    V = rng.standard_normal((2, 2, 4, 16)).astype(np.float32)
    return single_node_model("TSVDMatMul", tsvd_inputs(A, U, V), {}), {"A": A, "U": U, "V": V}


def test_register_many_times_from_many_threads(rng):
    model, feeds = tsvd_model_and_feeds(rng)
    data = model.SerializeToString()
    results, errors = [], []

    def worker():
        try:
            for _ in range(5):
                so = ort.SessionOptions()
                so.register_custom_ops_library(ort_ops.get_library_path())
                sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
                results.append(sess.run(None, feeds)[0])
        except Exception as err:  # collected, asserted below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:1]
    assert len(results) == 40
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_register_library_is_idempotent_on_one_options_object(rng):
    model, feeds = tsvd_model_and_feeds(rng)
    so = ort.SessionOptions()
    ort_ops.register_library(so)
    ort_ops.register_library(so)  # a second plain registration would make ORT fail
    sess = ort_ops.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
    assert sess.run(None, feeds)[0].shape == (4, 32)


def test_default_providers_follow_the_installed_onnxruntime():
    from ort_ops._session import default_providers
    providers = default_providers()
    assert providers[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in providers) == ("CUDAExecutionProvider" in ort.get_available_providers())


def test_output_shapes_are_inferred_for_ort(rng):
    A = rng.standard_normal((2, 3, 100)).astype(np.float32)
    U = rng.standard_normal((4, 5, 32, 4)).astype(np.float32)
    V = rng.standard_normal((4, 5, 4, 16)).astype(np.float32)
    model = single_node_model("TSVDMatMul", tsvd_inputs(A, U, V), {"out_features": 70})
    assert ort_ops.InferenceSession(model).get_outputs()[0].shape == ["A_0", "A_1", 70]
    model = single_node_model("TSVDMatMul", tsvd_inputs(A, U, V), {}, symbolic=False)
    assert ort_ops.InferenceSession(model).get_outputs()[0].shape == [2, 3, 80]
    q = rng.standard_normal((2, 9, 8)).astype(np.float32)
    model = single_node_model("MultigrainAttention", attention_inputs(q, q, q, np.ones((2, 9), np.int64)),
                              {"num_heads": 2, "window": 1})
    assert ort_ops.InferenceSession(model).get_outputs()[0].shape == ["query_0", "query_1", "query_2"]


def test_concurrent_runs_share_one_kernel(rng):
    B, S, E = 2, 300, 32
    q, k, v = (rng.standard_normal((B, S, E)).astype(np.float32) for _ in range(3))
    mask = np.ones((B, S), np.int64)
    mask[:, [0, 150]] = 2
    model = single_node_model("MultigrainAttention", attention_inputs(q, k, v, mask), {"num_heads": 4, "window": 16})
    sess = ort_ops.InferenceSession(model, providers=["CPUExecutionProvider"])
    feeds = {"query": q, "key": k, "value": v, "attention_mask": mask}
    expected = sess.run(None, feeds)[0]
    outs = []
    threads = [threading.Thread(target=lambda: outs.append(sess.run(None, feeds)[0])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outs) == 8
    for o in outs:
        np.testing.assert_array_equal(o, expected)


def test_empty_batch(rng):
    A = np.zeros((0, 64), np.float32)
    U = rng.standard_normal((2, 2, 32, 4)).astype(np.float32)
    V = rng.standard_normal((2, 2, 4, 16)).astype(np.float32)
    sess = ort_ops.InferenceSession(single_node_model("TSVDMatMul", tsvd_inputs(A, U, V), {}))
    assert sess.run(None, {"A": A, "U": U, "V": V})[0].shape == (0, 32)
