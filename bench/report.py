#!/usr/bin/env python3
"""The results of one bench/run.sh run: JSON and Markdown tables.

Usage (run.sh calls it): report.py WORK PREFIX RUNTIME SIZE HZ "CONFIGS" WORKLOAD...

WORK/CONFIG/ holds, per configuration: pids and rss ("role value" lines),
and per workload fio's JSON, the CPU ticks of each process before and after
(.cpu0, .cpu1) and perf stat's context switches (.switches, absent without
perf). WORK/resync-*.json hold the resync measure, WORK/userlevel/CONFIG/
the user-level one (absent: not reported).
Writes PREFIX.json and PREFIX.md and prints the Markdown.

Per request figures (CPU µs of each process, context switches of the whole
machine) are taken over the whole fio run, its 1 s ramp included, and
divided by the requests that run made at the measured rate.
"""

import json
import os
import platform
import sys

RAMP_S = 1  # run.sh's --ramp_time

# The peers dst is measured against, and dst's configurations.
PEERS = ["relay", "qsd-relay", "qsd-quorum"]
DST = ["dst-1", "dst-2", "embedded-2"]


def read_pairs(path):
    out = {}
    for line in open(path):
        role, value = line.split()
        out[role] = float(value)
    return out


def read_switches(path):
    """Context switches perf stat counted, or None."""
    if not os.path.exists(path):
        return None
    for line in open(path):
        fields = line.strip().split(",")
        if len(fields) > 2 and fields[2].startswith("context-switches"):
            try:
                return float(fields[0])
            except ValueError:
                return None
    return None


def is_write(workload):
    return "write" in workload or "mix" in workload


def ratio(a, b):
    return round(a / b, 2) if b else None


def measure(work, config, workloads, runtime, hz):
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
        requests = iops * (runtime + RAMP_S)
        cpu_s = {r: (c1[r] - c0[r]) / hz for r in c0}
        switches = read_switches(os.path.join(d, w + ".switches"))
        entry["workloads"][w] = {
            "iops": round(iops), "mb_s": round(mbps, 1), **lat,
            "cpu_s_per_gib": {r: round(v / gib, 3) for r, v in cpu_s.items()},
            "cpu_us_per_request": {r: round(v * 1e6 / requests, 1) if requests else None
                                   for r, v in cpu_s.items()},
            "switches_per_request": round(switches / requests, 1)
            if switches is not None and requests else None,
        }
    return entry


def fio_latency(path):
    """p50 and p99 completion latency (µs) and IOPS of a fio read job."""
    job = json.load(open(path))["jobs"][0]["read"]
    pct = job["clat_ns"].get("percentile", {})
    return {"iops": round(job["iops"]),
            "p50_us": round(pct.get("50.000000", 0) / 1000, 1),
            "p99_us": round(pct.get("99.000000", 0) / 1000, 1)}


def resync(work, configs):
    """The resync figures run.sh measured on dst-2, or None.

    The throughput is compared with dst-2's sequential write of the same
    run (MB/s both); the reads during the resync with the same reads idle.
    """
    idle_path = os.path.join(work, "resync-idle.json")
    if not os.path.exists(idle_path):
        return None
    alone = json.load(open(idle_path))
    loaded = json.load(open(os.path.join(work, "resync-reads.json")))
    out = {"missed_mib": round(alone["bytes"] / 2**20),
           "alone_mb_s": round(alone["bytes"] / alone["seconds"] / 1e6, 1),
           "alone_seconds": alone["seconds"],
           "with_reads_mb_s": round(loaded["bytes"] / loaded["seconds"] / 1e6, 1),
           "reads_idle": fio_latency(os.path.join(work, "resync-idle-reads.json")),
           "reads_during": fio_latency(os.path.join(work, "resync-reads.json.fio.json"))}
    seq = configs.get("dst-2", {}).get("workloads", {}).get("seq-write-1m-qd8")
    out["dst2_seq_write_mb_s"] = seq["mb_s"] if seq else None
    out["ratio_to_seq_write"] = ratio(out["alone_mb_s"], out["dst2_seq_write_mb_s"])
    out["ratio_p99"] = ratio(out["reads_during"]["p99_us"], out["reads_idle"]["p99_us"])
    return out


def userlevel(work):
    """The user-level figures of each configuration run.sh measured, or None."""
    root = os.path.join(work, "userlevel")
    if not os.path.isdir(root):
        return None
    out = {}
    for config in sorted(os.listdir(root)):
        d = os.path.join(root, config)
        convert = json.load(open(os.path.join(d, "convert.json")))
        fsync = json.load(open(os.path.join(d, "ext4-fsync.json")))["jobs"][0]
        seq = json.load(open(os.path.join(d, "ext4-seq.json")))["jobs"][0]
        pct = fsync["sync"]["lat_ns"].get("percentile", {})
        out[config] = {
            "convert_write_mb_s": round(convert["bytes"] / convert["write_seconds"] / 1e6, 1),
            "convert_read_mb_s": round(convert["bytes"] / convert["read_seconds"] / 1e6, 1),
            "ext4_fsync_write_iops": round(fsync["write"]["iops"]),
            "ext4_fsync_p50_us": round(pct.get("50.000000", 0) / 1000, 1),
            # the whole job, its final fsync included
            "ext4_seq_write_mb_s": round(seq["write"]["io_bytes"] / (seq["job_runtime"] / 1e3) / 1e6, 1)
            if seq["job_runtime"] else None,
        }
    return out


