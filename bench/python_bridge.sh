#!/usr/bin/env bash
# The Python bridge's cost in one run: rnnkit_bench's LSTM step in C++ (B32 T100 D128 H256, one
# layer) and the same step through rnnkit.RNN and torch.nn.LSTM from Python (python_bridge.py);
# then the apps: Tagger.tag and Classifier.classify against `predict` at batch 1 and 32
# (python_apps.py).
# usage: bench/python_bridge.sh BUILD_DIR [THREADS]
set -euo pipefail
build=$1 threads=${2:-2}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
echo "== C++ (rnnkit_bench --cells lstm --layers 1 --threads $threads)"
"$build/bench/rnnkit_bench" --cells lstm --layers 1 --threads "$threads"
echo "== Python"
PYTHONPATH="$build/python" /usr/bin/python3 "$here/python_bridge.py" --threads "$threads"
echo "== The apps from Python"
PYTHONPATH="$build/python" /usr/bin/python3 "$here/python_apps.py" --apps "$build/apps" \
  --threads "$threads"
