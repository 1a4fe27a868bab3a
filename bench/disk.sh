#!/usr/bin/env bash
# The stacks on a disk instead of tmpfs: the exporters' files, the
# gateway's state_dir and the peers' files all in DIR. On tmpfs an fsync
# is free; on a disk, a mirror's activity log (the state file saved, with
# an fsync, before the first write to a region after a flush is
# acknowledged) and every flush cost a device write. fio (--ioengine=nbd)
# runs 4 KiB random writes at QD1 and QD32 and a database's pattern (a
# flush after every 4 KiB write, --fsync=1) against the relay, the quorum
# mirror, dst-1 and dst-2, each workload against every configuration in
# turn. dst-2 / dst-1 is what the mirror (its second write and its state
# file) costs; dst-2 / qsd-quorum is the user's choice of mirror.
#
#   bench/disk.sh [--dir DIR] [--runtime S] [--size SIZE] [--out DIR]
#
# Defaults: DIR /var/tmp (refused if it is tmpfs), 10 s per workload after
# 1 s of ramp, 1G files, results in bench/results/ (disk-DATE.json and
# .md; the Markdown on stdout too).
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() {
  echo "usage: bench/disk.sh [--dir DIR] [--runtime S] [--size SIZE] [--out DIR]" >&2
  exit 2
}
bench_dir=/var/tmp
runtime=10
size=1G
out="$DST_ROOT/bench/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) bench_dir=$2; shift ;;
    --runtime) runtime=$2; shift ;;
    --size) size=$2; shift ;;
    --out) out=$2; shift ;;
    *) usage ;;
  esac
  shift
done
[ -d "$bench_dir" ] || { echo "bench: $bench_dir is not a directory" >&2; exit 1; }
if [ "$(stat -f -c %T "$bench_dir")" = tmpfs ]; then
  echo "bench: $bench_dir is on tmpfs; give a directory on a disk (--dir)" >&2
  exit 1
fi
bin=${DST_BIN:-$DST_ROOT/build/bin}
exporter_flags=${DST_EXPORTER_FLAGS:-}
nbdkit_flags=(--threads=64)
for tool in nbdkit fio python3 qemu-storage-daemon; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
[ -e "$bin/dst-gateway" ] || { echo "bench: $bin/dst-gateway is missing: build first" >&2; exit 1; }
source "$DST_ROOT/bench/stacks.sh"

configs=(relay qsd-quorum dst-1 dst-2)
disk_workloads=(
  "rand-write-4k-qd1 --rw=randwrite --bs=4k --iodepth=1"
  "rand-write-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
  "fsync-write-4k-qd1 --rw=randwrite --bs=4k --iodepth=1 --fsync=1"
)
start_filled "${configs[@]}"
for workload in "${disk_workloads[@]}"; do
  set -- $workload
  name=$1
  shift
  for config in "${configs[@]}"; do
    fio --name="$name" --ioengine=nbd --uri="${uris[$config]}" "$@" --size="$size" \
      --time_based --runtime="$runtime" --ramp_time=1 --percentile_list=50:99 \
      --output-format=json --output="$work/$config/$name.json"
  done
  echo "bench: $name done" >&2
done
mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
python3 - "$work" "$out/disk-$stamp" "$runtime" "$size" "$bench_dir" "${configs[*]}" \
  "${disk_workloads[@]%% *}" <<'PY'
import json, os, sys
work, prefix, runtime, size, where, names = sys.argv[1:7]
names = names.split()
workloads = sys.argv[7:]
results = {"runtime_s": int(runtime), "size": size, "dir": where, "configs": {}}
for n in names:
    results["configs"][n] = {}
    for w in workloads:
        job = json.load(open(os.path.join(work, n, w + ".json")))["jobs"][0]["write"]
        pct = job["clat_ns"].get("percentile", {})
        results["configs"][n][w] = {"iops": round(job["iops"]),
                                    "p50_us": round(pct.get("50.000000", 0) / 1000, 1),
                                    "p99_us": round(pct.get("99.000000", 0) / 1000, 1)}
def ratio(a, b):
    return round(a / b, 2) if b else None
pairs = [("dst-1", "relay"), ("dst-2", "qsd-quorum"), ("dst-2", "dst-1")]
lines = [f"fio --ioengine=nbd, {runtime} s per workload (after 1 s of ramp) on {size} files"
         f" in {where} (a disk, not tmpfs): the exporters' files, the gateway's"
         " state_dir and the peers' files. Each workload ran against every"
         " configuration in turn.", "",
         "IOPS, p50/p99 µs:", "",
         "| workload | " + " | ".join(names) + " | "
         + " | ".join(f"{a} / {b}" for a, b in pairs) + " |",
         "|" + " --- |" * (1 + len(names) + len(pairs))]
for w in workloads:
    c = results["configs"]
    cells = [f"{c[n][w]['iops']}, {c[n][w]['p50_us']}/{c[n][w]['p99_us']}" for n in names]
    cells += [str(ratio(c[a][w]["iops"], c[b][w]["iops"])) for a, b in pairs]
    lines.append(f"| {w} | " + " | ".join(cells) + " |")
json.dump(results, open(prefix + ".json", "w"), indent=2)
open(prefix + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "bench: results in $out/disk-$stamp.{json,md}" >&2
