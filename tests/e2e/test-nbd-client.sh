#!/usr/bin/env bash
# The kernel NBD client: this host's kernel has no nbd module, so the test
# boots a small QEMU guest (software emulation) with Debian's kernel and an
# initramfs holding busybox, the dst stack, nbdkit, nbd-client and e2fsprogs.
# In the guest: two exporters, a gateway with a mirrored volume and nbdkit
# run; `nbd-client` attaches /dev/nbd0; mkfs.ext4, mount, write and check,
# unmount, disconnect, reconnect and check again; then one exporter is
# killed with SIGKILL while a file is being written and fsynced, with no
# error seen by dd, the file system or the kernel log; the exporter comes
# back, the replicas resync and `dstctl verify` finds them identical; the
# volume grows online (`dstctl resize`), the client picks the size up on a
# reconnect and resize2fs grows the mounted ext4; e2fsck finds the file
# system clean. All traffic stays on the guest's loopback (-nic none).
#
# The kernel package is fetched from Debian's mirror (apt-get download, never
# installed) into DST_KERNEL_CACHE (default /var/cache/dst-test/kernel).
source "$(dirname "$0")/functions.sh"
requires qemu-system-x86_64 busybox nbd-client nbdkit mke2fs e2fsck resize2fs cpio gzip \
  apt-get dpkg-deb ldd
file -L "$(command -v busybox)" 2>/dev/null | grep -q "statically linked" ||
  fail "busybox is not the static one (install busybox-static)"

