#!/usr/bin/env bash
# The benchmark harness in its quick form (2 s per workload): it must run
# every configuration and workload and produce complete results, and no dst
# figure may collapse (IOPS below 1% of the baseline's, far under the
# targets of bench/run.sh's table). Not a speed test: the figures are noisy
# here and are only checked against a collapse.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio
root="$(cd "$(dirname "$0")/../.." && pwd)"
DST_BIN=$DST_BIN bash "$root/bench/run.sh" --quick --out "$tmp/results" >"$tmp/bench.md" \
  2>"$tmp/bench.log" || { cat "$tmp/bench.log"; fail "bench/run.sh failed"; }
cat "$tmp/bench.md"
$PYTHON - "$tmp"/results/bench-*.json <<'PY' || fail "benchmark results incomplete or collapsed"
import json, sys
r = json.load(open(sys.argv[1]))
configs = r["configs"]
assert set(configs) == {"baseline", "floor", "dst-1", "dst-2", "embedded-2"}, configs.keys()
workloads = configs["baseline"]["workloads"]
assert len(workloads) == 7, workloads.keys()
for name in ("floor", "dst-1", "dst-2", "embedded-2"):
    for w, v in configs[name]["workloads"].items():
        assert v["iops"] > 0 and workloads[w]["iops"] > 0, (name, w)
        assert v["ratio_iops"] >= 0.01, f"{name} {w}: ratio {v['ratio_iops']}"
        assert all(c >= 0 for c in v["cpu_s_per_gib"].values()), (name, w)
    assert configs[name]["peak_rss_mib"]["nbdkit"] > 0
    if name.startswith("dst-"):
        assert configs[name]["peak_rss_mib"]["gateway"] > 0
print("complete; no collapse")
PY
echo PASS
