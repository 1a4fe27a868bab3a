#!/usr/bin/env bash
# A file system on the volume: nbdfuse exposes it as a file, a loop device
# makes it a block device, mkfs.ext4, mount, write files, unmount, e2fsck
# must find it clean, remount and the files are intact.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdfuse losetup mkfs.ext4 e2fsck mount umount fusermount3 sha256sum
requires_root
[ -e /dev/fuse ] || fail "/dev/fuse is missing"

start_stack 128M 2
mkdir "$tmp/fuse" "$tmp/mnt"
nbdfuse "$tmp/fuse" --unix "$tmp/nbd.sock" 2>"$tmp/nbdfuse.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -e "$tmp/fuse/nbd" ] && break; sleep 0.05; done
[ -e "$tmp/fuse/nbd" ] || fail "nbdfuse did not expose the device"
on_exit "fusermount3 -u '$tmp/fuse' 2>/dev/null"
loop=$(losetup -f --show "$tmp/fuse/nbd") || fail "losetup failed (loop devices?)"
on_exit "losetup -d $loop 2>/dev/null"
mkfs.ext4 -q -F "$loop" || fail "mkfs.ext4 failed"
mount "$loop" "$tmp/mnt" || fail "mount failed"
on_exit "umount '$tmp/mnt' 2>/dev/null"
for i in 1 2 3 4 5; do
  head -c $((i * 1024 * 1024 + 123)) /dev/urandom >"$tmp/mnt/file$i"
done
mkdir "$tmp/mnt/dir" && echo "hello dst" >"$tmp/mnt/dir/greeting"
(cd "$tmp/mnt" && sha256sum file* dir/greeting) >"$tmp/sums"
umount "$tmp/mnt"
e2fsck -fn "$loop" || fail "e2fsck found the file system damaged"
mount "$loop" "$tmp/mnt" || fail "remount failed"
(cd "$tmp/mnt" && sha256sum -c --quiet "$tmp/sums") || fail "files changed after remount"
umount "$tmp/mnt"
losetup -d "$loop"
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ"
echo PASS
