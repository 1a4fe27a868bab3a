#!/usr/bin/env bash
# A hung exporter (SIGSTOP, then SIGCONT 5 s later) under a verifying
# writer: past the lag limit the gateway acknowledges writes on the healthy
# replica, keepalive pings declare the stopped one's link dead within the
# configured time (checked), and after SIGCONT it is
# resynced with only the regions it missed. No error reaches the NBD client;
# every write reads back; the replicas end byte-identical. Reports the
# longest stall.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio cmp

start_stack 256M 2
e2_pid=${pids[1]}
on_exit "kill -CONT $e2_pid"

run_fio sigstop &
fio_pid=$!
sleep 1
kill -STOP "$e2_pid"
sleep 5
[ "$(replica_field sync | sed -n 2p)" != in_sync ] || fail "a stopped replica stayed in sync"
# Keepalive (2 s pings, 2 s timeout by default) declared the link dead.
[ "$(replica_field state | sed -n 2p)" != connected ] ||
  fail "keepalive did not notice the stopped exporter within 5 s"
kill -CONT "$e2_pid"
wait "$fio_pid" || { cat "$tmp/sigstop.err"; fail "fio saw an error while an exporter was stopped"; }
echo "SIGSTOP of one exporter: longest client stall $(max_latency_ms sigstop) ms"
wait_in_sync 60
check_resync $((49 << 20))
echo PASS
