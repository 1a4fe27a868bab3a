#!/usr/bin/env bash
# Makes a test CA and certificates for a TLS dst stack with openssl:
#   scripts/make-certs.sh DIR [NAME...]
# DIR/ca.pem and DIR/ca.key: a CA; for each NAME (default: exporter gateway
# client) DIR/NAME.pem and DIR/NAME.key: an ECDSA P-256 certificate with
# CN=NAME and subject alternative names DNS:NAME, DNS:localhost,
# IP:127.0.0.1 and IP:::1, good for servers and clients alike (mutual TLS),
# valid 30 days. For tests and trials: real deployments use their own PKI.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [NAME...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(exporter gateway client)
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.pem ]; then
  openssl ecparam -genkey -name prime256v1 -noout -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -subj "/CN=dst test CA" -days 30 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem 2>/dev/null
fi
for name in "${names[@]}"; do
  openssl ecparam -genkey -name prime256v1 -noout -out "$name.key" 2>/dev/null
  openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr" 2>/dev/null
  printf '%s\n' \
    "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1,IP:::1" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "keyUsage=critical,digitalSignature,keyEncipherment" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key \
    -set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile "$name.ext" \
    -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
  chmod 600 "$name.key"
done
chmod 600 ca.key