# The kernel: the image linux-image-amd64 depends on, unpacked.
cache=${DST_KERNEL_CACHE:-/var/cache/dst-test/kernel}
mkdir -p "$cache"
package=$(apt-cache depends linux-image-amd64 2>/dev/null |
  awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$package" ] || fail "cannot tell which kernel linux-image-amd64 is (apt-get update?)"
if [ ! -d "$cache/$package" ]; then
  (cd "$tmp" && apt-get download "$package" >"$tmp/download.log" 2>&1) ||
    fail "apt-get download $package failed"
  dpkg-deb -x "$tmp"/"$package"_*.deb "$cache/$package.partial"
  mv "$cache/$package.partial" "$cache/$package"
  rm -f "$tmp"/"$package"_*.deb
fi
kernel=$(ls "$cache/$package"/boot/vmlinuz-*)
modules=$(ls -d "$cache/$package"/lib/modules/*)

# The initramfs: busybox, the programs and every library they load.
root=$tmp/root
mkdir -p "$root"/{bin,sbin,dst,lib/modules,etc,proc,sys,dev,tmp,mnt,run}
cp "$(command -v busybox)" "$root/bin/busybox"
programs=("$DST_BIN/dst-exporter" "$DST_BIN/dst-gateway" "$DST_BIN/dstctl"
  "$DST_BIN/nbdkit-dst-plugin.so" "$(command -v nbdkit)" "$(command -v nbd-client)"
  "$(command -v mke2fs)" "$(command -v e2fsck)" "$(command -v resize2fs)")
for program in "${programs[@]}"; do
  cp "$(readlink -f "$program")" "$root/dst/$(basename "$program")"
  ldd "$program" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' |
    while read -r lib; do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
done
# Modules, in dependency order (the .deb has no modules.dep; `modinfo -F
# depends` gave: ext4 needs jbd2, mbcache, crc16; nbd needs nothing).
for module in lib/crc16 fs/mbcache fs/jbd2/jbd2 crypto/crc32c_generic fs/ext4/ext4 \
  drivers/block/nbd; do
  cp "$modules/kernel/$module.ko" "$root/lib/modules/"
done
[ "$(modinfo -F depends "$modules/kernel/fs/ext4/ext4.ko")" = "jbd2,mbcache,crc16" ] ||
  fail "ext4's module dependencies changed: $(modinfo -F depends "$modules/kernel/fs/ext4/ext4.ko")"

cat >"$root/init" <<'GUEST'
#!/bin/busybox sh
/bin/busybox --install -s /bin
# Busybox's shell runs its own applets first (it has mke2fs, nbd-client):
# the real programs are called by their /dst paths.
export PATH=/dst:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1
mount -t tmpfs -o size=1500m tmpfs /tmp
ip link set lo up
for m in crc16 mbcache jbd2 crc32c_generic ext4 nbd; do insmod /lib/modules/$m.ko; done
step() { echo "GUEST: $*"; }
die() {
  echo "GUEST-FAIL: $*"
  for log in /tmp/*.log; do echo "---- $log"; tail -n 15 "$log"; done
  dmesg | tail -n 20
  poweroff -f
}
ctl() { dstctl --gateway=unix:/tmp/gateway.sock "$@"; }
exporter() {
  dst-exporter --listen=unix:/tmp/$1.sock --backing=/tmp/$1.img --size=256M --id=$1 \
    2>>/tmp/$1.log &
}
# Until every replica is in sync (the resync starts by itself; --wait
# follows it).
in_sync() { timeout 300 dstctl --gateway=unix:/tmp/gateway.sock resync vol0 start --wait >/tmp/resync.log 2>&1; }

exporter e1; e1=$!
exporter e2
cat >/tmp/gateway.yaml <<EOF
listen: ["unix:/tmp/gateway.sock"]
state_dir: /tmp/gateway-state
volumes:
  - name: vol0
    replicas: [{address: "unix:/tmp/e1.sock"}, {address: "unix:/tmp/e2.sock"}]
EOF
dst-gateway --config=/tmp/gateway.yaml --id=guest 2>/tmp/gateway.log &
for i in $(seq 1 300); do ctl volumes 2>/dev/null | grep -q " ready " && break; sleep 0.2; done
ctl volumes | grep -q " ready " || die "vol0 not ready"
# nbdkit writes its pid file once it listens.
/dst/nbdkit -f -i 127.0.0.1 -p 10809 -P /tmp/nbdkit.pid /dst/nbdkit-dst-plugin.so \
  gateway=unix:/tmp/gateway.sock volume=vol0 2>/tmp/nbdkit.log &
for i in $(seq 1 100); do [ -s /tmp/nbdkit.pid ] && break; sleep 0.2; done
step "stack up"

# -t: the NBD request timeout, well above dst's failover time (lag limit 1 s).
attach() { /dst/nbd-client -N vol0 -t 60 127.0.0.1 10809 /dev/nbd0 >/tmp/nbd-client.log 2>&1 ||
  die "nbd-client attach"; }
attach
[ "$(cat /sys/block/nbd0/size)" = 524288 ] || die "/dev/nbd0 is not 256 MiB"
/dst/mke2fs -t ext4 -q /dev/nbd0 || die "mkfs.ext4"
mount -t ext4 /dev/nbd0 /mnt || die "mount"
dd if=/dev/urandom of=/mnt/first bs=1M count=32 2>/dev/null || die "write"
md5sum /mnt/first >/tmp/first.md5
umount /mnt || die "umount"
/dst/nbd-client -d /dev/nbd0 >/dev/null 2>&1 || die "disconnect"
step "written, unmounted, disconnected"
attach
mount -t ext4 /dev/nbd0 /mnt || die "mount after reconnect"
md5sum -c -s /tmp/first.md5 || die "data differs after reconnect"
step "reconnected, data verified"

# One exporter killed while a file is written and fsynced.
dd if=/dev/urandom of=/tmp/second bs=1M count=48 2>/dev/null
(dd if=/tmp/second of=/mnt/second bs=1M conv=fsync 2>/tmp/dd.log; echo $? >/tmp/dd.status) &
sleep 1
[ -f /tmp/dd.status ] && die "the write ended before the kill; make it longer"
kill -9 "$e1"
step "exporter e1 killed during the write"
for i in $(seq 1 1200); do [ -f /tmp/dd.status ] && break; sleep 0.5; done
[ "$(cat /tmp/dd.status 2>/dev/null)" = 0 ] || die "dd failed: $(cat /tmp/dd.log)"
ctl volumes | grep -q " degraded " || die "vol0 is not degraded with e1 gone"
sync
echo 3 >/proc/sys/vm/drop_caches
cmp /tmp/second /mnt/second || die "the file written during the kill differs"
md5sum -c -s /tmp/first.md5 || die "the first file differs"
step "write through the kill verified"

exporter e1
sleep 1
in_sync || die "replicas not in sync after e1 came back: $(tail -n 8 /tmp/resync.log)"
copied=$(ctl replicas vol0 | grep -o "last [0-9.]* [KMG]iB in [0-9.]* s")
ctl verify vol0 >/tmp/verify.log 2>&1 || die "verify: $(cat /tmp/verify.log)"
grep -q "on 2 in-sync replica(s): identical" /tmp/verify.log || die "verify: $(cat /tmp/verify.log)"
step "e1 back, resync $copied, $(cat /tmp/verify.log)"

# Online growth: 256 -> 384 MiB. The kernel keeps the size it attached
# with (nbd-client 3.24 cannot reconfigure it), so the client reconnects;
# then ext4 grows while mounted.
ctl resize vol0 384M >/tmp/resize.log 2>&1 || die "dstctl resize: $(cat /tmp/resize.log)"
umount /mnt || die "umount before the reconnect"
/dst/nbd-client -d /dev/nbd0 >/dev/null 2>&1 || die "disconnect"
attach
[ "$(cat /sys/block/nbd0/size)" = 786432 ] || die "/dev/nbd0 is $(cat /sys/block/nbd0/size) sectors, not 384 MiB"
mount -t ext4 /dev/nbd0 /mnt || die "mount after the resize"
/dst/resize2fs /dev/nbd0 >/tmp/resize2fs.log 2>&1 || die "resize2fs: $(cat /tmp/resize2fs.log)"
blocks=$(df -k /mnt | awk 'NR == 2 { print $2 }')
[ "$blocks" -gt 300000 ] || die "ext4 did not grow: $blocks KiB"
dd if=/dev/urandom of=/mnt/third bs=1M count=24 conv=fsync 2>/dev/null || die "write into the new space"
md5sum -c -s /tmp/first.md5 || die "the first file differs after the resize"
cmp /tmp/second /mnt/second || die "the second file differs after the resize"
ctl verify vol0 >/tmp/verify.log 2>&1 || die "verify: $(cat /tmp/verify.log)"
step "grown to 384 MiB, ext4 $blocks KiB, $(cat /tmp/verify.log)"
umount /mnt || die "umount"
/dst/e2fsck -fn /dev/nbd0 >/tmp/e2fsck.log 2>&1 || die "e2fsck: $(cat /tmp/e2fsck.log)"
/dst/nbd-client -d /dev/nbd0 >/dev/null 2>&1
if dmesg | grep -iE "I/O error|EXT4-fs error|blk_update_request|nbd.*(timed out|error)"; then
  die "the kernel logged errors"
fi
echo "GUEST-PASS"
poweroff -f
GUEST
chmod +x "$root/init"
mknod -m 600 "$root/dev/console" c 5 1
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/initrd.gz"
echo "initramfs: $(du -h "$tmp/initrd.gz" | cut -f1), kernel $package"

SECONDS=0
timeout 900 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2560 -nographic -no-reboot \
  -nic none -kernel "$kernel" -initrd "$tmp/initrd.gz" \
  -append "console=ttyS0 panic=-1 loglevel=4" >"$tmp/guest.log" 2>&1 ||
  echo "qemu exited with $?"
grep "GUEST" "$tmp/guest.log" || true
grep -q "^GUEST-PASS" "$tmp/guest.log" || {
  tail -n 60 "$tmp/guest.log" >&2
  fail "the guest did not pass"
}
echo "nbd-client in a QEMU guest: passed in $SECONDS s"
