#!/usr/bin/env bash
# The systemd units of deploy/systemd pass `systemd-analyze verify` against
# the binaries `cmake --install` puts where they point (installed into a
# scratch prefix here, the unit paths rewritten to it).
source "$(dirname "$0")/functions.sh"
requires systemd-analyze
root="$(cd "$(dirname "$0")/../.." && pwd)"
prefix="$tmp/prefix"
mkdir -p "$prefix/bin" "$prefix/lib/nbdkit/plugins"
cp "$DST_BIN/dst-exporter" "$DST_BIN/dst-gateway" "$DST_BIN/dstctl" "$prefix/bin/"
cp "$DST_BIN/nbdkit-dst-plugin.so" "$prefix/lib/nbdkit/plugins/"
mkdir -p "$tmp/units"
for unit in "$root"/deploy/systemd/*.service; do
  sed -e "s|/usr/local/bin/|$prefix/bin/|g" \
    -e "s|/usr/local/lib/nbdkit/plugins/|$prefix/lib/nbdkit/plugins/|g" \
    "$unit" >"$tmp/units/$(basename "$unit")"
done
for unit in "$tmp"/units/*.service; do
  name=$(basename "$unit")
  # Verify an instance of a template unit.
  [ "${name%@.service}" != "$name" ] && cp "$unit" "$tmp/units/${name%@.service}@a.service" &&
    unit="$tmp/units/${name%@.service}@a.service"
  out=$(systemd-analyze verify "$unit" 2>&1 | grep -v "Failed to .*no such file\|/etc/dst" || true)
  [ -z "$out" ] || fail "$(basename "$unit"): $out"
done
grep -q "ExecReload=/bin/kill -HUP" "$root/deploy/systemd/dst-gateway.service" ||
  fail "the gateway unit does not reload on systemctl reload"
echo PASS
