#!/usr/bin/env bash
# The export commands end to end: each app's checkpoint exported (the checker of python3-onnx
# accepts it, its metadata and JSON name the inputs), the docs' Node example
# (examples/onnx/tag.js, in ONNX Runtime) finding the entities rnnkit-ner predict finds, and bad
# input: a plugin's cell, a damaged checkpoint, an unwritable output; each refused with a
# message, leaving no file behind.
# usage: cli_export.sh BUILD_DIR SOURCE_DIR LIBMGU.so WORK_DIR   (NODE_PATH: onnxruntime-node)
set -euo pipefail
build=$1 src=$2 plugin=$3 work=$4
apps=$build/apps
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"
if [[ ! -d ${NODE_PATH:-}/onnxruntime-node ]]; then
  [[ ${RNNKIT_REQUIRE_ORT:-} == 1 ]] && fail "onnxruntime-node is not in NODE_PATH=${NODE_PATH:-}"
  echo "SKIP: onnxruntime-node is not in NODE_PATH=${NODE_PATH:-} (scripts/setup.sh onnxruntime BUILD_DIR)"
  exit 77
fi
check() {  # python3-onnx's checker, and the metadata keys every export has
  /usr/bin/python3 - "$@" <<'PY' || fail "onnx.checker: $*"
import json, onnx, sys
for path in sys.argv[1:]:
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    meta = {p.key: p.value for p in m.metadata_props}
    side = json.load(open(path[:-5] + ".json"))
    assert meta["format"] == side["format"] == "rnnkit-onnx 1", meta.get("format")
    assert [i.name for i in m.graph.input] == [i["name"] for i in side["inputs"]], path
    assert [o.name for o in m.graph.output] == [o["name"] for o in side["outputs"]], path
    assert m.opset_import[0].version == 17
PY
}

# Each app: a short run, then export.
"$apps/rnnkit-ner" train --config "$src/configs/ner_names_binary.toml" --run-dir "$work/ner" --threads 1 \
  --set train.epochs=3 --set train.max_minutes=0 --max-steps 200 --quiet
"$apps/rnnkit-sentiment" train --config "$src/configs/sentiment_uci.toml" --run-dir "$work/sent" --threads 1 \
  --max-steps 20 --quiet
head -c 8000 "$src/datasets/tinyshakespeare/train.txt" > "$work/train.txt"
head -c 1500 "$src/datasets/tinyshakespeare/valid.txt" > "$work/valid.txt"
printf '[data]\nlevel = "char"\ntrain = "train.txt"\nvalid = "valid.txt"\nbptt = 20\n[model]\ncell = "%s"\nembedding_size = 8\nhidden_size = 16\n[train]\nepochs = 1\nbatch_size = 4\nlog_every = 1000\n' \
  lstm_peephole > "$work/lm.toml"
"$apps/rnnkit-lm" train --config "$work/lm.toml" --run-dir "$work/lm" --threads 1 --max-steps 5 --quiet
for app in ner sentiment lm; do
  run=$work/$app && [[ $app == sentiment ]] && run=$work/sent
  "$apps/rnnkit-$app" export --checkpoint "$run/last.pt" --output "$work/$app.onnx" > "$work/$app.out"
  grep -q "^wrote $work/$app.onnx and $work/$app.json$" "$work/$app.out" || fail "$app export: $(cat "$work/$app.out")"
done
check "$work/ner.onnx" "$work/sentiment.onnx" "$work/lm.onnx"

# The docs' example finds what predict finds, sentence by sentence.
grep -v '^-DOCSTART-' "$src/datasets/names-binary/names.dev.txt" | awk -F'\t' 'NF { printf "%s ", $1; next } { print "" }' |
  sed 's/ $//' | grep . > "$work/all.txt"
head -40 "$work/all.txt" > "$work/sentences.txt"
"$apps/rnnkit-ner" predict --checkpoint "$work/ner/last.pt" --json < "$work/sentences.txt" |
  /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    print("|".join(e["text"] + "/" + e["type"] for e in json.loads(line)["entities"]))' > "$work/rnnkit.txt"
while IFS= read -r s; do
  node "$src/examples/onnx/tag.js" "$work/ner.onnx" "$s" | tr '\t' '/' | paste -sd '|'
