#!/usr/bin/env bash
# fio's nbd engine, mixed random reads and writes at queue depth 32, every
# block verified with crc32c; and a sequential write then verify pass.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio

start_stack 128M 2
fio --name=randrw --ioengine=nbd --uri="$uri" --rw=randrw --rwmixread=50 \
  --bs=4k --iodepth=32 --size=64M --verify=crc32c --verify_fatal=1 --verify_state_save=0 \
  --do_verify=1 --randrepeat=0 --output="$tmp/fio-randrw.txt" ||
  { cat "$tmp/fio-randrw.txt"; fail "fio randrw verify failed"; }
fio --name=seq --ioengine=nbd --uri="$uri" --rw=write --bs=1M --iodepth=8 \
  --size=128M --verify=crc32c --verify_fatal=1 --verify_state_save=0 --do_verify=1 \
  --output="$tmp/fio-seq.txt" ||
  { cat "$tmp/fio-seq.txt"; fail "fio sequential verify failed"; }
grep -E "err= *0" "$tmp/fio-randrw.txt" >/dev/null || fail "fio reported errors"
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ after fio"
echo PASS
