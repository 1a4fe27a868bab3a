# The stacks the benchmarks measure, started on tmpfs: sourced by run.sh,
# ab.sh, instructions.sh, syscalls.sh and disk.sh, which set $size, $bin,
# $exporter_flags and $nbdkit_flags first.
# Also the workloads both run (name, then fio's flags).
# Everything started is stopped, and $work removed, when the script exits
# (what is mounted first: the commands in $undo, last first).
# On tmpfs unless the caller set $bench_dir (bench/disk.sh: a disk).
work=$(mktemp -d "${bench_dir:-/dev/shm}/dst-bench-XXXXXX")
pids=()
undo=()
cleanup() {
  local i
  for ((i = ${#undo[@]} - 1; i >= 0; i--)); do eval "${undo[i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
wait_socket() {
  for _ in $(seq 1 600); do [ -S "$1" ] && return 0; sleep 0.05; done
  echo "bench: $1 did not appear" >&2
  exit 1
}

# launch ROLE COMMAND...: runs COMMAND in place of the (background) shell
# that calls it, so that $! is its pid; prefixed with the $wrap command
# (e.g. valgrind) when ROLE is $wrap_role (exporter1, gateway, nbdkit).
launch() {
  local role=$1
  shift
  if [ "$role" = "${wrap_role:-}" ]; then exec "${wrap[@]}" "$@"; fi
  exec "$@"
}

# start_config NAME [STACK]: starts the stack of configuration NAME with the
# programs in $bin, in $work/STACK (default NAME); sets $uri and writes the
# stack's pids file ("role pid" lines).
start_config() {
  local name=$1 dir="$work/${2:-$1}"
  mkdir -p "$dir"
  : >"$dir/pids"
  case "$name" in
    baseline)
      truncate -s "$size" "$dir/base.img"
      nbdkit -f -U "$dir/nbd.sock" "${nbdkit_flags[@]}" file file="$dir/base.img" 2>"$dir/nbdkit.log" &
      pids+=($!)
      echo "nbdkit $!" >>"$dir/pids"
      ;;
    floor)
      truncate -s "$size" "$dir/floor.img"
      nbdkit -f -U "$dir/nbd.sock" "${nbdkit_flags[@]}" "$bin/nbdkit-handoff-floor.so" \
        file="$dir/floor.img" 2>"$dir/nbdkit.log" &
      pids+=($!)
      echo "nbdkit $!" >>"$dir/pids"
      ;;
    relay | qsd-relay | qsd-quorum)
      # The peers a user would pick instead of dst, each over nbdkit file
      # servers ("backend1", "backend2"): nbdkit's nbd plugin relaying to
      # one; qemu-storage-daemon relaying to one (an nbd blockdev exported
      # over NBD); qemu-storage-daemon mirroring to two (a quorum blockdev,
      # vote-threshold=1, read-pattern=fifo: the existing user-space
      # mirror). The backends run the noextents filter: qemu's NBD server
      # answers each read sparsely, asking its child for block status
      # first, and nbdkit's file plugin answers that with SEEK_DATA and
      # SEEK_HOLE, which on tmpfs walk the page cache (2-3 ms a read here,
      # a few hundred IOPS). The files are full, so every block is data
      # either way; dst never asks. qemu-storage-daemon allocates a buffer
      # per request: glibc's mmap threshold is raised so that a 1 MiB one
      # is not mapped, faulted in and unmapped each time (5-7x on the
      # sequential workloads here).
      local count=1
      [ "$name" = qsd-quorum ] && count=2
      for i in $(seq 1 "$count"); do
        truncate -s "$size" "$dir/back$i.img"
        nbdkit -f -U "$dir/back$i.sock" "${nbdkit_flags[@]}" --filter=noextents \
          file file="$dir/back$i.img" 2>"$dir/backend$i.log" &
        pids+=($!)
        echo "backend$i $!" >>"$dir/pids"
        wait_socket "$dir/back$i.sock"
      done
      if [ "$name" = relay ]; then
        nbdkit -f -U "$dir/nbd.sock" "${nbdkit_flags[@]}" nbd socket="$dir/back1.sock" \
          2>"$dir/nbdkit.log" &
        pids+=($!)
        echo "nbdkit $!" >>"$dir/pids"
      else
        local blockdevs=() node=c1
        for i in $(seq 1 "$count"); do
          blockdevs+=(--blockdev "driver=nbd,node-name=c$i,server.type=unix,server.path=$dir/back$i.sock")
        done
        if [ "$name" = qsd-quorum ]; then
          blockdevs+=(--blockdev "driver=quorum,node-name=q,children.0=c1,children.1=c2,vote-threshold=1,read-pattern=fifo")
          node=q
        fi
        GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432 \
          qemu-storage-daemon "${blockdevs[@]}" \
          --nbd-server "addr.type=unix,addr.path=$dir/nbd.sock" \
          --export "type=nbd,id=export0,node-name=$node,writable=on,name=" 2>"$dir/qsd.log" &
        pids+=($!)
        echo "qsd $!" >>"$dir/pids"
      fi
      ;;
    dst-1 | dst-2 | embedded-2)
      local count=${name##*-} replicas=""
      for i in $(seq 1 "$count"); do
        start_exporter "$dir" "$i"
        replicas+="      - address: \"unix:$dir/e$i.sock\""$'\n'
      done
      printf 'state_dir: "%s"\nvolumes:\n  - name: vol0\n    replicas:\n%s' \
        "$dir/state" "$replicas" >"$dir/gateway.yaml"
      if [ "$name" = embedded-2 ]; then
        launch nbdkit nbdkit -f -U "$dir/nbd.sock" "${nbdkit_flags[@]}" "$bin/nbdkit-dst-plugin.so" \
          config="$dir/gateway.yaml" volume=vol0 2>"$dir/nbdkit.log" &
        pids+=($!)
        echo "nbdkit $!" >>"$dir/pids"
        wait_socket "$dir/nbd.sock"
        uri="nbd+unix:///?socket=$dir/nbd.sock"
        return
      fi
      launch gateway "$bin/dst-gateway" --config="$dir/gateway.yaml" --listen="unix:$dir/gateway.sock" \
        --log-level=warning 2>"$dir/gateway.log" &
      pids+=($!)
      echo "gateway $!" >>"$dir/pids"
      wait_socket "$dir/gateway.sock"
      for _ in $(seq 1 600); do
        "$bin/dstctl" --gateway="unix:$dir/gateway.sock" volumes 2>/dev/null |
          grep -q " ready " && break
        sleep 0.05
      done
      launch nbdkit nbdkit -f -U "$dir/nbd.sock" "${nbdkit_flags[@]}" "$bin/nbdkit-dst-plugin.so" \
        gateway="unix:$dir/gateway.sock" volume=vol0 2>"$dir/nbdkit.log" &
      pids+=($!)
      echo "nbdkit $!" >>"$dir/pids"
      ;;
  esac
  wait_socket "$dir/nbd.sock"
  uri="nbd+unix:///?socket=$dir/nbd.sock"
}

# start_exporter DIR I: starts exporter I of the dst stack in DIR on its
# file DIR/eI.img (created, or kept from before a restart) and adds it to
# DIR/pids.
start_exporter() {
  local dir=$1 i=$2
  rm -f "$dir/e$i.sock"
  launch "exporter$i" "$bin/dst-exporter" --listen="unix:$dir/e$i.sock" --backing="$dir/e$i.img" \
    --size="$size" --id="e$i" --log-level=warning $exporter_flags 2>>"$dir/e$i.log" &
  pids+=($!)
  echo "exporter$i $!" >>"$dir/pids"
  wait_socket "$dir/e$i.sock"
}

# measure_resync DIR OUT [READ_TIME]: on the two-way mirror in DIR
# (dst-2, its gateway at DIR/gateway.sock), with resync stopped: kills
# exporter 2 (-9), writes the first 3/4 of the volume sequentially (1 MiB,
# QD8) while it is away, restarts it on its file and waits for its link;
# then starts the resync, unthrottled, and waits until it is in sync. OUT
# gets bench/resync.py's JSON (the gateway's account: bytes, seconds from
# the first copy to the promotion). With READ_TIME (fio's units: 800ms),
# fio reads 4 KiB at random at QD1 for that long from the resync's start
# on (OUT.fio.json):
# the latency of the reads that arrive during a resync.
measure_resync() {
  local dir=$1 out=$2 read_time=${3:-}
  local gateway="unix:$dir/gateway.sock" nbd="nbd+unix:///?socket=$dir/nbd.sock"
  local old
  old=$(awk '$1 == "exporter2" {print $2}' "$dir/pids")
  "$bin/dstctl" --gateway="$gateway" resync vol0 stop >/dev/null
  kill -KILL "$old"
  wait "$old" 2>/dev/null || true
  sed -i '/^exporter2 /d' "$dir/pids"
  local mib=$(($(numfmt --from=iec "$size") / 4 * 3 / 1048576))
  fio --name=miss --ioengine=nbd --uri="$nbd" --rw=write --bs=1M --iodepth=8 \
    --size="${mib}M" --output=/dev/null
  start_exporter "$dir" 2
  local copied
  copied=$(python3 "$DST_ROOT/bench/resync.py" "$bin/dstctl" "$gateway" vol0 \
    "unix:$dir/e2.sock" --connected)
  local reader=""
  if [ -n "$read_time" ]; then
    fio --name=during-resync --ioengine=nbd --uri="$nbd" --rw=randread --bs=4k --iodepth=1 \
      --size="$size" --time_based --runtime="$read_time" --percentile_list=50:99:99.9 \
      --output-format=json --output="$out.fio.json" &
    reader=$!
  fi
  "$bin/dstctl" --gateway="$gateway" resync vol0 start >/dev/null
  # Not watched while the reads run: a dstctl run costs this machine a few
  # ms of CPU, which the reads' p99 would feel.
  [ -z "$reader" ] || wait "$reader"
  python3 "$DST_ROOT/bench/resync.py" "$bin/dstctl" "$gateway" vol0 "unix:$dir/e2.sock" \
    --after "$copied" >"$out"
}

# measure_userlevel CONFIG OUT RUNTIME: what a user's tools see through the
# export of CONFIG (started, $work/CONFIG/nbd.sock), written to the
# directory OUT. qemu-img convert of $work/source.img (random data, $size)
# onto the export and back (must come back the same): convert.json. Then
# ext4 on the export (nbdfuse exposes it as a file, a loop device makes
# it a disk, mkfs.ext4, mount): fio writing 4 KiB at random with an fsync
# after each write, a database's pattern, for RUNTIME seconds
# (ext4-fsync.json), and 1/4 of the volume sequentially in 1 MiB writes
# with an fsync at the end (ext4-seq.json). Unmounted afterwards.
measure_userlevel() {
  local config=$1 out=$2 runtime=$3
  local sock="$work/$config/nbd.sock" uri="nbd+unix:///?socket=$work/$config/nbd.sock"
  local fuse="$work/$config/fuse" mnt="$work/$config/mnt" t0 t1 t2 loop nbdfuse_pid
  local undone=${#undo[@]}
  mkdir -p "$out" "$fuse" "$mnt"
  t0=$(date +%s.%N)
  qemu-img convert -n -f raw -O raw "$work/source.img" "$uri"
  t1=$(date +%s.%N)
  qemu-img convert -f raw -O raw "$uri" "$work/copy.img"
  t2=$(date +%s.%N)
  cmp -s "$work/source.img" "$work/copy.img" || {
    echo "bench: $config: qemu-img convert read back other data than it wrote" >&2
    exit 1
  }
  rm -f "$work/copy.img"
  python3 -c 'import json, sys
size, t0, t1, t2 = int(sys.argv[1]), *map(float, sys.argv[2:])
print(json.dumps({"bytes": size, "write_seconds": round(t1 - t0, 3),
                  "read_seconds": round(t2 - t1, 3)}))' \
    "$(stat -c %s "$work/source.img")" "$t0" "$t1" "$t2" >"$out/convert.json"
  nbdfuse "$fuse" --unix "$sock" 2>>"$work/$config/nbdfuse.log" &
  nbdfuse_pid=$!
  pids+=("$nbdfuse_pid")
  undo+=("fusermount3 -u '$fuse'")
  for _ in $(seq 1 200); do [ -e "$fuse/nbd" ] && break; sleep 0.05; done
  loop=$(losetup -f --show "$fuse/nbd")
  undo+=("losetup -d $loop")
  mkfs.ext4 -q -F "$loop"
  mount "$loop" "$mnt"
  undo+=("umount '$mnt'")
  fio --name=ext4-fsync --directory="$mnt" --rw=randwrite --bs=4k --size=64M --fsync=1 \
    --time_based --runtime="$runtime" --percentile_list=50:99 \
    --output-format=json --output="$out/ext4-fsync.json"
  fio --name=ext4-seq --directory="$mnt" --rw=write --bs=1M \
    --size=$(($(numfmt --from=iec "$size") / 4 / 1048576))M --end_fsync=1 \
    --output-format=json --output="$out/ext4-seq.json"
  umount "$mnt"
  detach_loop "$loop" "$fuse/nbd"
  fusermount3 -u "$fuse"
  wait "$nbdfuse_pid" 2>/dev/null || true
  undo=("${undo[@]:0:undone}")
}

# detach_loop LOOP FILE: detaches the loop device LOOP and waits until it has
# let go of FILE. The kernel detaches a device still open (udev probing it
# after the umount) only at its last close, and until then FILE is busy:
# fusermount3 -u failed with "Device or resource busy" (CI, 2026-12-07).
detach_loop() {
  losetup -d "$1"
  for _ in $(seq 1 200); do
    [ -z "$(losetup -j "$2")" ] && return 0
    sleep 0.05
  done
  echo "bench: $1 still holds $2 10 s after losetup -d" >&2
  exit 1
}

# start_filled CONFIG...: starts each configuration and fills its volume
# (fill_volume), so that reads read data; uris[CONFIG] is its export.
declare -A uris
start_filled() {
  local config
  for config in "$@"; do
    start_config "$config"
    uris[$config]=$uri
    fill_volume
  done
}

# fill_volume: writes the whole of the export at $uri ($size bytes), so that
# reads find data and no write is the first to touch its pages.
fill_volume() {
  fio --name=fill --ioengine=nbd --uri="$uri" --rw=write --bs=1M --iodepth=8 \
    --size="$size" --output=/dev/null
}

# cpu_ticks PIDFILE: "role ticks" of each process (utime + stime).
cpu_ticks() {
  while read -r role pid; do
    echo "$role $(awk '{print $14 + $15}' "/proc/$pid/stat")"
  done <"$1"
}

workloads=(
  "seq-read-1m-qd8 --rw=read --bs=1M --iodepth=8"
  "seq-write-1m-qd8 --rw=write --bs=1M --iodepth=8"
  "rand-read-4k-qd1 --rw=randread --bs=4k --iodepth=1"
  "rand-write-4k-qd1 --rw=randwrite --bs=4k --iodepth=1"
  "rand-read-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "rand-write-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
  "mix-70-30-4k-qd32 --rw=randrw --rwmixread=70 --bs=4k --iodepth=32"
)
