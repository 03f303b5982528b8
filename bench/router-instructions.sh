#!/usr/bin/env bash
# The router's cost in instructions, which, unlike requests/s, does not depend
# on what else the machine is doing: callgrind counts the user-space
# instructions a proxy executes for REQUESTS requests over 4 keep-alive
# connections, minus those of a run with no request (start-up and shutdown),
# divided by REQUESTS. Measured in one run for berth's router (one thread),
# haproxy (one thread) and, when BASE names another berth binary (e.g. one
# built before a change), that one too; also berth with its request counting
# off (`berth router --no-metrics`), for what the metrics cost; prints the ratios.
#
# Needs: valgrind, haproxy, nginx (the backend), python3, pgrep
# (apt-get install valgrind haproxy nginx-light procps), and a release build of
# berth (BERTH=path, default target/release/berth).
#
#   bench/router-instructions.sh
#   BASE=/tmp/old/target/release/berth REQUESTS=20000 bench/router-instructions.sh
set -euo pipefail

REQUESTS=${REQUESTS:-8000}
BERTH=${BERTH:-$(dirname "$0")/../target/release/berth}
BASE=${BASE:-}
HOST=bench.example.com
for tool in valgrind haproxy nginx python3; do
    command -v "$tool" >/dev/null || { echo "bench/router-instructions.sh needs $tool (apt-get install valgrind haproxy nginx-light python3)" >&2; exit 1; }
done
[ -x "$BERTH" ] || { echo "no berth binary at $BERTH; run cargo build --release -p berth or set BERTH" >&2; exit 1; }
[ -z "$BASE" ] || [ -x "$BASE" ] || { echo "BASE=$BASE is not an executable berth binary" >&2; exit 1; }

# shellcheck source=bench/proxy-common.sh
. "$(dirname "$0")/proxy-common.sh"
start_backend 1

# load PORT N: N GET requests over 4 keep-alive connections, each answer read whole.
load() {
    python3 - "$1" "$2" "$HOST" <<'PY'
import socket, sys, threading
port, total, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def client(n):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for _ in range(n):
        s.sendall(req)
        status = f.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        length = 0
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        f.read(length)
    s.close()
threads = [threading.Thread(target=client, args=(total // 4,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
PY
}

# measure NAME REQUESTS START...: instructions of one run of the proxy that
# START... launches (under callgrind, listening on $PORT) serving REQUESTS.
measure() {
    local name=$1 n=$2; shift 2
    local out="$WORK/$name-$n.callgrind"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$WORK/$name-$n.log" 2>&1 &
    local pid=$!
    wait_port "$PORT"
    [ -n "${AFTER_START:-}" ] && $AFTER_START
    [ "$n" -gt 0 ] && load "$PORT" "$n"
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

berth_table() { push_table "$WORK/router-$PORT.sock" "$HOST" 1; }

echo "callgrind: user-space instructions per request, $REQUESTS requests over 4 keep-alive connections, one proxy thread"
# run_berth BINARY NAME [ROUTER FLAGS...]
run_berth() {
    local busy idle
    AFTER_START=berth_table
    PORT=$(free_port)
    busy=$(measure "$2" "$REQUESTS" "$1" router --http "127.0.0.1:$PORT" --control "$WORK/router-$PORT.sock" --threads 1 "${@:3}")
    PORT=$(free_port)
    idle=$(measure "$2" 0 "$1" router --http "127.0.0.1:$PORT" --control "$WORK/router-$PORT.sock" --threads 1 "${@:3}")
    AFTER_START=
    echo $(( (busy - idle) / REQUESTS ))
}
run_haproxy() {
    local busy idle cfg="$WORK/haproxy.cfg"
    for n in "$REQUESTS" 0; do
        PORT=$(free_port)
        cat >"$cfg" <<CONF
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend f
    bind 127.0.0.1:$PORT
    default_backend b
backend b
    server s1 127.0.0.1:$BACKEND
CONF
        if [ "$n" -gt 0 ]; then busy=$(measure haproxy "$n" haproxy -f "$cfg" -db); else idle=$(measure haproxy 0 haproxy -f "$cfg" -db); fi
    done
    echo $(( (busy - idle) / REQUESTS ))
}

berth=$(run_berth "$BERTH" berth)
unmetered=$(run_berth "$BERTH" unmetered --no-metrics)
haproxy=$(run_haproxy)
echo "berth router: $berth"
echo "berth router, counting nothing (--no-metrics): $unmetered"
echo "haproxy:      $haproxy"
python3 -c "print(f'berth/haproxy: {$berth / $haproxy:.2f}x')"
python3 -c "print(f'metrics on/off: {$berth / $unmetered:.3f}x')"
if [ -n "$BASE" ]; then
    base=$(run_berth "$BASE" base)
    echo "BASE berth:   $base"
    python3 -c "print(f'berth/BASE: {$berth / $base:.3f}x')"
fi
