#!/usr/bin/env bash
# --metrics serves Prometheus text metrics that count real I/O on the
# exporter and the gateway; gRPC health reports a gateway SERVING only once
# its volumes serve I/O.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy curl

# health ADDRESS SERVICE: prints the grpc.health.v1 status (SERVING, ...).
health() {
  $PYTHON - "$1" "$2" <<'PY'
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
check = channel.unary_unary("/grpc.health.v1.Health/Check")
name = sys.argv[2].encode()
request = b"\x0a" + bytes([len(name)]) + name if name else b""
reply = check(request, timeout=5)
status = reply[1] if len(reply) >= 2 and reply[0] == 0x08 else 0
print({0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}[status])
PY
}

# A gateway whose exporter is missing is not healthy.
gateway_config lonely nowhere
"$DST_BIN/dst-gateway" --config="$tmp/gateway.yaml" --listen="unix:$tmp/lonely.sock" \
  2>"$tmp/lonely.log" &
lonely_pid=$!
pids+=($lonely_pid)
wait_for_socket "$tmp/lonely.sock"
sleep 0.5
[ "$(health "unix:$tmp/lonely.sock" dst.v1.Gateway)" = NOT_SERVING ] ||
  fail "a gateway without its exporter reports ready"
[ "$(health "unix:$tmp/lonely.sock" "")" = SERVING ] ||
  fail "a gateway waiting for its exporter is not alive"
# dstctl health says the same, with its exit code.
if "$DST_BIN/dstctl" health "unix:$tmp/lonely.sock" --service=dst.v1.Gateway >"$tmp/ctl-health"; then
  fail "dstctl health: exit 0 for a gateway that is not ready"
fi
[ "$(cat "$tmp/ctl-health")" = NOT_SERVING ] || fail "dstctl health printed $(cat "$tmp/ctl-health")"
"$DST_BIN/dstctl" health "unix:$tmp/lonely.sock" >/dev/null || fail "dstctl health: not alive"
if "$DST_BIN/dstctl" health "unix:$tmp/lonely.sock" --service=nope >"$tmp/ctl-health"; then
  fail "dstctl health: exit 0 for an unknown service"
fi
[ "$(cat "$tmp/ctl-health")" = SERVICE_UNKNOWN ] || fail "dstctl health printed $(cat "$tmp/ctl-health")"
kill "$lonely_pid"

eport=$(free_port)
start_exporter e1 32M --metrics="127.0.0.1:$eport"
gateway_config vol0 e1
gport=$(free_port)
"$DST_BIN/dst-gateway" --config="$tmp/gateway.yaml" --listen="unix:$tmp/gateway.sock" \
  --metrics="127.0.0.1:$gport" 2>"$tmp/gateway.log" &
pids+=($!)
wait_for_socket "$tmp/gateway.sock"
for _ in $(seq 1 100); do
  [ "$(metric_value "http://127.0.0.1:$gport/metrics" \
       'dst_gateway_replica_connected{replica="unix:'"$tmp"'/e1.sock",volume="vol0"}')" = 1 ] && break
  sleep 0.05
done
for _ in $(seq 1 50); do
  [ "$(health "unix:$tmp/gateway.sock" dst.v1.Gateway)" = SERVING ] && break
  sleep 0.1
done
[ "$(health "unix:$tmp/gateway.sock" dst.v1.Gateway)" = SERVING ] ||
  fail "a ready gateway is not SERVING"
[ "$(health "unix:$tmp/e1.sock" "")" = SERVING ] || fail "the exporter is not SERVING"
start_nbdkit vol0
head -c 8M /dev/urandom >"$tmp/in.bin"
nbdcopy --flush "$tmp/in.bin" "$uri"

g=$(metric_value "http://127.0.0.1:$gport/metrics" 'dst_gateway_bytes_total{op="write",volume="vol0"}')
[ "$g" = 8388608 ] || fail "gateway write bytes: '$g', expected 8388608"
e=$(metric_value "http://127.0.0.1:$eport/metrics" 'dst_exporter_bytes_total{op="write"}')
[ "$e" = 8388608 ] || fail "exporter write bytes: '$e', expected 8388608"
f=$(metric_value "http://127.0.0.1:$eport/metrics" 'dst_exporter_requests_total{op="flush",result="ok"}')
[ "${f:-0}" -ge 1 ] || fail "exporter counted no flush"
c=$(metric_value "http://127.0.0.1:$gport/metrics" \
    'dst_gateway_replica_connected{replica="unix:'"$tmp"'/e1.sock",volume="vol0"}')
[ "$c" = 1 ] || fail "replica not reported connected: '$c'"
n=$(metric_value "http://127.0.0.1:$gport/metrics" \
    'dst_gateway_request_duration_seconds_count{op="write",volume="vol0"}')
[ "${n:-0}" -ge 2 ] || fail "write latency histogram counted '$n' writes"
echo PASS
