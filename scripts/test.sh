#!/usr/bin/env bash
# Set-up (if needed) and the whole test suite. GPU tests skip themselves without a CUDA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q tests "$@"
