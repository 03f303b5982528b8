#!/usr/bin/env bash
# Router throughput: one static backend on loopback, measured in one run with the
# same load generator (wrk) and connection count: direct, through nginx, through
# haproxy, through berth's router. Each proxy first gets one worker thread, then
# all cores, then one thread on a core of its own (taskset; wrk and the backend on
# the other cores). Last, berth's router with 1,000 routed hosts against 1. For
# each proxy it also prints the CPU time the proxy spent per request: where the
# load generator and the backend share the proxy's cores, requests/s also depends
# on how the kernel schedules them all, while CPU per request is the proxy's own
# cost. berth also runs with its request counting off (`berth router --no-metrics`),
# right after the same run with it on, for what the metrics cost per request.
#
# Needs: wrk, nginx, haproxy, pgrep (apt-get install wrk nginx-light haproxy procps), python3,
# and a release build of berth (BERTH=path/to/berth, default target/release/berth).
#
#   bench/router.sh            # 10 s per run, 64 connections
#   DURATION=5 CONNS=32 bench/router.sh
set -euo pipefail

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
BERTH=${BERTH:-$(dirname "$0")/../target/release/berth}
CORES=$(nproc)
HOST=bench.example.com

for tool in wrk nginx haproxy python3; do
    command -v "$tool" >/dev/null || { echo "bench/router.sh needs $tool (apt-get install wrk nginx-light haproxy python3)" >&2; exit 1; }
done
[ -x "$BERTH" ] || { echo "no berth binary at $BERTH; run cargo build --release -p berth or set BERTH" >&2; exit 1; }

# shellcheck source=bench/proxy-common.sh
. "$(dirname "$0")/proxy-common.sh"

# The backend: nginx answering a fixed 13-byte body, on all cores.
start_backend "$CORES"

# cpu_ticks PID: CPU time (clock ticks) used so far by PID and its children's
# processes (nginx's workers), user plus system.
cpu_ticks() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}

# run NAME PORT [PID]: one wrk run; prints "NAME req/s p50 p99" and, for a proxy
# (PID), the CPU it spent per request; records both.
RESULTS="$WORK/results"
TICK=$(getconf CLK_TCK)
run() {
    local name=$1 port=$2 pid=${3:-} out before=0
    [ -n "$pid" ] && before=$(cpu_ticks "$pid")
    out=$($LOAD_PIN wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST" "http://127.0.0.1:$port/")
    local rps p50 p99 errors requests cpu=-
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errors=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr '\n' ' ' || true)
    if [ -n "$pid" ]; then
        cpu=$(python3 -c "print(f'{($(cpu_ticks "$pid") - $before) / $TICK / $requests * 1e6:.1f}')")
    fi
    printf "%-28s %12s req/s  p50 %8s  p99 %8s  cpu %6s us/req %s\n" "$name" "$rps" "$p50" "$p99" "$cpu" "$errors"
    echo "$name|$rps|$cpu" >>"$RESULTS"
}

start_nginx() { # THREADS PORT
    local dir="$WORK/nginx-$1"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes $1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$BACKEND; keepalive 256; }
    server {
        listen 127.0.0.1:$2;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
EOF
    $PROXY_PIN nginx -c "$dir/nginx.conf" -p "$dir" >"$dir/nginx.log" 2>&1 &
    PIDS+=($!)
    wait_port "$2"
}

start_haproxy() { # THREADS PORT
    local dir="$WORK/haproxy-$1"
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $1
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 3s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:$2
    default_backend b
backend b
    http-reuse always
    server s1 127.0.0.1:$BACKEND
EOF
    $PROXY_PIN haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
    PIDS+=($!)
    wait_port "$2"
}

