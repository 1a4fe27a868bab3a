#!/usr/bin/env bash
# HA mode with real processes: a real etcd, two exporters, two gateways
# (gw-a, gw-b) configured alike, and nbdkit given both (gateway=A,B). fio
# writes the mirror and verifies every block afterwards while
# (1) the leading gateway is killed with SIGKILL: the other takes over
#     once the lease has run out, and the client sees a stall, not an error;
# (2) the killed one is back as a standby, and both are restarted in turn
#     with SIGTERM (a rolling restart: each resigns, the other takes over);
# (3) etcd stops answering (SIGSTOP): the leader stops at its lease
#     deadline and exits (status 75); I/O waits until etcd is back.
# dstctl given both gateways finds the leader and prints it with its epoch;
# the replicas end byte-identical. The longest stalls are reported.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio cmp etcd

start_etcd
on_exit 'kill -CONT "$etcd_pid" 2>/dev/null'  # never leave it stopped

start_exporter e1 256M
start_exporter e2 256M

# --- the gateways: same volumes, same etcd, their own id and address.
port_a=$(free_port)
port_b=$(free_port)
metrics_a=$(free_port)
metrics_b=$(free_port)
for g in a b; do
  port_var=port_$g
  metrics_var=metrics_$g
  cat >"$tmp/gw-$g.yaml" <<EOF
listen: ["127.0.0.1:${!port_var}"]
metrics: "127.0.0.1:${!metrics_var}"
etcd:
  endpoints: ["127.0.0.1:$etcd_client"]
volumes:
  - name: vol0
    replicas:
      - address: "unix:$tmp/e1.sock"
      - address: "unix:$tmp/e2.sock"
EOF
done
declare -A gw_pid
start_ha_gateway() {
  "$DST_BIN/dst-gateway" --config="$tmp/gw-$1.yaml" --id="gw-$1" \
    2>>"$tmp/gw-$1.log" &
  gw_pid[$1]=$!
  pids+=($!)
}
start_ha_gateway a
start_ha_gateway b
gateways="127.0.0.1:$port_a,127.0.0.1:$port_b"
first=$(wait_ha_leader)
echo "gw-$first leads vol0"
ha_dstctl status vol0 | grep "leader: gw-$first (127.0.0.1:.*), epoch [1-9]" >/dev/null ||
  fail "dstctl status does not show the leader and its epoch"
# The standby names the leader.
"$DST_BIN/dstctl" --gateway="127.0.0.1:$([ "$first" = a ] && echo "$port_b" || echo "$port_a")" \
  status vol0 | grep "standby" >/dev/null || fail "the other gateway is not a standby"

# The HA series (the dst-ha alert rules' inputs): the leader says 1, the
# standby 0, both reach etcd.
# metrics GATEWAY: its /metrics URL.
metrics() { local v="metrics_$1"; echo "http://127.0.0.1:${!v}/metrics"; }
other=$([ "$first" = a ] && echo b || echo a)
has_metric "$(metrics "$first")" '^dst_gateway_ha_leader{volume="vol0"} 1$' ||
  fail "the leader's dst_gateway_ha_leader is not 1"
has_metric "$(metrics "$first")" '^dst_gateway_ha_elections_won_total{volume="vol0"} 1$' ||
  fail "the leader's election is not counted"
has_metric "$(metrics "$other")" '^dst_gateway_ha_leader{volume="vol0"} 0$' ||
  fail "the standby's dst_gateway_ha_leader is not 0"
for g in a b; do
  has_metric "$(metrics "$g")" '^dst_gateway_ha_etcd_up 1$' || fail "gw-$g: dst_gateway_ha_etcd_up is not 1"
  has_metric "$(metrics "$g")" '^dst_gateway_ha_lease_age_seconds ' || fail "gw-$g: no lease age"
done

