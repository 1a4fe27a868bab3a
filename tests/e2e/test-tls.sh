#!/usr/bin/env bash
# TLS and ACLs with real processes and certificates made by openssl
# (scripts/make-certs.sh). Exporters require mutual TLS and hold an ACL; one
# listens on IPv6 [::1] with a CIDR entry, one on a Unix socket with a
# `local` entry, one on a Unix socket with `uid` entries (clients run as
# root, as nobody and as an unknown uid); the gateway requires TLS (on its Unix socket too) and has an
# ACL for its clients; nbdkit and dstctl present client certificates.
# Checked: data round-trips through the whole TLS stack, negotiated as TLS
# 1.3; plaintext to a require-TLS exporter is refused; a certificate from
# another CA is refused; a client without an ACL entry is refused; a
# read-only client's write is refused at the exporter when it bypasses the
# gateway; the gateway's ACL keeps a read-only client from admin commands;
# SIGHUP, or a change to the files, reloads a renewed certificate without
# dropping the gateway's stream. HA mode's TLS to etcd: mutual TLS accepted,
# a missing client certificate or another CA refused.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy openssl protoc cmp etcd curl
root="$(cd "$(dirname "$0")/../.." && pwd)"
certs="$tmp/certs"
bash "$root/scripts/make-certs.sh" "$certs" exporter gateway client reader stranger
bash "$root/scripts/make-certs.sh" "$tmp/rogue" rogue  # another CA
mkdir -p "$tmp/py"
protoc -I "$root/proto" --python_out="$tmp/py" "$root"/proto/dst/v1/*.proto
touch "$tmp/py/dst/__init__.py" "$tmp/py/dst/v1/__init__.py"
probe() { PYTHONPATH="$tmp/py" $PYTHON "$root/tests/e2e/grpc_probe.py" "$@"; }
as() {  # as NAME: TLS arguments of the probe for certificate NAME
  echo "--cert=$certs/$1.pem --key=$certs/$1.key --ca=$certs/ca.pem"
}
wait_port() {
  for _ in $(seq 1 200); do
    $PYTHON -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)' \
      "$1" "$2" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "nothing listens on $1:$2"
}
tls_flags=(--tls=require --tls-cert="$certs/exporter.pem" --tls-key="$certs/exporter.key"
  --tls-ca="$certs/ca.pem")

cat >"$tmp/e1-acl.yaml" <<YAML
- identity: gateway
  access: read-write
- identity: reader
  access: read
YAML
cat >"$tmp/e2-acl.yaml" <<YAML
- identity: gateway
  cidr: "::1/128"
  access: read-write
YAML
p1=$(free_port)
p2=$(free_port)
m1=$(free_port)
"$DST_BIN/dst-exporter" --listen="127.0.0.1:$p1" --backing="$tmp/e1.img" --size=64M --id=e1 \
  "${tls_flags[@]}" --acl="$tmp/e1-acl.yaml" --metrics="127.0.0.1:$m1" 2>"$tmp/e1.log" &
pids+=($!)
e1_pid=$!
"$DST_BIN/dst-exporter" --listen="[::1]:$p2" --backing="$tmp/e2.img" --size=64M --id=e2 \
  "${tls_flags[@]}" --acl="$tmp/e2-acl.yaml" 2>"$tmp/e2.log" &
pids+=($!)
wait_port 127.0.0.1 "$p1"
wait_port ::1 "$p2"

cat >"$tmp/gateway-acl.yaml" <<YAML
- identity: client
  access: read-write
- identity: reader
  access: read
YAML
cat >"$tmp/gateway.yaml" <<YAML
listen: ["unix:$tmp/gateway.sock"]
state_dir: "$tmp/gateway-state"
acl_file: "$tmp/gateway-acl.yaml"
tls:
  mode: require
  cert: "$certs/gateway.pem"
  key: "$certs/gateway.key"
  ca: "$certs/ca.pem"
volumes:
  - name: vol0
    replicas:
      - address: "127.0.0.1:$p1"
      - address: "[::1]:$p2"
YAML
"$DST_BIN/dst-gateway" --config="$tmp/gateway.yaml" 2>"$tmp/gateway.log" &
pids+=($!)
wait_for_socket "$tmp/gateway.sock"
ctl() {  # ctl NAME ARGS...: dstctl with certificate NAME
  local name=$1
  shift
  "$DST_BIN/dstctl" --gateway="unix:$tmp/gateway.sock" --tls-cert="$certs/$name.pem" \
    --tls-key="$certs/$name.key" --tls-ca="$certs/ca.pem" --tls=require "$@"
}
for _ in $(seq 1 100); do
  ctl client volumes 2>/dev/null | grep -q " ready " && break
  sleep 0.1
done
ctl client volumes | grep -q " ready " || fail "the TLS volume did not become ready"

nbdkit -f -U "$tmp/nbd.sock" "$DST_BIN/nbdkit-dst-plugin.so" gateway="unix:$tmp/gateway.sock" \
  volume=vol0 tls=require tls-cert="$certs/client.pem" tls-key="$certs/client.key" \
  tls-ca="$certs/ca.pem" 2>"$tmp/nbdkit.log" &
pids+=($!)
wait_for_socket "$tmp/nbd.sock"
uri="nbd+unix:///?socket=$tmp/nbd.sock"
head -c 8M /dev/urandom >"$tmp/in.bin"
nbdcopy --flush "$tmp/in.bin" "$uri" || fail "write through the TLS stack"
nbdcopy "$uri" "$tmp/out.bin" || fail "read through the TLS stack"
cmp -n 8388608 "$tmp/in.bin" "$tmp/out.bin" || fail "data differs through TLS"

protocol=$(openssl s_client -connect "127.0.0.1:$p1" -cert "$certs/gateway.pem" \
  -key "$certs/gateway.key" -CAfile "$certs/ca.pem" </dev/null 2>/dev/null |
  awk '/^New, /{print $2}' | tr -d , || true)  # s_client's own status varies
[ "$protocol" = TLSv1.3 ] || fail "the exporter negotiated '$protocol', not TLSv1.3"

# Refusals at the exporter.
[ "$(probe negotiate "127.0.0.1:$p1")" = UNAVAILABLE ] ||
  fail "plaintext reached a require-TLS exporter"
# shellcheck disable=SC2046
[ "$(probe negotiate "127.0.0.1:$p1" --cert="$tmp/rogue/rogue.pem" \
      --key="$tmp/rogue/rogue.key" --ca="$certs/ca.pem")" = UNAVAILABLE ] ||
  fail "a certificate from another CA was accepted"
# shellcheck disable=SC2046
[ "$(probe negotiate "127.0.0.1:$p1" $(as stranger))" = PERMISSION_DENIED ] ||
  fail "a client without an ACL entry was let in"
# shellcheck disable=SC2046
[ "$(probe negotiate "127.0.0.1:$p1" $(as reader))" = "ok read_only=true" ] ||
  fail "the read-only client did not negotiate read-only"
# shellcheck disable=SC2046
[ "$(probe read "127.0.0.1:$p1" $(as reader))" = ok ] || fail "the reader cannot read"
# shellcheck disable=SC2046
[ "$(probe write "127.0.0.1:$p1" $(as reader))" = PERMISSION_DENIED ] ||
  fail "a read-only client wrote to the exporter directly"
# shellcheck disable=SC2046
[ "$(probe negotiate "[::1]:$p2" $(as reader))" = PERMISSION_DENIED ] ||
  fail "the IPv6 exporter's ACL let in an identity it does not list"
cmp -n 512 "$tmp/in.bin" "$tmp/e1.img" || fail "the refused write changed data"
refusals=$(metric_value "http://127.0.0.1:$m1/metrics" dst_exporter_tls_refusals_total)
[ "${refusals%.*}" -ge 1 ] || fail "the other CA's certificate was not counted: '$refusals'"
refusals=$(metric_value "http://127.0.0.1:$m1/metrics" dst_exporter_acl_refusals_total)
[ "${refusals%.*}" -ge 2 ] || fail "ACL refusals not counted: '$refusals'"
grep -q "client certificate refused" "$tmp/e1.log" || fail "the TLS refusal was not logged"

# A Unix-socket exporter: plaintext on the socket (mode on), `local` read.
printf -- '- local: true\n  access: read\n' >"$tmp/e3-acl.yaml"
"$DST_BIN/dst-exporter" --listen="unix:$tmp/e3.sock" --backing="$tmp/e3.img" --size=8M \
  --tls=on --tls-cert="$certs/exporter.pem" --tls-key="$certs/exporter.key" \
  --acl="$tmp/e3-acl.yaml" 2>"$tmp/e3.log" &
pids+=($!)
wait_for_socket "$tmp/e3.sock"
[ "$(probe negotiate "unix:$tmp/e3.sock")" = "ok read_only=true" ] ||
  fail "the local ACL entry did not grant read on the Unix socket"
[ "$(probe write "unix:$tmp/e3.sock")" = PERMISSION_DENIED ] ||
  fail "a local read-only client wrote"

# Unix peer uids: root may write, nobody (65534) only read, anyone else
# nothing. The socket and the probe's modules are opened to other users.
printf -- '- uid: 0\n  access: read-write\n- uid: 65534\n  access: read\n' >"$tmp/e4-acl.yaml"
"$DST_BIN/dst-exporter" --listen="unix:$tmp/e4.sock" --backing="$tmp/e4.img" --size=8M \
  --acl="$tmp/e4-acl.yaml" --log-level=debug 2>"$tmp/e4.log" &
pids+=($!)
wait_for_socket "$tmp/e4.sock"
chmod 666 "$tmp/e4.sock"
# The probe is copied beside its modules: the test tree may sit where other
# users cannot read (a Bazel sandbox under /root).
cp "$root/tests/e2e/grpc_probe.py" "$tmp/py/"
chmod o+x "$tmp"
chmod -R o+rX "$tmp/py"
probe_as() {  # probe_as UID ACTION ADDRESS: the probe run as user UID
  setpriv --reuid="$1" --regid="$1" --clear-groups \
    env PYTHONPATH="$tmp/py" $PYTHON "$tmp/py/grpc_probe.py" "${@:2}"
}
[ "$(probe write "unix:$tmp/e4.sock")" = ok ] || fail "uid 0 could not write"
[ "$(probe_as 65534 negotiate "unix:$tmp/e4.sock")" = "ok read_only=true" ] ||
  fail "uid 65534 was not given read-only access"
[ "$(probe_as 65534 write "unix:$tmp/e4.sock")" = PERMISSION_DENIED ] ||
  fail "uid 65534 (read) wrote"
[ "$(probe_as 4242 negotiate "unix:$tmp/e4.sock")" = PERMISSION_DENIED ] ||
  fail "uid 4242 (no entry) was let in"
grep -q "unix peer uid 4242" "$tmp/e4.log" || fail "the refusal does not name the uid"

# The gateway's ACL.
ctl reader status >/dev/null || fail "a read-only client cannot read the status"
ctl reader resync vol0 stop 2>"$tmp/ctl.err" && fail "a read-only client ran an admin command"
grep -q "may only read" "$tmp/ctl.err" || fail "unexpected refusal: $(cat "$tmp/ctl.err")"
ctl stranger volumes 2>"$tmp/ctl.err" && fail "a client without an ACL entry was let in"
grep -q "not allowed" "$tmp/ctl.err" || fail "unexpected refusal: $(cat "$tmp/ctl.err")"

# SIGHUP: a renewed exporter certificate is served to new connections; the
# gateway's stream stays.
serial() {
  openssl s_client -connect "127.0.0.1:$p1" -cert "$certs/gateway.pem" \
    -key "$certs/gateway.key" -CAfile "$certs/ca.pem" </dev/null 2>/dev/null |
    openssl x509 -noout -serial || true
}
reconnects() {
  ctl client status --json | $PYTHON -c 'import json,sys
print(sum(int(r.get("reconnects", 0)) for v in json.load(sys.stdin)["volumes"] for r in v["replicas"]))'
}
# renew_and_check TRIES WHAT LOGLINE [SIGNAL-CMD]: renews the exporter's
# certificate (then runs SIGNAL-CMD), waits up to TRIES tenths of a second
# for a new connection to see it, and checks the log, I/O and that the
# gateway's stream stayed.
renew_and_check() {
  local tries=$1 what=$2 logline=$3 before
  before=$(serial)
  bash "$root/scripts/make-certs.sh" "$certs" exporter
  [ -z "${4:-}" ] || eval "$4"
  for _ in $(seq 1 "$tries"); do
    [ "$(serial)" != "$before" ] && break
    sleep 0.1
  done
  [ "$(serial)" != "$before" ] || fail "$what did not reload the exporter's certificate"
  grep -q "$logline" "$tmp/e1.log" || fail "the $what reload was not logged"
  nbdcopy --flush "$tmp/in.bin" "$uri" || fail "I/O after the $what reload"
  [ "$(reconnects)" = "$streams_before" ] || fail "the $what reload dropped the gateway's stream"
}
streams_before=$(reconnects)
renew_and_check 50 SIGHUP "certificates reloaded" 'kill -HUP "$e1_pid"'
# Renewed files are picked up without a signal too (as when cert-manager
# renews a Kubernetes Secret), within the watch interval (5 s).
renew_and_check 150 "a change to the files" "files changed: reloading"

# HA mode over TLS to etcd: etcd serves TLS only and demands client
# certificates of the CA (--client-cert-auth). A gateway whose etcd.tls
# names its certificate leads; one without a certificate, or trusting
# another CA, is refused by etcd (or refuses it) and never leads.
bash "$root/scripts/make-certs.sh" "$certs" etcd
etcd_port=$(free_port)
etcd_peer=$(free_port)
etcd --name=tls --data-dir="$tmp/etcd" \
  --listen-client-urls="https://127.0.0.1:$etcd_port" \
  --advertise-client-urls="https://127.0.0.1:$etcd_port" \
  --cert-file="$certs/etcd.pem" --key-file="$certs/etcd.key" \
  --client-cert-auth --trusted-ca-file="$certs/ca.pem" \
  --listen-peer-urls="http://127.0.0.1:$etcd_peer" \
  --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
  --initial-cluster="tls=http://127.0.0.1:$etcd_peer" 2>"$tmp/etcd.log" &
pids+=($!)
for _ in $(seq 1 200); do
  curl -fs --cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client.key" \
    "https://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
  sleep 0.05
done
"$DST_BIN/dst-exporter" --listen="unix:$tmp/ha-e.sock" --backing="$tmp/ha-e.img" \
  --size=8M --id=ha-e 2>"$tmp/ha-e.log" &
pids+=($!)
wait_for_socket "$tmp/ha-e.sock"
# ha_gateway NAME TLS-KEYS: a gateway in HA mode on vol-ha, etcd.tls as
# given; $NAME_addr is where it listens.
ha_gateway() {
  local port
  port=$(free_port)
  cat >"$tmp/$1.yaml" <<EOF
listen: ["127.0.0.1:$port"]
etcd:
  endpoints: ["127.0.0.1:$etcd_port"]
  tls: {$2}
volumes:
  - name: vol-ha
    replicas: [{address: "unix:$tmp/ha-e.sock"}]
EOF
  "$DST_BIN/dst-gateway" --config="$tmp/$1.yaml" --id="$1" </dev/null >/dev/null 2>"$tmp/$1.log" &
  pids+=($!)
  printf -v "${1//-/_}_addr" '%s' "127.0.0.1:$port"
}
leads() { "$DST_BIN/dstctl" --gateway="$1" status vol-ha 2>/dev/null | grep -q "leader: $2"; }
ha_gateway gw-nocert "ca: \"$certs/ca.pem\""
ha_gateway gw-rogue "ca: \"$tmp/rogue/ca.pem\", cert: \"$certs/gateway.pem\", key: \"$certs/gateway.key\""
sleep 3  # both had the time to lead, had etcd let them
# shellcheck disable=SC2154  # set by ha_gateway
for g in "$gw_nocert_addr" "$gw_rogue_addr"; do
  leads "$g" gw- && fail "a gateway etcd should refuse (or should distrust) leads vol-ha"
done
grep -q "etcd" "$tmp/gw-nocert.log" || fail "the refused gateway logged nothing about etcd"
ha_gateway gw-tls "ca: \"$certs/ca.pem\", cert: \"$certs/gateway.pem\", key: \"$certs/gateway.key\""
for _ in $(seq 1 100); do
  leads "$gw_tls_addr" gw-tls && break
  sleep 0.1
done
leads "$gw_tls_addr" gw-tls || fail "the gateway with etcd.tls does not lead"
echo "HA over TLS to etcd: leads; no client certificate, or another CA: never leads"
echo PASS
