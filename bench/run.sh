#!/usr/bin/env bash
# The side-by-side benchmark: in one run on this machine, fio (--ioengine=nbd)
# against
#   baseline  nbdkit's file plugin on a tmpfs file (local, no hop);
#   floor     nbdkit with bench/floor/handoff_plugin.cc: the file plugin's
#             I/O done by a worker thread while nbdkit's thread waits, the
#             most any plugin that waits for another thread (dst's does)
#             can reach here;
# the peers a user would pick instead of dst (bench/stacks.sh sets them up):
#   relay     nbdkit's nbd plugin relaying to an nbdkit file server: one
#             NBD hop through the same nbdkit;
#   qsd-relay qemu-storage-daemon exporting an nbd blockdev (the same
#             server) over NBD;
#   qsd-quorum  qemu-storage-daemon mirroring to two nbdkit file servers
#             (a quorum blockdev, vote-threshold=1): the existing user-space
#             mirror;
# and dst:
#   dst-1     dst with one replica: nbdkit + dst plugin -> gateway -> exporter;
#   dst-2     dst with a two-way mirror (the path `scripts/up.sh` uses);
#   embedded-2  the two-way mirror in the embedded mode: nbdkit runs the
#             gateway engine itself (config=), no gateway process;
# all on tmpfs, so the software path is what is measured. Every nbdkit,
# the baseline's too, runs with --threads=64, as docs/configuration.md tells
# users to (nbdkit's default of 16 would cap queue depth 32 at 16).
# Workloads: sequential 1 MiB read and write at queue depth 8, 4 KiB random
# read and write at queue depth 1 and 32, and a 70/30 random mix at queue
# depth 32. Each workload runs against every configuration in turn, all
# stacks up.
#
# Then the resync of a dst-2 replica that missed 3/4 of the volume: its
# throughput alone, and with reads at QD1 meanwhile (their latency against
# the same reads idle). Then the user level, through dst-1 and the relay:
# qemu-img convert onto the export and back, and fio on ext4 over nbdfuse
# (an fsync after each 4 KiB random write; a sequential write).
# For each: IOPS, MB/s, p50/p99/p99.9 completion latency; CPU per request
# of each process (nbdkit, gateway, exporters, qemu-storage-daemon,
# backends) and context switches per request of the whole machine (perf
# stat -a), both over the fio run including its ramp, per request at the
# measured rate; peak RSS of each process; each figure as a ratio to the
# baseline and dst's to each peer; and whether the targets of issue 21 are
# met (docs in bench/README.md).
#
#   bench/run.sh [--quick] [--out DIR]
#
# --quick runs 1 s per workload (after 1 s of ramp) on 256 MiB (the test
# suite's check that the harness works); the default is 10 s on 1 GiB.
# DST_EXPORTER_FLAGS adds flags to every exporter (e.g. --io-threads=0), to
# compare settings with the same harness. Results: DIR/bench-DATE.json and
# .md (default bench/results/), and the Markdown tables on stdout.
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
runtime=10
size=1G
out="$DST_ROOT/bench/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runtime=1; size=256M ;;
    --out) out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    *) echo "usage: bench/run.sh [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
bin=${DST_BIN:-$DST_ROOT/build/bin}
exporter_flags=${DST_EXPORTER_FLAGS:-}
nbdkit_flags=(--threads=64)
for tool in nbdkit fio python3 qemu-storage-daemon qemu-img nbdfuse losetup mkfs.ext4 \
  fusermount3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
# The user level mounts ext4 on a loop device over nbdfuse.
[ "$(id -u)" = 0 ] || { echo "bench: run as root (the user-level measure mounts ext4 on a loop device)" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "bench: /dev/fuse is missing (nbdfuse, for the user-level measure)" >&2; exit 1; }
for built in dst-gateway nbdkit-handoff-floor.so; do
  [ -e "$bin/$built" ] || {
    echo "bench: $bin/$built is missing: build first (with DST_BUILD_TESTS=ON, the default)" >&2
    exit 1
  }
done

source "$DST_ROOT/bench/stacks.sh"

# The machine's cost of a wake-up, which dst's path pays several times per
# request and the baseline's hardly at all: a round trip between two
# threads through a pipe (perf bench sched pipe), in µs; empty without
# perf. Measured before and after the workloads, as this VM's varies by 4x
# from hour to hour.
round_trip_us() {
  command -v perf >/dev/null || return 0
  perf bench sched pipe -l 20000 2>/dev/null | awk '/usecs\/op/ {print $1}' || true
}
round_trip_before=$(round_trip_us)