nbdkit -f -U "$tmp/nbd.sock" "$DST_BIN/nbdkit-dst-plugin.so" \
  gateway="$gateways" volume=vol0 timeout=60 2>"$tmp/nbdkit.log" &
pids+=($!)
wait_for_socket "$tmp/nbd.sock"
uri="nbd+unix:///?socket=$tmp/nbd.sock"

# 1. The leader is killed (SIGKILL): its lease runs out, the standby leads.
run_fio killed &
fio_pid=$!
sleep 1.5
kill -9 "${gw_pid[$first]}"
wait "${gw_pid[$first]}" 2>/dev/null || true
second=$(wait_ha_leader "$first")
echo "gw-$second took over"
has_metric "$(metrics "$second")" '^dst_gateway_ha_leader{volume="vol0"} 1$' ||
  fail "the new leader's dst_gateway_ha_leader is not 1"
wait "$fio_pid" || { cat "$tmp/killed.err"; fail "fio saw an error across the leader's death"; }
stall=$(max_latency_ms killed)
echo "leader killed: longest client stall $stall ms (lease TTL 2 s)"
# What the dead leader's activity log held is copied; the rest was in sync.
start_ha_gateway "$first"  # back, as a standby

# 2. A rolling restart: each gateway in turn, SIGTERM (it resigns), back.
run_fio rolling &
fio_pid=$!
sleep 1
for g in "$second" "$first"; do
  kill -TERM "${gw_pid[$g]}"
  wait "${gw_pid[$g]}" 2>/dev/null || true
  start_ha_gateway "$g"
  sleep 1.5
done
wait "$fio_pid" || { cat "$tmp/rolling.err"; fail "fio saw an error in a rolling restart"; }
echo "rolling restart: longest client stall $(max_latency_ms rolling) ms"
grep -q "reconnecting" "$tmp/nbdkit.log" || fail "the plugin never moved"

# 3. etcd stops answering (SIGSTOP): the leader cannot renew its lease,
#    stops answering at its deadline and exits with status 75 (deposed);
#    nobody can be elected, I/O waits; etcd returns (SIGCONT), the leader's
#    supervisor (here: the test) starts it again, and a gateway leads.
run_fio etcd-down &
fio_pid=$!
sleep 1
deposed=$(wait_ha_leader)
kill -STOP "$etcd_pid"
stopped_at=$SECONDS
for _ in $(seq 1 100); do
  kill -0 "${gw_pid[$deposed]}" 2>/dev/null || break
  sleep 0.1
done
kill -0 "${gw_pid[$deposed]}" 2>/dev/null && fail "gw-$deposed still runs 10 s after etcd stopped"
status=0
wait "${gw_pid[$deposed]}" || status=$?
[ "$status" = 75 ] || fail "gw-$deposed exited with status $status, not 75 (deposed)"
grep -q "deposed" "$tmp/gw-$deposed.log" || fail "gw-$deposed did not log why it exited"
sleep 1
kill -CONT "$etcd_pid"
echo "etcd stopped for $((SECONDS - stopped_at)) s"
start_ha_gateway "$deposed"
wait "$fio_pid" || { cat "$tmp/etcd-down.err"; fail "fio saw an error while etcd was down"; }
echo "etcd down: longest client stall $(max_latency_ms etcd-down) ms"

# The replicas end identical, through whichever gateway leads now.
final=$(wait_ha_leader)
deadline=$((SECONDS + 60))
until ha_dstctl replicas vol0 --json | $PYTHON -c 'import json,sys
sys.exit(any(r.get("sync") != "in_sync" for r in json.load(sys.stdin)["replicas"]))'; do
  [ $SECONDS -lt $deadline ] || { ha_dstctl replicas vol0 >&2; fail "replicas not in sync"; }
  sleep 0.2
done
cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ"
ha_dstctl verify vol0 | grep ": identical" >/dev/null || fail "dstctl verify finds differences"
echo "gw-$final leads at the end"
echo PASS
