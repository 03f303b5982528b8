#!/usr/bin/env bash
# Router handover under load: two wrk runs keep sending through a berth router (one
# over keep-alive connections, one with `Connection: close`, a new connection per
# request) while HANDOVERS new router processes take over one after the other
# (`berth router --takeover`: the listening socket passes to the new process, the
# old one stops accepting, finishes and exits). Prints what wrk counted, requests
# and their rate, socket errors (connect, read, write, timeout: refused, reset or
# dropped connections) and non-2xx answers, beside a baseline run of the same
# length without handover; then how long each handover took: from the start of the
# new process until it answers on the control socket, and until the old one exited.
# Lost requests and connections should be 0 in both runs.
#
# Needs: wrk, nginx, python3 (apt-get install wrk nginx-light python3) and a build
# of berth (BERTH=path; default target/release/berth, else target/debug/berth).
# PORT_BASE=N takes ports N, N+1, ... instead of free ones.
#
#   bench/router-handover.sh
#   HANDOVERS=10 DURATION=20 bench/router-handover.sh
set -euo pipefail

HANDOVERS=${HANDOVERS:-5}
DURATION=${DURATION:-12}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
HOST=bench.example.com
ROOT=$(dirname "$0")/..
BERTH=${BERTH:-$ROOT/target/release/berth}
[ -x "$BERTH" ] || BERTH=$ROOT/target/debug/berth

for tool in wrk nginx python3; do
    command -v "$tool" >/dev/null || { echo "bench/router-handover.sh needs $tool (apt-get install wrk nginx-light python3)" >&2; exit 1; }
done
[ -x "$BERTH" ] || { echo "no berth binary in target/release or target/debug; run cargo build -p berth or set BERTH" >&2; exit 1; }

# shellcheck source=bench/proxy-common.sh
. "$(dirname "$0")/proxy-common.sh"
if [ -n "${PORT_BASE:-}" ]; then
    NEXT_PORT=$PORT_BASE
    free_port() { echo "$NEXT_PORT"; }
    take_port() { NEXT_PORT=$((NEXT_PORT + 1)); }
else
    take_port() { :; }
fi
start_backend 1
take_port

now_ms() { date +%s%3N; }

# start_router PORT: a router on PORT with its control socket in $WORK/PORT/.
start_router() {
    mkdir -p "$WORK/$1"
    "$BERTH" router --http "127.0.0.1:$1" --control "$WORK/$1/router.sock" \
        --threads "$THREADS" >>"$WORK/$1/router.log" 2>&1 &
    PIDS+=($!)
    wait_port "$1"
    push_table "$WORK/$1/router.sock" "$HOST" 1
}

# load PORT NAME: both wrk runs against PORT for DURATION seconds, in the background.
load() {
    wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Host: $HOST" \
        "http://127.0.0.1:$1/" >"$WORK/$2-keepalive.txt" 2>&1 &
    LOAD=($!)
    wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Host: $HOST" -H "Connection: close" \
        "http://127.0.0.1:$1/" >"$WORK/$2-close.txt" 2>&1 &
    LOAD+=($!)
}

# summary NAME: one line per wrk run.
summary() {
    for kind in keepalive close; do
        python3 - "$WORK/$1-$kind.txt" "$1 $kind" "$DURATION" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
requests = int(re.search(r"(\d+) requests in", text).group(1))
m = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errors = [int(x) for x in m.groups()] if m else [0, 0, 0, 0]
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
non2xx = int(m.group(1)) if m else 0
print(f"{sys.argv[2]:<22} {requests:>8} requests {requests / float(sys.argv[3]):>8.0f}/s"
      f"  lost connections {sum(errors)} (connect {errors[0]}, read {errors[1]}, write {errors[2]},"
      f" timeout {errors[3]})  non-2xx {non2xx}")
with open(sys.argv[1] + ".rate", "w") as f:
    f.write(str(requests / float(sys.argv[3])))
PY
    done
}

BASE=$(free_port); take_port
start_router "$BASE"
load "$BASE" baseline
wait "${LOAD[@]}"

PORT=$(free_port); take_port
start_router "$PORT"
SOCK="$WORK/$PORT/router.sock"
load "$PORT" handover
GAP=$(python3 -c "print($DURATION / ($HANDOVERS + 1))")
TIMES="$WORK/times"
for n in $(seq "$HANDOVERS"); do
    sleep "$GAP"
    old=$(cat "$WORK/$PORT/router.pid")
    start=$(now_ms)
    "$BERTH" router --takeover --http "127.0.0.1:$PORT" --control "$SOCK" \
        --threads "$THREADS" >>"$WORK/$PORT/router.log" 2>&1 &
    new=$!
    PIDS+=("$new")
    until [ "$(cat "$WORK/$PORT/router.pid" 2>/dev/null)" = "$new" ]; do
        kill -0 "$new" 2>/dev/null || { echo "handover $n failed; see $WORK/$PORT/router.log:" >&2; tail -5 "$WORK/$PORT/router.log" >&2; exit 1; }
        sleep 0.005
    done
    answered=$(now_ms)
    # The old one exits once its connections are done (wrk's close after the next
    # answer); measured in the background so handovers stay evenly spaced.
    ( while kill -0 "$old" 2>/dev/null; do sleep 0.01; done
      echo "$n $((answered - start)) $(($(now_ms) - start))" >>"$TIMES" ) &
done
wait "${LOAD[@]}"
for _ in $(seq 300); do
    [ "$(wc -l <"$TIMES" 2>/dev/null || echo 0)" -ge "$HANDOVERS" ] && break
    sleep 0.1
done

echo "berth router, $THREADS event loop(s), wrk $CONNS connections x2, ${DURATION}s per run, $HANDOVERS handovers"
summary baseline
summary handover
python3 - "$WORK" <<'PY'
import sys
w = sys.argv[1]
for kind in ("keepalive", "close"):
    base = float(open(f"{w}/baseline-{kind}.txt.rate").read())
    under = float(open(f"{w}/handover-{kind}.txt.rate").read())
    print(f"{kind:<10} rate during handovers / baseline: {under / base:.2f}")
PY
sort -n "$TIMES" | awk '{printf "handover %s: new router answers after %d ms, old router exited after %d ms\n", $1, $2, $3}'
