#!/usr/bin/env bash
# The side-by-side benchmark: in one run on this machine, fio (--ioengine=nbd)
# against
#   baseline  nbdkit's file plugin on a tmpfs file;
#   floor     nbdkit with bench/floor/handoff_plugin.cc: the file plugin's
#             I/O done by a worker thread while nbdkit's thread waits, the
#             most any plugin that waits for another thread (dst's does)
#             can reach here;
#   dst-1     dst with one replica: nbdkit + dst plugin -> gateway -> exporter;
#   dst-2     dst with a two-way mirror (the path `scripts/up.sh` uses);
#   embedded-2  the two-way mirror in the embedded mode: nbdkit runs the
#             gateway engine itself (config=), no gateway process;
# all on tmpfs, so the software path is what is measured. Every nbdkit,
# the baseline's too, runs with --threads=64, as docs/configuration.md tells users to
# (nbdkit's default of 16 would cap queue depth 32 at 16). Workloads:
# sequential 1 MiB read and write at queue depth 8, 4 KiB random read and
# write at queue depth 1 and 32, and a 70/30 random mix at queue depth 32.
# Each workload runs against every configuration in turn, all stacks up.
# For each: IOPS, MB/s, p50/p99/p99.9 completion latency, CPU seconds per GiB
# moved for each process (nbdkit, gateway, exporters), peak RSS of the
# gateway and exporters, and each dst figure as a ratio to the baseline.
#
#   bench/run.sh [--quick] [--out DIR]
#
# --quick runs 2 s per workload on 256 MiB (the test suite's collapse check);
# the default is 10 s on 1 GiB. DST_EXPORTER_FLAGS adds flags to every
# exporter (e.g. --io-threads=0), to compare settings with the same harness. Results: DIR/bench-DATE.json and .md
# (default bench/results/), and the Markdown table on stdout.
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
runtime=10
size=1G
out="$DST_ROOT/bench/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runtime=2; size=256M ;;
    --out) out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    *) echo "usage: bench/run.sh [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
bin=${DST_BIN:-$DST_ROOT/build/bin}
exporter_flags=${DST_EXPORTER_FLAGS:-}
nbdkit_flags=(--threads=64)
for tool in nbdkit fio python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
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

# Every stack runs from the start, and each workload runs against every
# configuration in turn: a ratio compares runs seconds apart, not minutes,
# so this machine's drift (the baseline moved by 15-20% between runs made
# one configuration at a time) weighs less on it. A stack that is not
# being measured is idle.
configs=(baseline floor dst-1 dst-2 embedded-2)
declare -A uris
for config in "${configs[@]}"; do
  start_config "$config"
  uris[$config]=$uri
  # Fill the volume first, so that reads read data.
  fill_volume
done
for workload in "${workloads[@]}"; do
  set -- $workload
  name=$1
  shift
  for config in "${configs[@]}"; do
    dir="$work/$config"
    cpu_ticks "$dir/pids" >"$dir/$name.cpu0"
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

mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
BENCH_NBDKIT_FLAGS="${nbdkit_flags[*]}" BENCH_EXPORTER_FLAGS="$exporter_flags" \
  BENCH_ROUND_TRIP="$round_trip_before $round_trip_after" \
  python3 - "$work" "$out/bench-$stamp" "$runtime" "$size" "$(getconf CLK_TCK)" \
  "${workloads[@]%% *}" <<'PY'
import json, os, platform, sys
work, prefix, runtime, size, hz = sys.argv[1:6]
workloads = sys.argv[6:]
hz = float(hz)
configs = ["baseline", "floor", "dst-1", "dst-2", "embedded-2"]

def read_pairs(path):
    out = {}
    for line in open(path):
        role, value = line.split()
        out[role] = float(value)
    return out

results = {"runtime_s": int(runtime), "size": size,
           "order": "interleaved: each workload against every configuration in turn",
           "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
           # perf bench sched pipe, µs per round trip, before and after
           # the workloads (null without perf)
           "round_trip_us": [round(float(v), 1) for v in
                             os.environ.get("BENCH_ROUND_TRIP", "").split()] or None,
           "nbdkit_flags": os.environ.get("BENCH_NBDKIT_FLAGS", ""),
           "exporter_flags": os.environ.get("BENCH_EXPORTER_FLAGS", ""),
           "configs": {}}
