#!/usr/bin/env bash
# End-to-end training throughput of the two bidirectional apps in three set-ups, alternated so
# that all see the same machine state: "before" (glibc's malloc defaults, the directions one
# after the other), "malloc" (freed memory kept, directions sequential) and "after" (both).
#
#   bench/bidirectional_e2e.sh [BUILD_DIR] [STEPS] [ROUNDS]      # defaults: build 300 2
# Prints the median sentences/s of the last progress line of each run; docs/benchmarks.md
# records it. Needs CoNLL-2003 and SST-2 in the data root (scripts/fetch_data.sh).
set -euo pipefail
build=${1:-build}
steps=${2:-300}
rounds=${3:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A env_of=(
  [before]="RNNKIT_MALLOC=glibc RNNKIT_CONCURRENT_DIRECTIONS=0"
  [malloc]="RNNKIT_CONCURRENT_DIRECTIONS=0"
  [after]="RNNKIT_CONCURRENT_DIRECTIONS=1"
)
declare -A rates
for app in ner sentiment; do
  case $app in
    ner) config=$root/configs/ner_conll2003.toml ;;
    sentiment) config=$root/configs/sentiment_sst2.toml ;;
  esac
  for r in $(seq "$rounds"); do
    for mode in before malloc after; do
      dir=$work/$app-$mode-$r
      rate=$(cd "$root" && env ${env_of[$mode]} "$build/apps/rnnkit-$app" train --config "$config" \
               --run-dir "$dir" --max-steps "$steps" --set "train.log_every=$((steps / 3))" 2>&1 |
             grep -oE '[0-9.]+ sent/s' | tail -1 | cut -d' ' -f1)
      rates[$app-$mode]+="$rate "
      echo "$app $mode round $r: $rate sent/s" >&2
    done
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| app | before sent/s | freed memory kept | + concurrent directions | speed-up |"
echo "|---|---|---|---|---|"
for app in ner sentiment; do
  b=$(echo "${rates[$app-before]}" | median)
  m=$(echo "${rates[$app-malloc]}" | median)
  a=$(echo "${rates[$app-after]}" | median)
  echo "| $app | $b | $m | $a | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2fx", a / b}') |"
done
