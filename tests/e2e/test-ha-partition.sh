#!/usr/bin/env bash
# HA mode under network partitions: the split brain that a single gateway
# only detects ("diverged") must not happen. Every process has a network
# namespace of its own on one bridge: two gateways (ga, gb), two exporters
# (e1, e2), a 3-member etcd cluster (one namespace, the members talking over
# its loopback), and the client (nbdkit, fio) in the host namespace, which
# always reaches both gateways. A cut between two namespaces is an nftables
# rule in each that drops what comes from the other: silent, like a dead
# link. L is the gateway leading vol0 when a cell starts, S the other.
# Under a verifying writer (fio: every acknowledged block read back):
#   1. split: L and S cut from each other, L from e2, S from e1, both
#      reaching etcd: L goes on with e1 alone and marks e2 behind; S stays
#      a standby; e2 does not change.
#   2. then L also cut from etcd: L stops at its lease deadline (exit 75),
#      S is elected but reaches only e2, which is behind: S writes nothing
#      (e2 still unchanged) and I/O waits for the partition to heal.
#   3. all of 2's cuts at once, from a healthy mirror: L cannot record that
#      e2 is gone and acknowledges nothing more; S is elected, writes e2
#      alone and marks e1 behind, including the regions of L's activity log
#      (where L's unacknowledged writes may have reached e1).
#   4. L cut from etcd only: L stops at its deadline, S takes over with
#      both replicas.
# After each cell the partition heals, the deposed gateway is restarted (a
# supervisor's job), the replicas resync and end byte-identical. At most one
# gateway writes at any time, and nothing acknowledged is lost.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio cmp ip nft etcd md5sum
requires_root

# --- the network: namespace dstp$$-NAME per host, each with a veth to the
# bridge in dstp$$-sw; the host namespace joins it too (the client).
net="10.215.$(($$ % 200 + 20))"
declare -A addr=([host]=$net.1 [ga]=$net.11 [gb]=$net.12 [e1]=$net.21
  [e2]=$net.22 [etcd]=$net.30)
ns() { echo "dstp$$-$1"; }
ip netns add "$(ns sw)" || fail "cannot create a network namespace"
on_exit "ip netns del $(ns sw); ip link del dq$$host 2>/dev/null"
ip -n "$(ns sw)" link add br0 type bridge || fail "cannot create a bridge"
ip -n "$(ns sw)" link set br0 up
# join NAME: NAME's end of a veth pair gets its address; the other end is a
# port of the bridge.
join() {
  local name=$1 port="dp$$$1" end="dq$$$1"
  ip link add "$port" type veth peer name "$end" || fail "cannot create a veth pair"
  ip link set "$port" netns "$(ns sw)"
  ip -n "$(ns sw)" link set "$port" master br0 up
  if [ "$name" != host ]; then
    ip netns add "$(ns "$name")"
    on_exit "ip netns del $(ns "$name")"
    ip link set "$end" netns "$(ns "$name")"
    ip -n "$(ns "$name")" link set lo up
    ip netns exec "$(ns "$name")" nft -f - <<NFT || fail "cannot install nftables rules"
table inet dst_cut {
  set from { type ipv4_addr; }
  chain in { type filter hook input priority 0; ip saddr @from drop; }
}
NFT
  fi
  local in=()  # the host's end stays in the host namespace
  [ "$name" = host ] || in=(-n "$(ns "$name")")
  ip "${in[@]}" addr add "${addr[$name]}/24" dev "$end"
  ip "${in[@]}" link set "$end" up
}
for name in host ga gb e1 e2 etcd; do join "$name"; done
in_ns() { local name=$1; shift; ip netns exec "$(ns "$name")" "$@"; }
# spawn NAME LOG CMD...: CMD in NAME's namespace, in the background, its
# stderr appended to $tmp/LOG; $! is CMD's pid (`ip netns exec` execs it).
spawn() {
  local name=$1 log=$2
  shift 2
  ip netns exec "$(ns "$name")" "$@" </dev/null >/dev/null 2>>"$tmp/$log" &
  pids+=($!)
}
# cut A B...: A and each B stop hearing each other; heal: everyone again.
cut() {
  local a=$1 b
  shift
  for b in "$@"; do
    in_ns "$a" nft add element inet dst_cut from "{ ${addr[$b]} }"
    in_ns "$b" nft add element inet dst_cut from "{ ${addr[$a]} }"
  done
}
heal() {
  for name in ga gb e1 e2 etcd; do in_ns "$name" nft flush set inet dst_cut from; done
}
# wait_tcp NAME PORT: until NAME listens on PORT.
wait_tcp() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/${addr[$1]}/$2") 2>/dev/null && return 0
    sleep 0.05
  done
  fail "nothing listens on ${addr[$1]}:$2"
}