# with_switches FILE COMMAND...: runs COMMAND, writing to FILE the context
# switches of the whole machine meanwhile (perf stat -a, as root). Without
# perf, nothing is counted (null in the results).
perf_ok=1
if ! command -v perf >/dev/null ||
  ! perf stat -a -e context-switches -x, -o /dev/null -- true 2>/dev/null; then
  echo "bench: perf stat -a is not available: context switches are not counted" >&2
  perf_ok=
fi
with_switches() {
  local file=$1
  shift
  if [ -n "$perf_ok" ]; then
    perf stat -a -e context-switches -x, -o "$file" -- "$@"
  else
    "$@"
  fi
}

# Every stack runs from the start, and each workload runs against every
# configuration in turn: a ratio compares runs seconds apart, not minutes,
# so this machine's drift (the baseline moved by 15-20% between runs made
# one configuration at a time) weighs less on it. A stack that is not
# being measured is idle.
configs=(baseline floor relay qsd-relay qsd-quorum dst-1 dst-2 embedded-2)
start_filled "${configs[@]}"
for workload in "${workloads[@]}"; do
  set -- $workload
  name=$1
  shift
  for config in "${configs[@]}"; do
    dir="$work/$config"
    cpu_ticks "$dir/pids" >"$dir/$name.cpu0"
    with_switches "$dir/$name.switches" \
      fio --name="$name" --ioengine=nbd --uri="${uris[$config]}" "$@" --size="$size" \
      --time_based --runtime="$runtime" --ramp_time=1 --percentile_list=50:99:99.9 \
      --output-format=json --output="$dir/$name.json"
    cpu_ticks "$dir/pids" >"$dir/$name.cpu1"
  done
  echo "bench: $name done" >&2
done
round_trip_after=$(round_trip_us)
for config in "${configs[@]}"; do
  while read -r role pid; do
    echo "$role $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")" >>"$work/$config/rss"
  done <"$work/$config/pids"
done

# Resync, on the two-way mirror: a replica that missed 3/4 of the volume
# comes back. First with no client I/O (its throughput, against dst-2's
# sequential write above); then with 4 KiB reads at QD1 for 0.8 of that
# time from its start (they end before it does: reads slow it down), and
# the same reads for as long with nothing else running, just before, as
# their idle latency. bench/stacks.sh's measure_resync explains the steps.
if [[ " ${configs[*]} " == *" dst-2 "* ]]; then
  measure_resync "$work/dst-2" "$work/resync-idle.json"
  read_ms=$(python3 -c 'import json, sys
print(max(200, int(json.load(open(sys.argv[1]))["seconds"] * 800)))' "$work/resync-idle.json")
  fio --name=idle-reads --ioengine=nbd --uri="${uris[dst-2]}" --rw=randread --bs=4k \
    --iodepth=1 --size="$size" --time_based --runtime="${read_ms}ms" \
    --percentile_list=50:99:99.9 --output-format=json --output="$work/resync-idle-reads.json"
  measure_resync "$work/dst-2" "$work/resync-reads.json" "${read_ms}ms"
  echo "bench: resync done" >&2
fi

# The user level, through dst-1 and the relay: qemu-img convert onto the
# export and back, and fio on ext4 over nbdfuse (bench/stacks.sh's
# measure_userlevel).
head -c "$(numfmt --from=iec "$size")" /dev/urandom >"$work/source.img"
for config in relay dst-1; do
  measure_userlevel "$config" "$work/userlevel/$config" "$runtime"
done
rm -f "$work/source.img"
echo "bench: user level done" >&2

mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
BENCH_NBDKIT_FLAGS="${nbdkit_flags[*]}" BENCH_EXPORTER_FLAGS="$exporter_flags" \
  BENCH_ROUND_TRIP="$round_trip_before $round_trip_after" \
  python3 "$DST_ROOT/bench/report.py" "$work" "$out/bench-$stamp" "$runtime" "$size" \
  "$(getconf CLK_TCK)" "${configs[*]}" "${workloads[@]%% *}"
echo "bench: results in $out/bench-$stamp.{json,md}" >&2