def targets(configs, workloads, resynced=None):
    """Issue 21's targets, each with what was measured and whether it holds."""
    c = configs
    out = []

    def every(name, config, peer, pick):
        ws = [w for w in workloads if pick(w)]
        if config not in c or peer not in c or not ws:
            return
        rs = {w: ratio(c[config]["workloads"][w]["iops"], c[peer]["workloads"][w]["iops"])
              for w in ws}
        worst = min(rs, key=lambda w: rs[w] or 0)
        out.append({"target": name, "met": all((r or 0) >= 1 for r in rs.values()),
                    "measured": f"lowest {rs[worst]} ({worst})"})

    def p50(name, config, peer, limit):
        w = "rand-read-4k-qd1"
        if config not in c or peer not in c or w not in workloads:
            return
        r = ratio(c[config]["workloads"][w]["p50_us"], c[peer]["workloads"][w]["p50_us"])
        out.append({"target": name, "met": r is not None and r <= limit,
                    "measured": f"{r} ({w})"})

    every("dst-1 IOPS >= relay, every workload", "dst-1", "relay", lambda w: True)
    every("dst-2 IOPS >= qsd-quorum, every write workload", "dst-2", "qsd-quorum", is_write)
    every("dst-2 IOPS >= qsd-relay, every read workload", "dst-2", "qsd-relay",
          lambda w: not is_write(w))
    every("embedded-2 IOPS >= relay, every workload", "embedded-2", "relay", lambda w: True)
    p50("QD1 p50: dst-1 <= 1.3x relay", "dst-1", "relay", 1.3)
    p50("QD1 p50: embedded-2 <= relay", "embedded-2", "relay", 1.0)
    if resynced is not None:
        r = resynced["ratio_to_seq_write"]
        out.append({"target": "resync throughput >= 0.8x dst-2 seq write",
                    "met": r is not None and r >= 0.8,
                    "measured": f"{r} ({resynced['alone_mb_s']} MB/s)"})
        r = resynced["ratio_p99"]
        out.append({"target": "reads during a resync: p99 < 2x idle p99",
                    "met": r is not None and r < 2,
                    "measured": f"{r} ({resynced['reads_during']['p99_us']} µs)"})
    for config in ("dst-1", "dst-2"):
        if config in c:
            rss = c[config]["peak_rss_mib"].get("gateway")
            out.append({"target": f"{config} gateway peak RSS < 256 MiB",
                        "met": rss is not None and rss < 256, "measured": f"{rss} MiB"})
    return out


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return lines


