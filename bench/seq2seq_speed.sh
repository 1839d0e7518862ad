#!/usr/bin/env bash
# Training throughput of the Multi30k de-en recipe's model, rnnkit-seq2seq against the same
# architecture in Python PyTorch (seq2seq_throughput.py: torch.nn.GRU encoder, GRUCell decoder
# with additive attention), same LibTorch, threads and batch size, in one run; then beam-search
# speed of the trained checkpoint, if one is given.
# usage: bench/seq2seq_speed.sh BUILD_DIR [STEPS] [THREADS] [CHECKPOINT]
#        (data: scripts/fetch_data.sh --from DIR multi30k)
#
# Both sides get the same OpenBLAS kernels: the apps choose theirs on a CPU OpenBLAS does not know
# (--version names them), and Python's torch would otherwise run Prescott's there.
# rnnkit's rate is its progress line's, over all steps of the run (the first ones included);
# Python's leaves out 10 warm-up steps, so the ratio, if anything, favours torch.nn.
set -euo pipefail
build=$1 steps=${2:-200} threads=${3:-2} checkpoint=${4:-}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export RNNKIT_DATA=${RNNKIT_DATA:-$src/data}
s2s=$build/apps/rnnkit-seq2seq
kernels=$("$s2s" --version | sed -n 's/.*OpenBLAS kernels: \([A-Za-z0-9]*\).*/\1/p')
[[ -z ${OPENBLAS_CORETYPE:-} && -n $kernels ]] && export OPENBLAS_CORETYPE=$kernels
echo "== OpenBLAS kernels: ${OPENBLAS_CORETYPE:-as OpenBLAS chooses}, threads $threads, $steps steps"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$s2s" train --config "$src/configs/seq2seq_multi30k_de_en.toml" --run-dir "$work/run" --overwrite \
  --max-steps "$steps" --threads "$threads" --set train.log_every="$steps" 2> "$work/log"
rate=$(grep -E "^epoch 1 step $steps " "$work/log" | sed -n 's/.* \([0-9]*\) tok\/s .*/\1/p')
[[ -n $rate ]] || { cat "$work/log"; echo "no progress line for step $steps" >&2; exit 1; }
echo "rnnkit-seq2seq: $steps steps, $rate tok/s"
line=$(/usr/bin/python3 "$src/bench/seq2seq_throughput.py" --steps "$steps" --threads "$threads" \
  --data "$RNNKIT_DATA")
echo "$line"
torch_rate=$(sed -n 's/.* \([0-9]*\) tok\/s .*/\1/p' <<< "$line")
awk -v a="$rate" -v b="$torch_rate" 'BEGIN { printf "rnnkit / torch.nn: %.2fx\n", a / b }'

if [[ -n $checkpoint ]]; then
  valid=$RNNKIT_DATA/multi30k/tok/val.lc.norm.tok.de
  n=$(wc -l < "$valid")
  for beam in 1 5; do
    start=$(date +%s.%N)
    "$s2s" translate --checkpoint "$checkpoint" --file "$valid" --beam "$beam" --threads "$threads" > /dev/null
    end=$(date +%s.%N)
    awk -v n="$n" -v b="$beam" -v s="$start" -v e="$end" \
      'BEGIN { printf "translate beam %d: %d sentences in %.2f s, %.0f sentences/s (loading included)\n", b, n, e - s, n / (e - s) }'
  done
fi
