#!/usr/bin/env bash
# End-to-end training throughput of the shipped recipes in fp32 and under mixed precision, the
# runs alternated so that all see the same machine state (issue 32's end-to-end table):
# the char LM (lm_char_shakespeare), PTB small (lm_word_ptb_small), the CoNLL tagger
# (ner_conll2003) and SST-2 (sentiment_sst2).
#
#   bench/precision_e2e.sh [BUILD_DIR] [STEPS] [ROUNDS] [DEVICE]   # defaults: build 30 1 cpu
# On a CPU it compares fp32 with bf16; with DEVICE cuda also fp16 (with loss scaling). Prints
# the median tokens/s or sentences/s of each run's last progress line (the epoch's mean from its
# first step) and the ratio to fp32. Needs PTB, CoNLL-2003 and SST-2 in the data root
# (scripts/fetch_data.sh); a recipe whose data is missing is reported as such, not skipped.
set -euo pipefail
build=${1:-build}
steps=${2:-30}
rounds=${3:-1}
device=${4:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
precisions=(fp32 bf16)
[[ $device == cuda* ]] && precisions+=(fp16)

recipes=(lm:lm_char_shakespeare lm:lm_word_ptb_small ner:ner_conll2003 sentiment:sentiment_sst2)
declare -A rates unit
for r in $(seq "$rounds"); do
  for entry in "${recipes[@]}"; do
    app=${entry%%:*} recipe=${entry#*:}
    for p in "${precisions[@]}"; do
      dir=$work/$recipe-$p-$r
      if ! out=$(cd "$root/configs" && "$build/apps/rnnkit-$app" train --config "$recipe.toml" \
                   --run-dir "$dir" --device "$device" --max-steps "$steps" \
                   --set "train.log_every=$(( steps / 3 > 0 ? steps / 3 : 1 ))" \
                   --set "train.precision=$p" 2>&1); then
        echo "$recipe $p: failed: $(tail -n 3 <<<"$out")" >&2
        exit 1
      fi
      last=$(grep -oE '[0-9.]+ (tok|sent)/s' <<<"$out" | tail -1)
      [[ -n $last ]] || { echo "$recipe $p: no progress line in: $(tail -n 3 <<<"$out")" >&2; exit 1; }
      rates[$recipe-$p]+="${last%% *} "
      unit[$recipe]=${last#* }
      echo "$recipe $p round $r: $last" >&2
    done
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
header="| recipe | unit | fp32"
rule="|---|---|---"
for p in "${precisions[@]:1}"; do header+=" | $p | $p / fp32"; rule+="|---|---"; done
echo "$header |"
echo "$rule|"
for entry in "${recipes[@]}"; do
  recipe=${entry#*:}
  base=$(echo "${rates[$recipe-fp32]}" | median)
  row="| $recipe | ${unit[$recipe]} | $base"
  for p in "${precisions[@]:1}"; do
    x=$(echo "${rates[$recipe-$p]}" | median)
    row+=" | $x | $(awk -v a="$x" -v b="$base" 'BEGIN {printf "%.2fx", a / b}')"
  done
  echo "$row |"
done
