#!/usr/bin/env bash
# rnnkit-seq2seq's command line end to end on a slice of the bundled dates data: train a few
# epochs, translate (stdin, --file, beam 1 and 5, --n-best, --json, --plot-attention), eval,
# bleu, and the bad inputs of docs/reliability.md.
# usage: cli_seq2seq.sh RNNKIT_SEQ2SEQ SOURCE_DIR WORK_DIR
set -euo pipefail
s2s=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"
# expect_usage STATUS TEXT COMMAND...: fails with STATUS and says TEXT on stderr.

d="$src/datasets/dates"
head -3000 "$d/train.src" > "$work/train.src"
head -3000 "$d/train.tgt" > "$work/train.tgt"
head -200 "$d/valid.src" > "$work/valid.src"
head -200 "$d/valid.tgt" > "$work/valid.tgt"
sets=(--set data.train_source="$work/train.src" --set data.train_target="$work/train.tgt"
      --set data.valid_source="$work/valid.src" --set data.valid_target="$work/valid.tgt")
"$s2s" train --config "$src/configs/seq2seq_dates.toml" "${sets[@]}" --run-dir "$work/run" \
  --threads 1 --set train.epochs=4 --set train.max_minutes=0 --set train.log_every=1000 \
  2> "$work/train.log" > /dev/null || fail "train: $(tail -5 "$work/train.log")"
grep -q "^train: 3000 pairs, valid: 200 pairs, vocabulary: " "$work/train.log" || fail "no data line"
grep -q "^done: 4 epochs, 188 steps; checkpoints in $work/run$" "$work/train.log" || fail "no done line: $(tail -3 "$work/train.log")"
head -1 "$work/run/metrics.csv" | grep -q "val_bleu,val_loss,val_ppl,val_exact" || fail "metrics.csv: $(head -1 "$work/run/metrics.csv")"
ck="$work/run/best.pt"

# One line out per line in, in order, from stdin and from --file.
printf 'tuesday 3 march 1998\n03.03.98\n3 mar 1998\n' > "$work/in.txt"
"$s2s" translate --checkpoint "$ck" --threads 1 < "$work/in.txt" > "$work/out5.txt"
[[ $(wc -l < "$work/out5.txt") -eq 3 ]] || fail "translate: $(cat "$work/out5.txt")"
grep -qvE '^[0-9-]*$' "$work/out5.txt" && fail "not dates: $(cat "$work/out5.txt")"
"$s2s" translate --checkpoint "$ck" --threads 1 --file "$work/in.txt" --beam 1 > "$work/out1.txt"
[[ $(wc -l < "$work/out1.txt") -eq 3 ]] || fail "translate --beam 1"
# n-best: K lines per input, "LINE ||| TEXT ||| SCORE", scores falling.
"$s2s" translate --checkpoint "$ck" --threads 1 --file "$work/in.txt" --n-best 3 > "$work/nbest.txt"
[[ $(grep -c '^0 ||| ' "$work/nbest.txt") -eq 3 && $(grep -c '^2 ||| ' "$work/nbest.txt") -eq 3 ]] \
  || fail "n-best: $(cat "$work/nbest.txt")"
awk -F' \\|\\|\\| ' '$1 == prev && $3 > last + 1e-9 { bad = 1 } { prev = $1; last = $3 } END { exit bad }' \
  "$work/nbest.txt" || fail "n-best not sorted: $(cat "$work/nbest.txt")"
# --json: hypotheses with scores, tokens and the attention matrix (rows sum to 1).
echo "3 mar 1998" | "$s2s" translate --checkpoint "$ck" --threads 1 --json > "$work/out.json"
python3 - "$work/out.json" <<'PY' || fail "translate --json: $(cat "$work/out.json")"
import json, sys
j = json.loads(open(sys.argv[1]).readline())
h = j["hypotheses"][0]
assert j["line"] == 1 and j["translation"] == h["text"] and len(j["source_tokens"]) == 10
att = h["attention"]
assert len(att) == len(h["tokens"]) + 1 and all(len(r) == 11 for r in att), att
assert all(abs(sum(r) - 1) < 1e-5 for r in att)
PY
echo "3 mar 1998" | "$s2s" translate --checkpoint "$ck" --threads 1 --plot-attention "$work/att" > /dev/null
[[ -s "$work/att/1.png" ]] || fail "no heatmap"

