#!/usr/bin/env bash
# The GPU leg in one command, for a lent GPU machine that has CUDA PyTorch 2.x (LibTorch inside
# it), nvcc, CMake and ninja but none of Debian's packages: configure against the interpreter's
# torch with the copies in third_party/ (scripts/vendor_deps.sh, run beforehand on a Debian
# machine and carried along), build the library's tests, and run the CUDA ones (Cuda*,
# CudaParity*, MixedEveryCellOnCuda*), then the rest of the library's tests, on the GPU machine's
# LibTorch. Each step is bounded and logged; OUT gets build.log (its last 400 lines), tests.log and
# summary.txt, few and small, as the device tool brings back only a few files.
#   scripts/gpu_check.sh OUT [--cpu-dry-run]
#     --cpu-dry-run (or --cpu): the dry run on a machine without a GPU: the same configure, build
#     and library tests; the CUDA tests may skip themselves there. Without it, a machine where
#     CUDA is not available fails the check.
# Exit status: 0 only when every step passed and (on a GPU) every CUDA test of the suite ran and
# passed: the tests are counted, not only their failures, since each skips itself without CUDA.
# Run on an H200 with torch 2.11.0+cu130 (README, CUDA): about 2 minutes with the machine's start.
# The apps, the benchmark against cuDNN and the char recipe on the GPU are not in this first
# check: they need cpp-httplib and OpenBLAS there too.
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT [--cpu-dry-run]}
mode=${2:-gpu}
case $mode in
  gpu) ;;
  --cpu | --cpu-dry-run) mode=--cpu ;;
  *) echo "usage: scripts/gpu_check.sh OUT [--cpu-dry-run]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build=${RNNKIT_GPU_BUILD:-/tmp/rnnkit_gpu_build}
python=${PYTHON:-python3}
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
step() {  # step NAME SECONDS COMMAND...: runs it bounded, notes its status and time
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  timeout "$limit" "$@"
  rc=$?
  note "$name: rc=$rc in $(($(date +%s) - start)) s"
  return $rc
}

prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') || { note "$python cannot import torch"; exit 1; }
note "torch $("$python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())')"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$summary"
if [[ -n ${RNNKIT_GPU_CHECK_TESTS:-} ]]; then
  tests=$RNNKIT_GPU_CHECK_TESTS  # already built: the check's own test (tests/gpu_check_test.sh)
else
  [[ -f $root/third_party/include/cxxopts.hpp ]] || { note "third_party/ is empty: run scripts/vendor_deps.sh and carry it"; exit 1; }
  jobs=$(nproc)
  args=(-G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix"
        -DRNNKIT_USE_VENDORED=ON -DRNNKIT_BUILD_APPS=OFF -DRNNKIT_BUILD_BENCH=OFF
        -DRNNKIT_BUILD_TESTS=ON -DRNNKIT_BUILD_PYTHON=OFF)
  if [[ $mode != --cpu ]]; then
    # Only the host code is compiled (rnnkit has no kernels of its own); CMake's CUDA language
    # checks need an architecture all the same: Hopper's.
    args+=(-DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0)
  fi
  step configure 120 cmake "${args[@]}" > "$out/configure.log" 2>&1 || { tail -n 60 "$out/configure.log" >> "$summary"; exit 1; }
  step build 330 cmake --build "$build" --target rnnkit_lib_tests --parallel "$jobs" -- -k 0 > "$build/build.log" 2>&1
  build_rc=$?
  tail -n 400 "$build/build.log" > "$out/build.log"
  if ((build_rc != 0)); then
    grep -E "error:" "$build/build.log" | sort -u | head -n 60 >> "$summary"
    exit 1
  fi
  tests=$build/tests/rnnkit_lib_tests
fi
cuda_filter='CudaParity.*:*/Cuda.*:*/MixedEveryCellOnCuda.*'
failed=0
: > "$out/tests.log"
# How many CUDA tests the suite has: all of them must run (not skip) and pass on a GPU.
expected=$("$tests" --gtest_filter="$cuda_filter" --gtest_list_tests | grep -c '^  ')
step cuda_tests 90 "$tests" --gtest_filter="$cuda_filter" --gtest_brief=0 >> "$out/tests.log" 2>&1 || failed=1
passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$out/tests.log" | tail -n 1)
skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\?, listed below.*/\1/p' "$out/tests.log" | tail -n 1)
grep -E "^\[  FAILED  \] [A-Za-z]" "$out/tests.log" | sort -u | head -n 40 >> "$summary"
# GoogleTest's PASSED count leaves the skipped ones out.
note "cuda_tests: ${passed:-0} passed, ${skipped:-0} skipped, of $expected in the suite"
if [[ $mode != --cpu ]] && ((${passed:-0} != expected)); then
  note "FAIL: $expected CUDA tests in the suite, ${passed:-0} ran and passed (is CUDA available?)"
  failed=1
fi
: > "$out/all_tests.log"
step all_lib_tests 120 "$tests" --gtest_brief=1 --gtest_filter="${RNNKIT_GPU_CHECK_FILTER:-*}" >> "$out/all_tests.log" 2>&1 || failed=1
grep -E "tests ran|PASSED|FAILED" "$out/all_tests.log" | tail -n 15 >> "$summary"
if ((failed)); then
  note "gpu_check: FAILED"
  exit 1
fi
note "gpu_check: passed"
