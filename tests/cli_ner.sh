#!/usr/bin/env bash
# rnnkit-ner's command line end to end on the bundled binary names data: a few training steps,
# eval (table and --json), predict (CoNLL in, CoNLL out; raw text in, JSON lines out).
# usage: cli_ner.sh RNNKIT_NER SOURCE_DIR WORK_DIR
set -euo pipefail
ner=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"

"$ner" train --config "$src/configs/ner_names_binary.toml" --run-dir "$work/run" --threads 1 \
  --set train.epochs=3 --set train.max_minutes=0 --max-steps 200 --quiet
[[ -f "$work/run/last.pt" ]] || fail "no checkpoint"
"$ner" train --config "$src/configs/ner_names_binary.toml" --run-dir "$work/short" --threads 1 \
  --set train.epochs=1 --set train.max_minutes=0 --set train.log_every=1000 --set data.scheme=auto 2> "$work/train.log" > /dev/null
grep -q "^tag scheme: io (detected: only I- and O tags occur" "$work/train.log" || fail "no scheme report: $(head "$work/train.log")"
grep -q "^done: 1 epochs, [0-9]* steps; checkpoints in $work/short$" "$work/train.log" || fail "no done line"

"$ner" eval --checkpoint "$work/run/last.pt" --file "$src/datasets/names-binary/names.dev.txt" > "$work/eval.txt"
grep -q "^processed 7255 tokens with 139 phrases; found: [0-9]* phrases; correct: [0-9]*\.$" "$work/eval.txt" \
  || fail "eval table: $(cat "$work/eval.txt")"
grep -q "^ *NAME: precision: " "$work/eval.txt" || fail "no NAME line in the table"

"$ner" eval --checkpoint "$work/run/last.pt" --file "$src/datasets/names-binary/names.dev.txt" --json > "$work/eval.json"
grep -q '^{"f1":[0-9.e-]*,"precision":.*"tokens":7255,"gold":139,.*"types":{"NAME":{' "$work/eval.json" \
  || fail "eval --json: $(cat "$work/eval.json")"

# CoNLL in: every token line comes back with one more column, 0 or 1; sentences keep their breaks.
"$ner" predict --checkpoint "$work/run/last.pt" --conll "$src/datasets/names-binary/names.dev.txt" > "$work/pred.conll"
[[ $(grep -c . "$work/pred.conll") -eq 7255 ]] || fail "predicted $(grep -c . "$work/pred.conll") token lines, expected 7255"
awk -F'\t' 'NF && (NF != 3 || ($3 != "0" && $3 != "1")) { bad = 1 } END { exit bad }' "$work/pred.conll" \
  || fail "a predicted line is not TOKEN<TAB>GOLD<TAB>0|1"

# Raw text in, JSON lines out: offsets point at the entity text.
printf 'Harry Potter and Hermione Granger invented a new spell.\nNothing here.\n' |
  "$ner" predict --checkpoint "$work/run/last.pt" --json > "$work/pred.jsonl"
[[ $(wc -l < "$work/pred.jsonl") -eq 2 ]] || fail "expected 2 JSON lines: $(cat "$work/pred.jsonl")"
head -1 "$work/pred.jsonl" | grep -q '^{"text":"Harry Potter and Hermione Granger invented a new spell.","entities":\[' \
  || fail "JSON line: $(head -1 "$work/pred.jsonl")"
head -1 "$work/pred.jsonl" | grep -q '"type":"NAME"' || fail "no name found in the course's example: $(head -1 "$work/pred.jsonl")"
if command -v python3 > /dev/null; then
  python3 - "$work/pred.jsonl" <<'PY' || fail "JSON spans do not match their text"
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    for e in d["entities"]:
        assert d["text"][e["start"]:e["end"]] == e["text"], (d, e)
        assert e["type"] == "NAME", e
        assert 0 < e["confidence"] <= 1 + 1e-9, e  # the entity's probability under the CRF
PY
fi

# Bad input: a clear error naming the file and line, exit status 1.
printf 'Harry\t1\nPotter\n' > "$work/bad.txt"
if "$ner" eval --checkpoint "$work/run/last.pt" --file "$work/bad.txt" 2> "$work/err.txt"; then fail "bad file accepted"; fi
grep -q "bad.txt:2: expected at least 2 columns" "$work/err.txt" || fail "error message: $(cat "$work/err.txt")"
# The bundled configs read their bundled data and train (two steps each).
for cfg in ner_wikigold ner_wnut17; do
  "$ner" train --config "$src/configs/$cfg.toml" --run-dir "$work/$cfg" --threads 1 --max-steps 2 --quiet \
    || fail "configs/$cfg.toml"
  [[ -f "$work/$cfg/last.pt" ]] || fail "configs/$cfg.toml wrote no checkpoint"
done
echo "ok"
