#!/usr/bin/env bash
# Starts a berth server in the background and deploys examples/hello to it.
# Needs: a running Docker engine and Debian's busybox-static (/bin/busybox).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /bin/busybox ] || { echo "error: /bin/busybox is missing; install it with: apt-get install busybox-static" >&2; exit 1; }
cargo build --release --quiet
BERTH=$PWD/target/release/berth
DATA=${BERTH_DATA:-$PWD/.berth-demo}
if ! curl -sf http://127.0.0.1:7070/health >/dev/null 2>&1; then
  "$BERTH" server --data "$DATA" >"$DATA.log" 2>&1 &
  for _ in $(seq 1 50); do
    curl -sf http://127.0.0.1:7070/health >/dev/null 2>&1 && break
    sleep 0.2
  done
  echo "berth server started (data: $DATA, log: $DATA.log)"
fi
export BERTH_HOST=http://127.0.0.1:7070
export BERTH_TOKEN=$(cat "$DATA/admin.token")
cp /bin/busybox examples/hello/busybox
"$BERTH" apps info hello >/dev/null 2>&1 || "$BERTH" apps create hello
"$BERTH" deploy examples/hello -a hello
echo
echo "try: curl http://web.hello.localhost:8080/"
