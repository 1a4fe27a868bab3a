#!/usr/bin/env python3
"""Times one replica's resync, watching the gateway's status.

Usage (bench/stacks.sh's measure_resync calls it):
  resync.py DSTCTL GATEWAY VOLUME REPLICA --connected
  resync.py DSTCTL GATEWAY VOLUME REPLICA --after COPIED

--connected waits until the replica's link is up, then prints the bytes
resync has copied to it so far (its resync_copied_bytes).

--after COPIED waits until the replica is in sync with more than COPIED
bytes copied to it (a resync since that point has ended), then prints the
gateway's account of that resync as JSON: bytes (the dirty bytes it
copied), seconds (from its first copy to its promotion) and mib_s.

Polls `dstctl status VOLUME --json` every 250 ms. Exits 1, saying why,
after 300 s, or if the volume is diverged or fenced.
"""

import json
import subprocess
import sys
import time

TIMEOUT_S = 300


def replica_status(dstctl, gateway, volume, replica):
    out = subprocess.run([dstctl, f"--gateway={gateway}", "status", volume, "--json"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None, None
    for v in json.loads(out.stdout).get("volumes", []):
        if v.get("name") != volume:
            continue
        for r in v.get("replicas", []):
            if r.get("address") == replica:
                return v, r
    return None, None


def main():
    args = sys.argv[1:]
    if len(args) == 5 and args[4] == "--connected":
        after = None
    elif len(args) == 6 and args[4] == "--after" and args[5].isdigit():
        after = int(args[5])
    else:
        sys.exit(__doc__)
    dstctl, gateway, volume, replica = args[:4]
    began = time.monotonic()
    while time.monotonic() - began < TIMEOUT_S:
        v, r = replica_status(dstctl, gateway, volume, replica)
        if r is not None:
            if v.get("state") in ("diverged", "fenced"):
                sys.exit(f"resync.py: volume {volume} is {v['state']}")
            copied = int(r.get("resync_copied_bytes", 0))
            if after is None and r.get("state") == "connected":
                print(copied)
                return
            if after is not None and r.get("sync") == "in_sync" and copied > after:
                size = int(r.get("last_resync_bytes", 0))
                seconds = float(r.get("last_resync_seconds", 0))
                if size == 0 or seconds <= 0:
                    sys.exit(f"resync.py: replica {replica} is in sync, but the gateway"
                             " reports no finished resync")
                print(json.dumps({"bytes": size, "seconds": round(seconds, 3),
                                  "mib_s": round(size / 2**20 / seconds, 1)}))
                return
        time.sleep(0.25)
    sys.exit(f"resync.py: replica {replica} not "
             f"{'connected' if after is None else 'in sync'} after {TIMEOUT_S} s")


if __name__ == "__main__":
    main()
