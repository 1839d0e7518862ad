#!/usr/bin/env bash
# What users expect of the command line (word_language_model, tqdm, scikit-learn): --version,
# eval from stdin, data.test scored once by the best checkpoint, train.log in the run dir, the
# progress line's units and times, streamed sample output.
# usage: cli_conventions.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
lm=$build/apps/rnnkit-lm
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"

for app in lm sentiment ner gradflow seq2seq; do
  out=$("$build/apps/rnnkit-$app" --version)
  [[ $out =~ ^rnnkit-$app\ [0-9]+\.[0-9]+\.[0-9]+\ \(LibTorch\ [0-9.]+,\ CUDA:\ .+\)$ ]] || fail "--version: $out"
done

# OpenBLAS's kernels: an OpenBLAS that does not know this CPU falls back to Prescott's SSE3
# kernels; the apps then run again with the kernels the CPU has (AVX2: Haswell's, AVX-512:
# SkylakeX's). A user's OPENBLAS_CORETYPE, or RNNKIT_BLAS_CORETYPE=keep, is kept.
out=$(env -u OPENBLAS_CORETYPE "$lm" --version)
if [[ $out == *"OpenBLAS kernels: "* ]]; then
  flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
  if [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then
    [[ $out != *"kernels: Prescott"* ]] || fail "an AVX2 CPU left on Prescott's kernels: $out"
  fi
  out=$(OPENBLAS_CORETYPE=Prescott "$lm" --version)
  [[ $out == *"kernels: Prescott)" ]] || fail "OPENBLAS_CORETYPE=Prescott not kept: $out"
  out=$(env -u OPENBLAS_CORETYPE RNNKIT_BLAS_CORETYPE=keep "$lm" --version)
  [[ $out == *"OpenBLAS kernels: "* ]] || fail "RNNKIT_BLAS_CORETYPE=keep: $out"
fi

# Every config key, declared once in the code, in train --help and as config-keys' Markdown.
for app in lm sentiment ner; do
  help=$("$build/apps/rnnkit-$app" train --help)
  [[ $help == *"Config keys"*"model.hidden_size (integer, default "*"train.epochs (integer, default 10; 1 to 1000000)"* ]] ||
    fail "$app train --help lacks the config keys: $help"
  md=$("$build/apps/rnnkit-$app" config-keys)
  [[ $md == *"| \`model.cell\` | cell name | \`\"lstm\"\` |"* ]] || fail "$app config-keys: $md"
done

head -c 12000 "$src/datasets/tinyshakespeare/train.txt" > "$work/train.txt"
head -c 1500 "$src/datasets/tinyshakespeare/valid.txt" > "$work/valid.txt"
tail -c 1500 "$src/datasets/tinyshakespeare/valid.txt" > "$work/test.txt"
cat > "$work/lm.toml" <<EOF2
[data]
level = "char"
train = "train.txt"
valid = "valid.txt"
test = "test.txt"
bptt = 20
[model]
embedding_size = 8
hidden_size = 16
[train]
epochs = 2
batch_size = 4
log_every = 50
EOF2
"$lm" train --config "$work/lm.toml" --run-dir "$work/run" --threads 1 > "$work/stdout.txt" 2> "$work/stderr.txt"
# data.test: scored once, by best.pt, printed and kept in test.json.
grep -q "^test (best checkpoint): test_loss [0-9.]*, test_ppl [0-9.]*, test_bpc [0-9.]*$" "$work/stderr.txt" \
  || fail "no test line: $(tail -3 "$work/stderr.txt")"
python3 - "$work/run/test.json" <<'PY' || fail "test.json: $(cat "$work/run/test.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) == {"test_loss", "test_ppl", "test_bpc"} and d["test_ppl"] > 1, d
PY
"$lm" eval --checkpoint "$work/run/best.pt" --file "$work/test.txt" --json > "$work/eval_file.json" 2> /dev/null
# eval reads stdin: piped, or --file -; the same numbers as from the file.
"$lm" eval --checkpoint "$work/run/best.pt" --json < "$work/test.txt" > "$work/eval_stdin.json" 2> /dev/null
"$lm" eval --checkpoint "$work/run/best.pt" --file - --json < "$work/test.txt" > "$work/eval_dash.json" 2> /dev/null
python3 - "$work"/eval_file.json "$work"/eval_stdin.json "$work"/eval_dash.json <<'PY' || fail "eval from stdin differs"
import json, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:])
assert a["loss"] == b["loss"] == c["loss"] and a["tokens"] == b["tokens"], (a, b, c)
PY
# train.log holds what the terminal showed (stdout and stderr), a header per invocation.
log="$work/run/train.log"
grep -q "^=== .*: rnnkit-lm train --config $work/lm.toml" "$log" || fail "no header in train.log"
grep -q "^epoch 2: train loss" "$log" || fail "no epoch line in train.log"
grep -q "^test (best checkpoint)" "$log" || fail "no test line in train.log"
grep -q "^done: 2 epochs" "$log" || fail "no done line in train.log"
# The progress lines name their unit and give elapsed time and ETA as h:mm:ss.
grep -q "^epoch 1 step 50 batch 50/[0-9]* ([0-9]*%) loss [0-9.]* [0-9]* tok/s elapsed 0:00:[0-9][0-9] ETA 0:00:[0-9][0-9]$" \
  "$work/stderr.txt" || fail "progress line: $(grep -m1 step "$work/stderr.txt")"
# A refused run leaves the running run's log alone; an error that ends a run is logged.
lines=$(wc -l < "$log")
"$lm" train --config "$work/lm.toml" --run-dir "$work/run" --threads 1 2> /dev/null && fail "overwrite accepted"
[[ $(wc -l < "$log") -eq $lines ]] || fail "a refused run wrote into train.log"
"$lm" train --config "$work/lm.toml" --run-dir "$work/run" --threads 1 --resume --set data.valid=\"missing.txt\" \
  2> /dev/null && fail "a missing file was accepted"
grep -q "^error: .*missing.txt" "$log" || fail "the error is not in train.log: $(tail -2 "$log")"
# sample writes as it generates: the same text, piece by piece, as one string.
a=$("$lm" sample --checkpoint "$work/run/best.pt" --length 80 --seed 4 --prompt "KING:")
[[ ${#a} -ge 80 && $a == KING:* ]] || fail "sample: $a"
echo "cli_conventions: ok"
