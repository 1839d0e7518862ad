#!/usr/bin/env bash
# The command line under faults and careless use: exit statuses of interrupted runs, a second
# run in the same run dir, damaged checkpoints, unwritable output, options out of range, and
# predict/score as streaming filters. (The library side is in tests/test_runs.cpp,
# tests/test_checkpoints.cpp and tests/test_bad_input.cpp.)
# usage: cli_hardening.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
lm=$build/apps/rnnkit-lm gradflow=$build/apps/rnnkit-gradflow
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"
# expect STATUS PATTERN CMD...: the command exits with STATUS and its stderr matches PATTERN.

head -c 20000 "$src/datasets/tinyshakespeare/train.txt" > "$work/train.txt"
head -c 2000 "$src/datasets/tinyshakespeare/valid.txt" > "$work/valid.txt"
cat > "$work/lm.toml" <<EOF
[data]
level = "char"
train = "train.txt"
valid = "valid.txt"
bptt = 20
[model]
embedding_size = 8
hidden_size = 32
[train]
epochs = 1
batch_size = 4
log_every = 1
EOF
train=(train --config "$work/lm.toml" --threads 1)

# Options out of range fail before anything runs (usage errors: status 2).
expect 2 "max-steps must be 0" "$lm" "${train[@]}" --run-dir "$work/a" --max-steps -3
expect 2 "give one of --resume, --auto-resume and --overwrite" "$lm" "${train[@]}" --run-dir "$work/a" --resume --overwrite
expect 1 "seed: must be in" "$lm" "${train[@]}" --run-dir "$work/a" --seed -5
[[ ! -e "$work/a" ]] || fail "a refused command left $work/a behind"
"$lm" "${train[@]}" --run-dir "$work/a" --max-steps 5 --quiet
expect 1 "is far above the" "$lm" eval --checkpoint "$work/a/last.pt" --file "$work/valid.txt" --threads 100000
expect 2 "top-k must be at least 1" "$lm" sample --checkpoint "$work/a/last.pt" --top-k 0
expect 2 "top-k must be at least 1" "$lm" sample --checkpoint "$work/a/last.pt" --top-k -5
expect 2 "length must be at least 1" "$lm" sample --checkpoint "$work/a/last.pt" --length -1
# A symlink loop as --config or in RNNKIT_DATA: the path and the reason, not a raw filesystem error.
ln -sfn "$work/loop_a" "$work/loop_b" && ln -sfn "$work/loop_b" "$work/loop_a"
expect 1 "loop_a: Too many levels of symbolic links (a symlink loop?)" "$lm" train --config "$work/loop_a"
# A denormal temperature is greedy (documented threshold 1e-6), not a raw torch error.
"$lm" sample --checkpoint "$work/a/last.pt" --length 20 --greedy > "$work/greedy.txt"
"$lm" sample --checkpoint "$work/a/last.pt" --length 20 --temperature 1e-320 > "$work/tiny.txt" \
  2> "$work/err.txt" || fail "--temperature 1e-320: $(cat "$work/err.txt")"
cmp -s "$work/greedy.txt" "$work/tiny.txt" || fail "--temperature 1e-320 is not greedy: $(cat "$work/tiny.txt")"
expect 2 "prompt is not valid UTF-8" "$lm" sample --checkpoint "$work/a/last.pt" --prompt $'\xff\xfe'
"$lm" ngram --help > "$work/out.txt" || fail "ngram --help is not a usage error"
expect 2 "usage: rnnkit-lm COMMAND" "$lm"
[[ ! -s "$work/out.txt" ]] || fail "usage went to stdout"

# The same run dir: refused without --resume/--overwrite; a concurrent run is refused by name.
expect 1 "already holds a run (last.pt)" "$lm" "${train[@]}" --run-dir "$work/a"
"$lm" "${train[@]}" --run-dir "$work/b" --set train.epochs=1000 > "$work/b.log" 2>&1 & holder=$!
for _ in $(seq 300); do grep -qs "step 3 " "$work/b.log" && break; sleep 0.1; done
expect 1 "is in use by another run (process $holder" "$lm" "${train[@]}" --run-dir "$work/b" --overwrite
# SIGINT: finish the step, write last.pt, exit 130. SIGTERM: the same with 143.
kill -INT $holder
status=0; wait $holder || status=$?
[[ $status -eq 130 ]] || fail "SIGINT: exit status $status, expected 130"
grep -q "SIGINT: stopped at step" "$work/b.log" || fail "SIGINT: $(tail -2 "$work/b.log")"
"$lm" "${train[@]}" --run-dir "$work/b" --set train.epochs=1000 --resume > "$work/b2.log" 2>&1 & holder=$!
for _ in $(seq 300); do (( $(grep -cs " step " "$work/b2.log") >= 3 )) && break; sleep 0.1; done
kill -TERM $holder
status=0; wait $holder || status=$?
[[ $status -eq 143 ]] || fail "SIGTERM: exit status $status, expected 143"
grep -q "^resuming .*last.pt at epoch" "$work/b2.log" || fail "the second run did not resume: $(head -3 "$work/b2.log")"

