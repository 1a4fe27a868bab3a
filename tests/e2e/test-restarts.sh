#!/usr/bin/env bash
# Restarts under a verifying writer: fio writes a two-way mirror through
# nbdkit (rate-limited so the faults land mid-run) and verifies every block
# afterwards, while (1) the gateway is killed with SIGKILL and restarted and
# (2) one exporter is killed with SIGKILL and restarted. The NBD client must
# see a pause, never an error; every write must read back; the replicas
# must end byte-identical. The longest pause is reported.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio cmp

start_exporter e1 64M
start_exporter e2 64M
gateway_config vol0 e1 e2
start_gateway
gateway_pid=${pids[-1]}
start_nbdkit vol0

run_fio() {  # run_fio NAME: 48 MiB of verified random writes at 16 MiB/s
  fio --name="$1" --ioengine=nbd --uri="$uri" --rw=randwrite --bs=64k \
    --iodepth=8 --size=48M --rate=16m --verify=crc32c --verify_fatal=1 \
    --do_verify=1 --randrepeat=0 --lat_percentiles=1 --output-format=json \
    --output="$tmp/$1.json" 2>"$tmp/$1.err"
}
max_latency_ms() {  # the longest completion latency fio saw, in ms
  $PYTHON -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]
print(round(max(j["write"]["clat_ns"]["max"], j["read"]["clat_ns"]["max"]) / 1e6))' "$1"
}

# 1. The gateway: SIGKILL, then a new one on the same socket.
run_fio gateway &
fio_pid=$!
sleep 1
kill -9 "$gateway_pid"
wait "$gateway_pid" 2>/dev/null || true
sleep 0.5
"$DST_BIN/dst-gateway" --config="$tmp/gateway.yaml" --listen="unix:$tmp/gateway.sock" \
  2>"$tmp/gateway2.log" &
pids+=($!)
wait "$fio_pid" || { cat "$tmp/gateway.err"; fail "fio saw an error across a gateway restart"; }
echo "gateway restart: longest client stall $(max_latency_ms "$tmp/gateway.json") ms"

# 2. One exporter: SIGKILL, then restarted on the same file.
run_fio exporter &
fio_pid=$!
sleep 1
kill -9 "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
sleep 0.5
"$DST_BIN/dst-exporter" --listen="unix:$tmp/e2.sock" --backing="$tmp/e2.img" --id=e2 \
  2>"$tmp/e2-restarted.log" &
pids+=($!)
wait "$fio_pid" || { cat "$tmp/exporter.err"; fail "fio saw an error across an exporter restart"; }
echo "exporter restart: longest client stall $(max_latency_ms "$tmp/exporter.json") ms"

cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ after the restarts"
grep -q "reconnecting" "$tmp/nbdkit.log" || fail "the plugin never noticed the gateway restart"
echo PASS
