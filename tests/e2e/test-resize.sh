#!/usr/bin/env bash
# Online growth (dstctl resize) of a two-way mirror under a writer that
# records every acknowledged write (resize_writer.py: 64 KiB at random,
# half in the last 16 MiB, connecting again every 16 writes as new NBD
# clients do):
# 1. 64 -> 96 MiB: both exporters' files grow, a new connection sees the
#    size, the writer writes past the old end; shrinking and a misaligned
#    size are refused with clear errors and change nothing; the size metric,
#    the resize counters and the gateway's log event;
# 2. the gateway killed (SIGKILL) in the middle of a resize to 128 MiB (e2
#    stopped with SIGSTOP, so that the resize waits on it with e1 grown):
#    the restarted gateway serves the old size, and the same resize then
#    succeeds;
# 3. a replica that cannot follow a resize (stopped: its Grow times out)
#    leaves the set, `dstctl replicas` says why, and once it runs again it
#    is grown and resynced;
# 4. nothing acknowledged is lost, the new space never written reads as
#    zeroes, the replicas are identical and dstctl verify agrees.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo cmp curl
MiB=$((1024 * 1024))
writer() { "$(dirname "$0")/resize_writer.py" "$@"; }
size_of() { dstctl_ status vol0 --json | $PYTHON -c 'import json,sys
print(json.load(sys.stdin)["volumes"][0]["geometry"].get("size", 0))'; }

start_exporter e1 64M
start_exporter e2 64M
gateway_config vol0 e1 e2
gport=$(free_port)
launch_gateway() {
  "$DST_BIN/dst-gateway" --config="$tmp/gateway.yaml" --listen="unix:$tmp/gateway.sock" \
    --metrics="127.0.0.1:$gport" 2>>"$tmp/gateway.log" &
  gateway_pid=$!
  pids+=("$gateway_pid")
  wait_for_socket "$tmp/gateway.sock"
}
launch_gateway
start_nbdkit vol0
metric() { metric_value "http://127.0.0.1:$gport/metrics" "$1"; }

writer "$tmp/nbd.sock" "$tmp/acked.log" "$tmp/stop" >"$tmp/writer.out" 2>&1 &
writer_pid=$!
pids+=("$writer_pid")
sleep 1

# --- 1. grow, and what is refused ----------------------------------------
dstctl_ resize vol0 96M >"$tmp/resize1.out" || { cat "$tmp/resize1.out"; fail "dstctl resize to 96M failed"; }
cat "$tmp/resize1.out"
grep -q "volume vol0 is 96.0 MiB (100663296 bytes)" "$tmp/resize1.out" || fail "dstctl resize did not report the size"
for f in e1 e2; do
  [ "$(stat -c %s "$tmp/$f.img")" = $((96 * MiB)) ] || fail "$f.img did not grow"
done
[ "$(nbdinfo --size "$uri")" = $((96 * MiB)) ] || fail "a new connection does not see 96 MiB"
if dstctl_ resize vol0 64M 2>"$tmp/shrink.err"; then fail "a shrink was accepted"; fi
grep -q "cannot shrink" "$tmp/shrink.err" || { cat "$tmp/shrink.err"; fail "the shrink's error is unclear"; }
if dstctl_ resize vol0 100000001 2>"$tmp/odd.err"; then fail "a misaligned size was accepted"; fi
grep -q "not a multiple of the block size" "$tmp/odd.err" || { cat "$tmp/odd.err"; fail "unclear error"; }
[ "$(size_of)" = $((96 * MiB)) ] || fail "a refused resize changed the size"
[ "$(metric 'dst_gateway_volume_size_bytes{volume="vol0"}')" = $((96 * MiB)) ] || fail "size metric"
[ "$(metric 'dst_gateway_volume_resizes_total{outcome="ok",volume="vol0"}')" = 1 ] || fail "resize counter"
[ "$(metric 'dst_gateway_volume_resizes_total{outcome="failed",volume="vol0"}')" = 2 ] ||
  fail "the refused resizes are not counted"
grep -q "volume vol0: grown from $((64 * MiB)) to $((96 * MiB)) bytes" "$tmp/gateway.log" ||
  fail "no log event for the resize"
sleep 1  # the writer writes past the old end

# --- 2. a gateway killed in the middle of a resize ---------------------------
kill -STOP "${pids[1]}"  # e2: its Grow waits
dstctl_ resize vol0 128M >/dev/null 2>&1 &
resize_pid=$!
for _ in $(seq 1 50); do
  [ "$(stat -c %s "$tmp/e1.img")" = $((128 * MiB)) ] && break
  sleep 0.02
done
[ "$(stat -c %s "$tmp/e1.img")" = $((128 * MiB)) ] || fail "e1 did not grow first"
kill -9 "$gateway_pid"
wait "$gateway_pid" 2>/dev/null || true
wait "$resize_pid" 2>/dev/null || true
kill -CONT "${pids[1]}"
launch_gateway
for _ in $(seq 1 100); do
  size=$(size_of 2>/dev/null) || size=0
  [ "$size" != 0 ] && break
  sleep 0.1
done
[ "$size" = $((96 * MiB)) ] || fail "after a crash mid-resize the volume is $size bytes, not the old size"
wait_in_sync 60
dstctl_ resize vol0 128M >/dev/null || fail "the resize after the restart failed"
[ "$(size_of)" = $((128 * MiB)) ] || fail "the resize after the restart did not take"
[ "$(stat -c %s "$tmp/e2.img")" = $((128 * MiB)) ] || fail "e2 did not grow"
sleep 1

# --- 3. a replica that cannot follow -----------------------------------------
kill -STOP "${pids[1]}"
dstctl_ resize vol0 160M >/dev/null || fail "a resize with e2 stopped failed"
dstctl_ replicas vol0 >"$tmp/replicas.out"
cat "$tmp/replicas.out"
grep -q "out of sync: could not grow to $((160 * MiB)) bytes" "$tmp/replicas.out" ||
  fail "dstctl replicas does not say why e2 left the set"
kill -CONT "${pids[1]}"
wait_in_sync 60
[ "$(stat -c %s "$tmp/e2.img")" = $((160 * MiB)) ] || fail "e2 was not grown once it ran again"
sleep 1

# --- 4. everything acknowledged is there --------------------------------------
touch "$tmp/stop"
wait "$writer_pid" || { cat "$tmp/writer.out"; fail "the writer saw an error"; }
cat "$tmp/writer.out"
writer --check "$tmp/nbd.sock" "$tmp/acked.log" $((64 * MiB)) || fail "acknowledged writes lost"
wait_in_sync 60
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ"
dstctl_ verify vol0 | grep -q ": identical" || fail "dstctl verify finds differences"
echo PASS
