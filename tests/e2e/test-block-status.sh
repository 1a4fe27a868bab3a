#!/usr/bin/env bash
# Block status (NBD base:allocation) of a sparse two-way mirror:
# 1. nbdinfo --map shows its holes, and nbdcopy and qemu-img convert make
#    correct copies that stay sparse;
# 2. after a trim, a write-zeroes that may punch and one that may not, the
#    extents reported zero read as zeroes through the volume and on both
#    replicas (block_status_check.py), and written data is never a hole;
# 3. the same after a replica missed writes, a trim and a write-zeroes while
#    it was killed, and was resynchronized (which keeps it sparse).
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo nbdcopy qemu-img cmp
check() { "$(dirname "$0")/block_status_check.py" "$tmp/nbd.sock" "$@"; }
MiB=$((1024 * 1024))

start_stack 512M 2
# 8 MiB of data: 4 MiB at 0 and 4 MiB at 256 MiB; the rest never written.
$PYTHON - "$tmp/nbd.sock" <<'PY' || fail "writing the data failed"
import os, sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
h.pwrite(os.urandom(4 << 20), 0)
h.pwrite(os.urandom(4 << 20), 256 << 20)
h.flush()
h.shutdown()
PY

# --- 1. the map, and sparse copies -------------------------------------
nbdinfo --map "$uri" >"$tmp/map.txt" || fail "nbdinfo --map failed"
cat "$tmp/map.txt"
expected="0 4194304 0
4194304 264241152 3
268435456 4194304 0
272629760 264241152 3"
[ "$(awk '{print $1, $2, $3}' "$tmp/map.txt")" = "$expected" ] ||
  fail "the map is not 4 MiB data, hole, 4 MiB data, hole"

allocated() { du -B1 "$1" | cut -f1; }
nbdcopy "$uri" "$tmp/copy.raw"
cmp "$tmp/copy.raw" "$tmp/e1.img" || fail "nbdcopy's copy differs from the volume"
echo "nbdcopy: copy allocates $(allocated "$tmp/copy.raw") bytes"
[ "$(allocated "$tmp/copy.raw")" -le $((16 * MiB)) ] ||
  fail "nbdcopy's copy of 8 MiB of data is not sparse"
qemu-img convert -f raw -O qcow2 "$uri" "$tmp/copy.qcow2"
qemu-img compare -f qcow2 -F raw "$tmp/copy.qcow2" "$tmp/e1.img" ||
  fail "qemu-img convert's copy differs from the volume"
echo "qemu-img convert: qcow2 allocates $(allocated "$tmp/copy.qcow2") bytes"
[ "$(allocated "$tmp/copy.qcow2")" -le $((16 * MiB)) ] ||
  fail "qemu-img convert's copy of 8 MiB of data is not sparse"
check "$tmp/e1.img" "$tmp/e2.img" || fail "block status disagrees with reads"

# --- 2. trim and write-zeroes ------------------------------------------
$PYTHON - "$tmp/nbd.sock" <<'PY' || fail "trim or write-zeroes failed"
import os, sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
h.trim(1 << 20, 0)                                 # data, trimmed
h.zero(1 << 20, 1 << 20)                           # may punch
h.zero(1 << 20, 2 << 20, nbd.CMD_FLAG_NO_HOLE)     # must stay allocated
h.zero(1 << 20, 257 << 20, nbd.CMD_FLAG_NO_HOLE)
h.pwrite(os.urandom(64 << 10), 100 << 20)          # into a hole
h.flush()
h.shutdown()
PY
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ after trim and write-zeroes"
out=$(check "$tmp/e1.img" "$tmp/e2.img") || fail "block status disagrees with reads: $out"
echo "after trim and write-zeroes: $out"
# Data that was written stays data: 3 MiB of the first 4, 64 KiB at
# 100 MiB, 3 MiB at 256 MiB (write-zeroes left 1 MiB there reading zero).
data=${out#data }
data=${data% zero*}
[ "$data" -ge $((3 * MiB + 64 * 1024)) ] ||
  fail "only $data bytes are data: written data is reported as zeroes"
data_before=$data

# --- 3. after a resync -------------------------------------------------
kill -9 "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
$PYTHON - "$tmp/nbd.sock" <<'PY' || fail "I/O with e2 away failed"
import os, sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
h.pwrite(os.urandom(1 << 20), 128 << 20)           # into a hole
h.trim(1 << 20, 256 << 20)                          # data, trimmed
h.zero(1 << 20, 3 << 20)                            # data, zeroed
h.flush()
h.shutdown()
PY
start_exporter e2 512M
wait_in_sync
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ after the resync"
out=$(check "$tmp/e1.img" "$tmp/e2.img") || fail "block status disagrees with reads after resync: $out"
echo "after the resync: $out"
# Resync copies zeroes as write-zeroes that may punch: the replica brought
# back is as sparse as its source. 1 MiB was written while e2 was away and
# 2 MiB trimmed or zeroed, so there is less data than before.
data=${out#data }
data=${data% zero*}
[ "$data" -le "$data_before" ] ||
  fail "$data bytes are data after the resync, $data_before before: resync filled holes"
nbdinfo --map "$uri" | awk '$1 <= 134217728 && $1 + $2 > 134217728' >"$tmp/at128.txt"
grep -qw data "$tmp/at128.txt" || fail "data written while e2 was away is not data: $(cat "$tmp/at128.txt")"
echo PASS
