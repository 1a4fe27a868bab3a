#!/usr/bin/env bash
# Brings a local dst stack up: installs what is missing, builds, starts two
# file-backed exporters (a two-way mirror) in ./data, a gateway, and nbdkit
# serving volume vol0 on localhost:10809. Ctrl-C stops everything cleanly.
#
# Environment: DST_DATA (default ./data), DST_SIZE (default 1G),
# DST_NBD_PORT (default 10809).
#
# `scripts/up.sh --tls`: the same stack with mutual TLS on every dst
# channel (a test CA and certificates made in DATA/certs by
# scripts/make-certs.sh), and ACLs on the exporters (only the gateway) and
# the gateway (only the local nbdkit and dstctl).
set -euo pipefail
DST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$DST_ROOT/scripts/deps.sh"

data=${DST_DATA:-$DST_ROOT/data}
size=${DST_SIZE:-1G}
nbd_port=${DST_NBD_PORT:-10809}

install_packages run
build_dst "$DST_ROOT/build"
bin=$DST_ROOT/build/bin
mkdir -p "$data"
tls=false
case "${1:-}" in
  --tls) tls=true ;;
  "") ;;
  *) echo "usage: up.sh [--tls]" >&2; exit 2 ;;
esac
exporter_tls=()
gateway_tls=""
nbdkit_tls=()
ctl_tls=""
if $tls; then
  certs=$data/certs
  [ -f "$certs/gateway.pem" ] || bash "$DST_ROOT/scripts/make-certs.sh" "$certs" exporter gateway client
  printf -- '- identity: gateway\n  access: read-write\n' >"$data/exporter-acl.yaml"
  printf -- '- identity: client\n  access: read-write\n' >"$data/gateway-acl.yaml"
  exporter_tls=(--tls=require --tls-cert="$certs/exporter.pem" --tls-key="$certs/exporter.key"
    --tls-ca="$certs/ca.pem" --acl="$data/exporter-acl.yaml")
  gateway_tls="acl_file: \"$data/gateway-acl.yaml\"
tls: {mode: require, cert: \"$certs/gateway.pem\", key: \"$certs/gateway.key\", ca: \"$certs/ca.pem\"}"
  nbdkit_tls=(tls=require tls-cert="$certs/client.pem" tls-key="$certs/client.key"
    tls-ca="$certs/ca.pem")
  ctl_tls=" --tls-cert=$certs/client.pem --tls-key=$certs/client.key --tls-ca=$certs/ca.pem --tls=require"
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "dst: stopping (nbdkit, gateway, exporters)..."
  # NBD server first, then the gateway, then the exporters: each drains.
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  echo "dst: stopped. Data is in $data."
  exit 0
}
trap stop INT TERM EXIT

wait_tcp() {  # wait_tcp PORT NAME
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "dst: $2 did not start; see $data/$2.log" >&2
  exit 1
}

for i in 1 2; do
  "$bin/dst-exporter" --listen="127.0.0.1:700$i" --backing="$data/replica$i.img" \
    --size="$size" --id="replica$i" --metrics="127.0.0.1:910$i" "${exporter_tls[@]}" \
    2>"$data/exporter$i.log" &
  pids+=($!)
  wait_tcp "700$i" "exporter$i"
done
cat >"$data/gateway.yaml" <<YAML
listen: ["127.0.0.1:7000", "unix:$data/gateway.sock"]
metrics: "127.0.0.1:9100"
state_dir: "$data/gateway-state"
$gateway_tls
volumes:
  - name: vol0
    replicas:
      - address: "127.0.0.1:7001"
      - address: "127.0.0.1:7002"
YAML
"$bin/dst-gateway" --config="$data/gateway.yaml" 2>"$data/gateway.log" &
pids+=($!)
wait_tcp 7000 gateway
for _ in $(seq 1 100); do
  # shellcheck disable=SC2086
  "$bin/dstctl" --gateway=127.0.0.1:7000 $ctl_tls volumes 2>/dev/null | grep -q " ready " && break
  sleep 0.1
done
nbdkit -f -i 127.0.0.1 -p "$nbd_port" --threads=64 "$bin/nbdkit-dst-plugin.so" \
  gateway="unix:$data/gateway.sock" volume=vol0 "${nbdkit_tls[@]}" 2>"$data/nbdkit.log" &
pids+=($!)
wait_tcp "$nbd_port" nbdkit

cat <<EOF2

dst is up: volume vol0 ($size, mirrored on two exporters) is served at
nbd://localhost:$nbd_port

Attach it:
  nbdinfo nbd://localhost:$nbd_port
  sudo modprobe nbd && sudo nbd-client -N vol0 -t 60 localhost $nbd_port /dev/nbd0
      (disconnect: sudo nbd-client -d /dev/nbd0)
  mkdir -p /tmp/dst-fuse && nbdfuse /tmp/dst-fuse nbd://localhost:$nbd_port &
      (the disk is /tmp/dst-fuse/nbd; unmount: fusermount3 -u /tmp/dst-fuse)
  qemu-system-x86_64 -drive file=nbd://localhost:$nbd_port,format=raw,if=virtio ...
  qemu-img info nbd://localhost:$nbd_port

Watch it:
  $bin/dstctl --gateway=127.0.0.1:7000$ctl_tls status
  metrics: http://127.0.0.1:9100/metrics (gateway),
           http://127.0.0.1:9101/metrics and :9102 (exporters)
  logs:    $data/*.log

Press Ctrl-C to stop.
EOF2
wait -n "${pids[@]}" || true
echo "dst: a process exited unexpectedly; see $data/*.log" >&2
exit 1
