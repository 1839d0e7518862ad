#!/usr/bin/env bash
# Data-parallel training on loopback: torchrun launches 2 processes on Gloo.
#   - float64, SGD with momentum, clipping, no dropout: 2 processes against 1 process with the
#     whole batch agree to 1e-10 in every parameter, for the LM stream batcher and for sentiment's
#     sentence batches (a short last batch leaves one rank an empty share);
#   - a checkpoint written by 2 processes resumes with 1 and ends where 1 process ends;
#   - rnnkit-lm under torchrun ends with the single process's validation loss (float32), with
#     and without loss scaling (skipping the same overflowed steps);
#   - a killed rank makes the other exit non-zero naming it; Ctrl-C on torchrun stops every
#     rank and rank 0 writes last.pt;
#   - bad set-ups: a batch that does not divide, WORLD_SIZE without RANK, an unreachable master;
#   - ranks with different configs stop, every one naming the first key that differs;
#   - a stop signal while waiting for peers (the rendezvous, a collective with a hung peer) ends
#     the process within 2 s; a hung peer without a signal is named after --dist-timeout; a lone
#     rank 0 gives up after --dist-timeout for the whole rendezvous.
# usage: cli_distributed.sh RNNKIT_DIST_WORKER RNNKIT_LM RNNKIT_NER SOURCE_DIR WORK_DIR
set -euo pipefail
worker=$1 lm=$2 ner=$3 src=$4 work=$5
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/lib.sh"
command -v torchrun > /dev/null || fail "torchrun is missing (scripts/setup.sh installs python3-torch)"
export GLOO_SOCKET_IFNAME=lo
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# torchrun 1.13 needs --redirects/--tee (see the README); a private rendezvous port per launch,
# so that parallel tests never meet.
trun() { torchrun --nnodes 1 --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$(free_port)" \
           --redirects 2 --tee 2 --no_python "$@"; }

# Tiny data: a character corpus and 49 labelled sentences.
head -c 6000 "$src/datasets/tinyshakespeare/train.txt" > "$work/lm_train.txt"
head -c 1500 "$src/datasets/tinyshakespeare/valid.txt" > "$work/lm_valid.txt"
head -n 49 "$src/datasets/sentiment-labelled-sentences/yelp_labelled.txt" > "$work/s_train.tsv"
sed -n '200,260p' "$src/datasets/sentiment-labelled-sentences/yelp_labelled.txt" > "$work/s_valid.tsv"
cat > "$work/lm.toml" <<EOF
[data]
level = "char"
train = "lm_train.txt"
valid = "lm_valid.txt"
bptt = 10
[model]
cell = "lstm"
embedding_size = 8
hidden_size = 16
num_layers = 2
[train]
epochs = 3
batch_size = 4
optimizer = "sgd"
learning_rate = 0.5
momentum = 0.9
clip_norm = 0.5
seed = 5
EOF
cat > "$work/sent.toml" <<EOF
[data]
format = "tsv"
label_last = true
train = "s_train.tsv"
valid = "s_valid.tsv"
[model]
cell = "gru"
embedding_size = 8
hidden_size = 8
bidirectional = true
pooling = "max"
dropout = 0.0
[train]
epochs = 2
batch_size = 4
optimizer = "sgd"
learning_rate = 0.5
momentum = 0.5
clip_norm = 1.0
seed = 2
EOF

# 1. Two processes against one, float64.
"$worker" train lm "$work/lm.toml" "$work/lm1" 12
trun "$worker" train lm "$work/lm.toml" "$work/lm2" 12 > "$work/lm2.log" 2>&1 || fail "lm, 2 processes: $(tail "$work/lm2.log")"
"$worker" compare lm "$work/lm1/last.pt" "$work/lm2/last.pt" 1e-10 || fail "lm: 2 processes differ from 1"
"$worker" train sentiment "$work/sent.toml" "$work/s1" 0
trun "$worker" train sentiment "$work/sent.toml" "$work/s2" 0 > "$work/s2.log" 2>&1 || fail "sentiment, 2 processes: $(tail "$work/s2.log")"
"$worker" compare sentiment "$work/s1/last.pt" "$work/s2/last.pt" 1e-10 || fail "sentiment: 2 processes differ from 1"

# The tagger too (its CRF keeps bool masks as buffers, which Gloo cannot send as such).
trun "$ner" train --config "$src/configs/ner_names_binary.toml" --run-dir "$work/ner2" --threads 1 \
  --set train.epochs=1 --set train.max_minutes=0 --max-steps 6 > "$work/ner2.log" 2>&1 \
  || fail "rnnkit-ner under torchrun: $(grep -m3 error "$work/ner2.log")"
[[ -f "$work/ner2/last.pt" ]] || fail "rnnkit-ner under torchrun wrote no checkpoint"

# 2. Saved by 2 processes mid-epoch (the LM carries its state), resumed by 1.
trun "$worker" train lm "$work/lm.toml" "$work/lm21" 7 > "$work/lm21.log" 2>&1 || fail "lm 2->1: $(tail "$work/lm21.log")"
"$worker" train lm "$work/lm.toml" "$work/lm21" 5 resume
"$worker" compare lm "$work/lm1/last.pt" "$work/lm21/last.pt" 1e-10 || fail "a 2-process checkpoint resumed by 1 process went elsewhere"

# 3. The app itself, float32: the same validation loss at the end as one process.
"$lm" train --config "$work/lm.toml" --run-dir "$work/app1" --threads 1 --set train.epochs=1 --quiet
trun "$lm" train --config "$work/lm.toml" --run-dir "$work/app2" --threads 1 --set train.epochs=1 \
  > "$work/app2.log" 2>&1 || fail "rnnkit-lm under torchrun: $(tail "$work/app2.log")"
python3 - "$work/app1/metrics.csv" "$work/app2/metrics.csv" <<'PY' || fail "validation loss differs between 1 and 2 processes"
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:])
va, vb = float(a[-1]["val_loss"]), float(b[-1]["val_loss"])
print(f"val_loss: 1 process {va:.6f}, 2 processes {vb:.6f}")
assert abs(va - vb) <= 1e-5 * abs(va), (va, vb)
PY
[[ $(grep -c "train: " "$work/app2.log") -eq 1 ]] || fail "only rank 0 prints: $(cat "$work/app2.log")"

