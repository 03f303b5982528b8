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
# Then HTTPS, TLS terminated at the proxy (ECDSA P-256 certificate, TLS 1.3 with
# the suite berth prefers, $SUITES below, each proxy's choice printed) and the same plain backend behind it, one thread per proxy on a
# core of its own (TLS_OWN_CORE=0: sharing the cores, as the first set): wrk over HTTPS (HTTP/1.1, keep-alive), h2load over HTTP/2
# (H2_CLIENTS connections with H2_STREAMS streams each, as many requests in flight
# as wrk's), and TLS handshakes (HS_CLIENTS `openssl s_time` loops, one request per
# connection: full handshakes, then resumed ones with session tickets), each with
# the proxy's CPU time per request or per handshake. The three proxies take turns
# at each load, TLS_ROUNDS times (default 2), and the summary averages the rounds.
#
# Needs: wrk, nginx, haproxy, pgrep, h2load, openssl (apt-get install wrk nginx-light
# haproxy procps nghttp2-client openssl), python3, and a release build of berth
# (BERTH=path/to/berth, default target/release/berth).
#
#   bench/router.sh            # 10 s per run, 64 connections
#   DURATION=5 CONNS=32 bench/router.sh
#   ONLY=tls bench/router.sh   # only the HTTPS rows (ONLY=plain: only plain HTTP)
#   TLS_ROUNDS=4 ONLY=tls bench/router.sh   # four rounds of the HTTPS rows
#   TLS_LOADS=h2 TLS_ROUNDS=6 ONLY=tls bench/router.sh   # only HTTP/2 (of h1 h2 full resumed)
#   BENCH_PORTS=19300-19399 bench/router.sh   # listen only on these ports
set -euo pipefail

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
H2_CLIENTS=${H2_CLIENTS:-16}
H2_STREAMS=${H2_STREAMS:-4}
HS_CLIENTS=${HS_CLIENTS:-4}
TLS_OWN_CORE=${TLS_OWN_CORE:-1}
TLS_ROUNDS=${TLS_ROUNDS:-2}
TLS_LOADS=${TLS_LOADS:-h1 h2 full resumed}
ONLY=${ONLY:-all}
BERTH=${BERTH:-$(dirname "$0")/../target/release/berth}
CORES=$(nproc)
HOST=bench.example.com
# The TLS 1.3 suites in berth's order (AES-128-GCM first, the server's order
# decides), given to nginx and haproxy too, so all three run the same suite. Left
# to the clients (OpenSSL's), all would pick AES-256-GCM with SHA-384. nginx 1.22
# also needs TLS 1.3 turned on (its default has it only from 1.23.4).
SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

case "$ONLY" in
    all | plain | tls) ;;
    *) echo "ONLY=$ONLY: say plain, tls or all" >&2; exit 1 ;;
esac
tools="wrk nginx haproxy python3"
[ "$ONLY" = plain ] || tools="$tools h2load openssl"
for tool in $tools; do
    command -v "$tool" >/dev/null || { echo "bench/router.sh needs $tool (apt-get install wrk nginx-light haproxy python3 nghttp2-client openssl)" >&2; exit 1; }
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
    run_url "$1" "http://127.0.0.1:$2/" "${@:3}"
}

# cpu_per NAME PID BEFORE COUNT: microseconds of CPU PID spent per COUNT (requests
# or handshakes) since it had used BEFORE ticks.
cpu_per() {
    python3 -c "print(f'{($(cpu_ticks "$2") - $3) / $TICK / max($4, 1) * 1e6:.1f}')"
}

