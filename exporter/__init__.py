"""ort-ops exporter: Hugging Face models -> ONNX with com.ortops custom ops.

Entry points: `python -m exporter` / `ortops-export` (exporter.cli:main). Library modules:
`tsvd` (tiled SVD, TSVDLinear), `torch_ops` (the torch custom ops), `schemas` (the ops' ONNX
contract), `families` (supported HF classes).
"""
