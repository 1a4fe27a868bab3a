#!/usr/bin/env bash
# The embedded mode: nbdkit runs the gateway engine itself
# (config=gateway.yaml instead of gateway=ADDR) over two exporters. Checked:
# fio's verifying random read/write at queue depth 32; one exporter killed
# with SIGKILL under a verifying writer, with no error at the client; the
# exporter back, the resync copies only what was written meanwhile; the
# mirror state file is in state_dir; the replicas end byte-identical;
# block status shows the unwritten volume as a hole; and the plugin refuses
# gateway= and config= together, TLS parameters with
# config=, and an unknown volume (nbdkit exits with the error).
source "$(dirname "$0")/functions.sh"
requires nbdkit fio nbdinfo

start_exporter e1 128M
start_exporter e2 128M
gateway_config vol0 e1 e2
plugin=$DST_BIN/nbdkit-dst-plugin.so

expect_refusal() {  # expect_refusal MESSAGE PLUGIN-ARGS...: nbdkit exits with an error
  local message=$1 status=0
  shift
  timeout 20 nbdkit -f -U "$tmp/bad.sock" "$plugin" "$@" >"$tmp/bad.log" 2>&1 || status=$?
  [ "$status" != 0 ] || fail "nbdkit exited 0 with: $*"
  [ "$status" != 124 ] || fail "nbdkit kept serving with: $*"
  grep -qF -- "$message" "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "no '$message' for: $*"; }
}
expect_refusal "one of gateway=ADDR or config=FILE" \
  gateway="unix:$tmp/gateway.sock" config="$tmp/gateway.yaml" volume=vol0
expect_refusal "tls parameters are for gateway=" \
  config="$tmp/gateway.yaml" volume=vol0 tls=require
expect_refusal "no volume 'nope'" config="$tmp/gateway.yaml" volume=nope

nbdkit -f -U "$tmp/nbd.sock" "$plugin" config="$tmp/gateway.yaml" volume=vol0 \
  2>"$tmp/nbdkit.log" &
nbdkit_pid=$!
pids+=($nbdkit_pid)
wait_for_socket "$tmp/nbd.sock"
uri="nbd+unix:///?socket=$tmp/nbd.sock"
[ "$(nbdinfo --size "$uri")" = $((128 << 20)) ] || fail "export size"
# Block status: nothing written yet, the whole volume is a hole.
map=$(nbdinfo --map "$uri" | awk '{print $1, $2, $4}')
[ "$map" = "0 134217728 hole,zero" ] || fail "embedded block status: $map"

fio --name=randrw --ioengine=nbd --uri="$uri" --rw=randrw --rwmixread=50 \
  --bs=4k --iodepth=32 --size=64M --verify=crc32c --verify_fatal=1 --verify_state_save=0 \
  --do_verify=1 --randrepeat=0 --output="$tmp/fio-randrw.txt" ||
  { cat "$tmp/fio-randrw.txt"; fail "fio randrw verify failed"; }

# SIGKILL of an exporter under a verifying writer.
run_fio killed &
fio_pid=$!
sleep 2
kill -9 "${pids[1]}"
wait "$fio_pid" || { cat "$tmp/killed.err"; fail "fio saw an error with e2 killed"; }
echo "longest stall with e2 killed: $(max_latency_ms killed) ms"
start_exporter e2 128M
# The embedded volume resyncs e2 by itself: only the regions fio wrote
# (its 48 MiB at most), not the whole 128 MiB.
for _ in $(seq 1 300); do
  grep -q "replica unix:$tmp/e2.sock is in sync again" "$tmp/nbdkit.log" && break
  sleep 0.1
done
line=$(grep "replica unix:$tmp/e2.sock is in sync again" "$tmp/nbdkit.log") ||
  { tail -20 "$tmp/nbdkit.log"; fail "e2 did not get back in sync"; }
copied=$(sed -E 's/.*resync copied ([0-9]+) of.*/\1/' <<<"$line")
echo "resync copied $copied bytes"
[ "$copied" -gt 0 ] && [ "$copied" -le $((48 << 20)) ] ||
  fail "resync copied $copied bytes, expected 1..48 MiB"
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ after the resync"

kill "$nbdkit_pid"
wait "$nbdkit_pid" 2>/dev/null || true
[ -s "$tmp/gateway-state/vol0.state" ] || fail "no mirror state written in state_dir"
echo PASS
