#!/usr/bin/env bash
# The main job on a fresh machine: set-up, then export the built-in longformer-tiny model (every
# self-attention becomes MultigrainAttention, every Linear a TSVDMatMul at 2x compression) with
# validation against PyTorch, then an inference run of the exported model in ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
mkdir -p out
python -m exporter longformer-tiny --compress 2 --output out/longformer-tiny.onnx
python scripts/infer.py out/longformer-tiny.onnx --batch 2 --seq-len 300
