#!/usr/bin/env bash
# SIGKILL at random moments, and right after a checkpoint write has begun, of a run that spends most of its time writing checkpoints (a 2M-
# parameter LSTM, epochs of 4 steps, so best.pt and last.pt are rewritten every few hundred ms).
# After every kill: best.pt and last.pt (when present) must load and evaluate, --resume must
# continue, and the resumed run must remove the killed writer's temp files.
#   scripts/kill_during_checkpoint.sh RNNKIT_LM WORK_DIR [KILLS]
set -euo pipefail
lm=$1 work=$2 kills=${3:-20}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
head -c 4000 "$root/datasets/tinyshakespeare/train.txt" > "$work/t.txt"
head -c 300 "$root/datasets/tinyshakespeare/valid.txt" > "$work/v.txt"
cat > "$work/k.toml" <<EOT
[data]
level = "char"
train = "t.txt"
valid = "v.txt"
bptt = 50
[model]
embedding_size = 64
hidden_size = 640
[train]
epochs = 100000
batch_size = 16
EOT
run=(train --config "$work/k.toml" --run-dir "$work/run" --threads 1 --quiet)
hit_tmp=0 loaded=0
for i in $(seq "$kills"); do
  # --auto-resume: continue from last.pt, or start again if a kill came before the first one.
  "$lm" "${run[@]}" --auto-resume &
  pid=$!
  if (( i % 2 )); then  # at a random moment
    sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 1.5 + rand() * 3.0 }')"
  else                  # as soon as a checkpoint write has begun
    for _ in $(seq 3000); do compgen -G "$work/run/*.tmp.*" > /dev/null && break; sleep 0.005; done
  fi
  kill -9 $pid 2> /dev/null || fail "kill $i: the run ended by itself: $(ls "$work/run")"
  wait $pid 2> /dev/null || true
  ls "$work/run" | grep '\.tmp\.' > /dev/null && hit_tmp=$((hit_tmp + 1))
  for f in best last; do
    [[ -f "$work/run/$f.pt" ]] || continue
    "$lm" eval --checkpoint "$work/run/$f.pt" --file "$work/v.txt" --threads 1 > /dev/null 2>&1 \
      || fail "kill $i: $f.pt does not load"
    loaded=$((loaded + 1))
  done
done
# One more resume, stopped cleanly: the leftovers of the last kill are gone.
"$lm" "${run[@]}" --auto-resume --max-steps 1
! ls "$work/run" | grep '\.tmp\.' > /dev/null || fail "temp files remain after a resume"
echo "kill_during_checkpoint: $kills kills, $hit_tmp inside a checkpoint write (temp file left), $loaded checkpoint loads, all good"
