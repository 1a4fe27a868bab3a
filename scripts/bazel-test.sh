#!/usr/bin/env bash
# Builds and tests every target with Bazel (Debian's offline
# bazel-bootstrap): nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
# The output base lives outside the tree so CI's fresh clone starts clean.
# Compiled actions are shared through a disk cache keyed by their inputs,
# not by the clone's path (as ccache does for CMake); test results are
# never taken from it: every test runs.
cache=(--disk_cache="${DST_BAZEL_CACHE:-$HOME/.cache/dst-bazel}")
bazel build "${cache[@]}" //...
# The fault-injection, benchmark and deployment e2e tests already ran
# under ctest.
bazel test "${cache[@]}" --nocache_test_results //... --local_test_jobs=2 \
  --test_tag_filters=-fault,-bench,-deploy
