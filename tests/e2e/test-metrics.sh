#!/usr/bin/env bash
# --metrics serves Prometheus text metrics that count real I/O on the
# exporter and the gateway.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy curl

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
