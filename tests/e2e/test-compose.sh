#!/usr/bin/env bash
# deploy/docker-compose.yml for real: the images are built from
# deploy/docker/Dockerfile, podman serves its Docker-compatible API and
# docker-compose (v1) drives it. No registry is reachable here, so the
# debian:bookworm-slim base is made with debootstrap and imported first.
# Then: nbdinfo and nbdcopy through the published NBD port, data written and
# read back, every healthcheck run, one exporter container stopped while
# writes go on (the volume degraded, no error), started again, the resync
# checked (only the regions written meanwhile copied, replicas identical by
# dstctl verify), Prometheus scraping all three targets with dst's rules
# loaded. Then the ha profile beside it (etcd, two exporters, two gateways
# in HA mode, nbdkit given both): data written through it, the leader
# stopped (the other takes over, writes go on, nothing lost), started again
# as a standby, the replicas identical, Prometheus finding the HA targets
# by DNS with one leader. Everything is torn down with its volumes.
#
# Environment: DST_COMPOSE_KEEP_IMAGES=1 keeps the images afterwards (the
# default removes the dst images and keeps only the base).
source "$(dirname "$0")/functions.sh"
requires_root
requires podman docker-compose debootstrap nbdinfo nbdcopy curl runc iptables
root=$(cd "$(dirname "$0")/../.." && pwd)

# podman: runc (crun refuses this host's hybrid cgroups), explicit ulimits
# (podman's default nproc is above what the sandbox allows), netavark with
# aardvark-dns so containers find each other by service name (netavark
# sets up container networking with iptables).
export CONTAINERS_CONF=$tmp/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
[network]
network_backend = "netavark"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
podman info --format '{{.Host.NetworkBackend}}' | grep -qx netavark ||
  fail "podman does not use netavark (install netavark and aardvark-dns)"

