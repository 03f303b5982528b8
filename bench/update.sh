#!/usr/bin/env bash
# The API's unavailability window during `berth rack update`: API clients keep
# calling `GET /rack` (a new connection each, like the CLI) while the server
# moves to a new build and back, RUNS times. Printed: failed calls (expected 0),
# the longest call during each update (the window in which calls wait for the
# next server), and its ratio to the longest call of the same client in the
# same run without an update (the baseline). Record results in BENCHMARKS.md.
#
#   bench/update.sh                  # 3 updates each way, release build
#   RUNS=5 BERTH=target/debug/berth bench/update.sh
#
# The "new build" is a copy of the binary with a version tag of its own (see
# `berth_core::version::tag_binary`), so no second compilation is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
if [ -z "${BERTH:-}" ]; then
  cargo build --release --quiet -p berth
  BERTH=$PWD/target/release/berth
fi
WORK=$(mktemp -d)
API=127.0.0.1:$((20000 + RANDOM % 10000))
HTTP=127.0.0.1:$((30000 + RANDOM % 10000))
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  [ -f "$WORK/data/router.pid" ] && kill "$(cat "$WORK/data/router.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/bin"
cp "$BERTH" "$WORK/bin/berth"
cp "$BERTH" "$WORK/berth-original"
python3 - "$BERTH" "$WORK/berth-next" <<'EOF'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
marker = b"@berth-build-tag@"
at = []
start = 0
while True:
    i = data.find(marker, start)
    if i < 0:
        break
    if data[i + len(marker):i + len(marker) + 48] == bytes(48):
        at.append(i)
    start = i + 1
assert len(at) == 1, f"tag areas found: {len(at)}"
i = at[0] + len(marker)
data[i:i + 4] = b"next"
open(sys.argv[2], "wb").write(data)
EOF
chmod +x "$WORK/berth-next"

"$WORK/bin/berth" server --data "$WORK/data" --api "$API" --http "$HTTP" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://$API/health" >/dev/null && break; sleep 0.1; done
export BERTH_HOST=http://$API BERTH_TOKEN=$(cat "$WORK/data/admin.token")

# calls SECONDS: GET /rack on a new connection in a loop for SECONDS; prints
# "calls failed longest_ms".
calls() {
  python3 - "$API" "$BERTH_TOKEN" "$1" <<'EOF'
import http.client, sys, time
host, port = sys.argv[1].split(":")
token, seconds = sys.argv[2], float(sys.argv[3])
end = time.monotonic() + seconds
calls = failed = 0
longest = 0.0
while time.monotonic() < end:
    started = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=60)
        c.request("GET", "/rack", headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        r.read()
        c.close()
        if r.status != 200:
            failed += 1
    except Exception as e:
        failed += 1
        print("call failed:", e, file=sys.stderr)
    longest = max(longest, time.monotonic() - started)
    calls += 1
    time.sleep(0.01)
print(calls, failed, round(longest * 1000, 1))
EOF
}

read -r base_calls base_failed base_ms < <(calls 5)
echo "baseline (no update, 5 s): $base_calls calls, $base_failed failed, longest ${base_ms} ms"
total_failed=$base_failed
for run in $(seq 1 "$RUNS"); do
  for target in berth-next berth-original; do
    calls 12 >"$WORK/calls.out" &
    CALLS=$!
    sleep 1
    start=$(date +%s.%N)
    "$WORK/bin/berth" rack update --binary "$WORK/$target" >/dev/null 2>"$WORK/update.err" || { cat "$WORK/update.err" >&2; exit 1; }
    took=$(echo "$(date +%s.%N) - $start" | bc)
    wait "$CALLS"
    read -r n failed ms <"$WORK/calls.out"
    total_failed=$((total_failed + failed))
    ratio=$(echo "scale=1; $ms / $base_ms" | bc)
    printf 'update %d to %-15s took %5.1f s; API calls: %d, failed %d, longest %s ms (%sx the baseline longest)\n' \
      "$run" "$target" "$took" "$n" "$failed" "$ms" "$ratio"
  done
done
"$WORK/bin/berth" rack releases
echo "failed API calls in all: $total_failed"
