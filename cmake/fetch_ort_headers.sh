#!/usr/bin/env bash
# Fallback when no ONNX Runtime headers are installed: fetch Debian's libonnxruntime-dev package
# (C/C++ API headers, no library) into a private cache, without touching the system's apt state.
# The mirror is read from this machine's own apt sources; only the suite is chosen here.
# Usage: fetch_ort_headers.sh DEST   -> DEST/include/onnxruntime/onnxruntime_c_api.h
set -euo pipefail
dest=${1:?usage: fetch_ort_headers.sh DEST}
suite=${ORTOPS_DEBIAN_SUITE:-trixie}
package=${ORTOPS_DEBIAN_PACKAGE:-libonnxruntime-dev}
if [ -f "$dest/include/onnxruntime/onnxruntime_c_api.h" ]; then exit 0; fi
command -v apt-get >/dev/null || { echo "fetch_ort_headers: apt-get not found; set ONNXRUNTIME_ROOT to an ONNX Runtime install" >&2; exit 1; }

mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "fetch_ort_headers: no Debian mirror in this machine's apt sources; set ONNXRUNTIME_ROOT" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
opt=""; [ -f "$keyring" ] && opt="[signed-by=$keyring] "
echo "deb ${opt}${mirror} ${suite} main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
          -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
echo "fetch_ort_headers: downloading $package ($suite) for the ONNX Runtime C/C++ API headers" >&2
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$work" && apt-get "${apt_opts[@]}" -qq download "$package" >&2)
mkdir -p "$work/x"
dpkg -x "$work"/${package}_*.deb "$work/x"
mkdir -p "$dest/include"
rm -rf "$dest/include/onnxruntime"
cp -r "$work/x/usr/include/onnxruntime" "$dest/include/onnxruntime"
ls "$work"/${package}_*.deb | xargs -n1 basename > "$dest/SOURCE_PACKAGE"
echo "fetch_ort_headers: headers in $dest/include/onnxruntime" >&2
