#!/usr/bin/env bash
# Deploy speed and idle memory of berth, against the same steps done by hand
# in the same run. Prints medians and the ratio; record results in BENCHMARKS.md.
#
#   berth:    `berth deploy` of examples/hello (warm build cache) → first 200 through the router
#   baseline: `docker build` + `docker run` on a network + first 200 from the container
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
[ -x /bin/busybox ] || { echo "apt-get install busybox-static" >&2; exit 1; }
cargo build --release --quiet
BERTH=$PWD/target/release/berth
WORK=$(mktemp -d)
API=127.0.0.1:$((20000 + RANDOM % 10000))
HTTP_PORT=$((30000 + RANDOM % 10000))
APP=bench$RANDOM
NET=berth-bench-$RANDOM
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  docker ps -aq --filter "label=berth.app=$APP" | xargs -r docker rm -f >/dev/null
  docker images -q --filter "label=berth.app=$APP" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker network ls -q --filter "label=berth.app=$APP" | xargs -r docker network rm >/dev/null 2>&1 || true
  docker rm -f berth-bench-baseline >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  docker rmi -f berth-bench/hello >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cp -r examples/hello "$WORK/src"
cp /bin/busybox "$WORK/src/busybox"

"$BERTH" server --data "$WORK/data" --api "$API" --http "127.0.0.1:$HTTP_PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://$API/health" >/dev/null && break; sleep 0.1; done
export BERTH_HOST=http://$API BERTH_TOKEN=$(cat "$WORK/data/admin.token")
"$BERTH" apps create "$APP" >/dev/null
"$BERTH" deploy "$WORK/src" -a "$APP" >/dev/null   # warms the build cache

now() { date +%s.%N; }
wait_200() { # host url
  for _ in $(seq 1 1000); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $1" "$2")" = 200 ] && return 0
    sleep 0.01
  done
  return 1
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

berth_times=(); base_times=()
docker network create "$NET" >/dev/null
for i in $(seq 1 "$RUNS"); do
  t0=$(now)
  "$BERTH" deploy "$WORK/src" -a "$APP" >/dev/null
  wait_200 "web.$APP.localhost" "http://127.0.0.1:$HTTP_PORT/"
  berth_times+=("$(echo "$(now) - $t0" | bc)")

  docker rm -f berth-bench-baseline >/dev/null 2>&1 || true
  t0=$(now)
  DOCKER_BUILDKIT=0 docker build -q -t berth-bench/hello "$WORK/src" >/dev/null
  docker run -d --name berth-bench-baseline --network "$NET" berth-bench/hello >/dev/null
  ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" berth-bench-baseline)
  wait_200 "x" "http://$ip:8080/"
  base_times+=("$(echo "$(now) - $t0" | bc)")
done
b=$(printf '%s\n' "${berth_times[@]}" | median)
d=$(printf '%s\n' "${base_times[@]}" | median)
sleep 5
rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
echo "runs:                       $RUNS"
echo "berth deploy → first 200:   ${b}s (median)"
echo "docker build+run → 200:     ${d}s (median)"
echo "ratio berth/baseline:       $(echo "scale=2; $b / $d" | bc)x (target < 1.5x)"
echo "idle server RSS:            $((rss / 1024)) MiB (${rss} KiB; target < 30 MiB)"
