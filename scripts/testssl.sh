#!/usr/bin/env bash
# Debian's testssl.sh against berth's HTTPS router, as a client on the internet
# would see it: starts a real `berth server --https` (a temp data dir, free
# loopback ports), imports a certificate of a throwaway CA
# (scripts/ocsp-pki.sh) whose OCSP responder (`openssl ocsp`) runs beside it,
# waits until the router staples the responder's answer, then runs testssl
# with JSON output (the CA trusted with --add-ca) and fails on any finding
# testssl marks NOT ok or VULNERABLE: severity HIGH or CRITICAL in its JSON,
# and on any WARN (a check that could not be made), except those in ALLOWED
# below, which are printed. It also requires what berth promises: TLS 1.2 and
# 1.3 only, h2 offered by ALPN, an OCSP response stapled.
#
# Every check of testssl's default run is made (protocols, ciphers, forward
# secrecy, server defaults and preferences, HTTP headers, every vulnerability)
# except the client simulations (-c), which only list what some browsers
# would pick and take a third of the time.
#
# Usage: scripts/testssl.sh   BERTH: the binary (default target/debug/berth,
# built when missing). Exits non-zero on any finding not allowed.
set -euo pipefail
cd "$(dirname "$0")/.."

BERTH=${BERTH:-target/debug/berth}
NAME=good.ocsp.localhost

# id → why a finding of this id is accepted. The certificate is a CA's, trusted
# with --add-ca, valid for 90 days, with an OCSP responder, so no certificate
# finding is. The one accepted is a race in testssl's own check:
# - sessionresumption_ticket "check failed because of connect problem": over
#   TLS 1.3 testssl's first `openssl s_client` (stdin at EOF) often closes
#   before the session tickets, which follow the handshake, arrive, and the
#   second one then has no session to resume. It does so against
#   `openssl s_server` too (69 times in 100 on this machine). Resumption from
#   tickets is checked by resumes_with_ticket below, over TLS 1.3 and 1.2.
declare -A ALLOWED=(
  [sessionresumption_ticket]="testssl's TLS 1.3 client leaves before the tickets arrive; resumption checked above"
)

WORK=$(mktemp -d -t berth-testssl.XXXXXX)
DATA=$WORK/rack
# shellcheck source=scripts/server-common.sh
. scripts/server-common.sh

command -v testssl >/dev/null 2>&1 || {
  echo "testssl is missing: apt-get install testssl.sh (scripts/setup-test-host.sh does)" >&2
  exit 1
}
need_berth

API_PORT=$(free_port)
HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
OCSP_PORT=$(free_port)
OCSP_PID=