# run_url NAME URL [PID]: run, for any URL (https:// for TLS).
run_url() {
    local name=$1 url=$2 pid=${3:-} out before=0
    [ -n "$pid" ] && before=$(cpu_ticks "$pid")
    out=$($LOAD_PIN wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST" "$url")
    local rps p50 p99 errors requests cpu=-
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errors=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr '\n' ' ' || true)
    [ -n "$pid" ] && cpu=$(cpu_per "$name" "$pid" "$before" "$requests")
    printf "%-40s %12s req/s  p50 %8s  p99 %8s  cpu %6s us/req %s\n" "$name" "$rps" "$p50" "$p99" "$cpu" "$errors"
    echo "$name|$rps|$cpu" >>"$RESULTS"
}

# run_h2 NAME PORT PID: one h2load run over HTTP/2 (ALPN h2); prints req/s, the mean
# and largest time per request and the proxy's CPU per request; records them.
run_h2() {
    local name=$1 port=$2 pid=$3 out before
    before=$(cpu_ticks "$pid")
    out=$($LOAD_PIN h2load -D "$DURATION" -c "$H2_CLIENTS" -m "$H2_STREAMS" -t "$WRK_THREADS" \
        -H ":authority: $HOST" "https://127.0.0.1:$port/")
    local rps done failed mean max cpu note=""
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    done=$(awk '/^requests:/ {print $8}' <<<"$out")
    failed=$(awk '/^requests:/ {print $10}' <<<"$out")
    mean=$(awk '/^time for request:/ {print $6}' <<<"$out")
    max=$(awk '/^time for request:/ {print $5}' <<<"$out")
    cpu=$(cpu_per "$name" "$pid" "$before" "$done")
    grep -q "Application protocol: h2" <<<"$out" || note="NOT h2: $(grep 'protocol' <<<"$out")"
    [ "${failed:-0}" = 0 ] || note="$note $failed failed"
    printf "%-40s %12s req/s  mean %7s  max %8s  cpu %6s us/req %s\n" "$name" "$rps" "$mean" "$max" "$cpu" "$note"
    echo "$name|$rps|$cpu" >>"$RESULTS"
}

# run_handshakes NAME PORT PID -new|-reuse: HS_CLIENTS `openssl s_time` loops at once,
# each connection one TLS handshake (full, or resuming the loop's session) and one
# request with `Connection: close`; prints handshakes/s, the share resumed and the
# proxy's CPU per handshake (request included); records them.
run_handshakes() {
    local name=$1 port=$2 pid=$3 mode=$4 before i loops=()
    before=$(cpu_ticks "$pid")
    for i in $(seq "$HS_CLIENTS"); do
        # s_time sends "GET <path> HTTP/1.0\r\n\r\n": this path makes that an HTTP/1.1
        # request for $HOST (the trailing " HTTP/1.0" becomes a header's value).
        $LOAD_PIN openssl s_time -connect "127.0.0.1:$port" "$mode" -time "$DURATION" \
            -www $'/ HTTP/1.1\r\nHost: '"$HOST"$'\r\nConnection: close\r\nX-Pad:' \
            >"$WORK/s_time-$i" 2>&1 &
        loops+=($!)
    done
    wait "${loops[@]}"
    local total rate cpu marks resumed
    total=$(cat "$WORK"/s_time-* | awk '/real seconds/ {n += $1} END {print n + 0}')
    rate=$(python3 -c "print(f'{$total / $DURATION:.0f}')")
    cpu=$(cpu_per "$name" "$pid" "$before" "$total")
    # s_time marks each connection of a -reuse run: r resumed, * full.
    marks=$(cat "$WORK"/s_time-* | grep -E '^[r*]+$' | tr -d '\n' || true)
    resumed=$(python3 -c "m = '$marks'; print(f'{m.count(\"r\") / len(m):.0%}' if m else '-')")
    rm -f "$WORK"/s_time-*
    printf "%-40s %12s hs/s   resumed %5s  cpu %6s us/handshake\n" "$name" "$rate" "$resumed" "$cpu"
    echo "$name|$rate|$cpu" >>"$RESULTS"
}

