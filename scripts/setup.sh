#!/usr/bin/env bash
# Installs what rnnkit needs to build, test and run, from Debian 12 packages. Idempotent: it
# asks apt only for the packages that are missing, and does nothing when all are there.
#   scripts/setup.sh            build, test and app dependencies
#   scripts/setup.sh --python   (kept for old instructions: python3-torch is now always installed)
set -euo pipefail

packages=(
  cmake ninja-build g++            # toolchain (CMake >= 3.25: Debian 12 has 3.25)
  clang libclang-rt-14-dev         # the sanitizer and libFuzzer build (scripts/sanitize.sh)
  clang-format                     # the format check (scripts/format.sh)
  libtorch-dev                     # LibTorch 1.13 (CPU)
  libopenblas0-openmp              # without it LibTorch falls back to the reference BLAS (~8x slower)
  libfmt-dev libcxxopts-dev libtomlplusplus-dev
  nlohmann-json3-dev               # JSON output
  libutf8proc-dev                  # Unicode lowercasing, digits, character classes, NFC
  zlib1g-dev                       # CRC-32 checksums of checkpoints
  libssl-dev                       # sha256 of cell plugins (OpenSSL's libcrypto)
  libgloo-dev                      # Gloo's headers, for c10d's ProcessGroupGloo (data-parallel training)
  python3-torch                    # torchrun, the launcher of data-parallel runs (and its tests)
  python3-dev pybind11-dev python3-pytest  # the Python extension (python/) and its tests
  libgtest-dev
  gnuplot-nox                      # loss and metric curves as PNG
  libcpp-httplib-dev pkg-config    # rnnkit-serve's HTTP (the library llama.cpp's server uses)
  curl                             # the install check asks the installed server
  chromium chromium-driver python3-selenium  # the server's page, tested in a real browser
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present" >&2
  exit 0
fi

sudo=""
[[ "$(id -u)" -ne 0 ]] && sudo="sudo"
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
