#!/usr/bin/env bash
# Restarts under a verifying writer: fio writes a two-way mirror through
# nbdkit and verifies every block afterwards, while (1) the gateway is
# killed with SIGKILL and restarted and (2) one exporter is killed with
# SIGKILL and restarted. The NBD client must see a pause, never an error;
# every write must read back; the returning exporter is resynced with only
# the regions written while it was away, and the replicas end
# byte-identical. The longest pause is reported.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio cmp

start_stack 256M 2
gateway_pid=${pids[2]}

# 1. The gateway: SIGKILL, then a new one on the same socket and state.
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
echo "gateway restart: longest client stall $(max_latency_ms gateway) ms"
wait_in_sync 30
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ after the gateway restart"
# The regions being written when the gateway died (its activity log) were
# copied to the other replica: at most what fio wrote.
after_gateway=$(resync_copied)
echo "activity-log resync after the gateway restart copied $after_gateway bytes"
[ "$after_gateway" -le $((49 << 20)) ] || fail "the activity-log resync copied too much"
grep -q "reconnecting" "$tmp/nbdkit.log" || fail "the plugin never noticed the gateway restart"

# 2. One exporter: SIGKILL, then restarted on the same file.
run_fio exporter &
fio_pid=$!
sleep 1
kill -9 "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
sleep 1
"$DST_BIN/dst-exporter" --listen="unix:$tmp/e2.sock" --backing="$tmp/e2.img" --id=e2 \
  2>"$tmp/e2-restarted.log" &
pids+=($!)
wait "$fio_pid" || { cat "$tmp/exporter.err"; fail "fio saw an error across an exporter restart"; }
echo "exporter restart: longest client stall $(max_latency_ms exporter) ms"
wait_in_sync 60
check_resync $((49 << 20)) "$after_gateway"  # fio writes only the first 48 MiB of 256
grep -q "left the in-sync set" "$tmp/gateway2.log" || fail "e2 never left the in-sync set"
dstctl_ verify vol0 | grep -q ": identical" || fail "dstctl verify finds differences after resync"
echo PASS
