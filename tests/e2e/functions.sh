# Shared helpers for dst's e2e tests (sourced by tests/e2e/test-*.sh), in
# nbdkit's manner: real processes on Unix sockets in a private temporary
# directory, a cleanup trap that stops them all, and a prerequisite that is
# missing makes the test FAIL with its name, never skip. DST_KEEP_TMP=DIR
# copies the temporary directory (logs, images) there before it is removed.
set -euo pipefail

DST_BIN=${DST_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build/bin" && pwd)}
# Debian's python3 has the libnbd bindings (python3-libnbd); a python3 from
# elsewhere on PATH may not.
PYTHON=/usr/bin/python3

fail() {
  echo "FAIL: $*" >&2
  if [ -n "${tmp:-}" ]; then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] || continue
      echo "---- $(basename "$log") (last 20 lines)" >&2
      tail -n 20 "$log" >&2
    done
  fi
  exit 1
}

requires() {
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 ||
      fail "prerequisite missing: $cmd (the test command installs it; see README)"
  done
}

requires_root() {
  [ "$(id -u)" = 0 ] || fail "this test needs root (loop devices, mount)"
}

for binary in dst-exporter dst-gateway dstctl nbdkit-dst-plugin.so; do
  [ -e "$DST_BIN/$binary" ] || fail "$DST_BIN/$binary not built (cmake --build build)"
done

tmp=$(mktemp -d /tmp/dst-e2e-XXXXXX)
pids=()
cleanup_hooks=()

cleanup() {
  local status=$?
  set +e
  for hook in "${cleanup_hooks[@]}"; do eval "$hook"; done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  [ -n "${DST_KEEP_TMP:-}" ] && cp -r "$tmp" "$DST_KEEP_TMP"; rm -rf "$tmp"
  exit $status
}
trap cleanup EXIT INT TERM

# on_exit CMD: run CMD at cleanup, before processes are stopped (LIFO not
# needed so far: hooks run in order).
on_exit() { cleanup_hooks+=("$1"); }

wait_for_socket() {
  local path=$1
  for _ in $(seq 1 200); do
    [ -S "$path" ] && return 0
    sleep 0.05
  done
  fail "socket $path did not appear"
}

# start_exporter NAME SIZE [FLAGS...]: serves $tmp/NAME.img on
# unix:$tmp/NAME.sock.
start_exporter() {
  local name=$1 size=$2
  shift 2
  "$DST_BIN/dst-exporter" --listen="unix:$tmp/$name.sock" \
    --backing="$tmp/$name.img" --size="$size" --id="$name" "$@" \
    2>"$tmp/$name.log" &
  pids+=($!)
  wait_for_socket "$tmp/$name.sock"
}

# start_gateway: serves $tmp/gateway.yaml (write it first) on
# unix:$tmp/gateway.sock, and waits until every volume is ready.
start_gateway() {
  "$DST_BIN/dst-gateway" --config="$tmp/gateway.yaml" \
    --listen="unix:$tmp/gateway.sock" 2>"$tmp/gateway.log" &
  pids+=($!)
  wait_for_socket "$tmp/gateway.sock"
  for _ in $(seq 1 200); do
    if "$DST_BIN/dstctl" --gateway="unix:$tmp/gateway.sock" volumes 2>/dev/null |
        awk 'NR > 1 && $2 != "ready" { bad = 1 } END { exit bad }'; then
      return 0
    fi
    sleep 0.05
  done
  fail "gateway volumes did not become ready"
}

# gateway_config VOLUME REPLICA...: a config with one volume.
gateway_config() {
  local volume=$1
  shift
  {
    echo "state_dir: \"$tmp/gateway-state\""
    echo "volumes:"
    echo "  - name: $volume"
    echo "    replicas:"
    for replica in "$@"; do echo "      - address: \"unix:$tmp/$replica.sock\""; done
  } >"$tmp/gateway.yaml"
}

# dstctl_ ARGS...: dstctl against the test's gateway.
dstctl_() { "$DST_BIN/dstctl" --gateway="unix:$tmp/gateway.sock" "$@"; }

# run_fio NAME [FIO FLAGS...]: random 64 KiB writes over the first 48 MiB of
# $uri at 8 MiB/s (about 6 s, so faults land mid-run), each block verified
# by reading it back afterwards (crc32c); results in $tmp/NAME.json.
run_fio() {
  local name=$1
  shift
  fio --name="$name" --ioengine=nbd --uri="$uri" --rw=randwrite --bs=64k \
    --iodepth=8 --size=48M --rate=8m --verify=crc32c --verify_fatal=1 --verify_state_save=0 \
    --do_verify=1 --randrepeat=0 --output-format=json \
    --output="$tmp/$name.json" "$@" 2>"$tmp/$name.err"
}

# max_latency_ms NAME: the longest completion latency fio saw (the client's
# longest stall), in ms.
max_latency_ms() {
  $PYTHON -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]
print(round(max(j["write"]["clat_ns"]["max"], j["read"]["clat_ns"]["max"]) / 1e6))' \
    "$tmp/$1.json"
}

# replica_field FIELD: FIELD of every replica of vol0 (dstctl --json), one
# per line (0 when absent).
replica_field() {
  dstctl_ replicas vol0 --json | $PYTHON -c 'import json,sys
for r in json.load(sys.stdin).get("replicas", []): print(r.get(sys.argv[1], 0))' "$1"
}

