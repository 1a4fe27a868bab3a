#!/usr/bin/env bash
# An exporter serving a block device (a loop device over a file): its size
# comes from the device, data written through NBD lands on it, and trim and
# zero work (BLKDISCARD / BLKZEROOUT or their fallbacks). Online growth:
# past the device's size `dstctl resize` is refused, saying why, with
# nothing changed; once the device grew (losetup -c) the exporter measures
# it again and the volume grows.
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

if dstctl_ resize vol0 96M 2>"$tmp/resize.err"; then fail "a resize past the device was accepted"; fi
grep -q "fewer than 100663296: grow the device first" "$tmp/resize.err" ||
  fail "unclear refusal: $(cat "$tmp/resize.err")"
[ "$(nbdinfo --size "$uri")" = 67108864 ] || fail "a refused resize changed the size"
truncate -s 96M "$tmp/backing.img"
losetup -c "$loop"
dstctl_ resize vol0 96M >/dev/null || fail "the resize failed once the device grew"
[ "$(nbdinfo --size "$uri")" = 100663296 ] || fail "a new connection does not see 96 MiB"
$PYTHON - "$tmp/nbd.sock" <<'PY' || fail "I/O past the old end of the device failed"
import sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
assert h.pread(1 << 20, 64 << 20) == bytes(1 << 20), "new space is not zeroes"
h.pwrite(b"g" * (1 << 20), 95 << 20)
h.flush()
h.shutdown()
PY
cmp -i $((95 << 20)):0 -n $((1 << 20)) "$loop" <(head -c 1M /dev/zero | tr '\0' g) ||
  fail "the write past the old end is not on the device"
echo PASS
