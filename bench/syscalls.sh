#!/usr/bin/env bash
# System calls and context switches per request of each process of a
# stack, counted by `perf stat` on the kernel's tracepoints: how many
# sendmsg, recvmsg, epoll_wait and futex calls, wake-ups and switches one
# request costs nbdkit, the gateway and the exporters. Counts, not seconds,
# so they move little with the machine's load; on a VM where a wake-up
# across vCPUs costs tens of microseconds they say where the time goes.
# Starts CONFIG (bench/stacks.sh), fills the volume, runs fio for 6 s and
# counts over 3 s in the middle of the run.
#
#   bench/syscalls.sh [--bin DIR] [--config NAME] [--rw RW] [--bs SIZE]
#                     [--iodepth N]
#
# Defaults: build/bin, dst-1, randread, 4k, queue depth 1. CONFIG is one of
# baseline, floor, relay, qsd-relay, qsd-quorum, dst-1, dst-2, embedded-2
# (bench/stacks.sh). Prints the run's IOPS, then one line per process:
# "ROLE per request: NAME COUNT, ...". A count under 0.01 per request is
# left out.
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() {
  echo "usage: bench/syscalls.sh [--bin DIR] [--config NAME] [--rw RW]" \
    "[--bs SIZE] [--iodepth N]" >&2
  exit 2
}
bin=$DST_ROOT/build/bin
config=dst-1
rw=randread
bs=4k
iodepth=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$(cd "$2" && pwd); shift ;;
    --config) config=$2; shift ;;
    --rw) rw=$2; shift ;;
    --bs) bs=$2; shift ;;
    --iodepth) iodepth=$2; shift ;;
    *) usage ;;
  esac
  shift
done
case "$config" in
  baseline | floor | relay | qsd-relay | qsd-quorum | dst-1 | dst-2 | embedded-2) ;;
  *) echo "bench: unknown configuration '$config'" >&2; usage ;;
esac
for tool in perf fio nbdkit python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
perf list 2>/dev/null | grep "syscalls:sys_enter_sendmsg" >/dev/null || {
  echo "bench: perf sees no syscalls:* tracepoints (run as root, with tracefs)" >&2
  exit 1
}
size=256M
exporter_flags=${DST_EXPORTER_FLAGS:-}
nbdkit_flags=(--threads=64)
source "$DST_ROOT/bench/stacks.sh"

events=sched:sched_switch,sched:sched_wakeup
for call in futex sendmsg recvmsg sendto recvfrom read write epoll_wait poll \
  pread64 pwrite64 preadv pwritev; do
  events+=",syscalls:sys_enter_$call"
done
start_config "$config"
fill_volume
fio --name=count --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" \
  --iodepth="$iodepth" --size="$size" --time_based --runtime=6 \
  --output-format=json --output="$work/fio.json" &
fio_pid=$!
sleep 2
counters=()
while read -r role pid; do
  perf stat -x, -e "$events" -p "$pid" -o "$work/$role.stat" sleep 3 &
  counters+=($!)
done <"$work/$config/pids"
wait "$fio_pid"
wait "${counters[@]}"
python3 - "$work" "$config" "$rw" "$bs" "$iodepth" <<'PY'
import json, os, sys
work, config, rw, bs, iodepth = sys.argv[1:6]
job = json.load(open(os.path.join(work, "fio.json")))["jobs"][0]
iops = job["read"]["iops"] + job["write"]["iops"]
print(f"{config} {rw} {bs} QD{iodepth}: {iops:.0f} IOPS")
requests = iops * 3  # perf counted for 3 of fio's seconds
for line in open(os.path.join(work, config, "pids")):
    role = line.split()[0]
    counts = []
    for row in open(os.path.join(work, role + ".stat")):
        fields = row.strip().split(",")
        if len(fields) < 3 or not fields[0].replace(".", "").isdigit():
            continue
        name = fields[2].split(":")[1].replace("sys_enter_", "")
        per_request = float(fields[0]) / requests
        if per_request >= 0.01:
            counts.append(f"{name} {per_request:.2f}")
    print(f"  {role} per request: " + ", ".join(counts))
PY
