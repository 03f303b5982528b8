#!/usr/bin/env bash
# A throwaway PKI for OCSP stapling tests, made with openssl in DIR:
#   ca.pem/ca.key           a CA (ECDSA P-256)
#   responder.pem/.key      its OCSP responder (extendedKeyUsage OCSPSigning)
#   good.pem/.key           good.ocsp.localhost, chain = certificate + CA
#   revoked.pem/.key        revoked.ocsp.localhost, chain = certificate + CA, revoked
#   index.txt               the CA's database as `openssl ocsp -index` reads it
# Both leaves name http://127.0.0.1:PORT as their OCSP responder; serve it with
#   openssl ocsp -index DIR/index.txt -port 127.0.0.1:PORT -CA DIR/ca.pem \
#     -rsigner DIR/responder.pem -rkey DIR/responder.key -ndays 1
# Used by crates/berth/tests/ocsp.rs and scripts/testssl.sh.
#
# Usage: scripts/ocsp-pki.sh DIR PORT
set -euo pipefail

dir=${1:?usage: scripts/ocsp-pki.sh DIR PORT}
port=${2:?usage: scripts/ocsp-pki.sh DIR PORT}
mkdir -p "$dir"
cd "$dir"

# Private keys and CSRs: P-256, no passphrase.
newkey() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null; }
# Signs NAME.csr with the CA: serial, then extension lines.
sign() {
  local name=$1 serial=$2
  shift 2
  printf '%s\n' "$@" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$serial" -days 90 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
  -subj "/CN=berth OCSP test CA" -keyout ca.key -out ca.pem 2>/dev/null

newkey responder "/CN=berth OCSP test responder"
sign responder 2A "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=OCSPSigning"
mv responder.crt responder.pem

index=()
for name in good revoked; do
  host=$name.ocsp.localhost
  # 124 random bits, first nibble 1: positive, no leading zero, written in
  # index.txt as openssl prints it.
  serial=1$(openssl rand -hex 16 | cut -c2- | tr a-f A-F)
  newkey "$name" "/CN=$host"
  sign "$name" "$serial" "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:$host" \
    "authorityInfoAccess=OCSP;URI:http://127.0.0.1:$port"
  cat "$name.crt" ca.pem >"$name.pem"
  # index.txt: status, expiry, revocation time, serial, file, subject (tabs).
  expiry=$(date -u -d '+90 days' +%y%m%d%H%M%SZ)
  if [ "$name" = revoked ]; then
    index+=("R	$expiry	$(date -u -d '-1 hour' +%y%m%d%H%M%SZ)	$serial	unknown	/CN=$host")
  else
    index+=("V	$expiry		$serial	unknown	/CN=$host")
  fi
done
printf '%s\n' "${index[@]}" >index.txt
rm -f ./*.csr ./*.ext ./*.crt