# 3b. Loss scaling from 2^140: the steps whose averaged gradients overflow are skipped on every
# rank (an inf in one rank's share is an inf in the average), so the 2 processes skip what 1
# process skips and end at its validation loss.
scaled=(--set train.epochs=1 --set train.grad_scaler=dynamic --set train.grad_scaler_init=1.393796574908164e+42)
"$lm" train --config "$work/lm.toml" --run-dir "$work/scaled1" --threads 1 "${scaled[@]}" \
  > "$work/scaled1.log" 2>&1 || fail "loss scaling, 1 process: $(tail "$work/scaled1.log")"
trun "$lm" train --config "$work/lm.toml" --run-dir "$work/scaled2" --threads 1 "${scaled[@]}" \
  > "$work/scaled2.log" 2>&1 || fail "loss scaling under torchrun: $(tail "$work/scaled2.log")"
s1=$(grep -c "the step is skipped" "$work/scaled1.log") s2=$(grep -c "the step is skipped" "$work/scaled2.log")
[[ $s1 -ge 13 && $s1 -eq $s2 ]] || fail "skipped steps: $s1 with 1 process, $s2 with 2"
python3 - "$work/scaled1/metrics.csv" "$work/scaled2/metrics.csv" <<'PY' || fail "loss scaling: validation loss differs between 1 and 2 processes"
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:])
va, vb = float(a[-1]["val_loss"]), float(b[-1]["val_loss"])
print(f"loss scaling, val_loss: 1 process {va:.6f}, 2 processes {vb:.6f}")
assert abs(va - vb) <= 1e-5 * abs(va), (va, vb)
PY

# 4. A killed rank: the other exits non-zero, naming it, well within --dist-timeout.
port=$(free_port)
long=(train --config "$work/lm.toml" --threads 1 --set train.epochs=1000 --set train.log_every=1 --dist-timeout 30)
WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$lm" "${long[@]}" --run-dir "$work/kill" > "$work/kill0.log" 2>&1 & r0=$!
WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$lm" "${long[@]}" --run-dir "$work/kill_r1" > "$work/kill1.log" 2>&1 & r1=$!
for _ in $(seq 300); do grep -qs "step 20 " "$work/kill0.log" && break; sleep 0.1; done
grep -q "step 20 " "$work/kill0.log" || { kill -9 $r0 $r1; fail "the 2 ranks did not train: $(tail "$work/kill0.log")"; }
kill -9 $r1
wait $r1 2> /dev/null || true
start=$SECONDS
status=0; wait $r0 || status=$?
[[ $status -ne 0 ]] || fail "rank 0 exited 0 after rank 1 was killed"
# Not a speed check: the bound is --dist-timeout, past which rank 0 would be hanging.
(( SECONDS - start <= 30 )) || fail "rank 0 took $((SECONDS - start)) s to give up (--dist-timeout 30)"
grep -q "lost rank 1" "$work/kill0.log" || fail "rank 0 does not name the lost rank: $(tail -3 "$work/kill0.log")"

# 5. Ctrl-C on torchrun: every rank stops, rank 0 writes last.pt, which evaluates.
setsid torchrun --nnodes 1 --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$(free_port)" \
  --redirects 2 --tee 2 --no_python "$lm" "${long[@]}" --run-dir "$work/int" > "$work/int.log" 2>&1 & tr=$!