# A damaged checkpoint is refused by every command that loads it.
python3 - "$work/a/last.pt" "$work/flipped.pt" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
for i in range(len(b) // 2, len(b) // 2 + 64):
    b[i] ^= 0xFF
open(sys.argv[2], "wb").write(b)
PY
expect 1 "flipped.pt: the checkpoint is damaged" "$lm" eval --checkpoint "$work/flipped.pt" --file "$work/valid.txt"
cp "$work/flipped.pt" "$work/a/last.pt"
expect 1 "last.pt: the checkpoint is damaged" "$lm" "${train[@]}" --run-dir "$work/a" --resume

# score and predict stream: the first line's answer comes before stdin is closed.
"$lm" "${train[@]}" --run-dir "$work/c" --max-steps 3 --quiet
mkfifo "$work/in"
"$lm" score --checkpoint "$work/c/last.pt" --file - < "$work/in" > "$work/scores.txt" 2> "$work/score_err.txt" & scorer=$!
exec 3> "$work/in"
printf 'First Citizen:\n' >&3
for _ in $(seq 300); do [[ -s "$work/scores.txt" ]] && break; sleep 0.1; done
[[ -s "$work/scores.txt" ]] || fail "score wrote nothing before its input ended"
printf 'bad \xff line\n' >&3
exec 3>&-
status=0; wait $scorer || status=$?
[[ $status -eq 1 ]] || fail "invalid UTF-8 on stdin: status $status"
grep -q "<stdin>:2: invalid UTF-8" "$work/score_err.txt" || fail "stdin check: $(cat "$work/score_err.txt")"

# gradflow: output it cannot write is an error with errno's text, and leaves no empty folder.
cat > "$work/g.toml" <<EOF
[norms]
cells = ["rnn", "lstm"]
T = 10
batch = 2
hidden_size = 8
EOF
touch "$work/file"
expect 1 "Not a directory" "$gradflow" norms --config "$work/g.toml" --out "$work/file/sub"
# norms needs only [norms]; a failing run removes the folder it made.
"$gradflow" norms --config "$work/g.toml" --out "$work/g" > /dev/null 2>&1 || fail "norms without [agreement]"
[[ -s "$work/g/grad_norms_da.csv" ]] || fail "norms wrote no CSV"
expect 1 "needs cells" "$gradflow" agreement --config "$work/g.toml" --out "$work/g2"
[[ ! -e "$work/g2" ]] || fail "a failed gradflow call left $work/g2"
expect 2 "usage: rnnkit-gradflow COMMAND" "$gradflow"
"$gradflow" --help | grep "norms  " > /dev/null || fail "gradflow --help lists no commands"
# Round two (issue 29).
# SIGHUP (a closed terminal or ssh session) stops like SIGTERM: last.pt, exit 129.
"$lm" "${train[@]}" --run-dir "$work/h" --set train.epochs=1000 > "$work/h.log" 2>&1 & holder=$!
for _ in $(seq 300); do grep -qs "step 3 " "$work/h.log" && break; sleep 0.1; done
kill -HUP $holder
status=0; wait $holder || status=$?
[[ $status -eq 129 ]] || fail "SIGHUP: exit status $status, expected 129: $(tail -2 "$work/h.log")"
grep -q "SIGHUP: stopped at step" "$work/h.log" || fail "SIGHUP: $(tail -2 "$work/h.log")"
[[ -s "$work/h/last.pt" ]] || fail "SIGHUP: no last.pt"
# What is not a regular file is refused at once: never read until memory runs out, never waited on.
mkfifo "$work/fifo.pt"
expect 1 "/dev/zero: not a regular file" timeout 20 "$lm" eval --checkpoint /dev/zero --file "$work/valid.txt"
expect 1 "fifo.pt: not a regular file" timeout 20 "$lm" eval --checkpoint "$work/fifo.pt" --file "$work/valid.txt"
expect 1 "/dev/zero: is a device, not a text file" timeout 20 "$lm" eval --checkpoint "$work/c/last.pt" --file /dev/zero
expect 1 "/dev/zero: not a regular file" timeout 20 "$lm" train --config /dev/zero --run-dir "$work/z"
# A line over the limit: an error naming the file, the line and the limit (1 MiB by default).
python3 -c 'import sys; sys.stdout.write("x" * 3000000 + "\n")' > "$work/huge_line.txt"
expect 1 "huge_line.txt:1: the line is longer than the limit of 1048576 bytes" \
  timeout 60 "$lm" score --checkpoint "$work/c/last.pt" --file "$work/huge_line.txt"
expect 1 "valid.txt:[0-9]*: the line is longer than the limit of 10 bytes" \
  "$lm" eval --checkpoint "$work/c/last.pt" --file "$work/valid.txt" --max-line-bytes 10
expect 2 "max-line-bytes must be in" "$lm" eval --checkpoint "$work/c/last.pt" --file "$work/valid.txt" --max-line-bytes 0
expect 1 "huge_line.txt:1: the line is longer than the limit" \
  "$lm" "${train[@]}" --run-dir "$work/hl" --set data.train="$work/huge_line.txt"
# Sizes out of range name the key; an overflowing bptt no longer trains 0 steps and reports 1.0.
expect 1 "\-\-set model.num_layers: must be in \[1, 64\]" "$lm" "${train[@]}" --run-dir "$work/s" --set model.num_layers=100000000
expect 1 "\-\-set data.bptt: must be in" "$lm" "${train[@]}" --run-dir "$work/s" --set data.bptt=9223372036854775807
[[ ! -e "$work/s/best.pt" ]] || fail "a refused run wrote best.pt"
# Nested --set keys are blamed on --set, never on the config file.
expect 1 "\-\-set model..cell=gru: expected section.key=value" "$lm" "${train[@]}" --run-dir "$work/s" --set model..cell=gru
expect 1 "\-\-set model.cell_options.a.b.c" "$lm" "${train[@]}" --run-dir "$work/s" --set model.cell_options.a.b.c=1
# --resume refuses a changed config instead of ignoring it.
expect 1 "the config differs from the run's at key train.learning_rate" \
  "$lm" "${train[@]}" --run-dir "$work/b" --resume --set train.learning_rate=0.5
# RNNKIT_DATA naming a file is not a missing download.
printf '[data]\nlevel = "char"\ntrain = "${RNNKIT_DATA}/x/train.txt"\nvalid = "valid.txt"\n' > "$work/root.toml"
RNNKIT_DATA="$work/valid.txt" expect 1 "which is a file, not a folder" "$lm" train --config "$work/root.toml" --run-dir "$work/s"
grep -q "fetch_data" "$work/err.txt" && fail "RNNKIT_DATA as a file suggests fetch_data.sh"
# n-gram models carry a checksum: an edited count is refused.
"$lm" ngram train --config "$work/lm.toml" --order 3 --output "$work/m.ngram" 2> /dev/null
"$lm" ngram eval --model "$work/m.ngram" --file "$work/valid.txt" > /dev/null
python3 - "$work/m.ngram" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-2] = ord("7") if b[-2] != ord("7") else ord("8")
open(sys.argv[1], "wb").write(b)
PY
expect 1 "m.ngram: the n-gram model is damaged: checksum mismatch" "$lm" ngram eval --model "$work/m.ngram" --file "$work/valid.txt"
# gradflow refuses a NaN forget bias (the apps do too), and names a failing gnuplot as such.
printf '[norms]\ncells = ["lstm:fb=nan"]\nT = 10\nbatch = 2\nhidden_size = 8\n' > "$work/gnan.toml"
expect 1 "expected fb=NUMBER with the number in \[-100, 100\], got 'fb=nan'" "$gradflow" norms --config "$work/gnan.toml" --out "$work/gnan"
# score on an empty line: no perplexity (null), not 1.0 over 0 tokens.
printf '\n' | "$lm" score --checkpoint "$work/c/last.pt" --json > "$work/empty_score.json"
grep -q '"perplexity":null' "$work/empty_score.json" || fail "empty line score: $(cat "$work/empty_score.json")"
grep -q '"tokens":0' "$work/empty_score.json" || fail "empty line score: $(cat "$work/empty_score.json")"
# A prompt of only unknown characters is read as <unk>, with a warning.
"$lm" sample --checkpoint "$work/c/last.pt" --prompt "ЖЖЖ" --length 5 > /dev/null 2> "$work/err.txt"
grep -q "every token of the prompt is out of the model's vocabulary" "$work/err.txt" || fail "OOV prompt: $(cat "$work/err.txt")"
# Output that cannot be written stops a long command at once (stdout on a full device): a
# 100-million-token sample, and score reading endless stdin.
if [[ -w /dev/full ]]; then
  expect 1 "cannot write to stdout: No space left on device; stopped" \
    timeout 60 bash -c "'$lm' sample --checkpoint '$work/c/last.pt' --length 100000000 > /dev/full"
  expect 1 "cannot write to stdout: No space left on device; stopped" \
    timeout 60 bash -c "yes 'First Citizen:' | '$lm' score --checkpoint '$work/c/last.pt' --file - > /dev/full"
fi
echo "cli_hardening: ok"