done < "$work/sentences.txt" | sed 's/^$//' > "$work/onnx.txt"
[[ $(wc -l < "$work/onnx.txt") -eq 40 ]] || fail "tag.js answered $(wc -l < "$work/onnx.txt") of 40 sentences"
grep -q . "$work/rnnkit.txt" || fail "predict found no entity in 40 sentences: a useless comparison"
diff "$work/rnnkit.txt" "$work/onnx.txt" > "$work/diff.txt" || fail "tag.js and predict disagree: $(head "$work/diff.txt")"

# A plugin's cell has no ONNX form: refused, naming the cells that export; no file.
"$apps/rnnkit-lm" train --config "$work/lm.toml" --run-dir "$work/mgu" --threads 1 --max-steps 2 --quiet \
  --plugin "$plugin" --set model.cell=mgu
if "$apps/rnnkit-lm" export --checkpoint "$work/mgu/last.pt" --plugin "$plugin" --output "$work/mgu.onnx" 2> "$work/err.txt"; then
  fail "a plugin cell was exported"
fi
grep -q "\[model\] cell: cell 'mgu' cannot be exported to ONNX .*the cells that export are lstm, lstm_peephole, gru, gru_reset_after, gru_simple, rnn and rnn_relu" \
  "$work/err.txt" || fail "plugin cell: $(cat "$work/err.txt")"
# A damaged checkpoint: the checksum says so.
cp "$work/sent/last.pt" "$work/damaged.pt"
printf '\x55' | dd of="$work/damaged.pt" bs=1 seek=200 conv=notrunc 2> /dev/null
if "$apps/rnnkit-sentiment" export --checkpoint "$work/damaged.pt" --output "$work/damaged.onnx" 2> "$work/err.txt"; then
  fail "a damaged checkpoint was exported"
fi
grep -q "damaged.pt" "$work/err.txt" || fail "damaged: $(cat "$work/err.txt")"
# An output that cannot be written: a missing folder, or a folder.
if "$apps/rnnkit-sentiment" export --checkpoint "$work/sent/last.pt" --output "$work/nowhere/s.onnx" 2> "$work/err.txt"; then
  fail "wrote into a missing folder"
fi
grep -q "$work/nowhere/s.onnx: the folder $work/nowhere does not exist" "$work/err.txt" || fail "unwritable: $(cat "$work/err.txt")"
mkdir -p "$work/dir.onnx"
if "$apps/rnnkit-sentiment" export --checkpoint "$work/sent/last.pt" --output "$work/dir.onnx" 2> "$work/err.txt"; then
  fail "wrote over a folder"
fi
grep -q "dir.onnx: is a folder" "$work/err.txt" || fail "folder: $(cat "$work/err.txt")"
# --precision does not apply: the ONNX model is float32.
if "$apps/rnnkit-sentiment" export --checkpoint "$work/sent/last.pt" --output "$work/bf16.onnx" --precision bf16 \
  2> "$work/err.txt"; then fail "export --precision bf16 accepted"; fi
grep -q "the ONNX model is float32" "$work/err.txt" || fail "bf16: $(cat "$work/err.txt")"
# A write that fails midway: a file-size limit of 16 KiB (the model is larger, its JSON is not)
# fails the model's temp file after the JSON was renamed into place; the JSON is taken back.
status=0
(ulimit -f 16; "$apps/rnnkit-sentiment" export --checkpoint "$work/sent/last.pt" --output "$work/full.onnx") \
  > /dev/null 2> "$work/err.txt" || status=$?
[[ $status -eq 1 ]] || fail "a write that fails midway: status $status: $(cat "$work/err.txt")"
grep -q "full.onnx" "$work/err.txt" || fail "midway: the error does not name the file: $(cat "$work/err.txt")"
leftover=$(find "$work" -maxdepth 2 \( -name 'mgu.*' -o -name 'damaged.onnx' -o -name 'damaged.json' -o -name 'full.*' -o -name 'bf16.*' -o -name '*.tmp.*' -o -name 'dir.json' \) | head -5)
[[ -z $leftover ]] || fail "files left behind: $leftover"
[[ -z $(ls -A "$work/dir.onnx") ]] || fail "something was written into the folder"
echo "cli_export: ok"