def markdown(results, names, workloads):
    c = results["configs"]
    rt = results["round_trip_us"]
    lines = [f"fio --ioengine=nbd, {results['runtime_s']} s per workload (after 1 s of ramp)"
             f" on {results['size']} tmpfs files, {results['machine']['cpus']} CPUs,"
             f" nbdkit {results['nbdkit_flags']}"
             + (f", exporters {results['exporter_flags']}" if results["exporter_flags"] else "")
             + ". Each workload ran against every configuration in turn (all stacks up,"
             " the others idle)."
             + (f" Host: a round trip between two threads (perf bench sched pipe) took"
                f" {rt[0]} µs before the run and {rt[-1]} µs after." if rt else ""),
             "", "IOPS (ratio to baseline):", ""]
    lines += table(["workload"] + names,
                   [[w] + [f"{c[n]['workloads'][w]['iops']}"
                           + ("" if n == "baseline" else f" ({c[n]['workloads'][w]['ratio_iops']})")
                           for n in names] for w in workloads])
    lines += ["", "Completion latency p50/p99, µs:", ""]
    lines += table(["workload"] + names,
                   [[w] + [f"{c[n]['workloads'][w]['p50_us']}/{c[n]['workloads'][w]['p99_us']}"
                           for n in names] for w in workloads])
    pairs = [(d, p) for d in DST for p in PEERS if d in c and p in c]
    if pairs:
        lines += ["", "dst's IOPS as a ratio to each peer's (p50 ratio for QD1):", ""]
        rows = []
        for w in workloads:
            row = [w]
            for d, p in pairs:
                r = ratio(c[d]["workloads"][w]["iops"], c[p]["workloads"][w]["iops"])
                cell = f"{r}"
                if "qd1" in w:
                    cell += f" (p50 {ratio(c[d]['workloads'][w]['p50_us'], c[p]['workloads'][w]['p50_us'])})"
                row.append(cell)
            rows.append(row)
        lines += table(["workload"] + [f"{d} / {p}" for d, p in pairs], rows)
    lines += ["", "CPU µs per request, all the stack's processes (the JSON has each"
              " process's):", ""]
    lines += table(["workload"] + names,
                   [[w] + [round(sum(v for v in c[n]["workloads"][w]["cpu_us_per_request"].values()
                                     if v is not None), 1) for n in names] for w in workloads])
    if any(c[n]["workloads"][w]["switches_per_request"] is not None
           for n in names for w in workloads):
        lines += ["", "Context switches per request, whole machine (perf stat -a):", ""]
        lines += table(["workload"] + names,
                       [[w] + [c[n]["workloads"][w]["switches_per_request"] for n in names]
                        for w in workloads])
    for w in ("rand-read-4k-qd1", "rand-write-4k-qd1"):
        if w not in workloads:
            continue
        lines += ["", f"{w}: CPU µs per request by process:", ""]
        lines += table(["configuration", "by process"],
                       [[n, ", ".join(f"{r} {v}" for r, v in
                                      sorted(c[n]["workloads"][w]["cpu_us_per_request"].items()))]
                        for n in names])
    lines += ["", "Peak RSS (MiB): " + "; ".join(
        f"{n}: " + ", ".join(f"{r} {v}" for r, v in sorted(c[n]["peak_rss_mib"].items()))
        for n in names)]
    rs = results.get("resync")
    if rs:
        lines += ["", f"Resync (dst-2, a replica that missed {rs['missed_mib']} MiB of"
                  " sequential writes, unthrottled; bench/stacks.sh measure_resync):", ""]
        lines += table(["", "resync MB/s", "ratio to dst-2 seq write",
                        "4K QD1 reads: IOPS, p50/p99 µs"],
                       [["alone", rs["alone_mb_s"], rs["ratio_to_seq_write"], ""],
                        ["with reads", rs["with_reads_mb_s"], "",
                         f"{rs['reads_during']['iops']}, {rs['reads_during']['p50_us']}"
                         f"/{rs['reads_during']['p99_us']}"],
                        ["reads alone, same length", "", "",
                         f"{rs['reads_idle']['iops']}, {rs['reads_idle']['p50_us']}"
                         f"/{rs['reads_idle']['p99_us']}"]])
    ul = results.get("userlevel")
    if ul:
        names_ul = [n for n in ("relay", "dst-1") if n in ul] + \
            [n for n in ul if n not in ("relay", "dst-1")]
        keys = [("convert_write_mb_s", "qemu-img convert onto the export, MB/s"),
                ("convert_read_mb_s", "qemu-img convert from the export, MB/s"),
                ("ext4_fsync_write_iops", "ext4 on nbdfuse: 4 KiB random write + fsync, IOPS"),
                ("ext4_fsync_p50_us", "the same, fsync p50 µs"),
                ("ext4_seq_write_mb_s", "ext4 on nbdfuse: 1 MiB sequential write + fsync, MB/s")]
        lines += ["", "User level (bench/stacks.sh measure_userlevel):", ""]
        rows = []
        for key, label in keys:
            row = [label] + [ul[n][key] for n in names_ul]
            if "relay" in ul and "dst-1" in ul:
                row.append(ratio(ul["dst-1"][key], ul["relay"][key]))
            rows.append(row)
        lines += table(["measure"] + names_ul +
                       (["dst-1 / relay"] if "relay" in ul and "dst-1" in ul else []), rows)
    if results["targets"]:
        lines += ["", "Targets (issue 21):", ""]
        lines += table(["target", "measured", "met"],
                       [[t["target"], t["measured"], "yes" if t["met"] else "**no**"]
                        for t in results["targets"]])
    return lines


def main():
    work, prefix, runtime, size, hz, names = sys.argv[1:7]
    workloads = sys.argv[7:]
    runtime = int(runtime)
    names = names.split()
    results = {"runtime_s": runtime, "size": size,
               "order": "interleaved: each workload against every configuration in turn",
               "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
               # perf bench sched pipe, µs per round trip, before and after
               # the workloads (null without perf)
               "round_trip_us": [round(float(v), 1) for v in
                                 os.environ.get("BENCH_ROUND_TRIP", "").split()] or None,
               "nbdkit_flags": os.environ.get("BENCH_NBDKIT_FLAGS", ""),
               "exporter_flags": os.environ.get("BENCH_EXPORTER_FLAGS", ""),
               "configs": {n: measure(work, n, workloads, runtime, float(hz)) for n in names}}
    base = results["configs"]["baseline"]["workloads"]
    for n in names:
        if n == "baseline":
            continue
        for w, r in results["configs"][n]["workloads"].items():
            r["ratio_iops"] = ratio(r["iops"], base[w]["iops"])
            r["ratio_p50"] = ratio(r["p50_us"], base[w]["p50_us"])
    results["resync"] = resync(work, results["configs"])
    results["userlevel"] = userlevel(work)
    results["targets"] = targets(results["configs"], workloads, results["resync"])
    json.dump(results, open(prefix + ".json", "w"), indent=2)
    lines = markdown(results, names, workloads)
    open(prefix + ".md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
