#!/usr/bin/env bash
# Instructions per request of one dst process, counted by callgrind: what a
# change saves in CPU, measured the same way whatever else the machine is
# doing (valgrind counts instructions, not seconds; a VM whose wake-ups and
# time slices come and go makes seconds move by 2x between runs). Starts a
# dst-1 stack (bench/stacks.sh) with ROLE under callgrind, fills the
# volume, then for random reads and random writes in turn zeroes the
# counters, runs COUNT requests of BS through fio and reads the total.
#
#   bench/instructions.sh [--bin DIR] [--role exporter|gateway|nbdkit]
#                         [--bs SIZE] [--count N] [--iodepth N] [--keep DIR]
#
# Defaults: build/bin, every role in turn, 1M, 64 requests, queue depth 4.
# --keep copies the callgrind dumps to DIR/ROLE-randread|randwrite.cg, for
# callgrind_annotate (--inclusive=yes shows where the instructions go, and
# the "calls" lines of the dump how often a function ran per request).
# Prints "ROLE BS randread|randwrite: N instructions per request". User
# space only: the kernel's socket and page-cache copies are not counted.
# The counts of a 4 KiB request move by about 10% between runs (polling
# threads wake a varying number of times); a 1 MiB one's by well under 1%.
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() {
  echo "usage: bench/instructions.sh [--bin DIR] [--role exporter|gateway|nbdkit]" \
    "[--bs SIZE] [--count N] [--iodepth N] [--keep DIR]" >&2
  exit 2
}
bin=$DST_ROOT/build/bin
roles=(exporter gateway nbdkit)
bs=1M
count=64
iodepth=4
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$(cd "$2" && pwd); shift ;;
    --role) roles=("$2"); shift ;;
    --bs) bs=$2; shift ;;
    --count) count=$2; shift ;;
    --iodepth) iodepth=$2; shift ;;
    --keep) mkdir -p "$2" && keep=$(cd "$2" && pwd); shift ;;
    *) usage ;;
  esac
  shift
done
for tool in valgrind callgrind_control fio nbdkit; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
size=256M
exporter_flags=${DST_EXPORTER_FLAGS:-}
nbdkit_flags=(--threads=16)
source "$DST_ROOT/bench/stacks.sh"

bytes=$(numfmt --from=iec "${bs^^}")
for role in "${roles[@]}"; do
  case "$role" in
    exporter) wrap_role=exporter1 ;;
    gateway | nbdkit) wrap_role=$role ;;
    *) usage ;;
  esac
  out="$work/callgrind-$role"
  mkdir -p "$out"
  wrap=(valgrind --tool=callgrind "--callgrind-out-file=$out/cg.%p" --dump-instr=no)
  start_config dst-1 "$role"
  pid=$(awk -v r="$wrap_role" '$1 == r {print $2}' "$work/$role/pids")
  fill_volume
  for rw in randread randwrite; do
    callgrind_control --zero "$pid" >/dev/null 2>&1
    fio --name=count --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" \
      --iodepth="$iodepth" --io_size=$((bytes * count)) --size="$size" \
      --randrepeat=1 --output=/dev/null
    callgrind_control --dump="$rw" "$pid" >/dev/null 2>&1
    dump=""
    for _ in $(seq 1 100); do
      dump=$(grep -l "^desc: Trigger: .*$rw" "$out"/cg.* 2>/dev/null | head -1) || true
      [ -n "$dump" ] && break
      sleep 0.1
    done
    [ -n "$dump" ] || { echo "bench: callgrind wrote no $rw dump" >&2; exit 1; }
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
    echo "$role $bs $rw: $((total / count)) instructions per request"
    [ -z "$keep" ] || cp "$dump" "$keep/$role-$rw.cg"
  done
  while read -r _ p; do kill "$p" 2>/dev/null || true; done <"$work/$role/pids"
  wrap_role=""
done
