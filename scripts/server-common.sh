# What the scripts that run a real `berth server` share (sourced by
# scripts/schemathesis.sh and scripts/testssl.sh): logging, free loopback
# ports, the berth binary, and starting and stopping the server with its
# router. The caller sets BERTH, WORK and DATA.

log() { printf '==> %s\n' "$*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Builds berth when $BERTH is missing.
need_berth() {
  if [ ! -x "$BERTH" ]; then
    log "cargo build -p berth"
    cargo build -p berth --quiet
  fi
}

# start_server API_PORT HTTP_PORT [FLAGS...]: `berth server` on $DATA, its log
# in $WORK/server.log (RUST_LOG from SERVER_LOG, default warn); sets SERVER_PID
# and returns once the API answers.
SERVER_PID=
start_server() {
  local api=$1 http=$2
  shift 2
  HOME=$WORK XDG_CONFIG_HOME=$WORK/config RUST_LOG=${SERVER_LOG:-warn} \
    "$BERTH" server --data "$DATA" --api "127.0.0.1:$api" --http "127.0.0.1:$http" "$@" \
    >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$api/health" 2>/dev/null && return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/server.log"; exit 1; fi
    sleep 0.1
  done
  echo "berth server did not answer in 30 s" >&2
  exit 1
}

# Stops the server and its router (which outlives the server by design).
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -f "$DATA/router.pid" ]; then kill -KILL "$(cat "$DATA/router.pid")" 2>/dev/null || true; fi
}
