#!/usr/bin/env bash
# qemu-img writes an image into the volume and compares it back.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-img

start_stack 64M 1
head -c $((48 * 1024 * 1024)) /dev/urandom >"$tmp/src.img"
truncate -s 64M "$tmp/src.img"
qemu_uri="nbd+unix:///?socket=$tmp/nbd.sock"
[ "$(qemu-img info --output=json "$qemu_uri" | grep -o '"virtual-size": [0-9]*' |
     grep -o '[0-9]*$')" = 67108864 ] || fail "qemu-img sees the wrong size"
qemu-img convert -n -f raw -O raw "$tmp/src.img" "$qemu_uri"
qemu-img compare -f raw -F raw "$tmp/src.img" "$qemu_uri" || fail "images differ"
# A changed byte must be found.
printf 'x' | dd of="$tmp/src.img" bs=1 seek=1000 conv=notrunc status=none
if qemu-img compare -q -f raw -F raw "$tmp/src.img" "$qemu_uri"; then
  fail "qemu-img compare missed a difference"
fi
echo PASS