base=docker.io/library/debian:bookworm-slim
if ! podman image exists "$base"; then
  echo "making $base with debootstrap"
  debootstrap --variant=minbase bookworm "$tmp/rootfs" http://deb.debian.org/debian \
    >"$tmp/debootstrap.log" 2>&1 || fail "debootstrap failed"
  rm -rf "$tmp"/rootfs/var/cache/apt/archives/*.deb "$tmp"/rootfs/var/lib/apt/lists/*
  tar -C "$tmp/rootfs" -c . | podman import - "$base" >/dev/null
  rm -rf "$tmp/rootfs"
fi

podman system service --time=0 "unix://$tmp/podman.sock" 2>"$tmp/podman.log" &
pids+=($!)
wait_for_socket "$tmp/podman.sock"
export DOCKER_HOST=unix://$tmp/podman.sock
export COMPOSE_PROJECT_NAME=dste2e$$
export DST_NBD_PORT DST_PROMETHEUS_PORT
DST_NBD_PORT=$(free_port)
DST_PROMETHEUS_PORT=$(free_port)
compose() { docker-compose -f "$root/deploy/docker-compose.yml" "$@"; }
container() { echo "${COMPOSE_PROJECT_NAME}_$1_1"; }
images="localhost/dst-exporter localhost/dst-gateway localhost/dst-nbdkit localhost/dst-prometheus localhost/dst-etcd"
teardown() {
  compose --profile ha down -v --timeout 20 >"$tmp/down.log" 2>&1 ||
    echo "compose down failed (see $tmp/down.log)" >&2
  if [ "${DST_COMPOSE_KEEP_IMAGES:-0}" != 1 ]; then
    # Best effort: an earlier build cut short (its buildah working
    # containers still hold their images) makes prune fail; that is not
    # this test's failure.
    # shellcheck disable=SC2086
    podman rmi -f $images >/dev/null 2>&1 ||
      echo "warning: podman rmi failed; images may be left" >&2
    podman image prune -f >"$tmp/prune.log" 2>&1 ||
      echo "warning: podman image prune failed: $(tail -1 "$tmp/prune.log")" >&2
  fi
}
on_exit teardown

SECONDS=0
compose --profile ha build >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; fail "compose build failed"; }
echo "images built in $SECONDS s"
compose up -d >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fail "compose up failed"; }

# wait_export PORT: the NBD export published on PORT answers (60 s) and is
# 1 GiB.
wait_export() {
  local size
  for _ in $(seq 1 120); do
    nbdinfo --size "nbd://127.0.0.1:$1" >/dev/null 2>&1 && break
    sleep 0.5
  done
  size=$(nbdinfo --size "nbd://127.0.0.1:$1") ||
    { compose --profile ha logs --tail=20 >&2; fail "no export on port $1"; }
  [ "$size" = $((1 << 30)) ] || fail "export size $size on port $1, expected 1 GiB"
}
# healthy SERVICE...: each service's compose healthcheck passes (10 s each;
# podman runs them on demand: its timers need systemd, which this host does
# not run).
healthy() {
  local service
  for service in "$@"; do
    for _ in $(seq 1 20); do
      podman healthcheck run "$(container "$service")" >/dev/null 2>&1 && continue 2
      sleep 0.5
    done
    fail "healthcheck of $service fails"
  done
}
# prometheus_until SECONDS WHAT: runs the Python on stdin, which defines
# check(get) -> (done, detail) with get(PATH) the data of this stack's
# Prometheus API at PATH, once a second until done (printing detail) or
# SECONDS have passed (failing with WHAT and the last detail).
prometheus_until() {
  cat >"$tmp/check.py"
  $PYTHON - "$DST_PROMETHEUS_PORT" "$1" "$tmp/check.py" <<'PY' || fail "$2"
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}/api/v1/"
def get(path):
    with urllib.request.urlopen(base + path, timeout=5) as r:
        return json.load(r)["data"]
exec(open(sys.argv[3]).read())
deadline = time.time() + int(sys.argv[2])
while True:
    try:
        done, detail = check(get)
    except OSError as e:
        done, detail = False, str(e)
    if done:
        print(f"prometheus: {detail}")
        break
    if time.time() > deadline:
        sys.exit(detail)
    time.sleep(1)
PY
}

dstctl_in() { podman exec "$(container gateway)" dstctl --gateway=127.0.0.1:7000 "$@"; }
wait_export "$DST_NBD_PORT"
uri="nbd://127.0.0.1:$DST_NBD_PORT"
dstctl_in volumes | grep -q "vol0 *ready" || { dstctl_in status >&2; fail "vol0 not ready"; }

# Every healthcheck of the compose file passes.
healthy exporter1 exporter2 gateway nbdkit

# nbd_io read|write OFFSET FILE: FILE's bytes read from (compared) or
# written to the export on port $nbd_port at OFFSET, 1 MiB per request,
# then a flush.
nbd_port=$DST_NBD_PORT
nbd_io() {
  $PYTHON - "$nbd_port" "$@" <<'PY'
import sys, nbd
port, op, offset, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
h = nbd.NBD()
h.connect_tcp("127.0.0.1", port)
data = open(path, "rb").read()
for i in range(0, len(data), 1 << 20):
    chunk = data[i:i + (1 << 20)]
    if op == "write":
        h.pwrite(chunk, offset + i)
    elif h.pread(len(chunk), offset + i) != chunk:
        sys.exit(f"bytes at {offset + i} differ from {path}")
h.flush()
h.shutdown()
PY
}

# 64 MiB of random data in with nbdcopy and back out.
head -c $((64 << 20)) /dev/urandom >"$tmp/data1"
nbdcopy "$tmp/data1" "$uri" || fail "nbdcopy in"
nbd_io read 0 "$tmp/data1" || fail "data read back differs"

# One exporter down: writes go on, the volume is degraded.
compose stop exporter2 >"$tmp/stop.log" 2>&1 || fail "compose stop exporter2"
head -c $((16 << 20)) /dev/urandom >"$tmp/data2"
nbd_io write $((256 << 20)) "$tmp/data2" || fail "write with one exporter down"
dstctl_in volumes | grep -q "vol0 *degraded" || { dstctl_in replicas vol0 >&2; fail "vol0 not degraded"; }

# Back: the resync copies only the 16 MiB written meanwhile.
compose start exporter2 >"$tmp/start.log" 2>&1 || fail "compose start exporter2"
for _ in $(seq 1 120); do
  dstctl_in replicas vol0 --json | $PYTHON -c 'import json, sys
sys.exit(any(r.get("sync") != "in_sync" for r in json.load(sys.stdin)["replicas"]))' && break
  sleep 0.5
done
dstctl_in replicas vol0
copied=$(dstctl_in replicas vol0 --json | $PYTHON -c 'import json, sys
print(sum(int(r.get("resync_copied_bytes", 0)) for r in json.load(sys.stdin)["replicas"]))')
echo "resync copied $copied bytes (16 MiB written during the outage)"
[ "$copied" -gt 0 ] && [ "$copied" -le $((16 << 20)) ] ||
  fail "resync copied $copied bytes, expected 1..16 MiB"
dstctl_in verify vol0 || fail "replicas differ after resync"
nbd_io read $((256 << 20)) "$tmp/data2" || fail "data written during the outage differs"
nbd_io read 0 "$tmp/data1" || fail "data written before the outage differs"

# Prometheus scrapes the gateway and both exporters, with dst's rules.
prometheus_until 60 "Prometheus in compose" <<'PY'
def check(get):
    up = {t["labels"]["instance"]: t["health"] for t in get("targets")["activeTargets"]}
    rules = [r["name"] for g in get("rules")["groups"] for r in g["rules"]]
    done = sorted(up) == ["exporter1:9100", "exporter2:9100", "gateway:9100"] and \
        set(up.values()) == {"up"} and bool(rules)
    return done, f"targets {up}, {len(rules)} rules"
PY

# --- The ha profile, beside the default stack.
export DST_HA_NBD_PORT
DST_HA_NBD_PORT=$(free_port)
compose --profile ha up -d >"$tmp/up-ha.log" 2>&1 || { cat "$tmp/up-ha.log"; fail "compose --profile ha up failed"; }
wait_export "$DST_HA_NBD_PORT"
nbd_port=$DST_HA_NBD_PORT
# dstctl given both HA gateways, run in the HA nbdkit container (it has
# dstctl, and stays up while a gateway stops).
ha_ctl() {
  podman exec "$(container ha-nbdkit)" dstctl --gateway=ha-gateway1:7000,ha-gateway2:7000 "$@"
}
ha_leader() {
  ha_ctl status vol0 --json | $PYTHON -c 'import json, sys
v = json.load(sys.stdin)["volumes"][0]
print(v.get("leader", "") if v.get("state") != "standby" else "")'
}
healthy etcd ha-gateway1 ha-gateway2 ha-nbdkit
head -c $((16 << 20)) /dev/urandom >"$tmp/data3"
nbd_io write 0 "$tmp/data3" || fail "write through the HA stack"
leader=$(ha_leader)
case $leader in ha-gateway1 | ha-gateway2) ;; *) fail "HA: no leader ('$leader')" ;; esac
ha_ctl status vol0 | grep "leader: $leader ($leader:7000), epoch [1-9]" >/dev/null ||
  { ha_ctl status vol0 >&2; fail "dstctl status does not show the leader"; }
# The leader stops (SIGTERM: it resigns); the other takes over.
compose --profile ha stop "$leader" >"$tmp/stop-ha.log" 2>&1 || fail "compose stop $leader"
head -c $((16 << 20)) /dev/urandom >"$tmp/data4"
nbd_io write $((32 << 20)) "$tmp/data4" || fail "write with the HA leader stopped"
nbd_io read 0 "$tmp/data3" || fail "HA: data written before the takeover differs"
next=$(ha_leader)
[ -n "$next" ] && [ "$next" != "$leader" ] || fail "HA: no takeover from $leader ('$next')"
echo "ha profile: $leader stopped, $next took over"
compose --profile ha start "$leader" >"$tmp/start-ha.log" 2>&1 || fail "compose start $leader"
nbd_io read $((32 << 20)) "$tmp/data4" || fail "HA: data written after the takeover differs"
ha_ctl verify vol0 | grep ": identical" >/dev/null || fail "HA: replicas differ"
# Prometheus finds the HA gateways by DNS, under job dst-gateway: one leads.
prometheus_until 90 "Prometheus with the ha profile" <<'PY'
import urllib.parse
def check(get):
    up = {t["labels"]["instance"]: (t["labels"]["job"], t["health"])
          for t in get("targets")["activeTargets"]}
    q = urllib.parse.quote('sum(dst_gateway_ha_leader{volume="vol0",job="dst-gateway"})')
    leaders = get("query?query=" + q)["result"]
    ha = {i: v for i, v in up.items() if i.startswith("ha-")}
    done = ha == {"ha-gateway1:9100": ("dst-gateway", "up"),
                  "ha-gateway2:9100": ("dst-gateway", "up"),
                  "ha-exporter1:9100": ("dst-exporter", "up"),
                  "ha-exporter2:9100": ("dst-exporter", "up")} \
        and bool(leaders) and leaders[0]["value"][1] == "1"
    return done, f"HA targets {sorted(ha)}, leaders {leaders}"
PY

teardown
cleanup_hooks=()
[ -z "$(podman ps -a --filter "name=$COMPOSE_PROJECT_NAME" -q)" ] || fail "containers left behind"
[ -z "$(podman volume ls -q | grep "^${COMPOSE_PROJECT_NAME}_" || true)" ] || fail "volumes left behind"
echo "compose: up, I/O, exporter stop and resync, Prometheus, down in $SECONDS s"
