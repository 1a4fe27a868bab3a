#!/usr/bin/env bash
# The layering of services/common/ (check-layers.sh), clang-format
# (.clang-format) and clang-tidy (.clang-tidy) on every dst
# source file, using the CMake build's compile_commands.json. Exits non-zero
# on any finding.
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
build=${DST_BUILD:-$DST_ROOT/build}
[ -f "$build/compile_commands.json" ] || { echo "lint: build first ($build)" >&2; exit 1; }
cd "$DST_ROOT"
scripts/check-layers.sh
git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror
echo "lint: clang-format clean"
files=$(git ls-files 'services/*.cc' 'nbdkit-plugin/*.cc' 'tools/*.cc' 'tests/*.cc')
# shellcheck disable=SC2086
printf '%s\n' $files | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet 2>/dev/null
echo "lint: clang-tidy clean ($(echo $files | wc -w) files)"
