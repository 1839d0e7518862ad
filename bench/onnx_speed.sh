#!/usr/bin/env bash
# Inference speed, ONNX Runtime against rnnkit's forward pass, for the CoNLL tagger and the SST-2
# classifier (their recipes' architectures) at batch 1 and 32 with 2 threads, in one run.
# Speed does not depend on the weights: each model is trained for 2 steps only.
# usage: bench/onnx_speed.sh BUILD_DIR [WORK_DIR]   (data: scripts/fetch_data.sh; ONNX Runtime:
#        scripts/setup.sh onnxruntime BUILD_DIR)
set -euo pipefail
build=$1 work=${2:-$1/onnx_speed}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export RNNKIT_DATA=${RNNKIT_DATA:-$src/data}
mkdir -p "$work"
"$build/apps/rnnkit-ner" train --config "$src/configs/ner_conll2003.toml" --run-dir "$work/ner" \
  --overwrite --max-steps 2 --quiet --threads 2
"$build/apps/rnnkit-sentiment" train --config "$src/configs/sentiment_sst2.toml" --run-dir "$work/sst2" \
  --overwrite --max-steps 2 --quiet --threads 2
"$build/apps/rnnkit-ner" export --checkpoint "$work/ner/last.pt" --output "$work/ner.onnx" > /dev/null
"$build/apps/rnnkit-sentiment" export --checkpoint "$work/sst2/last.pt" --output "$work/sst2.onnx" > /dev/null
common=(--threads 2 --node-path "$build/onnxruntime/node_modules" --ort-run "$src/tests/onnx/ort_run.js")
for b in 1 32; do
  n=$((b == 1 ? 256 : 1024))
  "$build/bench/rnnkit_onnx_bench" --app ner --checkpoint "$work/ner/last.pt" --onnx "$work/ner.onnx" \
    --file "$RNNKIT_DATA/conll2003/eng.testa" --batch $b --sentences $n "${common[@]}"
  "$build/bench/rnnkit_onnx_bench" --app sentiment --checkpoint "$work/sst2/last.pt" --onnx "$work/sst2.onnx" \
    --file "$RNNKIT_DATA/sst2/stsa.binary.dev" --batch $b --sentences $((b == 1 ? 256 : 872)) "${common[@]}"
done
