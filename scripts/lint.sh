#!/usr/bin/env bash
# The layering of services/common/ (check-layers.sh), clang-format
# (.clang-format) and clang-tidy (.clang-tidy) on every dst
# source file, using the CMake build's compile_commands.json. Exits non-zero
# on any finding. DST_TIDY_CACHE: where clean results are remembered
# (default ~/.cache/dst-clang-tidy; "off" analyses every file).
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
build=${DST_BUILD:-$DST_ROOT/build}
[ -f "$build/compile_commands.json" ] || { echo "lint: build first ($build)" >&2; exit 1; }
cd "$DST_ROOT"
scripts/check-layers.sh
git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror
echo "lint: clang-format clean"
# clang-tidy skips a file whose input (preprocessed, with the checks and
# the compile command) it passed before: see clang-tidy-cached.py.
# shellcheck disable=SC2046
python3 scripts/clang-tidy-cached.py "$build" \
  $(git ls-files 'services/*.cc' 'nbdkit-plugin/*.cc' 'tools/*.cc' 'tests/*.cc')
echo "lint: clang-tidy clean"
