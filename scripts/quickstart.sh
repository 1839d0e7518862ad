#!/usr/bin/env bash
# rnnkit's two commands (README, "Quickstart"):
#   scripts/quickstart.sh demo   install what is missing, build, run the main demo
#   scripts/quickstart.sh test   install what is missing, build, run every test (what CI runs)
# RNNKIT_BUILD_DIR overrides the build folder (default: build/ in the checkout).
set -euo pipefail

mode="${1:-}"
if [[ "$mode" != "demo" && "$mode" != "test" ]]; then
  echo "usage: $0 demo|test" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${RNNKIT_BUILD_DIR:-$root/build}"
jobs="$(nproc)"

# Each step's wall time, printed as it ends and kept in $build/quickstart_times.txt, so that a
# slow test command says where its time went.
mkdir -p "$build"
times="$build/quickstart_times.txt"
: > "$times"
timed() {  # timed NAME COMMAND...: runs COMMAND, then notes NAME and its seconds
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "quickstart: $name took $((SECONDS - start)) s" | tee -a "$times" >&2
}
timed setup "$root/scripts/setup.sh"
# The code's format first: a mismatch fails in a second, not after the build.
if [[ "$mode" == "test" ]]; then timed format "$root/scripts/format.sh" --check; fi
# The unbundled datasets into the data root (data/), linked from a local copy where there is one
# (CI's ../shared/datasets); the recipes that need them say so otherwise.
if [[ -d "$root/../shared/datasets" ]]; then
  "$root/scripts/fetch_data.sh" --from "$root/../shared/datasets" >/dev/null
fi
timed configure cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
timed build cmake --build "$build" -j "$jobs"

