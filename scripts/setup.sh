#!/usr/bin/env bash
# Installs what rnnkit needs to build, test and run, from Debian 12 packages. Idempotent: it
# asks apt only for the packages that are missing, and does nothing when all are there.
#   scripts/setup.sh            build, test and app dependencies
#   scripts/setup.sh --python   (kept for old instructions: python3-torch is now always installed)
#   scripts/setup.sh onnxruntime BUILD_DIR
#                               ONNX Runtime for the export tests: the npm package
#                               onnxruntime-node (its CPU binaries ship inside it), into
#                               BUILD_DIR/onnxruntime, not the source tree; nothing if it is there
set -euo pipefail

if [[ "${1:-}" == "onnxruntime" ]]; then
  dir="${2:?usage: setup.sh onnxruntime BUILD_DIR}/onnxruntime"
  version=1.30.0
  if grep -qs "\"version\": \"$version\"" "$dir/node_modules/onnxruntime-node/package.json"; then
    echo "setup: onnxruntime-node $version present in $dir" >&2
    exit 0
  fi
  echo "setup: installing onnxruntime-node $version into $dir (about 290 MB)" >&2
  mkdir -p "$dir"
  # --ignore-scripts: its install script only fetches GPU providers; the CPU library is in the
  # package (bin/napi-v*/linux/x64/libonnxruntime.so.1).
  npm install --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "onnxruntime-node@$version" >&2
  exit 0
fi

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
  python3-setuptools python3-wheel python3-build python3-venv python3-pip  # pip install . and the wheel
  python3-mypy                     # the typed package, checked with mypy --strict
  libgtest-dev
  gnuplot-nox                      # loss and metric curves, and attention heatmaps, as PNG
  graphviz                         # docs/layers.svg from the CMake targets (scripts/layers_graph.sh)
  python3-nltk                     # BLEU cross-checked against nltk's corpus_bleu in the tests
  libcpp-httplib-dev pkg-config    # rnnkit-serve's HTTP (the library llama.cpp's server uses)
  curl                             # the install check asks the installed server
  chromium chromium-driver python3-selenium  # the server's page, tested in a real browser
  libonnx-dev python3-onnx         # ONNX export (its protobuf schema) and the checker the tests run
  nodejs                           # ONNX Runtime's npm package, in the export tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless the machine's Node.js brings its own (NodeSource's does, and
# conflicts with Debian's npm).
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present" >&2
  exit 0
fi

sudo=""
[[ "$(id -u)" -ne 0 ]] && sudo="sudo"
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