for config in configs:
    d = os.path.join(work, config)
    rss = read_pairs(os.path.join(d, "rss"))
    entry = {"peak_rss_mib": {r: round(v / 1024, 1) for r, v in rss.items()},
             "workloads": {}}
    for w in workloads:
        job = json.load(open(os.path.join(d, w + ".json")))["jobs"][0]
        io_bytes = job["read"]["io_bytes"] + job["write"]["io_bytes"]
        iops = job["read"]["iops"] + job["write"]["iops"]
        mbps = (job["read"]["bw_bytes"] + job["write"]["bw_bytes"]) / 1e6
        side = "read" if job["read"]["io_bytes"] >= job["write"]["io_bytes"] else "write"
        pct = job[side]["clat_ns"].get("percentile", {})
        lat = {k: round(pct.get(v, 0) / 1000, 1)
               for k, v in (("p50_us", "50.000000"), ("p99_us", "99.000000"),
                            ("p99.9_us", "99.900000"))}
        c0 = read_pairs(os.path.join(d, w + ".cpu0"))
        c1 = read_pairs(os.path.join(d, w + ".cpu1"))
        gib = io_bytes / 2**30 if io_bytes else float("nan")
        cpu = {r: round((c1[r] - c0[r]) / hz / gib, 3) for r in c0}
        entry["workloads"][w] = {"iops": round(iops), "mb_s": round(mbps, 1),
                                 **lat, "cpu_s_per_gib": cpu}
    results["configs"][config] = entry

base = results["configs"]["baseline"]["workloads"]
for config in configs[1:]:
    for w, r in results["configs"][config]["workloads"].items():
        b = base[w]
        r["ratio_iops"] = round(r["iops"] / b["iops"], 2) if b["iops"] else None
        r["ratio_p50"] = round(r["p50_us"] / b["p50_us"], 2) if b["p50_us"] else None

json.dump(results, open(prefix + ".json", "w"), indent=2)
lines = [f"fio --ioengine=nbd, {runtime} s per workload on {size} tmpfs files, "
         f"{os.cpu_count()} CPUs, nbdkit {results['nbdkit_flags']}"
         + (f", exporters {results['exporter_flags']}" if results["exporter_flags"] else "")
         + ". Each workload ran against every configuration in turn (all"
         " stacks up, the others idle). Ratio: IOPS / baseline IOPS (p50:"
         " dst / baseline). Floor: nbdkit's"
         " file plugin with each request handed to a worker thread (the most"
         " a plugin that waits for another thread reaches)."
         + (" Host: a round trip between two threads (perf bench sched pipe)"
            f" took {results['round_trip_us'][0]} µs before the run and"
            f" {results['round_trip_us'][-1]} µs after."
            if results["round_trip_us"] else ""),
         "",
         "| workload | baseline IOPS | baseline MB/s | baseline p50/p99 µs | floor IOPS (ratio) | floor p50 µs | dst-1 IOPS (ratio) | dst-1 p50/p99 µs (p50 ratio) | dst-2 mirror IOPS (ratio) | dst-2 p50/p99 µs | dst-2 CPU s/GiB (nbdkit+gateway+exporters) | embedded-2 mirror IOPS (ratio) | embedded-2 p50/p99 µs |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for w in workloads:
    b = base[w]
    d1 = results["configs"]["dst-1"]["workloads"][w]
    d2 = results["configs"]["dst-2"]["workloads"][w]
    e2 = results["configs"]["embedded-2"]["workloads"][w]
    fl = results["configs"]["floor"]["workloads"][w]
    lines.append(
        f"| {w} | {b['iops']} | {b['mb_s']} | {b['p50_us']}/{b['p99_us']} | "
        f"{fl['iops']} ({fl['ratio_iops']}) | {fl['p50_us']} | "
        f"{d1['iops']} ({d1['ratio_iops']}) | {d1['p50_us']}/{d1['p99_us']} ({d1['ratio_p50']}) | "
        f"{d2['iops']} ({d2['ratio_iops']}) | {d2['p50_us']}/{d2['p99_us']} | "
        f"{round(sum(d2['cpu_s_per_gib'].values()), 2)} | "
        f"{e2['iops']} ({e2['ratio_iops']}) | {e2['p50_us']}/{e2['p99_us']} |")
rss = results["configs"]["dst-2"]["peak_rss_mib"]
lines += ["", "Peak RSS, mirror run (MiB): " +
          ", ".join(f"{k} {v}" for k, v in sorted(rss.items()))]
open(prefix + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "bench: results in $out/bench-$stamp.{json,md}" >&2
