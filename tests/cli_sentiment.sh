#!/usr/bin/env bash
# rnnkit-sentiment's command line end to end on the bundled UCI sentences: train two seeds
# briefly, eval one and their ensemble (table, --json), predict with the ensemble (text, JSON
# lines), and a cross-validation stopped by --max-steps that says so and then resumes.
# usage: cli_sentiment.sh RNNKIT_SENTIMENT SOURCE_DIR WORK_DIR
set -euo pipefail
sent=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"
cfg="$src/configs/sentiment_uci.toml"
data="$src/datasets/sentiment-labelled-sentences/yelp_labelled.txt"

for s in 1 2; do
  "$sent" train --config "$cfg" --run-dir "$work/s$s" --seed $s --threads 1 --set train.epochs=2 --quiet
  [[ -f "$work/s$s/best.pt" ]] || fail "seed $s: no best.pt"
done

"$sent" eval --checkpoint "$work/s1/best.pt" --file "$data" > "$work/one.txt"
grep -q "^ *precision    recall  f1-score   support$" "$work/one.txt" || fail "eval table: $(cat "$work/one.txt")"
grep -q "^    accuracy  *0\.[0-9]\{4\}  *1000$" "$work/one.txt" || fail "eval accuracy row: $(cat "$work/one.txt")"
grep -q "^weighted avg  *0\.[0-9]\{4\}  *0\.[0-9]\{4\}  *0\.[0-9]\{4\}  *1000$" "$work/one.txt" || fail "eval table: $(cat "$work/one.txt")"
"$sent" eval --checkpoint "$work/s1/best.pt" --ensemble "$work/s2/best.pt" --file "$data" --json > "$work/both.json"
grep -q '^{"accuracy":[0-9.e-]*,"macro_f1":[0-9.e-]*,"labels":\["0","1"\],"classes":{"0":{"precision":[0-9.e-]*,"recall":[0-9.e-]*,"f1":[0-9.e-]*,"support":[0-9]*},"1":{.*"macro avg":{.*"weighted avg":{.*"confusion":\[\[[0-9]*,[0-9]*\],\[[0-9]*,[0-9]*\]\],"autocast":"fp32"}$' \
  "$work/both.json" || fail "eval --json: $(cat "$work/both.json")"
# The confusion matrix counts each of the file's 1,000 sentences once.
total=$(sed 's/.*"confusion"://; s/],"autocast".*/]/; s/[^0-9]/ /g' "$work/both.json" | awk '{ for (i = 1; i <= NF; ++i) s += $i } END { print s }')
[[ $total -eq 1000 ]] || fail "the confusion matrix counts $total sentences, expected 1000"

printf 'The food was wonderful.\nTerrible service, never again.\n' |
  "$sent" predict --checkpoint "$work/s1/best.pt" --ensemble "$work/s2/best.pt" --json > "$work/pred.jsonl"
[[ $(wc -l < "$work/pred.jsonl") -eq 2 ]] || fail "expected 2 JSON lines: $(cat "$work/pred.jsonl")"
grep -q '^{"text":"The food was wonderful.","label":"[01]","probabilities":{"0":[0-9.e-]*,"1":[0-9.e-]*}}$' \
  "$work/pred.jsonl" || fail "predict --json: $(head -1 "$work/pred.jsonl")"
printf 'Great.\n' | "$sent" predict --checkpoint "$work/s1/best.pt" --ensemble "$work/s2/best.pt" > "$work/pred.txt"
grep -qP '^[01]\t0=[0-9.]*\t1=[0-9.]*\tGreat\.$' "$work/pred.txt" || fail "predict: $(cat "$work/pred.txt")"
# An empty line is refused by predict as eval refuses it (issue 29), naming the line.
if printf 'Great.\n\nFine.\n' | "$sent" predict --checkpoint "$work/s1/best.pt" > /dev/null 2> "$work/err.txt"; then
  fail "predict labelled an empty line"
fi
grep -q "<stdin>:2: an empty line; there is no text to classify" "$work/err.txt" || fail "empty line: $(cat "$work/err.txt")"
# A class absent from the evaluated file is named under the report (it counts as 0 in the macro average).
grep -m 20 -P '\t1$' "$data" > "$work/only1.txt"
"$sent" eval --checkpoint "$work/s1/best.pt" --file "$work/only1.txt" > "$work/only1.out"
grep -q "note: 1 class(es) have no example in this file (0); each counts as 0 in the macro average" "$work/only1.out" \
  || fail "absent class note: $(cat "$work/only1.out")"
# eval --json says it too: the absent classes, under the macro average they count as 0 in.
"$sent" eval --checkpoint "$work/s1/best.pt" --file "$work/only1.txt" --json > "$work/only1.json"
python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["macro avg"]["absent_classes"] == ["0"], j' \
  "$work/only1.json" || fail "eval --json absent classes: $(cat "$work/only1.json")"

# A missing ensemble member is an error that names it (other labels: tests/test_sentiment.cpp).
if "$sent" eval --checkpoint "$work/s1/best.pt" --ensemble "$work/none.pt" --file "$data" 2> "$work/err.txt"; then
  fail "a missing checkpoint was accepted"
fi
grep -q "none.pt" "$work/err.txt" || fail "the error does not name the file: $(cat "$work/err.txt")"

# Cross-validation stopped inside its first fold says so (exit 1), then --resume finishes it.
cv=(cv --config "$cfg" --run-dir "$work/cv" --threads 1 --set data.folds=2 --set train.epochs=1 --quiet)
if "$sent" "${cv[@]}" --max-steps 20 > "$work/cv1.txt"; then fail "an interrupted cv exited 0"; fi
grep -q "stopped after 0 complete folds; --resume continues it" "$work/cv1.txt" || fail "cv: $(cat "$work/cv1.txt")"
"$sent" "${cv[@]}" --resume > "$work/cv2.txt"
grep -q "^2-fold cross-validation: accuracy [0-9.]*% ± [0-9.]* (std over folds)$" "$work/cv2.txt" || fail "cv: $(cat "$work/cv2.txt")"
[[ $(grep -c "^  fold [12]: accuracy" "$work/cv2.txt") -eq 2 ]] || fail "cv folds: $(cat "$work/cv2.txt")"
echo "cli_sentiment: ok"
