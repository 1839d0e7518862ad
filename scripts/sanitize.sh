#!/usr/bin/env bash
# The standing guards (part of `scripts/quickstart.sh test`, hence of CI): a second build of
# rnnkit with clang, AddressSanitizer and UndefinedBehaviorSanitizer on its own code (LibTorch is
# Debian's, uninstrumented), and libFuzzer coverage instrumentation. Then, under the sanitizers:
#   - the GoogleTest binaries (library, framework, ner, sentiment, gradflow; about a minute);
#   - tests/cli_hardening.sh (the apps' faults and bad input, end to end);
#   - every fuzz target for a fixed number of inputs after replaying its kept crash inputs.
# Skipped here (run in the main build only): the training-heavy command-line tests sentiment_cli,
# ner_cli and distributed_cli, and plot_metrics (gnuplot). CUDA tests skip without a GPU.
# RNNKIT_SANITIZE_DIR overrides the build folder (default: build-sanitize/ in the checkout);
# RNNKIT_FUZZ_RUNS the inputs per fuzz target (default 2000).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${RNNKIT_SANITIZE_DIR:-$root/build-sanitize}"
# -O1 with line tables only: what AddressSanitizer's own docs build with, and a quarter faster to
# compile than RelWithDebInfo's -O2 -g (its file:line stack traces stay).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
  -DRNNKIT_SANITIZE=address,undefined -DRNNKIT_BUILD_FUZZERS=ON -DRNNKIT_BUILD_BENCH=OFF > /dev/null
tests="rnnkit_lib_tests rnnkit_train_tests rnnkit_ner_tests rnnkit_sentiment_tests rnnkit_gradflow_tests"
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" --target $tests rnnkit-lm rnnkit-gradflow \
  fuzz_text fuzz_conll fuzz_labelled fuzz_config fuzz_vocab fuzz_checkpoint fuzz_ngram fuzz_request
# No leak suppressions: LeakSanitizer reports any leak, ours or LibTorch's. Container-overflow
# checks need every library instrumented, and LibTorch is not.
export ASAN_OPTIONS="detect_leaks=1:detect_container_overflow=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# The binaries side by side, one per core; each one's output is shown when it fails.
export build
# shellcheck disable=SC2086,SC2016
printf '%s\n' $tests | xargs -P "$(nproc)" -I{} bash -c '
  echo "sanitize: {} under ASan+UBSan" >&2
  "$build/tests/{}" --gtest_brief=1 > "$build/{}.log" 2>&1 \
    || { cat "$build/{}.log" >&2; echo "sanitize: {} failed" >&2; exit 255; }'
echo "sanitize: the GoogleTest binaries are clean" >&2
echo "sanitize: cli_hardening under ASan+UBSan" >&2
"$root/tests/cli_hardening.sh" "$build" "$root" "$build/hardening_cli"
echo "sanitize: fuzzing" >&2
"$root/scripts/fuzz.sh" "$build" --runs "${RNNKIT_FUZZ_RUNS:-2000}"
echo "sanitize: clean" >&2
