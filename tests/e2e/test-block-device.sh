#!/usr/bin/env bash
# An exporter serving a block device (a loop device over a file): its size
# comes from the device, data written through NBD lands on it, and trim and
# zero work (BLKDISCARD / BLKZEROOUT or their fallbacks).
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy losetup cmp
requires_root

truncate -s 64M "$tmp/backing.img"
loop=$(losetup -f --show "$tmp/backing.img") || fail "losetup failed (loop devices?)"
on_exit "losetup -d $loop"
"$DST_BIN/dst-exporter" --listen="unix:$tmp/e1.sock" --backing="$loop" --id=dev \
  --state="$tmp/e1.state" 2>"$tmp/e1.log" &
pids+=($!)
wait_for_socket "$tmp/e1.sock"
# A block device's epoch and generations need a file of their own.
"$DST_BIN/dst-exporter" --listen="unix:$tmp/x.sock" --backing="$loop" 2>"$tmp/x.err" &&
  fail "a block device without --state was accepted"
grep -q -- "--state=PATH is required" "$tmp/x.err" || fail "no --state error: $(cat "$tmp/x.err")"
gateway_config vol0 e1
start_gateway
start_nbdkit vol0
[ "$(nbdinfo --size "$uri")" = 67108864 ] || fail "size not taken from the device"
head -c 64M /dev/urandom >"$tmp/in.bin"
nbdcopy --flush "$tmp/in.bin" "$uri"
cmp "$tmp/in.bin" "$loop" || fail "device contents differ from what was written"
$PYTHON - "$tmp/nbd.sock" <<'PY' || fail "zero/trim on a block device failed"
import sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
h.zero(1 << 20, 0)                            # may trim
h.zero(1 << 20, 1 << 20, nbd.CMD_FLAG_NO_HOLE)
h.trim(1 << 20, 4 << 20)
h.flush()
assert h.pread(2 << 20, 0) == bytes(2 << 20), "zeroed range not zero"
h.shutdown()
PY
cmp -n $((2 << 20)) "$loop" /dev/zero || fail "zeroes did not reach the device"
cmp -i $((5 << 20)) "$tmp/in.bin" "$loop" || fail "data outside the trimmed range changed"
echo PASS
