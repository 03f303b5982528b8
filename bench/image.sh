#!/usr/bin/env bash
# Bytes a registry-free image deploy sends, against the whole image by hand
# (`docker save | docker load`, what one pipes over ssh), in the same run.
# Prints both and the ratio; record results in BENCHMARKS.md.
#
#   On one machine the server shares the CLI's engine, so every layer is
#   already there: this measures the best case (only manifest and config
#   travel). A server lacking some layers gets those layers' data on top.
#   BERTH=path/to/berth picks the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /bin/busybox ] || { echo "apt-get install busybox-static" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
  cargo build --release --quiet
  BERTH=$PWD/target/release/berth
fi
WORK=$(mktemp -d)
API=127.0.0.1:$((20000 + RANDOM % 10000))
HTTP_PORT=$((30000 + RANDOM % 10000))
APP=benchimg$RANDOM
IMAGE=berth-bench/image-$APP
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  docker ps -aq --filter "label=berth.app=$APP" | xargs -r docker rm -f >/dev/null
  docker images -q --filter "label=berth.app=$APP" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker network ls -q --filter "label=berth.app=$APP" | xargs -r docker network rm >/dev/null 2>&1 || true
  docker rmi -f "$IMAGE:v1" "$IMAGE:v2" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cp -r examples/hello "$WORK/src"
cp /bin/busybox "$WORK/src/busybox"
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE:v1" "$WORK/src" >/dev/null
echo "changed page $RANDOM" >"$WORK/src/www/index.html"
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE:v2" "$WORK/src" >/dev/null

"$BERTH" server --data "$WORK/data" --api "$API" --http "127.0.0.1:$HTTP_PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://$API/health" >/dev/null && break; sleep 0.1; done
export BERTH_HOST=http://$API BERTH_TOKEN=$(cat "$WORK/data/admin.token")
"$BERTH" apps create "$APP" >/dev/null
cd "$WORK"   # no berth.yml here: the default web service
sent() { sed -n 's/^==> uploading \(.*\)$/\1/p' | head -1; }
"$BERTH" deploy --image "$IMAGE:v1" -a "$APP" 2>"$WORK/v1.err" >/dev/null
"$BERTH" deploy --image "$IMAGE:v2" -a "$APP" 2>"$WORK/v2.err" >/dev/null
full=$(docker save "$IMAGE:v2" | wc -c)
echo "docker save of the image:       $full bytes"
echo "berth deploy --image (v1):      $(sent <"$WORK/v1.err")  ($(grep -o '[0-9]* of [0-9]* layers already on the server' "$WORK/v1.err" || echo 'no layer check'))"
echo "berth deploy --image (v2):      $(sent <"$WORK/v2.err")  ($(grep -o '[0-9]* of [0-9]* layers already on the server' "$WORK/v2.err" || echo 'no layer check'))"
