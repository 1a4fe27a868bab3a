#!/usr/bin/env bash
# Checks that each library of services/common/ includes only itself and the
# libraries below it (the same order as services/common/BUILD.bazel, where
# Bazel enforces it; the CMake build would not notice). Exits non-zero on a
# violation, naming the file and the include.
set -euo pipefail
cd "$(dirname "$0")/.."
# library: what it may include from services/common/ (itself and below).
declare -A allowed=(
  [base]="base"
  [security]="base security"
  [observability]="base observability"
  [rpc]="base security rpc"
  [transport]="base security rpc transport"
  [protocol]="base security rpc transport protocol"
)
status=0
for dir in services/common/*/; do
  lib=$(basename "$dir")
  if [ -z "${allowed[$lib]+set}" ]; then
    echo "check-layers: services/common/$lib/ is not a known library (add it here and to BUILD.bazel)" >&2
    status=1
    continue
  fi
  while IFS=: read -r file _ include; do
    used=$(sed -E 's|.*"services/common/([a-z_]+)/.*|\1|' <<<"$include")
    if ! grep -qw "$used" <<<"${allowed[$lib]}"; then
      echo "check-layers: $file includes $used/ ($include); $lib/ may use only: ${allowed[$lib]}" >&2
      status=1
    fi
  done < <(grep -Hn '#include "services/common/' "$dir"*.h "$dir"*.cc || true)
done
loose=$(find services/common -maxdepth 1 -type f \( -name '*.h' -o -name '*.cc' \))
if [ -n "$loose" ]; then
  echo "check-layers: files directly in services/common/ belong in one of its libraries: $loose" >&2
  status=1
fi
[ $status -eq 0 ] && echo "check-layers: services/common/ libraries include only their own layers"
exit $status
