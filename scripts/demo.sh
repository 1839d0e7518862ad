#!/usr/bin/env bash
# The main demo, on an already built tree: scripts/demo.sh BUILD_DIR
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
stage="$build/stage"
cmake --install "$build" --prefix "$stage" >/dev/null
cmake -S "$root/examples/custom_cell" -B "$build/example" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$stage" >/dev/null
cmake --build "$build/example"
"$build/example/train_mgu" --config "$root/configs/example_mgu.toml"
