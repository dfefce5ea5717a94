#!/usr/bin/env bash
# One device call for a band-kernel change: the attention kernel tests and compute-sanitizer on
# the default shim (.device/shims/libattention_shim.so), the headline rows once per shim variant
# in .device/shims (libattention_shim*.so: A/B in one run), and the default shim's ncu profile.
# Logs in $OUT.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
SANITIZE_TOOLS="${SANITIZE_TOOLS:-memcheck racecheck}" OUT="$out" bash tests/gpu/device_attention.sh tests sanitize quick
OUT="$out" bash benchmarks/device_ncu_band.sh