# eval: BLEU (characters, for a character-level model) and the references' perplexity.
"$s2s" eval --checkpoint "$ck" --threads 1 --source "$work/valid.src" --reference "$work/valid.tgt" --json > "$work/eval.json"
python3 - "$work/eval.json" <<'PY' || fail "eval --json: $(cat "$work/eval.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert set(j) >= {"bleu", "bleu_kind", "hyp_len", "ref_len", "precisions", "perplexity", "exact"}, j
assert j["bleu_kind"] == "multi-bleu-chars" and j["ref_len"] == 2000 and len(j["precisions"]) == 4
assert 0 <= j["bleu"] <= 100 and j["perplexity"] >= 1
PY
"$s2s" eval --checkpoint "$ck" --threads 1 --source "$work/valid.src" --reference "$work/valid.tgt" \
  --beam 1 | grep -q "^$work/valid.src: BLEU [0-9.]* (multi-bleu-chars).*; exact match [0-9.]*% ([0-9]* of 200)$" || fail "eval text"
# beam 1 is greedy: eval --beam 1 on the validation set gives the BLEU that training's greedy
# validation (train.valid_beam = 1) wrote for the epoch best.pt holds (the highest val_bleu).
"$s2s" eval --checkpoint "$ck" --threads 1 --source "$work/valid.src" --reference "$work/valid.tgt" \
  --beam 1 --json > "$work/eval1.json"
python3 - "$work/eval1.json" "$work/run/metrics.csv" <<'PY' || fail "eval --beam 1 against greedy validation"
import csv, json, sys
j = json.load(open(sys.argv[1]))
rows = [r for r in csv.DictReader(open(sys.argv[2])) if r.get("val_bleu")]
best = max(rows, key=lambda r: float(r["val_bleu"]))
assert abs(j["bleu"] - float(best["val_bleu"])) < 1e-3, (j["bleu"], best)
assert abs(j["exact"] - float(best["val_exact"])) < 1e-6, (j["exact"], best)
assert float(best["val_bleu"]) > 0, "the greedy validation BLEU is 0: the comparison shows nothing"
PY
# bleu: a file against itself is 100; multi-bleu and sacrebleu are labelled.
"$s2s" bleu --hypothesis "$work/valid.src" --reference "$work/valid.src" | grep -q "^BLEU = 100.00, .* multi-bleu$" || fail "bleu"
"$s2s" bleu --hypothesis "$work/valid.src" --reference "$work/valid.src" --kind sacrebleu --json | grep -qE '"bleu":(100\.0[0-9]*|99\.9999[0-9]*),"bleu_kind":"sacrebleu-13a"' || fail "bleu sacrebleu"

# rnnkit-serve's translate route answers what translate --json writes, batched.
serve="$(dirname "$s2s")/rnnkit-serve"
if [[ -x $serve ]]; then
  printf '%s\n' "3 mar 1998" "03.03.98" "saturday, july 4, 2026" |
    "$s2s" translate --checkpoint "$ck" --threads 1 --beam 3 --n-best 2 --json > "$work/cli.json"
  "$serve" --model "dates=$ck" --port 0 --threads 1 2> "$work/serve.log" & pid=$!
  port=$(serve_port "$work/serve.log" "$pid")
  python3 - "$port" "$work/cli.json" <<'PY' || { kill $pid; fail "serve translate: $(tail -3 "$work/serve.log")"; }
