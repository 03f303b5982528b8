# Sourced by the router benchmarks (router.sh, router-instructions.sh,
# router-metrics.sh): a work dir removed on exit with every process started
# (PIDS), free ports, waiting for a listener, the nginx backend, a route table
# and certificates pushed to a berth router's control socket.

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# free_port: a free loopback port; with BENCH_PORTS=FIRST-LAST, the next free one in
# that range (for a machine where each user of the benchmarks has ports of its own).
free_port() {
    python3 - "${BENCH_PORTS:-}" "$WORK/next-port" <<'PY'
import socket, sys
ports, counter = sys.argv[1], sys.argv[2]
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()
if not ports:
    print(free(0))
    sys.exit()
first, last = map(int, ports.split("-"))
try:
    start = int(open(counter).read())
except (OSError, ValueError):
    start = first
for port in list(range(start, last + 1)) + list(range(first, start)):
    if free(port):
        open(counter, "w").write(str(port + 1))
        print(port)
        sys.exit()
sys.exit(f"no free port in BENCH_PORTS={ports}")
PY
}

# wait_port PORT: until something listens on PORT (at most 60 s: callgrind starts slowly).
wait_port() {
    for _ in $(seq 1200); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

# start_backend WORKERS [PIN...]: nginx answering a fixed 13-byte body on $BACKEND
# (set here, with BACKEND_PID), started under PIN (e.g. taskset -c 0) if given.
start_backend() {
    BACKEND=$(free_port)
    mkdir -p "$WORK/backend"
    cat >"$WORK/backend/nginx.conf" <<CONF
worker_processes $1;
daemon off;
pid $WORK/backend/nginx.pid;
error_log $WORK/backend/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$BACKEND reuseport;
        location / { return 200 "hello, world\n"; }
    }
}
CONF
    "${@:2}" nginx -c "$WORK/backend/nginx.conf" -p "$WORK/backend" &
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    wait_port "$BACKEND"
}

# push_table SOCKET HOST COUNT: gives the berth router on SOCKET a table of COUNT
# routed hosts, HOST the first, all to the backend (waits for the socket).
push_table() {
    python3 - "$1" "$BACKEND" "$3" "$2" <<'PY'
import json, socket, sys, time
sock, backend, hosts, host = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
routes = [{"hosts": [host if i == 0 else f"web.app{i}.example.com"], "app": f"app{i}",
           "service": "web", "backends": [[f"127.0.0.1:{backend}", f"web-{i}"]],
           "timeout_ms": 60000} for i in range(hosts)]
for _ in range(600):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        break
    except OSError:
        time.sleep(0.1)
s.sendall((json.dumps({"op": "table", "routes": routes}) + "\n").encode())
reply = json.loads(s.makefile().readline())
assert reply.get("ok"), reply
PY
}

# push_certs SOCKET HOST CERT KEY: gives the berth router on SOCKET the certificate
# for HOST in the PEM files CERT and KEY, also served to clients that name no host.
push_certs() {
    python3 - "$@" <<'PY'
import json, socket, sys
sock, host, cert, key = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
certs = [{"domains": [host], "cert_pem": open(cert).read(),
          "key_pem": open(key).read(), "default": True}]
s.sendall((json.dumps({"op": "certs", "certs": certs}) + "\n").encode())
reply = json.loads(s.makefile().readline())
assert reply.get("ok"), reply
PY
}