# start_berth THREADS PORT HOSTS [FLAGS...]: berth's router process with HOSTS routed
# hosts (the benchmarked one among them), its table pushed over the control socket.
start_berth() {
    local dir="$WORK/berth-$2"
    mkdir -p "$dir"
    $PROXY_PIN "$BERTH" router --http "127.0.0.1:$2" --control "$dir/router.sock" --threads "$1" \
        "${@:4}" >"$dir/router.log" 2>&1 &
    PIDS+=($!)
    wait_port "$2"
    push_table "$dir/router.sock" "$HOST" "$3"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk: $WRK_THREADS threads, $CONNS connections, ${DURATION}s per run; backend: nginx on $CORES workers"
echo
LOAD_PIN=""
PROXY_PIN=""
run "direct" "$BACKEND"
for threads in 1 "$CORES"; do
    p=$(free_port); start_nginx "$threads" "$p"; run "nginx ($threads thread)" "$p" "${PIDS[-1]}"
    p=$(free_port); start_haproxy "$threads" "$p"; run "haproxy ($threads thread)" "$p" "${PIDS[-1]}"
    p=$(free_port); start_berth "$threads" "$p" 1; run "berth ($threads thread)" "$p" "${PIDS[-1]}"
    p=$(free_port); start_berth "$threads" "$p" 1 --no-metrics; run "berth no metrics ($threads thread)" "$p" "${PIDS[-1]}"
done
# One thread again, now on a core of its own: wrk and the backend are moved to
# the other cores, so no proxy shares its core with the threads its sends wake.
if [ "$CORES" -ge 2 ]; then
    PROXY_CORE=$((CORES - 1))
    LOAD_CORES="0-$((CORES - 2))"
    for p in "$BACKEND_PID" $(pgrep -P "$BACKEND_PID"); do taskset -a -p -c "$LOAD_CORES" "$p" >/dev/null; done
    LOAD_PIN="taskset -c $LOAD_CORES"
    PROXY_PIN="taskset -c $PROXY_CORE"
    p=$(free_port); start_nginx 1 "$p"; run "nginx (1 thread, own core)" "$p" "${PIDS[-1]}"
    p=$(free_port); start_haproxy 1 "$p"; run "haproxy (1 thread, own core)" "$p" "${PIDS[-1]}"
    p=$(free_port); start_berth 1 "$p" 1; run "berth (1 thread, own core)" "$p" "${PIDS[-1]}"
    p=$(free_port); start_berth 1 "$p" 1 --no-metrics; run "berth no metrics (1 thread, own core)" "$p" "${PIDS[-1]}"
    for p in "$BACKEND_PID" $(pgrep -P "$BACKEND_PID"); do taskset -a -p -c "0-$((CORES - 1))" "$p" >/dev/null; done
    LOAD_PIN=""
    PROXY_PIN=""
fi
p=$(free_port); start_berth "$CORES" "$p" 1000; run "berth ($CORES thread, 1000 hosts)" "$p" "${PIDS[-1]}"

echo
python3 - "$RESULTS" "$CORES" <<'EOF'
import sys
r, cpu = {}, {}
for line in open(sys.argv[1]):
    name, rps, us = line.strip().split("|")
    r[name] = float(rps)
    if us != "-":
        cpu[name] = float(us)
cores = sys.argv[2]
for t in ["1 thread", f"{cores} thread", "1 thread, own core"]:
    if f"berth ({t})" not in r:
        continue
    b, bc = r[f"berth ({t})"], cpu[f"berth ({t})"]
    print(f"{t}: req/s berth/haproxy {b / r[f'haproxy ({t})']:.2f}x, "
          f"berth/nginx {b / r[f'nginx ({t})']:.2f}x, berth/direct {b / r['direct']:.2f}x; "
          f"CPU per request (lower is better) berth/haproxy {bc / cpu[f'haproxy ({t})']:.2f}x, "
          f"berth/nginx {bc / cpu[f'nginx ({t})']:.2f}x")
    if f"berth no metrics ({t})" in r:
        n, nc = r[f"berth no metrics ({t})"], cpu[f"berth no metrics ({t})"]
        print(f"{t}: metrics on/off: CPU per request {bc:.1f}/{nc:.1f} us = {bc / nc:.3f}x, "
              f"req/s {b:.0f}/{n:.0f} = {b / n:.3f}x")
print(f"berth 1000 hosts / 1 host ({cores} threads): "
      f"{r[f'berth ({cores} thread, 1000 hosts)'] / r[f'berth ({cores} thread)']:.2f}x")
EOF
