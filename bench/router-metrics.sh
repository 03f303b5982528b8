#!/usr/bin/env bash
# What the router's request counting (berth server --metrics) costs: CPU time per
# request of berth's router with counting on and off (`berth router --no-metrics`),
# both running at once, one thread each on the last core, measured in alternation
# (ROUNDS rounds of one wrk run each) so that both see the same load from the rest
# of the machine. wrk and the backend (nginx, one worker) share the other cores.
#
# Needs: wrk, nginx, python3, taskset (apt-get install wrk nginx-light python3
# util-linux), 2 cores or more, and a release build of berth (BERTH=path, default
# target/release/berth).
#
#   bench/router-metrics.sh
#   ROUNDS=8 DURATION=5 bench/router-metrics.sh
set -euo pipefail

ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-4}
CONNS=${CONNS:-32}
BERTH=${BERTH:-$(dirname "$0")/../target/release/berth}
CORES=$(nproc)
HOST=bench.example.com

for tool in wrk nginx python3 taskset; do
    command -v "$tool" >/dev/null || { echo "bench/router-metrics.sh needs $tool (apt-get install wrk nginx-light python3 util-linux)" >&2; exit 1; }
done
[ -x "$BERTH" ] || { echo "no berth binary at $BERTH; run cargo build --release -p berth or set BERTH" >&2; exit 1; }
[ "$CORES" -ge 2 ] || { echo "bench/router-metrics.sh needs 2 cores or more" >&2; exit 1; }
PROXY_CORE=$((CORES - 1))
LOAD_CORES="0-$((CORES - 2))"

# shellcheck source=bench/proxy-common.sh
. "$(dirname "$0")/proxy-common.sh"
start_backend 1 taskset -c "$LOAD_CORES"

# start_berth PORT [FLAGS...]: a one-thread router on the last core, routing $HOST.
start_berth() {
    taskset -c "$PROXY_CORE" "$BERTH" router --http "127.0.0.1:$1" --control "$WORK/router-$1.sock" \
        --threads 1 "${@:2}" >"$WORK/router-$1.log" 2>&1 &
    PIDS+=($!)
    wait_port "$1"
    push_table "$WORK/router-$1.sock" "$HOST" 1
}

TICK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RESULTS="$WORK/results"
# run NAME PORT PID: one wrk run; prints and records the router's CPU per request.
run() {
    local before out requests
    before=$(ticks "$3")
    out=$(taskset -c "$LOAD_CORES" wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Host: $HOST" "http://127.0.0.1:$2/")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    python3 -c "
us = ($(ticks "$3") - $before) / $TICK / $requests * 1e6
print(f'{\"$1\":<12} {us:6.2f} us/request  {$requests / $DURATION:9.0f} req/s')
open('$RESULTS', 'a').write(f'$1 {us}\n')"
}

ON=$(free_port); start_berth "$ON"; ON_PID=${PIDS[-1]}
OFF=$(free_port); start_berth "$OFF" --no-metrics; OFF_PID=${PIDS[-1]}
echo "berth router, one thread on core $PROXY_CORE; wrk (1 thread, $CONNS connections) and nginx on $LOAD_CORES; $ROUNDS rounds of ${DURATION}s each"
for round in $(seq "$ROUNDS"); do
    # Alternate which goes first, so neither always follows the same load.
    if [ $((round % 2)) -eq 1 ]; then
        run metrics "$ON" "$ON_PID"; run no-metrics "$OFF" "$OFF_PID"
    else
        run no-metrics "$OFF" "$OFF_PID"; run metrics "$ON" "$ON_PID"
    fi
done
python3 - "$RESULTS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, us = line.split()
    runs.setdefault(name, []).append(float(us))
on, off = runs["metrics"], runs["no-metrics"]
print(f"CPU per request, mean (median): metrics {statistics.mean(on):.2f} ({statistics.median(on):.2f}) us, "
      f"no metrics {statistics.mean(off):.2f} ({statistics.median(off):.2f}) us; "
      f"on/off {statistics.mean(on) / statistics.mean(off):.3f}x (medians {statistics.median(on) / statistics.median(off):.3f}x)")
PY
