# The stacks the benchmarks measure, started on tmpfs: sourced by run.sh,
# ab.sh, instructions.sh and syscalls.sh, which set $size, $bin,
# $exporter_flags and $nbdkit_flags first.
# Also the workloads both run (name, then fio's flags).
# Everything started is stopped, and $work removed, when the script exits.
work=$(mktemp -d /dev/shm/dst-bench-XXXXXX)  # tmpfs
pids=()
cleanup() {
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
        launch "exporter$i" "$bin/dst-exporter" --listen="unix:$dir/e$i.sock" --backing="$dir/e$i.img" \
          --size="$size" --id="e$i" --log-level=warning $exporter_flags 2>"$dir/e$i.log" &
        pids+=($!)
        echo "exporter$i $!" >>"$dir/pids"
        wait_socket "$dir/e$i.sock"
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
