#!/usr/bin/env bash
# scripts/gpu_check.sh can fail: on this machine (Debian's LibTorch has no CUDA, so every CUDA
# test skips itself) it exits 1 unless told --cpu-dry-run, and a failing suite fails it either
# way. The check's configure and build are skipped (RNNKIT_GPU_CHECK_TESTS names the built
# rnnkit_lib_tests) and its library step runs one small test, so this takes seconds.
# usage: gpu_check_test.sh SOURCE_DIR LIB_TESTS WORK_DIR
set -euo pipefail
root=$1 lib_tests=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$root/tests/lib.sh"
# Debian's interpreter, which has python3-torch (a pyenv python3 first on PATH may not).
export PYTHON=${PYTHON:-/usr/bin/python3}
export RNNKIT_GPU_CHECK_FILTER='Cells.ParameterNamesAndShapesFollowDocsEquations'
check() {  # check WANT_STATUS TESTS ARGS...: runs the check, its status must be WANT_STATUS
  local want=$1 tests=$2 status=0
  shift 2
  RNNKIT_GPU_CHECK_TESTS=$tests "$root/scripts/gpu_check.sh" "$work/out" "$@" > "$work/log.txt" 2>&1 \
    || status=$?
  [[ $status -eq $want ]] || fail "gpu_check.sh $* exited $status, expected $want: $(cat "$work/log.txt")"
}

# No CUDA here: the CUDA tests all skip, and the check says so and fails.
check 1 "$lib_tests"
expected=$("$lib_tests" --gtest_filter='CudaParity.*:*/Cuda.*:*/MixedEveryCellOnCuda.*' --gtest_list_tests | grep -c '^  ')
((expected > 0)) || fail "the suite lists no CUDA tests"
grep -q "FAIL: $expected CUDA tests in the suite, 0 ran and passed" "$work/out/summary.txt" \
  || fail "the summary does not say that no CUDA test ran: $(cat "$work/out/summary.txt")"
grep -q "gpu_check: FAILED" "$work/out/summary.txt" || fail "no verdict in the summary"
# The dry run accepts the skips.
check 0 "$lib_tests" --cpu-dry-run
grep -q "gpu_check: passed" "$work/out/summary.txt" || fail "the dry run's summary: $(cat "$work/out/summary.txt")"
grep -q "all_lib_tests: rc=0" "$work/out/summary.txt" || fail "the library step did not run"

# A suite that fails (a stand-in binary) fails the check, in the dry run too.
cat > "$work/failing_tests" <<'SH'
#!/usr/bin/env bash
if [[ " $* " == *" --gtest_list_tests "* ]]; then printf 'Cuda.\n  One\n'; exit 0; fi
printf '[  FAILED  ] Cuda.One\n[  FAILED  ] 1 test, listed below:\n'
exit 1
SH
chmod +x "$work/failing_tests"
check 1 "$work/failing_tests" --cpu-dry-run
grep -q "cuda_tests: rc=1" "$work/out/summary.txt" || fail "the failing step is not noted"
# A flag it does not know is a usage error.
check 2 "$lib_tests" --bad-flag
echo "gpu_check_test: passed"
