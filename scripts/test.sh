#!/usr/bin/env bash
# Runs dst's whole test suite: installs what is missing, builds with CMake
# (warnings are errors), runs the unit, integration and e2e tests with
# ctest, checks clang-format and clang-tidy, then builds and tests the same
# targets with Bazel, offline.
#
# Environment: DST_BUILD (default ./build), DST_SKIP_BAZEL=1 to skip the
# Bazel pass (not in CI).
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$DST_ROOT/scripts/deps.sh"
build=${DST_BUILD:-$DST_ROOT/build}

install_packages test
build_dst "$build"
(cd "$build" && ctest -j2 --output-on-failure --timeout 900)
"$DST_ROOT/scripts/lint.sh"

if [ "${DST_SKIP_BAZEL:-0}" != 1 ]; then
  "$DST_ROOT/scripts/bazel-test.sh"
fi
echo "dst: all tests passed"