for _ in $(seq 300); do grep -qs "step 20 " "$work/int.log" && break; sleep 0.1; done
kill -INT $tr
status=0; wait $tr || status=$?
[[ $status -ne 0 ]] || fail "torchrun exited 0 after SIGINT"
grep -q "SIGINT: stopped at step" "$work/int.log" || fail "rank 0 did not stop cleanly: $(tail "$work/int.log")"
"$lm" eval --checkpoint "$work/int/last.pt" --file "$work/lm_valid.txt" > /dev/null || fail "last.pt after SIGINT does not load"

# 6. Preemption: torchrun --max_restarts restarts the workers after one is killed, and
# --auto-resume continues from the last checkpoint to the end.
setsid torchrun --nnodes 1 --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$(free_port)" \
  --max_restarts 1 --redirects 2 --tee 2 --no_python "$lm" train --config "$work/lm.toml" --threads 1 \
  --set train.epochs=6 --run-dir "$work/restart" --auto-resume > "$work/restart.log" 2>&1 & tr=$!
for _ in $(seq 600); do grep -qs "epoch 2: train loss" "$work/restart.log" && break; sleep 0.1; done
victim=$(pgrep -f -- "--run-dir $work/restart --auto-resume" | while read -r p; do
  [[ $(cat /proc/$p/comm 2>/dev/null) == rnnkit-lm ]] && echo $p; done | tail -1)
[[ -n $victim ]] || fail "no worker to kill: $(tail -3 "$work/restart.log")"
kill -9 "$victim"
status=0; wait $tr || status=$?
[[ $status -eq 0 ]] || fail "torchrun --max_restarts 1 did not recover (status $status): $(tail -5 "$work/restart.log")"
grep -q "resuming .*restart/last.pt at epoch" "$work/restart.log" || fail "the restarted workers did not resume"
[[ $(grep -c "^6," "$work/restart/metrics.csv") -eq 1 ]] || fail "the restarted run did not finish: $(cat "$work/restart/metrics.csv")"