# --- etcd: three members in one namespace, short Raft timings.
cluster="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2480,m3=http://127.0.0.1:2580"
endpoints=""
for m in 1 2 3; do
  port=$((2279 + 100 * m))  # m1: 2379 for clients, 2380 for peers, m2: 2479...
  client="http://${addr[etcd]}:$port"
  spawn etcd "etcd-m$m.log" etcd --name="m$m" --data-dir="$tmp/etcd-m$m" \
    --listen-client-urls="$client" --advertise-client-urls="$client" \
    --listen-peer-urls="http://127.0.0.1:$((port + 1))" \
    --initial-advertise-peer-urls="http://127.0.0.1:$((port + 1))" \
    --initial-cluster="$cluster" --heartbeat-interval=10 --election-timeout=100
  endpoints+="${endpoints:+, }\"${addr[etcd]}:$port\""
done
for port in 2379 2479 2579; do wait_etcd "http://${addr[etcd]}:$port"; done

for e in e1 e2; do
  spawn "$e" "$e.log" "$DST_BIN/dst-exporter" --listen="${addr[$e]}:7001" \
    --backing="$tmp/$e.img" --size=256M --id="$e"
  wait_tcp "$e" 7001
done

declare -A gw_pid
start_ha_gateway() {
  cat >"$tmp/$1.yaml" <<EOF
listen: ["${addr[$1]}:7100"]
metrics: "${addr[$1]}:9100"
etcd:
  endpoints: [$endpoints]
volumes:
  - name: vol0
    replicas:
      - address: "${addr[e1]}:7001"
      - address: "${addr[e2]}:7001"
EOF
  spawn "$1" "$1.log" "$DST_BIN/dst-gateway" --config="$tmp/$1.yaml" --id="gw-$1"
  gw_pid[$1]=$!
}
start_ha_gateway ga
start_ha_gateway gb
gateways="${addr[ga]}:7100,${addr[gb]}:7100"
dstctl_() { ha_dstctl "$@"; }  # for replica_field, wait_in_sync
metrics() { echo "http://${addr[$1]}:9100/metrics"; }
other() { [ "$1" = ga ] && echo gb || echo ga; }
wait_ha_leader >/dev/null

nbdkit -f -U "$tmp/nbd.sock" "$DST_BIN/nbdkit-dst-plugin.so" \
  gateway="$gateways" volume=vol0 timeout=60 2>"$tmp/nbdkit.log" &
pids+=($!)
wait_for_socket "$tmp/nbd.sock"
uri="nbd+unix:///?socket=$tmp/nbd.sock"

