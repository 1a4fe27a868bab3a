#!/usr/bin/env bash
# nbdinfo sees the volume's size, block sizes and capabilities.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo

start_stack 64M 2
info=$(nbdinfo "$uri")
echo "$info"
[ "$(nbdinfo --size "$uri")" = 67108864 ] || fail "size is not 64 MiB"
grep -q "block_size_minimum: 512" <<<"$info" || fail "minimum block size not 512"
grep -q "block_size_maximum: 4194304" <<<"$info" || fail "maximum block size not 4 MiB"
for cap in can_flush can_fua can_trim can_zero can_multi_conn; do
  grep -q "$cap: true" <<<"$info" || fail "$cap is not advertised"
done
grep -q "is_read_only: false" <<<"$info" || fail "export is read-only"
echo PASS
