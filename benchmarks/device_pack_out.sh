#!/usr/bin/env bash
# Packs everything under $OUT into one archive (the device tool brings back at most 8 files):
# $OUT/all.tgz, plus $OUT/summary.txt if the caller wrote one.
set -u
out=${OUT:-/tmp/out}
cd "$out" || exit 0
files=$(ls -A | grep -vx -e all.tgz -e summary.txt)
[ -z "$files" ] && exit 0
tar czf all.tgz $files && rm -rf $files
