#!/usr/bin/env bash
# The stale-source case. With replica B (e2) down, writes are acknowledged on
# A (e1) alone; then A and the gateway die, and the gateway restarts with
# only B reachable. It must not serve B's stale data: reads wait for A (and
# fail after the suspend time), `dstctl replicas` says why, and once A is
# back the data read is A's and B is resynced from A. The knowledge that B
# is stale survived the loss of A and of the gateway process (the state
# file, and A's generation).
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy cmp

start_exporter e1 64M
start_exporter e2 64M
gateway_config vol0 e1 e2
echo "    suspend_timeout_ms: 3000" >>"$tmp/gateway.yaml"
start_gateway
gateway_pid=${pids[2]}
start_nbdkit vol0
nbdkit_pid=${pids[3]}
# Both replicas learn the first generation before B goes.
for _ in $(seq 1 100); do
  [ "$(replica_field generation | sort -u | wc -l)" = 1 ] &&
    [ "$(replica_field generation | head -1)" != 0 ] && break
  sleep 0.1
done

kill -9 "${pids[1]}"  # B
head -c 4M /dev/urandom >"$tmp/new.bin"
nbdcopy --flush "$tmp/new.bin" "$uri" || fail "writes with one replica down failed"
[ "$(replica_field sync | sed -n 2p)" = stale ] || fail "B is not marked stale"

kill -9 "$nbdkit_pid" "$gateway_pid" "${pids[0]}"  # the NBD server, the gateway, A
wait "$nbdkit_pid" "$gateway_pid" "${pids[0]}" 2>/dev/null || true
start_exporter e2 64M  # only B comes back
start_gateway_no_wait() {
  "$DST_BIN/dst-gateway" --config="$tmp/gateway.yaml" --listen="unix:$tmp/gateway.sock" \
    2>"$tmp/gateway2.log" &
  pids+=($!)
  wait_for_socket "$tmp/gateway.sock"
}
rm -f "$tmp/gateway.sock"
start_gateway_no_wait
for _ in $(seq 1 100); do
  dstctl_ volumes 2>/dev/null | grep -q " waiting " && break
  sleep 0.1
done
dstctl_ replicas vol0 | tee "$tmp/replicas.txt"
grep -q "waiting" "$tmp/replicas.txt" || fail "the volume is not waiting for an up-to-date replica"
grep -q "never a source" "$tmp/replicas.txt" || fail "dstctl does not say why I/O waits"
rm -f "$tmp/nbd.sock"
start_nbdkit vol0
# A read must not return B's stale data: it waits, then fails (EIO).
if $PYTHON - "$tmp/nbd.sock" "$tmp/new.bin" 2>"$tmp/stale-read.err" <<'PY'; then
import sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
data = h.pread(65536, 0)
sys.exit(0 if data == open(sys.argv[2], "rb").read(65536) else 2)
PY
  fail "a read succeeded with only the stale replica reachable"
else
  status=$?
  [ $status = 2 ] && fail "B's stale data was served"
fi

start_exporter e1 64M  # A returns
$PYTHON - "$tmp/nbd.sock" "$tmp/new.bin" <<'PY' || fail "A's data was not served once A returned"
import sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
want = open(sys.argv[2], "rb").read()
assert h.pread(len(want), 0) == want
PY
wait_in_sync 60
check_resync $((5 << 20))  # 4 MiB written while B was down: 4 regions (+1)
echo PASS