cleanup() {
  stop_server
  if [ -n "$OCSP_PID" ]; then kill "$OCSP_PID" 2>/dev/null || true; wait "$OCSP_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "a throwaway CA and its OCSP responder on port $OCSP_PORT"
scripts/ocsp-pki.sh "$WORK/pki" "$OCSP_PORT"
(cd "$WORK/pki" && exec openssl ocsp -index index.txt -port "$OCSP_PORT" -CA ca.pem \
  -rsigner responder.pem -rkey responder.key -ndays 1 >"$WORK/ocsp.log" 2>&1) &
OCSP_PID=$!

log "berth server, HTTPS on 127.0.0.1:$HTTPS_PORT (data $DATA)"
SERVER_LOG=info start_server "$API_PORT" "$HTTP_PORT" --https "127.0.0.1:$HTTPS_PORT"
HOME=$WORK XDG_CONFIG_HOME=$WORK/config BERTH_HOST=http://127.0.0.1:$API_PORT \
  BERTH_TOKEN=$(cat "$DATA/admin.token") \
  "$BERTH" certs import "$WORK/pki/good.pem" "$WORK/pki/good.key"

log "waiting for the router to staple the OCSP response"
stapled=
for _ in $(seq 60); do
  if timeout 10 openssl s_client -status -connect "127.0.0.1:$HTTPS_PORT" -servername "$NAME" \
    </dev/null 2>/dev/null | grep -q 'Cert Status: good'; then
    stapled=1
    break
  fi
  sleep 0.5
done
if [ -z "$stapled" ]; then
  echo "the router staples no OCSP response for $NAME; the server's log:" >&2
  tail -30 "$WORK/server.log" >&2
  exit 1
fi

# resumes_with_ticket PROTO: a second connection resumes the first one's session
# from its ticket. The first client keeps its input open for a moment: in TLS 1.3
# tickets follow the handshake, and a client that closes at once (stdin at EOF)
# may leave before they arrive.
resumes_with_ticket() {
  rm -f "$WORK/session"
  sleep 0.5 | timeout 10 openssl s_client "-$1" -connect "127.0.0.1:$HTTPS_PORT" \
    -servername "$NAME" -sess_out "$WORK/session" >/dev/null 2>&1 || true
  [ -s "$WORK/session" ] || return 1
  timeout 10 openssl s_client "-$1" -connect "127.0.0.1:$HTTPS_PORT" -servername "$NAME" \
    -sess_in "$WORK/session" </dev/null 2>/dev/null | grep -q '^Reused'
}
for proto in tls1_3 tls1_2; do
  if ! resumes_with_ticket "$proto"; then
    echo "a $proto session does not resume from the router's session ticket" >&2
    exit 1
  fi
done
log "sessions resume from tickets over TLS 1.3 and 1.2"

log "testssl against https://$NAME:$HTTPS_PORT"
start=$(date +%s)
# --ip: the name is not in DNS; -n none: no DNS lookups at all (CAA, MX).
timeout 600 testssl --quiet --color 0 --warnings off -n none --ip 127.0.0.1 \
  --add-ca "$WORK/pki/ca.pem" --jsonfile "$WORK/testssl.json" \
  -p -s -f -S -P -h -U "https://$NAME:$HTTPS_PORT" >"$WORK/testssl.txt" 2>&1 || true
log "testssl took $(($(date +%s) - start)) s"

allowed_json=$(for id in "${!ALLOWED[@]}"; do printf '%s\t%s\n' "$id" "${ALLOWED[$id]}"; done)
status=0
ALLOWED_LIST=$allowed_json python3 - "$WORK/testssl.json" <<'PY' || status=$?
import json, os, sys

allowed = dict(
    line.split("\t", 1) for line in os.environ["ALLOWED_LIST"].splitlines() if line
)
try:
    findings = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    sys.exit(f"testssl wrote no JSON findings ({e})")
by_id = {f["id"]: f for f in findings}
bad, let_through = [], []
for f in findings:
    # testssl prints HIGH as "NOT ok" and CRITICAL as "VULNERABLE"; WARN is
    # a check it could not make.
    if f["severity"] in ("HIGH", "CRITICAL", "WARN"):
        ok = f["id"] in allowed and (
            f["id"] != "sessionresumption_ticket" or "connect problem" in f["finding"]
        )
        (let_through if ok else bad).append(f)

# What berth promises, beyond the absence of findings.
def expect(id, wanted):
    got = by_id.get(id, {}).get("finding", "(missing)")
    if not got.startswith(wanted):
        bad.append({"id": id, "severity": "EXPECTED", "finding": f"{got!r}, wanted {wanted!r}"})

for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    expect(old, "not offered")
expect("TLS1_2", "offered")
expect("TLS1_3", "offered")
expect("OCSP_stapling", "offered")
expect("ALPN_HTTP2", "h2")

for f in findings:
    if f["severity"] in ("LOW", "MEDIUM"):
        print(f"note     {f['severity']:8} {f['id']}: {f['finding']}")
for f in let_through:
    print(f"allowed  {f['severity']:8} {f['id']}: {f['finding']}  ({allowed[f['id']]})")
for f in bad:
    print(f"FAILED   {f['severity']:8} {f['id']}: {f['finding']}")
counts = {}
for f in findings:
    counts[f["severity"]] = counts.get(f["severity"], 0) + 1
print("findings by severity:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
sys.exit(1 if bad else 0)
PY
if [ "$status" -ne 0 ]; then
  log "testssl's report:"
  cat "$WORK/testssl.txt"
fi
exit "$status"
