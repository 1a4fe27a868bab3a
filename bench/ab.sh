#!/usr/bin/env bash
# A/B of two dst builds on the benchmark's stacks: how a change moves the
# figures, measured with both builds up at once and their runs interleaved
# (A then B, then B then A, ...), so that this machine's drift over minutes
# weighs on both alike. For each workload, configuration and round: IOPS,
# p50 latency, and the CPU time each process spent per request and per MiB
# moved.
#
#   bench/ab.sh A_BIN B_BIN [--rounds N] [--runtime S] [--size SIZE]
#               [--configs dst-1,dst-2,embedded-2] [--workloads W1,W2,...]
#
# A_BIN and B_BIN are build/bin directories (e.g. of a git worktree of the
# commit before a change). Defaults: 2 rounds of 4 s on 512M files, dst-1,
# every workload of run.sh. DST_EXPORTER_FLAGS applies to both. Prints a
# table; the raw fio JSON stays in $work until the script exits.
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() {
  echo "usage: bench/ab.sh A_BIN B_BIN [--rounds N] [--runtime S] [--size SIZE]" \
    "[--configs C1,C2] [--workloads W1,W2]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
declare -A bins=([A]=$(cd "$1" && pwd) [B]=$(cd "$2" && pwd))
shift 2
rounds=2
runtime=4
size=512M
config_list=dst-1
workload_list=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --runtime) runtime=$2; shift ;;
    --size) size=$2; shift ;;
    --configs) config_list=$2; shift ;;
    --workloads) workload_list=$2; shift ;;
    *) usage ;;
  esac
  shift
done
for side in A B; do
  for built in dst-exporter dst-gateway dstctl nbdkit-dst-plugin.so; do
    [ -e "${bins[$side]}/$built" ] || {
      echo "bench: ${bins[$side]}/$built is missing" >&2
      exit 1
    }
  done
done
exporter_flags=${DST_EXPORTER_FLAGS:-}
nbdkit_flags=(--threads=64)
source "$DST_ROOT/bench/stacks.sh"

IFS=, read -r -a configs <<<"$config_list"
selected=()
for workload in "${workloads[@]}"; do
  name=${workload%% *}
  if [ -z "$workload_list" ] || [[ ",$workload_list," == *",$name,"* ]]; then
    selected+=("$workload")
  fi
done
[ ${#selected[@]} -gt 0 ] || { echo "bench: no such workload: $workload_list" >&2; exit 2; }

for config in "${configs[@]}"; do
  for side in A B; do
    bin=${bins[$side]}
    start_config "$config" "$side-$config"
    uris[$side-$config]=$uri
    fill_volume
  done
done

hz=$(getconf CLK_TCK)
printf '%-20s %-11s %-5s %-2s %9s %9s  %s\n' workload config round ab IOPS "p50 us" \
  "CPU per request us, per MiB us (each process)"
for workload in "${selected[@]}"; do
  set -- $workload
  name=$1
  shift
  for config in "${configs[@]}"; do
    for round in $(seq 1 "$rounds"); do
      order="A B"
      [ $((round % 2)) -eq 0 ] && order="B A"
      for side in $order; do
        stack="$side-$config"
        dir="$work/$stack"
        out="$dir/$name.$round"
        cpu_ticks "$dir/pids" >"$out.cpu0"
        fio --name="$name" --ioengine=nbd --uri="${uris[$stack]}" "$@" --size="$size" \
          --time_based --runtime="$runtime" --percentile_list=50 \
          --output-format=json --output="$out.json"
        cpu_ticks "$dir/pids" >"$out.cpu1"
        python3 - "$out" "$hz" "$name" "$config" "$round" "$side" <<'PY'
import json, sys
out, hz, name, config, rnd, side = sys.argv[1:7]
job = json.load(open(out + ".json"))["jobs"][0]
ios = job["read"]["total_ios"] + job["write"]["total_ios"]
nbytes = job["read"]["io_bytes"] + job["write"]["io_bytes"]
secs = job["job_runtime"] / 1000.0
iops = ios / secs if secs else 0
p50s = [job[d]["clat_ns"]["percentile"]["50.000000"] / 1000.0
        for d in ("read", "write") if job[d]["total_ios"]]
t0 = dict(l.split() for l in open(out + ".cpu0"))
t1 = dict(l.split() for l in open(out + ".cpu1"))
cpu = []
for role in t0:
    used = (int(t1[role]) - int(t0[role])) / float(hz)
    per_req = used / ios * 1e6 if ios else 0
    per_mib = used / (nbytes / 2**20) * 1e6 if nbytes else 0
    cpu.append(f"{role} {per_req:.1f}/{per_mib:.0f}")
print(f"{name:<20} {config:<11} {rnd:<5} {side:<2} {iops:9.0f} "
      f"{(sum(p50s) / len(p50s)) if p50s else 0:9.1f}  " + ", ".join(cpu))
PY
      done
    done
  done
done
