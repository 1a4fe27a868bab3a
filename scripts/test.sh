#!/usr/bin/env bash
# Runs dst's whole test suite: installs what is missing, builds with CMake
# (warnings are errors), runs the unit, integration and e2e tests with
# ctest, checks clang-format and clang-tidy, runs the unit and integration
# tests again under ASan+UBSan and under TSan, fuzzes config parsing and
# request validation for a bounded time, then builds and tests the same
# targets with Bazel, offline.
#
# The unit and integration tests include the seeded crash simulation
# (tests/crash): 2 shards of 1500 seeds in the plain build, of 100 under
# each sanitizer.
#
# Environment: DST_BUILD (default ./build; the sanitizer builds go to
# $DST_BUILD-asan and $DST_BUILD-tsan, TSan's Abseil to
# $DST_BUILD-tsan-absl), DST_SKIP_SANITIZERS=1 and DST_SKIP_BAZEL=1 to skip
# those passes (not in CI). Each step prints how long it took.
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$DST_ROOT/scripts/deps.sh"
build=${DST_BUILD:-$DST_ROOT/build}

step_start=$SECONDS
# step NAME: prints how long the previous step took, then NAME.
step() {
  echo "dst: step done in $((SECONDS - step_start)) s; next: $1" >&2
  step_start=$SECONDS
}

step "packages"
install_packages test
step "build"
build_dst "$build"
step "ctest (unit, integration, crash simulation, e2e)"
(cd "$build" && ctest -j2 --output-on-failure --timeout 900)
step "lint"
"$DST_ROOT/scripts/lint.sh"

if [ "${DST_SKIP_SANITIZERS:-0}" != 1 ]; then
  # Unit and integration tests under AddressSanitizer (with leak checks) and
  # UndefinedBehaviorSanitizer; any report fails the test.
  step "ASan+UBSan build and tests"
  build_dst "$build-asan" -DDST_SANITIZE=address,undefined -DDST_CRASH_SEEDS=100
  (cd "$build-asan" &&
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest -j2 --output-on-failure --timeout 900 -E '^e2e\.')
fi

if [ "${DST_SKIP_SANITIZERS:-0}" != 1 ]; then
  # Unit and integration tests under ThreadSanitizer, against Abseil rebuilt
  # with TSan from Debian's source (so every absl::Mutex is seen) and with
  # the suppressions in tests/tsan.supp for gRPC's own uninstrumented
  # hand-offs. Any other report fails the test. The canary (a deliberate
  # race) must be reported, or the pass is blind.
  step "TSan build and tests"
  bash "$DST_ROOT/scripts/tsan-abseil.sh" "$build-tsan-absl"
  build_dst "$build-tsan" -DDST_SANITIZE=thread -DDST_CRASH_SEEDS=100
  tsan_env=(LD_LIBRARY_PATH="$build-tsan-absl/lib"
    TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1 second_deadlock_stack=1 suppressions=$DST_ROOT/tests/tsan.supp")
  if env "${tsan_env[@]}" "$build-tsan/bin/tsan_canary" >"$build-tsan/canary.log" 2>&1 ||
    ! grep -q "ThreadSanitizer: data race" "$build-tsan/canary.log"; then
    cat "$build-tsan/canary.log"
    echo "dst: the TSan canary's race was not reported; the TSan pass is blind" >&2
    exit 1
  fi
  (cd "$build-tsan" && env "${tsan_env[@]}" ctest -j2 --output-on-failure --timeout 900 -E '^e2e\.')
fi

# libFuzzer targets (clang): config parsing and request validation, each for
# DST_FUZZ_SECONDS (default 30) from the seed corpus in tests/fuzz/corpus.
step "fuzz"
CC=clang CXX=clang++ cmake -S "$DST_ROOT" -B "$build-fuzz" -DDST_FUZZ=ON \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DDST_WERROR=OFF -DDST_FUZZ_SECONDS="${DST_FUZZ_SECONDS:-30}" >/dev/null
cmake --build "$build-fuzz" -j"$(nproc)" --target config_fuzzer request_fuzzer
(cd "$build-fuzz" && ctest -j2 --output-on-failure -L fuzz)

if [ "${DST_SKIP_BAZEL:-0}" != 1 ]; then
  step "bazel"
  "$DST_ROOT/scripts/bazel-test.sh"
fi
step "end"
echo "dst: all tests passed in $SECONDS s"
