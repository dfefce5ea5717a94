"""FastDiv (the multiply-high division of the two-stage TSVD CUDA kernels) against integer division,
on the host: compiled with nvcc when it is installed (no GPU needed), skipped otherwise."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_fastdiv_matches_integer_division(tmp_path):
    exe = tmp_path / "fastdiv_check"
    subprocess.run(["nvcc", "-std=c++17", "-O2", "-I", str(ROOT / "ort_ops" / "csrc"),
                    str(ROOT / "tests" / "cuda_host" / "fastdiv_check.cu"), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("0 of "), out.stdout
