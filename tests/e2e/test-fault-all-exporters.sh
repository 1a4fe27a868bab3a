#!/usr/bin/env bash
# Every exporter gone (SIGKILL) for less than the suspend time, then back:
# I/O through nbdkit pauses, resumes when they return, and nothing fails;
# every write reads back and the replicas end byte-identical.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio cmp

start_stack 256M 2

run_fio all-gone &
fio_pid=$!
sleep 1
kill -9 "${pids[0]}" "${pids[1]}"
wait "${pids[0]}" "${pids[1]}" 2>/dev/null || true
sleep 3  # well under the 30 s suspend time
start_exporter e1 256M
start_exporter e2 256M
wait "$fio_pid" || { cat "$tmp/all-gone.err"; fail "fio saw an error while every exporter was away"; }
echo "all exporters gone for 3 s: longest client stall $(max_latency_ms all-gone) ms"
[ "$(grep -c "stream lost" "$tmp/gateway.log")" -ge 2 ] ||
  fail "the gateway did not lose both replicas: the fault did not happen"
wait_in_sync 60
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ"
echo "resync copied $(replica_field resync_copied_bytes | awk '{s += $1} END {print s + 0}') bytes"
echo PASS
