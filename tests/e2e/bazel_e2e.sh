#!/usr/bin/env bash
# Runs one e2e script under `bazel test`: gathers the binaries from the
# runfiles into one folder (DST_BIN, as the CMake build has it).
set -euo pipefail
script=$1
runfiles=${TEST_SRCDIR:?}/dst
bin=$(mktemp -d /tmp/dst-bazel-bin-XXXXXX)
trap 'rm -rf "$bin"' EXIT
ln -s "$runfiles/services/exporter/dst-exporter" "$bin/dst-exporter"
ln -s "$runfiles/services/gateway/dst-gateway" "$bin/dst-gateway"
ln -s "$runfiles/tools/dstctl/dstctl" "$bin/dstctl"
ln -s "$runfiles/nbdkit-plugin/nbdkit-dst-plugin.so" "$bin/nbdkit-dst-plugin.so"
ln -s "$runfiles/bench/nbdkit-handoff-floor.so" "$bin/nbdkit-handoff-floor.so"
DST_BIN=$bin bash "$runfiles/tests/e2e/$script"