# start_nginx THREADS PORT [tls]: nginx proxying to the backend; with tls, over HTTPS
# (HTTP/2 and HTTP/1.1 by ALPN) with the bench certificate.
start_nginx() {
    local dir="$WORK/nginx-$2" listen="127.0.0.1:$2" tls=""
    if [ "${3:-}" = tls ]; then
        listen="$listen ssl http2"
        tls="ssl_certificate $CERT; ssl_certificate_key $KEY; ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on; ssl_conf_command Ciphersuites $SUITES;"
    fi
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
        listen $listen;
        $tls
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

# start_haproxy THREADS PORT [tls]: like start_nginx.
start_haproxy() {
    local dir="$WORK/haproxy-$2" bind="127.0.0.1:$2"
    [ "${3:-}" = tls ] && bind="$bind ssl crt $CERT_AND_KEY alpn h2,http/1.1 ciphersuites $SUITES"
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
    bind $bind
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

# start_berth_tls PORT TLS_PORT: berth's router at one thread serving HTTPS on TLS_PORT
# too, with the bench certificate.
start_berth_tls() {
    start_berth 1 "$1" 1 --https "127.0.0.1:$2"
    wait_port "$2"
    push_certs "$WORK/berth-$1/router.sock" "$HOST" "$CERT" "$KEY"
}

# pin_own_core / unpin: the proxy started next alone on the last core, wrk and the
# backend on the others (see below).
pin_own_core() {
    local p
    PROXY_CORE=$((CORES - 1))
    LOAD_CORES="0-$((CORES - 2))"
    for p in "$BACKEND_PID" $(pgrep -P "$BACKEND_PID"); do taskset -a -p -c "$LOAD_CORES" "$p" >/dev/null; done
    LOAD_PIN="taskset -c $LOAD_CORES"
    PROXY_PIN="taskset -c $PROXY_CORE"
}
unpin() {
    local p
    for p in "$BACKEND_PID" $(pgrep -P "$BACKEND_PID"); do taskset -a -p -c "0-$((CORES - 1))" "$p" >/dev/null; done
    LOAD_PIN=""
    PROXY_PIN=""
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: $WRK_THREADS threads, $CONNS connections, ${DURATION}s per run; backend: nginx on $CORES workers"
echo
LOAD_PIN=""
PROXY_PIN=""
# The plain-HTTP rows.
plain_rows() {
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
        pin_own_core
        p=$(free_port); start_nginx 1 "$p"; run "nginx (1 thread, own core)" "$p" "${PIDS[-1]}"
        p=$(free_port); start_haproxy 1 "$p"; run "haproxy (1 thread, own core)" "$p" "${PIDS[-1]}"
        p=$(free_port); start_berth 1 "$p" 1; run "berth (1 thread, own core)" "$p" "${PIDS[-1]}"
        p=$(free_port); start_berth 1 "$p" 1 --no-metrics; run "berth no metrics (1 thread, own core)" "$p" "${PIDS[-1]}"
        unpin
    fi
    p=$(free_port); start_berth "$CORES" "$p" 1000; run "berth ($CORES thread, 1000 hosts)" "$p" "${PIDS[-1]}"
}

# The HTTPS rows: HTTP/1.1, HTTP/2 and handshakes against each proxy.
tls_rows() {
    echo
    mkdir -p "$WORK/tls"
    CERT="$WORK/tls/cert.pem"
    KEY="$WORK/tls/key.pem"
    CERT_AND_KEY="$WORK/tls/both.pem"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$KEY" -out "$CERT" -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" 2>/dev/null
    cat "$CERT" "$KEY" >"$CERT_AND_KEY"
    local own=""
    if [ "$CORES" -ge 2 ] && [ "$TLS_OWN_CORE" = 1 ]; then own=1; fi
    echo "HTTPS: one thread per proxy$([ -n "$own" ] && echo ", on a core of its own"); h2load: $H2_CLIENTS connections x $H2_STREAMS streams; handshakes: $HS_CLIENTS s_time loops"
    if [ -n "$own" ]; then pin_own_core; fi
    # All three run at once (idle but for the one under load), and each kind of
    # load goes to nginx, haproxy and berth back to back, TLS_ROUNDS times: the
    # machine's speed drifts over minutes, and a proxy measured a minute after
    # another would carry that drift into the ratios. The summary averages rounds.
    local names=(nginx haproxy berth) ports=() pids=() p tp i round
    for proxy in "${names[@]}"; do
        p=$(free_port)
        case $proxy in
            nginx) start_nginx 1 "$p" tls ;;
            haproxy) start_haproxy 1 "$p" tls ;;
            berth) tp=$p; p=$(free_port); start_berth_tls "$tp" "$p" ;;
        esac
        ports+=("$p")
        pids+=("${PIDS[-1]}")
        echo "$proxy negotiates $(openssl s_client -connect "127.0.0.1:$p" -servername "$HOST" </dev/null 2>/dev/null |
            awk '/^New,/ {print $2, $NF; exit}')"
    done
    for round in $(seq "$TLS_ROUNDS"); do
        echo "round $round of $TLS_ROUNDS"
        for load in $TLS_LOADS; do
            for i in 0 1 2; do
                case $load in
                    h1) run_url "${names[i]} https (1 thread)" "https://127.0.0.1:${ports[i]}/" "${pids[i]}" ;;
                    h2) run_h2 "${names[i]} h2 (1 thread)" "${ports[i]}" "${pids[i]}" ;;
                    full) run_handshakes "${names[i]} handshakes full (1 thread)" "${ports[i]}" "${pids[i]}" -new ;;
                    resumed) run_handshakes "${names[i]} handshakes resumed (1 thread)" "${ports[i]}" "${pids[i]}" -reuse ;;
                    *) echo "TLS_LOADS: unknown load $load (say h1, h2, full or resumed)" >&2; exit 1 ;;
                esac
            done
        done
    done
    for i in 0 1 2; do kill "${pids[i]}" 2>/dev/null || true; done
    if [ -n "$own" ]; then unpin; fi
}

