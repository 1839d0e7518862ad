#!/usr/bin/env bash
# Data-parallel throughput on one machine: each recipe for a fixed number of steps, as
# 1 process x T threads and as P processes x 1 thread (torchrun, Gloo on loopback), at the same
# global batch. Prints the steady rate rank 0 reports (global units per second, tok/s or sent/s)
# over the second half of the steps.
#   bench/scaling.sh BUILD_DIR [STEPS] [PROCESSES]
set -euo pipefail
build=$1 steps=${2:-120} procs=${3:-2}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GLOO_SOCKET_IFNAME=lo
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The mean rate of the progress lines in the second half of the run.
rate() { awk -v half=$((steps / 2)) '$3 == "step" && $4 > half { for (i = 1; i < NF; ++i) if ($(i + 1) ~ /\/s$/) { r += $i; n++ } }
         END { if (n) printf "%.0f %s", r / n, unit } ' unit="$2" "$1"; }
run() {  # name app config unit extra-args...
  local name=$1 app=$2 config=$3 unit=$4; shift 4
  local common=(train --config "$root/configs/$config" --max-steps "$steps" --set train.log_every=5 "$@")
  "$build/apps/rnnkit-$app" "${common[@]}" --run-dir "$work/$name-1" --threads "$procs" > /dev/null 2> "$work/$name-1.log"
  torchrun --nnodes 1 --nproc_per_node "$procs" --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$(free_port)" \
    --redirects 2 --tee 2 --no_python "$build/apps/rnnkit-$app" "${common[@]}" --run-dir "$work/$name-p" \
    --threads 1 > "$work/$name-p.log" 2>&1
  sed -i 's/^\[default0\]://' "$work/$name-p.log"
  printf '%-24s 1 x %d threads: %-14s %d x 1 thread: %s\n' "$name" "$procs" "$(rate "$work/$name-1.log" "$unit")" \
    "$procs" "$(rate "$work/$name-p.log" "$unit")"
}
run char-lm lm lm_char_shakespeare.toml tok/s
run ptb-small lm lm_word_ptb_small.toml tok/s
run conll-tagger ner ner_conll2003.toml sent/s --set train.max_minutes=0
