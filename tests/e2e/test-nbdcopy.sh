#!/usr/bin/env bash
# 256 MiB of random data copied in with nbdcopy and back out is identical,
# on a two-way mirror whose replicas are then byte-identical; the last byte
# of the device is written and read on its own.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy cmp
size=$((256 * 1024 * 1024))

start_stack 256M 2
head -c $size /dev/urandom >"$tmp/in.bin"
nbdcopy --flush "$tmp/in.bin" "$uri"
nbdcopy "$uri" "$tmp/out.bin"
cmp "$tmp/in.bin" "$tmp/out.bin" || fail "data read back differs from data written"
cmp "$tmp/e1.img" "$tmp/in.bin" || fail "replica e1 differs"
cmp "$tmp/e2.img" "$tmp/in.bin" || fail "replica e2 differs"

# The last byte (the last block: the minimum block size is 512).
$PYTHON - "$tmp/nbd.sock" $size <<'PY' || fail "last block test failed"
import sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
size = int(sys.argv[2])
assert h.get_size() == size
block = bytearray(512)
block[511] = 0xA5
h.pwrite(bytes(block), size - 512)
h.flush()
back = h.pread(512, size - 512)
assert back[511] == 0xA5, back[511]
h.shutdown()
PY
[ "$(tail -c 1 "$tmp/e1.img" | od -An -tx1 | tr -d ' ')" = a5 ] || fail "last byte not on e1"
[ "$(tail -c 1 "$tmp/e2.img" | od -An -tx1 | tr -d ' ')" = a5 ] || fail "last byte not on e2"
echo PASS
