#!/usr/bin/env bash
# 401 timing: wrong vs malformed vs missing tokens take the same path (every
# token row hashed and compared in constant time). Prints p50/p99 of each and
# the ratio wrong ÷ malformed, against a valid token, same run.
#
#   REQUESTS=3000 TOKENS=20 bench/auth.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-3000}
TOKENS=${TOKENS:-20}
cargo build --release --quiet -p berth
BERTH=$PWD/target/release/berth
WORK=$(mktemp -d)
API=127.0.0.1:$((20000 + RANDOM % 10000))
HTTP_PORT=$((30000 + RANDOM % 10000))
cleanup() { [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
"$BERTH" server --data "$WORK/data" --api "$API" --http "127.0.0.1:$HTTP_PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://$API/health" >/dev/null && break; sleep 0.1; done
export BERTH_HOST=http://$API BERTH_TOKEN=$(cat "$WORK/data/admin.token")
for _ in $(seq 2 "$TOKENS"); do "$BERTH" tokens create --role read >/dev/null 2>&1; done
python3 - "$API" "$BERTH_TOKEN" "$REQUESTS" <<'PY'
import sys, time, http.client
api, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = api.split(":")
cases = {
    "valid": "Bearer " + token,
    "wrong": "Bearer berth_" + "0" * 64,
    "malformed": "Basic !!not-a-token!!",
    "missing": None,
}
res = {k: [] for k in cases}
conn = http.client.HTTPConnection(host, int(port), timeout=10)
for i in range(n):
    for name, header in cases.items():  # interleaved, so drift hits all alike
        h = {"Authorization": header} if header else {}
        t = time.perf_counter()
        conn.request("GET", "/rack", headers=h)
        r = conn.getresponse(); r.read()
        res[name].append(time.perf_counter() - t)
        assert r.status == (200 if name == "valid" else 401), (name, r.status)
q = lambda v, p: sorted(v)[int(p * (len(v) - 1))] * 1e6
for name, v in res.items():
    print(f"  {name:10} p50 {q(v, .5):8.1f} µs  p99 {q(v, .99):8.1f} µs")
print(f"ratio p50 wrong ÷ malformed: {q(res['wrong'], .5) / q(res['malformed'], .5):.2f}, missing ÷ malformed: {q(res['missing'], .5) / q(res['malformed'], .5):.2f}")
PY
