#!/usr/bin/env bash
# Fast zero (NBD_CMD_FLAG_FAST_ZERO), both outcomes, through one gateway:
# 1. vol0, a two-way mirror on files of /tmp (ext4, which punches holes and
#    zeroes ranges): can_fast_zero; a fast zero that may trim and one that
#    may not both succeed, read as zeroes, on both replicas alike;
# 2. vol1, one replica on a ramfs (no fallocate at all): a fast
#    zero fails at once with ENOTSUP and writes nothing; a plain zero still
#    works (written zeroes);
# and qemu-img convert -n onto each makes a correct copy. (qemu-img 7.2's
# convert and nbdcopy 1.14 send no fast zero here, as nbdkit's log filter
# shows: both outcomes are driven through libnbd.)
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-img mount cmp
requires_root

start_exporter e1 64M
start_exporter e2 64M
mkdir "$tmp/ramfs"
mount -t ramfs ramfs "$tmp/ramfs" || fail "mounting a ramfs failed"
"$DST_BIN/dst-exporter" --listen="unix:$tmp/e3.sock" --backing="$tmp/ramfs/e3.img" \
  --size=64M --id=e3 2>"$tmp/e3.log" &
e3_pid=$!
pids+=($e3_pid)
on_exit "kill $e3_pid; wait $e3_pid; umount $tmp/ramfs"
wait_for_socket "$tmp/e3.sock"
cat >"$tmp/gateway.yaml" <<YAML
state_dir: "$tmp/gateway-state"
volumes:
  - name: vol0
    replicas:
      - address: "unix:$tmp/e1.sock"
      - address: "unix:$tmp/e2.sock"
  - name: vol1
    replicas:
      - address: "unix:$tmp/e3.sock"
YAML
start_gateway
for volume in vol0 vol1; do
  nbdkit -f -U "$tmp/$volume.sock" "$DST_BIN/nbdkit-dst-plugin.so" \
    gateway="unix:$tmp/gateway.sock" volume="$volume" 2>"$tmp/nbdkit-$volume.log" &
  pids+=($!)
  wait_for_socket "$tmp/$volume.sock"
done

# --- direct requests ------------------------------------------------------
$PYTHON - "$tmp/vol0.sock" "$tmp/vol1.sock" <<'PY' || fail "fast zero requests"
import errno, os, sys, nbd
cheap, refusing = nbd.NBD(), nbd.NBD()
cheap.connect_unix(sys.argv[1])
refusing.connect_unix(sys.argv[2])
for h in (cheap, refusing):
    assert h.can_fast_zero(), "fast zero not advertised"
    h.pwrite(b"d" * (4 << 20), 0)
cheap.zero(1 << 20, 0, nbd.CMD_FLAG_FAST_ZERO)
cheap.zero(1 << 20, 1 << 20, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
assert cheap.pread(2 << 20, 0) == bytes(2 << 20), "fast zero did not zero"
assert cheap.pread(1 << 20, 2 << 20) == b"d" * (1 << 20), "zeroed too much"
try:
    refusing.zero(1 << 20, 0, nbd.CMD_FLAG_FAST_ZERO)
    sys.exit("a fast zero on ramfs succeeded")
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, f"errno {e.errnum}, not ENOTSUP: {e}"
assert refusing.pread(1 << 20, 0) == b"d" * (1 << 20), "a refused fast zero wrote"
refusing.zero(1 << 20, 0)  # no fast flag: zeroes are written
assert refusing.pread(1 << 20, 0) == bytes(1 << 20), "plain zero did not zero"
for h in (cheap, refusing):
    h.flush()
    h.shutdown()
PY
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "the mirror's replicas differ after fast zeroes"
grep -q "UNIMPLEMENTED: no fast zero on" "$tmp/e3.log" || fail "e3 never refused a fast zero"

# --- qemu-img convert -n onto each ----------------------------------------
head -c $((8 << 20)) /dev/urandom >"$tmp/src.img"
truncate -s 64M "$tmp/src.img"
for volume in vol0 vol1; do
  uri="nbd+unix:///?socket=$tmp/$volume.sock"
  qemu-img convert -n -f raw -O raw "$tmp/src.img" "$uri" || fail "qemu-img convert onto $volume"
  qemu-img compare -f raw -F raw "$tmp/src.img" "$uri" || fail "$volume differs from the source"
done
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "the mirror's replicas differ after qemu-img"
! grep -q "UNIMPLEMENTED" "$tmp/e1.log" "$tmp/e2.log" || fail "the ext4 mirror refused a fast zero"
echo PASS