# sync_of REPLICA: its sync state in vol0 ("in_sync", "out_of_sync", ...).
sync_of() {
  dstctl_ replicas vol0 --json 2>/dev/null | $PYTHON -c 'import json,sys
for r in json.load(sys.stdin).get("replicas", []):
    if r["address"].startswith(sys.argv[1] + ":"): print(r.get("sync", ""))' \
    "${addr[$1]}" || true
}
# behind REPLICA: the leader counts REPLICA out of sync (or resyncing it).
behind() { local s; s=$(sync_of "$1"); [ -n "$s" ] && [ "$s" != in_sync ]; }
# wait_behind REPLICA: until it is behind (20 s).
wait_behind() {
  local deadline=$((SECONDS + 20))
  until behind "$1"; do
    [ $SECONDS -lt $deadline ] || { dstctl_ replicas vol0 >&2; fail "$1 was never marked behind"; }
    sleep 0.2
  done
}
# wait_deposed GATEWAY: it exits with status 75 within 10 s (its lease
# deadline is at most 1.8 s away at the default TTL).
wait_deposed() {
  local status=0
  for _ in $(seq 1 100); do
    kill -0 "${gw_pid[$1]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "${gw_pid[$1]}" 2>/dev/null && fail "$1 still runs 10 s after it lost etcd"
  wait "${gw_pid[$1]}" || status=$?
  [ "$status" = 75 ] || fail "$1 exited with status $status, not 75 (deposed)"
}
# last_line LOG REGEX: the last line of $tmp/LOG matching REGEX (fails when
# there is none).
last_line() {
  local line
  line=$(grep -E "$2" "$tmp/$1" | tail -n 1)
  [ -n "$line" ] || fail "$1 has no line matching '$2'"
  echo "$line"
}
# one_writer: the deposed leader L's self-fence deadline (after which it
# answers nothing; its log says when) came before S was elected (S's log):
# at no instant could both acknowledge a write. The times are ISO 8601 UTC
# from one clock, so they compare as strings.
one_writer() {
  local stopped elected
  stopped=$(last_line "$L.log" 'deposed .*no reply after')
  stopped=${stopped##*no reply after }
  stopped=${stopped%% *}
  elected=$(last_line "$S.log" 'this gateway leads it')
  elected=${elected%% *}
  [[ "$stopped" < "$elected" ]] ||
    fail "gw-$S was elected at $elected, before gw-$L's deadline $stopped"
  echo "gw-$L answered nothing after $stopped, gw-$S elected at $elected"
}
# take_over: L, cut from etcd, is deposed; S is elected after L's deadline.
take_over() {
  deposed=$L
  wait_deposed "$L"
  [ "$(wait_ha_leader "$L")" = "$S" ] || fail "gw-$S was not elected"
  one_writer
}
# finish_fio NAME: waits for fio run NAME (pid $fio_pid; once).
finish_fio() {
  [ -n "$fio_pid" ] || return 0
  wait "$fio_pid" || { cat "$tmp/$1.err"; fail "fio saw an error in cell $1"; }
  fio_pid=""
}
# settle NAME: heal, restart the deposed gateway, check fio NAME finished
# clean (it may have already) and the replicas end in sync and
# byte-identical.
settle() {
  heal
  kill -0 "${gw_pid[$deposed]}" 2>/dev/null || start_ha_gateway "$deposed"
  finish_fio "$1"
  echo "$1: longest client stall $(max_latency_ms "$1") ms"
  wait_in_sync 90
  cmp "$tmp/e1.img" "$tmp/e2.img" || fail "replicas differ after cell $1"
}
# --- 1 and 2: split, then the leader loses etcd.
L=$(wait_ha_leader)
S=$(other "$L")
echo "cell split: gw-$L leads, gw-$S is the standby"
run_fio split --rate=4m &
fio_pid=$!
sleep 1
cut "$L" "$S" e2
cut "$S" e1
sleep 0.5
e2_sum=$(md5sum <"$tmp/e2.img")  # what gw-L sent before the cut has landed
wait_behind e2
sleep 1
[ "$(ha_leader)" = "$L" ] || fail "gw-$L no longer leads during the split"
has_metric "$(metrics "$S")" '^dst_gateway_ha_leader{volume="vol0"} 0$' ||
  fail "gw-$S leads during the split"
[ "$(md5sum <"$tmp/e2.img")" = "$e2_sum" ] ||
  fail "e2 was written during the split (only gw-$S reaches it, a standby)"
echo "cell split: gw-$L writes e1 alone, e2 is behind and unchanged, gw-$S stands by"
cut "$L" etcd
take_over
echo "cell split+etcd: gw-$L deposed, gw-$S leads with only e2 (behind) in reach"
sleep 2
behind e2 || fail "gw-$S took e2 for in sync"
# gw-S may write e2's clean regions meanwhile (what was never dirtied stays
# clean), but acknowledges nothing: e1, the only replica in sync, is out of
# reach.
kill -0 "$fio_pid" 2>/dev/null || fail "fio finished while no gateway could write"
settle split

# --- 3: the same cuts at once, from a healthy mirror.
L=$(wait_ha_leader)
S=$(other "$L")
run_fio all-at-once &
fio_pid=$!
sleep 1.5
cut "$L" "$S" e2 etcd
cut "$S" e1
take_over
wait_behind e1
echo "cell all-at-once: gw-$L deposed, gw-$S writes e2 alone, e1 is behind"
finish_fio all-at-once  # while still cut off: gw-S and e2 alone serve it
settle all-at-once

# --- 4: the leader cut from etcd only.
L=$(wait_ha_leader)
S=$(other "$L")
run_fio etcd-only &
fio_pid=$!
sleep 1.5
cut "$L" etcd
take_over
echo "cell etcd-only: gw-$L deposed, gw-$S leads with both replicas"
settle etcd-only

ha_dstctl verify vol0 | grep ": identical" >/dev/null || fail "dstctl verify finds differences"
echo PASS
