#!/usr/bin/env bash
# One writer per volume, and fencing, with real processes.
#  - A second read-write NBD server on the same gateway volume is refused
#    with a clear message; a read-only one is served.
#  - A second gateway (say, the new pod of a rolling update) over the same
#    exporters claims a newer epoch: its writes land, and the old gateway's
#    writes are refused at the exporters, so the old one cannot overwrite.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo cmp

start_exporter e1 64M
start_exporter e2 64M
gateway_config vol0 e1 e2

# start_named_gateway NAME: gateway --id=NAME on unix:$tmp/NAME.sock with
# its own state directory, waiting until vol0 is ready.
start_named_gateway() {
  "$DST_BIN/dst-gateway" --config="$tmp/gateway.yaml" --id="$1" \
    --listen="unix:$tmp/$1.sock" --state-dir="$tmp/$1-state" 2>"$tmp/$1.log" &
  pids+=($!)
  wait_for_socket "$tmp/$1.sock"
  for _ in $(seq 1 200); do
    "$DST_BIN/dstctl" --gateway="unix:$tmp/$1.sock" volumes 2>/dev/null |
      grep -q " ready " && return 0
    sleep 0.05
  done
  fail "gateway $1: vol0 did not become ready"
}
# serve NAME GATEWAY [NBDKIT FLAGS...]: nbdkit on unix:$tmp/NAME.nbd.
serve() {
  local name=$1 gateway=$2
  shift 2
  nbdkit -f -U "$tmp/$name.nbd" "$@" "$DST_BIN/nbdkit-dst-plugin.so" \
    gateway="unix:$tmp/$gateway.sock" volume=vol0 2>"$tmp/$name.log" &
  pids+=($!)
  wait_for_socket "$tmp/$name.nbd"
}
# write NAME BYTE: writes 64 KiB of BYTE at offset 0 through $tmp/NAME.nbd.
write() {
  $PYTHON - "$tmp/$1.nbd" "$2" <<'PY'
import sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
h.pwrite(sys.argv[2].encode() * 65536, 0)
h.flush()
PY
}

start_named_gateway old
serve writer1 old
write writer1 o || fail "the first writer could not write"

# One writer at a time; readers are welcome.
serve writer2 old
nbdinfo "nbd+unix:///?socket=$tmp/writer2.nbd" >/dev/null 2>&1 &&
  fail "a second read-write NBD server was given the volume"
grep -q "one writer at a time" "$tmp/writer2.log" ||
  fail "the refusal does not say why: $(tail -3 "$tmp/writer2.log")"
serve reader old -r
nbdinfo "nbd+unix:///?socket=$tmp/reader.nbd" >/dev/null ||
  fail "a read-only NBD server was refused"

# A newer gateway fences the old one.
start_named_gateway new
serve writer3 new
write writer3 n || fail "the new gateway's writer could not write"
write writer1 X 2>"$tmp/fenced.err" && fail "the fenced gateway could still write"
grep -q "Input/output error\|Operation not permitted" "$tmp/fenced.err" ||
  fail "unexpected error from the fenced writer: $(cat "$tmp/fenced.err")"
"$DST_BIN/dstctl" --gateway="unix:$tmp/old.sock" volumes | grep -q " fenced " ||
  fail "the old gateway does not report the volume fenced"
grep -q "fenced" "$tmp/old.log" || fail "the old gateway did not log the fencing"
for e in e1 e2; do
  head -c 65536 "$tmp/$e.img" | tr -d n | wc -c | grep -qx 0 ||
    fail "$e does not hold the new gateway's data"
done
echo PASS
