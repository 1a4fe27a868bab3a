#!/usr/bin/env bash
# deploy/k8s, rendered and checked offline (no cluster here): every overlay
# is rendered with kubectl's kustomize; every object is validated against
# the Kubernetes API schemas and for unknown fields (tests/k8s/validate.mjs,
# with packages from the npm registry, pinned in tests/k8s/package-lock.json);
# the cross-references hold (tests/k8s/crossref.py: selectors, ports,
# mounts, certificate names, ACL identities); the gateway's configuration
# passes `dst-gateway --check-config` with its ACL and certificates; every
# flag and key given to dst-exporter, the plugin, dstctl and etcd is one
# they know; the PrometheusRule matches deploy/prometheus/dst-alerts.yml.
# Then the checkers are shown to catch breakage: a misspelt field, a wrong
# type, a replica address outside the StatefulSet and an etcd endpoint
# outside its StatefulSet must each fail.
source "$(dirname "$0")/functions.sh"
requires kubectl node npm openssl etcd
root=$(cd "$(dirname "$0")/../.." && pwd)

work=$tmp/node
mkdir -p "$work"
cp "$root/tests/k8s/package.json" "$root/tests/k8s/package-lock.json" \
  "$root/tests/k8s/validate.mjs" "$work/"
(cd "$work" && npm ci --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1) ||
  fail "npm ci of the schema validator failed (see $tmp/npm.log)"

known_flags() {  # known_flags HELP-TEXT NAMES...: each NAME appears as --NAME or NAME=
  local help=$1 name
  shift
  for name in "$@"; do
    grep -qE -- "(^|[ ,])(--)?$name(=|[ ]|$)" <<<"$help" || echo "$name"
  done
}
exporter_help=$("$DST_BIN/dst-exporter" --help 2>&1)
dstctl_help=$("$DST_BIN/dstctl" --help 2>&1)
etcd_help=$(etcd --help 2>&1)
plugin_help=$(nbdkit "$DST_BIN/nbdkit-dst-plugin.so" --help 2>&1 | sed -n '/^plugin: dst/,$p')
bash "$root/scripts/make-certs.sh" "$tmp/certs" gateway >/dev/null 2>&1 ||
  fail "make-certs.sh failed"

for overlay in dev production ha; do
  gateway_args=()
  out=$tmp/$overlay
  mkdir -p "$out"
  kubectl kustomize "$root/deploy/k8s/overlays/$overlay" >"$out/manifest.yaml" 2>"$tmp/kustomize.log" ||
    { cat "$tmp/kustomize.log" >&2; fail "$overlay: kustomize failed"; }
  node "$work/validate.mjs" "$work" "$out/manifest.yaml" >"$out/validate.log" 2>&1 ||
    { cat "$out/validate.log" >&2; fail "$overlay: schema validation"; }
  tail -1 "$out/validate.log"
  $PYTHON "$root/tests/k8s/crossref.py" "$out/manifest.yaml" "$out/check" >"$out/refs" ||
    fail "$overlay: cross-references"
  while read -r kind rest; do
    case $kind in
      tls)
        read -r field path <<<"$rest"
        mkdir -p "$(dirname "$path")"
        case $field in
          cert) cp "$tmp/certs/gateway.pem" "$path" ;;
          key) cp "$tmp/certs/gateway.key" "$path" ;;
          ca) cp "$tmp/certs/ca.pem" "$path" ;;
        esac ;;
      exporter-flags) unknown=$(known_flags "$exporter_help" $rest) ;;
      nbdkit-keys) unknown=$(known_flags "$plugin_help" $rest) ;;
      dstctl-flags) unknown=$(known_flags "$dstctl_help" $rest) ;;
      etcd-flags) unknown=$(known_flags "$etcd_help" $rest) ;;
      gateway-args) read -r -a gateway_args <<<"$rest" ;;
    esac
    [ -z "${unknown:-}" ] || fail "$overlay: $kind: unknown: $unknown"
  done <"$out/refs"
  "$DST_BIN/dst-gateway" --config="$out/check/gateway.yaml" --check-config \
    "${gateway_args[@]}" >"$out/config.log" 2>&1 ||
    { cat "$out/config.log" >&2; fail "$overlay: the gateway refuses its configuration"; }
  echo "$overlay: $(grep -c '^kind:' "$out/manifest.yaml") objects, references and configuration ok"
done
$PYTHON "$root/scripts/k8s-rules.py" --check || fail "PrometheusRule out of date"

# The checkers catch what they are for.
sed '0,/readinessProbe:/s//readinesProbe:/' "$tmp/dev/manifest.yaml" >"$tmp/typo.yaml"
if node "$work/validate.mjs" "$work" "$tmp/typo.yaml" >"$tmp/typo.log" 2>&1; then
  fail "a misspelt field passed validation"
fi
grep -q "readinesProbe" "$tmp/typo.log" || fail "the misspelt field is not named: $(cat "$tmp/typo.log")"
sed '0,/containerPort: 7000/s//containerPort: "7000"/' "$tmp/dev/manifest.yaml" >"$tmp/type.yaml"
if node "$work/validate.mjs" "$work" "$tmp/type.yaml" >"$tmp/type.log" 2>&1; then
  fail "a string port passed validation"
fi
sed 's/dst-exporter-1\.dst-exporter:7000/dst-exporter-2.dst-exporter:7000/' \
  "$tmp/production/manifest.yaml" >"$tmp/address.yaml"
if $PYTHON "$root/tests/k8s/crossref.py" "$tmp/address.yaml" "$tmp/address" >/dev/null 2>"$tmp/address.log"; then
  fail "a replica address outside the StatefulSet passed"
fi
grep -q "dst-exporter-2" "$tmp/address.log" || fail "the bad address is not named"
sed 's/dst-etcd-2\.dst-etcd:2379/dst-etcd-3.dst-etcd:2379/' "$tmp/ha/manifest.yaml" >"$tmp/etcd.yaml"
if $PYTHON "$root/tests/k8s/crossref.py" "$tmp/etcd.yaml" "$tmp/etcd" >/dev/null 2>"$tmp/etcd.log"; then
  fail "an etcd endpoint outside the StatefulSet passed"
fi
grep -q "dst-etcd-3" "$tmp/etcd.log" || fail "the bad etcd endpoint is not named"
echo "k8s: overlays valid; the checkers refuse a misspelt field, a wrong type and bad addresses"