case "$mode" in
  demo)
    # A character-level LSTM on the bundled tiny Shakespeare: 3 minutes of training, the
    # validation perplexity, then a sample.
    lm="$build/apps/rnnkit-lm"
    run="$root/runs/lm_char_demo"
    "$lm" train --config "$root/configs/lm_char_demo.toml" --run-dir "$run"
    "$lm" eval --checkpoint "$run/best.pt" --file "$root/datasets/tinyshakespeare/valid.txt"
    echo
    "$lm" sample --checkpoint "$run/best.pt" --prompt "ROMEO:" --temperature 0.7 --length 600 --seed 7
    echo
    # A BiLSTM-CRF named-entity tagger on the bundled wikigold split: 3 minutes of training,
    # conlleval's table on its dev split, then entities in raw text as JSON lines.
    ner="$build/apps/rnnkit-ner"
    run="$root/runs/ner_wikigold_demo"
    "$ner" train --config "$root/configs/ner_wikigold.toml" --run-dir "$run" --set train.max_minutes=3
    "$ner" eval --checkpoint "$run/best.pt" --file "$root/datasets/wikigold/wikigold.dev.conll"
    printf '%s\n' "Harry Potter and Hermione Granger invented a new spell in London ." \
      "The European Commission said on Thursday it disagreed with German advice ." |
      "$ner" predict --checkpoint "$run/best.pt" --json
    echo
    # An encoder-decoder with attention on the bundled generated dates (human-readable to ISO):
    # 3 minutes of training, how many validation dates it gets exactly right (beam 5), a few
    # translations, and one attention heatmap.
    s2s="$build/apps/rnnkit-seq2seq"
    dates="$root/runs/seq2seq_dates_demo"
    "$s2s" train --config "$root/configs/seq2seq_dates.toml" --run-dir "$dates"
    "$s2s" eval --checkpoint "$dates/best.pt" --source "$root/datasets/dates/valid.src" \
      --reference "$root/datasets/dates/valid.tgt" --beam 5
    printf '%s\n' "tuesday 3 march 1998" "03.03.98" "3 mar 1998" "saturday, july 4, 2026" |
      "$s2s" translate --checkpoint "$dates/best.pt" --beam 5 --plot-attention "$dates/attention"
    echo "attention heatmap of the first: $dates/attention/1.png"
    echo
    # Both models over HTTP, with a page to try them: docs/serving.md.
    echo "Serve both models (then open http://127.0.0.1:8080/):"
    echo "  $build/apps/rnnkit-serve --model ner=$run/best.pt --model char=$root/runs/lm_char_demo/best.pt"
    ;;
  test)
    # The package as a downstream project sees it: install, then build examples/ against it.
    stage="$build/stage"
    downstream_start=$SECONDS
    cmake --install "$build" --prefix "$stage" >/dev/null
    cmake -S "$root/examples/custom_cell" -B "$build/example" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$stage" >/dev/null
    cmake --build "$build/example" -j "$jobs"
    "$build/example/train_mgu" --config "$root/configs/example_mgu.toml"
    # The same cell as a plugin of the installed rnnkit-lm: train on a tiny corpus, then eval
    # the checkpoint, which records the plugin and its sha256 but loads it only with consent.
    tiny="$build/example/tiny" && rm -rf "$tiny" && mkdir -p "$tiny"
    head -c 6000 "$root/datasets/tinyshakespeare/train.txt" > "$tiny/train.txt"
    head -c 1000 "$root/datasets/tinyshakespeare/valid.txt" > "$tiny/valid.txt"
    "$stage/bin/rnnkit-lm" train --config "$stage/share/rnnkit/configs/lm_char_demo.toml" \
      --plugin "$build/example/libmgu.so" --set model.cell=mgu --set data.train="$tiny/train.txt" \
      --set data.valid="$tiny/valid.txt" --set model.hidden_size=32 --set train.epochs=1 \
      --set train.batch_size=4 --run-dir "$tiny/run" --quiet
    "$stage/bin/rnnkit-lm" eval --checkpoint "$tiny/run/best.pt" --file "$tiny/valid.txt" \
      --plugin "$build/example/libmgu.so"
    # The installed server serves that checkpoint (its plugin given), and answers.
    "$stage/bin/rnnkit-serve" --model "tiny=$tiny/run/best.pt" --plugin "$build/example/libmgu.so" \
      --port 0 --threads 1 2> "$tiny/serve.log" &
    serve_pid=$!
    for _ in $(seq 600); do grep -qs "listening on" "$tiny/serve.log" && break; sleep 0.1; done
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$tiny/serve.log")
    curl -sf -X POST "http://127.0.0.1:$port/v1/models/tiny/generate" -d '{"max_tokens": 20}' \
      | grep '"tokens":20' > /dev/null || { cat "$tiny/serve.log" >&2; kill "$serve_pid"; exit 1; }
    kill -TERM "$serve_pid" && wait "$serve_pid"
    # The installed Python package (when it was built): it imports from the prefix, loads the
    # plugin and opens that checkpoint.
    if [[ -d "$stage/lib/python3/dist-packages/rnnkit" ]]; then
      (cd "$tiny" && PYTHONPATH="$stage/lib/python3/dist-packages" /usr/bin/python3 -c '
import sys, torch, rnnkit
assert rnnkit.__file__.startswith(sys.argv[1]), rnnkit.__file__
rnnkit.load_plugin(sys.argv[2])
ckpt = rnnkit.load_checkpoint("run/best.pt")
assert ckpt["app"] == "lm" and ckpt["config"]["model"]["cell"] == "mgu", ckpt["config"]
out, _ = rnnkit.RNN("mgu", 4, 8)(torch.randn(3, 2, 4))
n = len(ckpt["state_dict"])
print(f"installed rnnkit {rnnkit.__version__} (Python): {n} tensors in the checkpoint")
' "$stage" "$build/example/libmgu.so")
    fi
    # A task app of its own on rnnkit::train (fit, checkpoints, config, CLI), trained and scored.
    cmake -S "$root/examples/task_app" -B "$build/task_app" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$stage" >/dev/null
    cmake --build "$build/task_app" -j "$jobs"
    "$build/task_app/majority" train --config "$root/examples/task_app/majority.toml" \
      --run-dir "$build/task_app/run" --overwrite --quiet
    "$build/task_app/majority" eval --checkpoint "$build/task_app/run/best.pt" --min-accuracy 0.9
    echo "quickstart: downstream (install, examples, plugin, served, task app) took $((SECONDS - downstream_start)) s" \
      | tee -a "$times" >&2
    # ONNX Runtime for the export tests, into the build tree; they fail without it here.
    timed onnxruntime "$root/scripts/setup.sh" onnxruntime "$build"
    # Each test's own time is in $build/Testing/Temporary/LastTest.log (and CTestCostData.txt).
    timed ctest env RNNKIT_REQUIRE_ORT=1 ctest --test-dir "$build" --output-on-failure -j "$jobs"
    # The standing guards: the suite under ASan and UBSan, and the fuzz targets.
    timed sanitize "$root/scripts/sanitize.sh"
    echo "quickstart: the steps' times:" >&2
    cat "$times" >&2
    ;;
esac
