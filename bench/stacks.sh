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
