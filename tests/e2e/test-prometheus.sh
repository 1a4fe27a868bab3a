#!/usr/bin/env bash
# Observability against a real Prometheus server (Debian's package): the
# deploy/prometheus configuration and alert rules pass promtool (check config,
# check rules, and the rule unit tests); a Prometheus scraping a running
# mirror under fio load returns data for every expression of the Grafana
# dashboard and of the alert rules (their conditions evaluated with `bool`,
# so that a healthy system yields 0s rather than nothing). The gateway runs
# in HA mode (a real etcd, one member), so that the leadership panel and the
# dst-ha rules have their series too; the other series are the same in
# either mode.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio prometheus promtool etcd
deploy="$(cd "$(dirname "$0")/../../deploy" && pwd)"

promtool check config "$deploy/prometheus/prometheus.yml" >/dev/null ||
  fail "promtool check config prometheus.yml"
promtool check config "$deploy/prometheus/prometheus-kubernetes.yml" >/dev/null ||
  fail "promtool check config prometheus-kubernetes.yml"
promtool check rules "$deploy/prometheus/dst-alerts.yml" >/dev/null ||
  fail "promtool check rules"
(cd "$deploy/prometheus" && promtool test rules dst-alerts_test.yml) >"$tmp/promtool.log" 2>&1 ||
  { cat "$tmp/promtool.log"; fail "promtool test rules"; }

gateway_metrics=$(free_port)
e1_metrics=$(free_port)
e2_metrics=$(free_port)
start_exporter e1 128M --metrics="127.0.0.1:$e1_metrics"
start_exporter e2 128M --metrics="127.0.0.1:$e2_metrics"
gateway_config vol0 e1 e2
start_etcd
cat >>"$tmp/gateway.yaml" <<EOF
metrics: "127.0.0.1:$gateway_metrics"
listen: ["127.0.0.1:$(free_port)"]
etcd:
  endpoints: ["127.0.0.1:$etcd_client"]
EOF
start_gateway
start_nbdkit vol0

# The shipped configuration, pointed at this stack and scraping every second.
cp "$deploy/prometheus/dst-alerts.yml" "$tmp/"
sed -e "s/scrape_interval: 15s/scrape_interval: 1s/" \
  -e "s/evaluation_interval: 15s/evaluation_interval: 1s/" \
  -e "s/\"127.0.0.1:9100\"/\"127.0.0.1:$gateway_metrics\"/" \
  -e "s/\"127.0.0.1:9101\", \"127.0.0.1:9102\"/\"127.0.0.1:$e1_metrics\", \"127.0.0.1:$e2_metrics\"/" \
  "$deploy/prometheus/prometheus.yml" >"$tmp/prometheus.yml"
grep -q "$e2_metrics" "$tmp/prometheus.yml" || fail "could not point the config at the test stack"
prom_port=$(free_port)
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" 2>"$tmp/prometheus.log" &
pids+=($!)

# Load: random reads and writes for 12 s (the keepalive pings come every 5 s).
fio --name=load --ioengine=nbd --uri="$uri" --rw=randrw --bs=16k --iodepth=8 \
  --size=64M --time_based --runtime=12 --output="$tmp/fio.out" 2>"$tmp/fio.err" ||
  fail "fio load failed: $(cat "$tmp/fio.err")"

$PYTHON - "$prom_port" "$deploy" <<'PY' || fail "Prometheus lacks data (see above)"
import json, re, sys, time, urllib.parse, urllib.request
port, deploy = sys.argv[1], sys.argv[2]

def query(expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body["status"] != "success":
        raise SystemExit(f"query failed: {expr}: {body}")
    return body["data"]["result"]

# Every target scraped.
for _ in range(100):
    if len([s for s in query('up == 1')]) == 3:
        break
    time.sleep(0.2)
else:
    raise SystemExit("not all three targets are up in Prometheus")

missing = []
dashboard = json.load(open(f"{deploy}/grafana/dst-dashboard.json"))
exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
for expr in exprs:
    if not query(expr):
        missing.append(("dashboard", expr))

import yaml  # python3-yaml
rules = yaml.safe_load(open(f"{deploy}/prometheus/dst-alerts.yml"))

def as_bool(expr):
    """The alert's condition for every series: each comparison outside label
    matchers gets PromQL's `bool` modifier (0 or 1 instead of filtering), so
    a healthy system still returns data for it."""
    out, depth, i = [], 0, 0
    while i < len(expr):
        c = expr[i]
        depth += c == "{"
        depth -= c == "}"
        op = next((o for o in ("==", "!=", ">=", "<=", ">", "<")
                   if expr.startswith(o, i)), None)
        if op and depth == 0 and not expr[i + len(op):].lstrip().startswith("bool"):
            out.append(op + " bool")
            i += len(op)
            continue
        out.append(c)
        i += 1
    return "".join(out)

checked = 0
for group in rules["groups"]:
    for rule in group["rules"]:
        query(rule["expr"])  # valid on this server
        checked += 1
        if not query(as_bool(rule["expr"])):
            missing.append((rule["alert"], as_bool(rule["expr"])))
print(f"{len(exprs)} dashboard expressions and {checked} alert conditions have data")
if missing:
    for where, what in missing:
        print(f"no data: {where}: {what}")
    sys.exit(1)
PY
echo PASS