# 7. Bad set-ups get clear errors.
out=$(trun "$lm" train --config "$work/lm.toml" --run-dir "$work/odd" --set train.batch_size=3 2>&1) && fail "batch 3 on 2 ranks accepted"
grep -q "train.batch_size = 3 is the global batch, shared by 2 processes" <<< "$out" || fail "odd batch: $out"
out=$(WORLD_SIZE=2 "$lm" train --config "$work/lm.toml" --run-dir "$work/norank" 2>&1) && fail "WORLD_SIZE without RANK accepted"
grep -q "WORLD_SIZE=2 is set but RANK is not" <<< "$out" || fail "no RANK: $out"
port=$(free_port)
start=$SECONDS
out=$(WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$lm" train --config "$work/lm.toml" --run-dir "$work/nomaster" --dist-timeout 3 2>&1) && fail "no master accepted"
grep -q "cannot reach the rendezvous store at 127.0.0.1:$port" <<< "$out" || fail "unreachable master: $out"
(( SECONDS - start <= 20 )) || fail "the unreachable master took $((SECONDS - start)) s to report"
# 8. Ranks given different configs stop at once, all of them, naming the first key that differs
# (not a Gloo abort, a 15 s hang, or a silently wrong model).
for diff in "model.hidden_size=24:model.hidden_size (16 on rank 0, 24 on rank 1)" \
            "train.learning_rate=0.25:train.learning_rate (0.5 on rank 0, 0.25 on rank 1)"; do
  set_arg=${diff%%:*} want=${diff#*:}
  port=$(free_port)
  WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$lm" train --config "$work/lm.toml" --threads 1 --run-dir "$work/diff" --overwrite --dist-timeout 60 \
    > "$work/diff0.log" 2>&1 & r0=$!
  WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$lm" train --config "$work/lm.toml" --threads 1 --run-dir "$work/diff_r1" --overwrite --dist-timeout 60 \
    --set "$set_arg" > "$work/diff1.log" 2>&1 & r1=$!
  s0=0; wait $r0 || s0=$?
  s1=0; wait $r1 || s1=$?
  [[ $s0 -eq 1 && $s1 -eq 1 ]] || fail "$set_arg: exit statuses $s0 and $s1, expected 1 and 1"
  for log in "$work/diff0.log" "$work/diff1.log"; do
    grep -qF "rank 1's config differs from rank 0's at $want" "$log" || fail "$set_arg: $(tail -3 "$log")"
  done
  [[ ! -e "$work/diff/best.pt" ]] || fail "$set_arg: rank 0 trained"
done
# 9. A stop signal while waiting for peers ends the wait within 2 s (a job is killed a few seconds
# after its SIGTERM), with 128 + signal and a line naming the wait; the rendezvous as a whole
# gives up after --dist-timeout (before: the store's wait, then Gloo's, each up to the timeout).
ms() { date +%s%3N; }
for sig in TERM INT HUP; do
  port=$(free_port)
  WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$lm" train --config "$work/lm.toml" --threads 1 --run-dir "$work/lone_$sig" --dist-timeout 300 \
    > "$work/lone.log" 2>&1 & r0=$!
  sleep 2
  sent=$(ms); kill -$sig $r0
  status=0; wait $r0 || status=$?
  took=$(( $(ms) - sent ))
  want=$(( 128 + $(kill -l $sig) ))
  [[ $status -eq $want ]] || fail "SIG$sig during the rendezvous: exit status $status, expected $want: $(tail -2 "$work/lone.log")"
  (( took <= 2000 )) || fail "SIG$sig during the rendezvous: ended $took ms later, not within 2 s"
  grep -q "rank 0 of 2: SIG$sig while waiting for the rendezvous of 2 ranks at 127.0.0.1:$port" "$work/lone.log" ||
    fail "SIG$sig during the rendezvous: $(tail -2 "$work/lone.log")"
done
# A peer that hangs (stopped with SIGSTOP) inside training: SIGTERM reaches rank 0 in a collective.
hang=(train --config "$work/lm.toml" --threads 1 --set train.epochs=1000 --set train.log_every=1 --dist-timeout 300)
port=$(free_port)
WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$lm" "${hang[@]}" --run-dir "$work/hang" > "$work/hang0.log" 2>&1 & r0=$!
WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$lm" "${hang[@]}" --run-dir "$work/hang_r1" > "$work/hang1.log" 2>&1 & r1=$!
for _ in $(seq 300); do grep -qs "step 20 " "$work/hang0.log" && break; sleep 0.1; done
grep -q "step 20 " "$work/hang0.log" || { kill -9 $r0 $r1; fail "the 2 ranks did not train: $(tail "$work/hang0.log")"; }
kill -STOP $r1
sleep 1
sent=$(ms); kill -TERM $r0
status=0; wait $r0 || status=$?
took=$(( $(ms) - sent ))
kill -9 $r1; wait $r1 2> /dev/null || true
[[ $status -eq 143 ]] || fail "SIGTERM in a collective: exit status $status: $(tail -2 "$work/hang0.log")"
(( took <= 2000 )) || fail "SIGTERM in a collective: ended $took ms later, not within 2 s"
grep -qE "rank 0 of 2: SIGTERM while waiting for an? (all-reduce|broadcast|all-gather)" "$work/hang0.log" ||
  fail "SIGTERM in a collective: $(tail -2 "$work/hang0.log")"
# A peer that hangs, without a signal: Gloo's timeout ends the collective and the heartbeats
# name the silent rank.
hang4=(train --config "$work/lm.toml" --threads 1 --set train.epochs=1000 --set train.log_every=1 --dist-timeout 4)
port=$(free_port)
WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$lm" "${hang4[@]}" --run-dir "$work/hang4" > "$work/hang40.log" 2>&1 & r0=$!
WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$lm" "${hang4[@]}" --run-dir "$work/hang4_r1" > "$work/hang41.log" 2>&1 & r1=$!
for _ in $(seq 300); do grep -qs "step 20 " "$work/hang40.log" && break; sleep 0.1; done
kill -STOP $r1
start=$SECONDS
status=0; wait $r0 || status=$?
kill -9 $r1; wait $r1 2> /dev/null || true
[[ $status -eq 1 ]] || fail "a hung peer: rank 0 exited $status: $(tail -2 "$work/hang40.log")"
(( SECONDS - start <= 20 )) || fail "a hung peer: rank 0 took $((SECONDS - start)) s (--dist-timeout 4)"
grep -q "lost rank 1" "$work/hang40.log" || fail "a hung peer is not named: $(tail -2 "$work/hang40.log")"
# The whole rendezvous within --dist-timeout.
port=$(free_port)
start=$(ms)
status=0
out=$(WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$lm" train --config "$work/lm.toml" --run-dir "$work/alone" --dist-timeout 3 2>&1) || status=$?
took=$(( $(ms) - start ))
[[ $status -eq 1 ]] || fail "a lone rank 0 exited $status, expected 1: $out"
(( took <= 5000 )) || fail "a lone rank 0 gave up after $took ms with --dist-timeout 3"
grep -qE "rank 0 of 2: .*(did not complete|did not form|cannot reach).* within 3 s" <<< "$out" || fail "a lone rank 0: $out"
echo "cli_distributed: a stop in the rendezvous or a collective ends within 2 s; a lone rank 0 gave up after $took ms (--dist-timeout 3)"
echo "cli_distributed: ok"