if [ "$ONLY" != tls ]; then plain_rows; fi
if [ "$ONLY" != plain ]; then tls_rows; fi

echo
python3 - "$RESULTS" "$CORES" "$ONLY" <<'EOF'
import sys
# A row measured in several rounds counts as the mean of its rounds.
runs, cpu_runs = {}, {}
for line in open(sys.argv[1]):
    name, rps, us = line.strip().split("|")
    runs.setdefault(name, []).append(float(rps))
    if us != "-":
        cpu_runs.setdefault(name, []).append(float(us))
r = {name: sum(v) / len(v) for name, v in runs.items()}
cpu = {name: sum(v) / len(v) for name, v in cpu_runs.items()}
cores, only = sys.argv[2], sys.argv[3]
for kind in ["https", "h2", "handshakes full", "handshakes resumed"]:
    b = f"berth {kind} (1 thread)"
    if b not in r:
        continue
    unit = "handshake" if kind.startswith("handshakes") else "request"
    print(f"{kind} (1 thread): rate berth/haproxy {r[b] / r[f'haproxy {kind} (1 thread)']:.2f}x, "
          f"berth/nginx {r[b] / r[f'nginx {kind} (1 thread)']:.2f}x; CPU per {unit} "
          f"berth/haproxy {cpu[b] / cpu[f'haproxy {kind} (1 thread)']:.2f}x, "
          f"berth/nginx {cpu[b] / cpu[f'nginx {kind} (1 thread)']:.2f}x")
    h = f"haproxy {kind} (1 thread)"
    if len(cpu_runs[b]) > 1:
        per_round = " ".join(f"{x / y:.2f}x" for x, y in zip(cpu_runs[b], cpu_runs[h]))
        print(f"    CPU per {unit} berth/haproxy by round: {per_round}")
if only == "tls":
    sys.exit()
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
