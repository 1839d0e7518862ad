#!/usr/bin/env bash
# Copies what rnnkit needs besides LibTorch from this machine's Debian packages into
# third_party/ (ignored by git), so that a machine that has only LibTorch (a GPU machine with
# CUDA PyTorch 2.x) can build rnnkit with -DRNNKIT_USE_VENDORED=ON:
#   include/fmt, include/cxxopts.hpp, include/toml++, include/nlohmann   (header-only)
#   googletest/                                                        (sources, from libgtest-dev)
#   include/utf8proc.h, lib/libutf8proc.a        (utf8proc, static, x86-64 glibc: libutf8proc-dev)
#   include/gloo                                  (only with --with-gloo: Gloo's headers, for a
#                                                  LibTorch without them; they must match the Gloo
#                                                  that LibTorch was built with)
#   VERSIONS.txt                                  (the Debian package versions copied)
# zlib's headers (zlib1g-dev, zlib-devel) are expected on the target; every distribution has them.
#   scripts/vendor_deps.sh [--with-gloo]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/third_party"
with_gloo=0
[[ "${1:-}" == "--with-gloo" ]] && with_gloo=1
"$root/scripts/setup.sh"
rm -rf "$out" && mkdir -p "$out/include"
cp -r /usr/include/fmt "$out/include/"
cp /usr/include/cxxopts.hpp "$out/include/"
cp -r /usr/include/toml++ "$out/include/"
cp -r /usr/include/nlohmann "$out/include/"
cp -r /usr/src/googletest "$out/googletest"
mkdir -p "$out/lib"
cp /usr/include/utf8proc.h "$out/include/"
cp /usr/lib/x86_64-linux-gnu/libutf8proc.a "$out/lib/"
packages=(libfmt-dev libcxxopts-dev libtomlplusplus-dev nlohmann-json3-dev libgtest-dev libutf8proc-dev)
if ((with_gloo)); then
  cp -r /usr/include/gloo "$out/include/"
  packages+=(libgloo-dev)
fi
for p in "${packages[@]}"; do dpkg-query -W -f='${Package} ${Version}\n' "$p"; done > "$out/VERSIONS.txt"
echo "vendor_deps: $(du -sh "$out" | cut -f1) in $out; configure with -DRNNKIT_USE_VENDORED=ON" >&2