# wait_in_sync [SECONDS]: until every replica of vol0 is in sync. (The
# states are read whole first: in a pipe, `grep -q` may exit before the
# writer has written, and pipefail would count the writer's EPIPE as
# "in sync".)
wait_in_sync() {
  local deadline=$((SECONDS + ${1:-60})) states
  while [ $SECONDS -lt $deadline ]; do
    states=$(replica_field sync 2>/dev/null) || states=""
    if [ -n "$states" ] && ! grep -qv '^in_sync$' <<<"$states"; then return 0; fi
    sleep 0.2
  done
  dstctl_ replicas vol0 >&2 || true
  fail "replicas not in sync after ${1:-60} s"
}

# resync_copied: bytes copied by resync so far, all replicas.
resync_copied() {
  replica_field resync_copied_bytes | awk '{s += $1} END {print s + 0}'
}

# check_resync LIMIT [BEFORE]: the resync copied something since BEFORE
# (bytes copied earlier, default 0), at most LIMIT bytes (the regions
# written during the outage), and the replicas are byte-identical. Prints
# the figure.
check_resync() {
  local limit=$1 copied
  copied=$(($(resync_copied) - ${2:-0}))
  echo "resync copied $copied bytes (bound $limit)"
  [ "$copied" -gt 0 ] || fail "resync copied nothing after an outage with writes"
  [ "$copied" -le "$limit" ] || fail "resync copied $copied bytes, more than $limit"
  cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ after resync"
}

# start_nbdkit VOLUME [NBDKIT FLAGS...]: serves the volume on $tmp/nbd.sock
# and sets $uri.
start_nbdkit() {
  local volume=$1
  shift
  nbdkit -f -U "$tmp/nbd.sock" "$@" "$DST_BIN/nbdkit-dst-plugin.so" \
    gateway="unix:$tmp/gateway.sock" volume="$volume" 2>"$tmp/nbdkit.log" &
  pids+=($!)
  wait_for_socket "$tmp/nbd.sock"
  uri="nbd+unix:///?socket=$tmp/nbd.sock"
}

# start_stack SIZE REPLICAS: exporters e1..eN of SIZE, gateway, nbdkit
# serving volume vol0.
start_stack() {
  local size=$1 count=$2 names=()
  for i in $(seq 1 "$count"); do
    start_exporter "e$i" "$size"
    names+=("e$i")
  done
  gateway_config vol0 "${names[@]}"
  start_gateway
  start_nbdkit vol0
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  $PYTHON -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# metric_value URL SERIES: the value of one exact series line ("" if absent).
metric_value() {
  curl -fsS "$1" | awk -v series="$2" '$1 == series { print $2 }'
}

# --- HA mode (tests/e2e/test-ha-*.sh): $gateways lists the gateways'
# addresses (comma-separated); each runs with --id=gw-NAME.

# ha_dstctl ARGS...: dstctl given every gateway.
ha_dstctl() { "$DST_BIN/dstctl" --gateway="$gateways" "$@"; }

# ha_leader: NAME of the gateway (gw-NAME) leading vol0 now, "" while none
# does.
ha_leader() {
  ha_dstctl status vol0 --json 2>/dev/null | $PYTHON -c 'import json,sys
v = json.load(sys.stdin)["volumes"][0]
print(v.get("leader", "")[3:] if v.get("state") != "standby" else "")' \
    2>/dev/null || true
}

# wait_ha_leader [NOT] [SECONDS]: waits (30 s by default) until a gateway
# other than gw-NOT leads vol0, and prints its NAME.
wait_ha_leader() {
  local deadline=$((SECONDS + ${2:-30})) l
  while [ $SECONDS -lt $deadline ]; do
    l=$(ha_leader)
    if [ -n "$l" ] && [ "$l" != "${1:-}" ]; then
      echo "$l"
      return 0
    fi
    sleep 0.1
  done
  fail "no gateway leads vol0${1:+ other than gw-$1}"
}

# has_metric URL REGEX: the metrics page at URL has a line matching REGEX
# (read whole first: grep -q would cut curl's pipe, which pipefail reports).
has_metric() {
  local text
  text=$(curl -fs "$1") || return 1
  grep -q "$2" <<<"$text"
}

# start_etcd: one etcd member on loopback ports with short Raft timings;
# sets $etcd_client (its client port) and $etcd_pid.
start_etcd() {
  local peer
  etcd_client=$(free_port)
  peer=$(free_port)
  etcd --name=e2e --data-dir="$tmp/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_client" \
    --advertise-client-urls="http://127.0.0.1:$etcd_client" \
    --listen-peer-urls="http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
    --initial-cluster="e2e=http://127.0.0.1:$peer" \
    --heartbeat-interval=10 --election-timeout=100 2>"$tmp/etcd.log" &
  etcd_pid=$!
  pids+=($!)
  wait_etcd "http://127.0.0.1:$etcd_client"
}

# wait_etcd URL: until etcd's /health at URL answers (10 s).
wait_etcd() {
  for _ in $(seq 1 200); do
    curl -fs "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  fail "etcd at $1 did not start"
}
