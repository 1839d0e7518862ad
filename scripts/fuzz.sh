#!/usr/bin/env bash
# Runs rnnkit's libFuzzer targets (fuzz/) from a build made with -DRNNKIT_BUILD_FUZZERS=ON (clang;
# scripts/sanitize.sh makes one). Each target first replays every input that once crashed it
# (fuzz/regressions/TARGET), then fuzzes from its seed corpus (fuzz/corpus/TARGET, copied: new
# inputs never land in the checkout). A crash leaves its input in WORK/crash-TARGET-* and exits 1.
#   scripts/fuzz.sh BUILD_DIR --runs N [TARGET...]       a fixed number of inputs per target (CI)
#   scripts/fuzz.sh BUILD_DIR --seconds S [TARGET...]    a time budget per target
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build=$(cd "$1" && pwd); shift
mode=$1 amount=$2; shift 2
case "$mode" in
  --runs) limit=(-runs="$amount") ;;
  --seconds) limit=(-max_total_time="$amount") ;;
  *) echo "usage: $0 BUILD_DIR --runs N|--seconds S [TARGET...]" >&2; exit 2 ;;
esac
targets=("$@")
((${#targets[@]})) || targets=(text conll labelled config vocab checkpoint ngram request)
work="${RNNKIT_FUZZ_WORK:-$build/fuzz-work}"
rm -rf "$work" && mkdir -p "$work"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_container_overflow=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Checkpoint seeds: real checkpoints of a tiny language model (written by this build).
seeds_ckpt="$work/seed-checkpoint"
mkdir -p "$seeds_ckpt"
head -c 3000 "$root/datasets/tinyshakespeare/valid.txt" > "$work/t.txt"
printf '[data]\nlevel = "char"\ntrain = "t.txt"\nvalid = "t.txt"\nbptt = 8\n[model]\nembedding_size = 4\nhidden_size = 4\n[train]\nepochs = 1\nbatch_size = 2\n' > "$work/t.toml"
"$build/apps/rnnkit-lm" train --config "$work/t.toml" --run-dir "$work/t" --threads 1 --max-steps 2 --quiet
cp "$work/t/last.pt" "$seeds_ckpt/last.pt"
# An n-gram model seed: a trigram model of the same text.
"$build/apps/rnnkit-lm" ngram train --config "$work/t.toml" --order 3 --output "$work/seed.ngram" 2>/dev/null

status=0
for t in "${targets[@]}"; do
  exe="$build/fuzz/fuzz_$t"
  [[ -x "$exe" ]] || { echo "fuzz: $exe is missing (build with -DRNNKIT_BUILD_FUZZERS=ON)" >&2; exit 2; }
  corpus="$work/corpus-$t"
  mkdir -p "$corpus"
  cp -r "$root/fuzz/corpus/$t/." "$corpus/" 2>/dev/null || true
  [[ $t == checkpoint ]] && cp "$seeds_ckpt/last.pt" "$corpus/"
  [[ $t == ngram ]] && cp "$work/seed.ngram" "$corpus/"
  regressions=("$root/fuzz/regressions/$t"/*)
  if [[ -e "${regressions[0]}" ]]; then
    "$exe" "${regressions[@]}" > "$work/$t-regressions.log" 2>&1 || {
      echo "fuzz_$t: a kept crash input fails again (see $work/$t-regressions.log)" >&2; status=1; continue; }
  fi
  max_len=8192
  [[ $t == checkpoint ]] && max_len=131072  # a whole seed checkpoint, not its first 8 KB
  if "$exe" "${limit[@]}" -seed=1 -max_len=$max_len -timeout=20 -rss_limit_mb=4096 \
       -artifact_prefix="$work/crash-$t-" "$corpus" > "$work/$t.log" 2>&1; then
    echo "fuzz_$t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$work/$t.log" || tail -1 "$work/$t.log"), $(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -1)"
  else
    echo "fuzz_$t: FOUND A CRASH: $(ls "$work"/crash-"$t"-* 2>/dev/null | head -1) (log: $work/$t.log)" >&2
    status=1
  fi
done
exit $status