import json, sys, urllib.error, urllib.request
port, cli = sys.argv[1], [json.loads(l) for l in open(sys.argv[2])]
def post(route, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/dates/{route}",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
texts = ["3 mar 1998", "03.03.98", "saturday, july 4, 2026"]
status, j = post("translate", {"texts": texts, "beam": 3, "n_best": 2, "attention": True})
assert status == 200 and len(j["results"]) == 3, j
for got, want in zip(j["results"], cli):
    assert got["translation"] == want["translation"], (got, want)
    assert got["source_tokens"] == want["source_tokens"]
    assert len(got["hypotheses"]) == 2
    for g, w in zip(got["hypotheses"], want["hypotheses"]):
        assert g["tokens"] == w["tokens"] and abs(g["score"] - w["score"]) < 1e-6, (g, w)
        # The server rounds the weights to 4 decimals (the CLI writes them whole).
        assert all(abs(a - b) <= 5.001e-5 and round(a, 4) == a
                   for ra, rb in zip(g["attention"], w["attention"]) for a, b in zip(ra, rb))
# Without attention and with defaults (beam 5): no matrix.
status, j = post("translate", {"texts": ["3 mar 1998"]})
assert status == 200 and "attention" not in j["results"][0]["hypotheses"][0], j
for body, code, text in [({"texts": ["x"], "beam": 0}, 400, "field 'beam'"),
                         ({"texts": ["x"], "beam": 2, "n_best": 3}, 400, "field 'n_best'"),
                         ({"texts": ["x"], "alpha": -1}, 400, "field 'alpha'"),
                         ({"texts": ["x"], "temperature": 1}, 400, "unknown field 'temperature'"),
                         ({"texts": ["x" * 1100]}, 413, "1100 tokens, more than the limit of 1000"),
                         # One 1 kB request once took 27 s and 2.6 GB: refused before any work.
                         ({"texts": ["9" * 1000], "beam": 100, "n_best": 100, "attention": True}, 413,
                          "is 25625600, more than the limit of 4000000 (--max-translate-work)"),
                         ({"texts": ["9" * 300], "beam": 20, "n_best": 20, "attention": True}, 413,
                          "is 1541120 cells, more than the limit of 1000000 (--max-attention-cells)")]:
    status, j = post("translate", body)
    assert status == code and text in j["error"], (body, status, j)
status, j = post("tag", {"texts": ["x"]})
assert status == 400 and "seq2seq model" in j["error"], j
with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models") as r:
    card = json.load(r)["models"][0]
assert card["task"] == "seq2seq" and card["model"]["attention"] == "additive", card
PY
  kill -TERM $pid && wait $pid || true
else
  # Not silently: a build without cpp-httplib has no server, and this test says it did not check.
  [[ ${RNNKIT_ALLOW_NO_SERVE:-0} == 1 ]] || fail "no rnnkit-serve in $(dirname "$s2s"): the translate route cannot be checked (build with cpp-httplib, or set RNNKIT_ALLOW_NO_SERVE=1)"
  echo "cli_seq2seq: RNNKIT_ALLOW_NO_SERVE=1 and no rnnkit-serve: the translate route is not checked"
fi

# Bad input: a clear error, the limit or the line, exit 1 (data) or 2 (usage).
expect_error 1 "a checkpoint of rnnkit-lm, not of rnnkit-seq2seq" "$s2s" translate --checkpoint "$src/tests/fixtures/lm_char_v1/last.pt"
STDIN="$work/in.txt" expect_error 2 "--beam must be in 1..1000, got 0" "$s2s" translate --checkpoint "$ck" --beam 0
STDIN="$work/in.txt" expect_error 2 "--beam must be in 1..1000, got 1000000" "$s2s" translate --checkpoint "$ck" --beam 1000000
STDIN="$work/in.txt" expect_error 2 "--alpha must be a finite number >= 0, got nan" "$s2s" translate --checkpoint "$ck" --alpha nan
STDIN="$work/in.txt" expect_error 2 "--alpha must be a finite number >= 0, got -1" "$s2s" translate --checkpoint "$ck" --alpha -1
STDIN="$work/in.txt" expect_error 2 "--alpha must be a number, got 'x'" "$s2s" translate --checkpoint "$ck" --alpha x
STDIN="$work/in.txt" expect_error 2 "--max-length must be in 1..10000, got 1000000000" "$s2s" translate --checkpoint "$ck" --max-length 1000000000
# The output is bounded by --max-length and by --max-length-factor x the source's tokens (the
# dates model is character-level: "03.03.98" is 8 tokens, and 0.2 x 8 rounds up to 2).
for bound in "3 10" "10000 0.2"; do
  read -r most factor <<< "$bound"
  "$s2s" translate --checkpoint "$ck" --threads 1 --json --max-length "$most" \
    --max-length-factor "$factor" < "$work/in.txt" > "$work/bounded.json"
  python3 - "$work/bounded.json" "$most" "$factor" <<'PY' || fail "translate --max-length $most --max-length-factor $factor: $(cat "$work/bounded.json")"
import json, math, sys
most, factor = int(sys.argv[2]), float(sys.argv[3])
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 3, lines
reached = False
for j in lines:
    bound = min(most, max(1, math.ceil(factor * len(j["source_tokens"]))))
    n = len(j["hypotheses"][0]["tokens"])
    assert n <= bound, (n, bound, j["translation"])
    reached |= n == bound
assert reached, "no output reached its bound: the bound was not what cut it"
PY
done
STDIN="$work/in.txt" expect_error 2 "--n-best must be in 1..--beam (2), got 3" "$s2s" translate --checkpoint "$ck" --beam 2 --n-best 3
head -c 5000000 /dev/zero | tr '\0' 'a' > "$work/huge.txt"
STDIN="$work/huge.txt" expect_error 1 "<stdin>:1: the line is longer than the limit of 1048576 bytes" "$s2s" translate --checkpoint "$ck"
head -c 3000 /dev/zero | tr '\0' 'a' > "$work/long.txt"
STDIN="$work/long.txt" expect_error 1 "<stdin>:1: 3000 tokens, more than --max-source-length 1000" "$s2s" translate --checkpoint "$ck"
printf 'ok\nab\xffc\n' > "$work/bad_utf8.txt"
expect_error 1 "bad_utf8.txt:2: invalid UTF-8" "$s2s" translate --checkpoint "$ck" --file "$work/bad_utf8.txt"
head -5 "$work/valid.tgt" > "$work/short_ref.txt"
expect_error 1 "short_ref.txt: 5 lines, but $work/valid.src has 200" "$s2s" eval --checkpoint "$ck" --source "$work/valid.src" --reference "$work/short_ref.txt"
expect_error 1 "short_ref.txt: 5 lines, but the hypotheses have 200: expected one reference per line" "$s2s" bleu --hypothesis "$work/valid.src" --reference "$work/short_ref.txt"
head -10 "$work/train.tgt" > "$work/short.tgt"
expect_error 1 "short.tgt: ends after 10 lines" "$s2s" train --config "$src/configs/seq2seq_dates.toml" "${sets[@]}" \
  --set data.train_target="$work/short.tgt" --run-dir "$work/bad"
expect_error 1 "train.src:1: 22 tokens, more than data.max_length = 5" "$s2s" train --config "$src/configs/seq2seq_dates.toml" "${sets[@]}" \
  --set data.max_length=5 --run-dir "$work/bad"
expect_error 1 "data.max_length" "$s2s" train --config "$src/configs/seq2seq_dates.toml" "${sets[@]}" \
  --set data.max_length=1000000000 --run-dir "$work/bad"
expect_error 1 "input_feeding" "$s2s" train --config "$src/configs/seq2seq_dates.toml" "${sets[@]}" \
  --set model.input_feeding=true --run-dir "$work/bad"
echo "cli_seq2seq: ok"
