#!/usr/bin/env bash
# The binaries' own error paths: clear messages and exit codes for bad flags
# and configs, dstctl against no gateway, and SIGTERM exits 0 after a drain.
source "$(dirname "$0")/functions.sh"

expect_fail() {  # expect_fail "MESSAGE" CMD...: CMD fails and prints MESSAGE
  local message=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then fail "succeeded: $*"; fi
  grep -qF -- "$message" "$tmp/out" || { cat "$tmp/out"; fail "no '$message' from: $*"; }
}

expect_fail "--backing=PATH is required" "$DST_BIN/dst-exporter" --listen=unix:$tmp/x.sock
expect_fail "unknown flag --nope" "$DST_BIN/dst-exporter" --nope=1
expect_fail "does not exist (give --size to create it)" \
  "$DST_BIN/dst-exporter" --listen=unix:$tmp/x.sock --backing=$tmp/missing.img
expect_fail "port must be a number" \
  "$DST_BIN/dst-exporter" --listen=127.0.0.1:99999 --backing=$tmp/a.img --size=1M
expect_fail "--block-size=3: must be a power of two" \
  "$DST_BIN/dst-exporter" --listen=unix:$tmp/x.sock --backing=$tmp/a.img --size=1M --block-size=3
expect_fail "--max-transfer=1000: must be a multiple of the block size" \
  "$DST_BIN/dst-exporter" --listen=unix:$tmp/x.sock --backing=$tmp/a.img --size=1M --max-transfer=1000
expect_fail "--inline-io=maybe: expected on or off" \
  "$DST_BIN/dst-exporter" --listen=unix:$tmp/x.sock --backing=$tmp/a.img --size=1M --inline-io=maybe
[ ! -e "$tmp/a.img" ] || fail "a refused start created the backing file"

printf 'volumes:\n  - name: v\n    replicas: [{adress: "h:1"}]\n' >"$tmp/bad.yaml"
expect_fail "volumes[0].replicas[0].adress: unknown key" \
  "$DST_BIN/dst-gateway" --config="$tmp/bad.yaml"
expect_fail "--config=FILE is required" "$DST_BIN/dst-gateway"
printf 'listen: ["127.0.0.1:7000", "unix:/tmp/dst/gateway.sock"]\nvolumes:\n  - name: vol0\n    replicas:\n      - address: "127.0.0.1:7001"\n      - address: "127.0.0.1:7002"\n' >"$tmp/design.yaml"
"$DST_BIN/dst-gateway" --config="$tmp/design.yaml" --check-config ||
  fail "the minimal config of docs/configuration.md refused"
# HA mode: the address given to clients must be one they can reach.
printf 'listen: ["0.0.0.0:7000"]\netcd: {endpoints: ["127.0.0.1:2379"]}\nvolumes: [{name: v, replicas: [{address: "h:1"}]}]\n' >"$tmp/ha.yaml"
expect_fail "etcd.advertise: '0.0.0.0:7000' (the first listen address) is not an address clients can reach" \
  "$DST_BIN/dst-gateway" --config="$tmp/ha.yaml" --check-config
"$DST_BIN/dst-gateway" --config="$tmp/ha.yaml" --check-config --advertise=gw-1.example:7000 >/dev/null ||
  fail "--advertise did not stand for etcd.advertise"
expect_fail "--advertise is for HA mode" \
  "$DST_BIN/dst-gateway" --config="$tmp/design.yaml" --check-config --advertise=gw-1.example:7000

expect_fail "cannot reach the gateway at unix:$tmp/none.sock" \
  "$DST_BIN/dstctl" --gateway="unix:$tmp/none.sock" --timeout=2 status
expect_fail "unknown command 'frobnicate'" "$DST_BIN/dstctl" frobnicate

# SIGTERM: both services drain and exit 0.
start_exporter e1 8M
gateway_config vol0 e1
start_gateway
"$DST_BIN/dstctl" --gateway="unix:$tmp/gateway.sock" status | grep -q "connected" ||
  fail "dstctl status does not show the replica connected"
"$DST_BIN/dstctl" --gateway="unix:$tmp/gateway.sock" --json volumes | grep -q '"name": "vol0"' ||
  fail "dstctl --json volumes lacks vol0"
ctl() { "$DST_BIN/dstctl" --gateway="unix:$tmp/gateway.sock" "$@"; }
expect_fail "usage: replicas VOLUME" ctl replicas
expect_fail "no volume named 'nope'" ctl replicas nope
expect_fail "usage: resync VOLUME start|stop" ctl resync vol0 go
expect_fail "--rate=fast" ctl resync vol0 start --rate=fast
expect_fail "is not a mirror" ctl resync vol0 start --full=unix:/x.sock
expect_fail "usage: resolve VOLUME --source=ADDR" ctl resolve vol0
expect_fail "is not a mirror" ctl resolve vol0 --source=unix:/x.sock
ctl replicas vol0 | grep -q "in_sync" || fail "dstctl replicas does not show the replica in sync"
ctl verify vol0 | grep -q "nothing to compare" || fail "verify of a plain volume"
ctl resync vol0 stop | grep -q "resync stopped" || fail "dstctl resync stop"
ctl resync vol0 start --rate=10M | grep -q "limited to 10.0 MiB/s" ||
  fail "dstctl resync --rate"
gateway_pid=${pids[-1]}
exporter_pid=${pids[-2]}
kill -TERM "$gateway_pid"
wait "$gateway_pid" || fail "gateway exited $? on SIGTERM"
kill -TERM "$exporter_pid"
wait "$exporter_pid" || fail "exporter exited $? on SIGTERM"
grep -q "exporter: stopped" "$tmp/e1.log" || fail "exporter did not log its stop"
pids=()
echo PASS
