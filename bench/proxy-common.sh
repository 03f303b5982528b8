# Sourced by the router benchmarks (router.sh, router-instructions.sh,
# router-metrics.sh): a work dir removed on exit with every process started
# (PIDS), free ports, waiting for a listener, the nginx backend, and a route
# table pushed to a berth router's control socket.

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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
