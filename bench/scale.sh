#!/usr/bin/env bash
# 50 apps × 2 processes on one server: checks every app answers through the
# router, then measures API latency (p50/p99) of `GET /apps` and
# `GET /apps/{app}/processes` under 20 concurrent clients, against `GET /health`
# (no store, no auth) measured the same way in the same run. Counts requests lost.
#
#   APPS=50 CLIENTS=20 REQUESTS=2000 bench/scale.sh
#
# Each app gets its own engine network; dockerd's default address pools hold
# about 30, so the server gets a pool of its own (NETWORK_POOL, a /24 per app).
set -euo pipefail
cd "$(dirname "$0")/.."
APPS=${APPS:-50}
CLIENTS=${CLIENTS:-20}
REQUESTS=${REQUESTS:-2000}
NETWORK_POOL=${NETWORK_POOL:-10.212.0.0/16}
[ -x /bin/busybox ] || { echo "apt-get install busybox-static" >&2; exit 1; }
cargo build --release --quiet -p berth
BERTH=$PWD/target/release/berth
WORK=$(mktemp -d)
API=127.0.0.1:$((20000 + RANDOM % 10000))
HTTP_PORT=$((30000 + RANDOM % 10000))
PREFIX=scale$RANDOM
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  for i in $(seq 1 "$APPS"); do
    a=$PREFIX-$i
    docker ps -aq --filter "label=berth.app=$a" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter "label=berth.app=$a" | xargs -r docker network rm >/dev/null 2>&1 || true
    docker images -q --filter "label=berth.app=$a" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
cp -r examples/hello "$WORK/src"
cp /bin/busybox "$WORK/src/busybox"
sed -i 's/^    port: 8080$/    port: 8080\n    scale: {count: 2}/' "$WORK/src/berth.yml"

"$BERTH" server --data "$WORK/data" --api "$API" --http "127.0.0.1:$HTTP_PORT" \
  --network-pool "$NETWORK_POOL" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://$API/health" >/dev/null && break; sleep 0.1; done
export BERTH_HOST=http://$API BERTH_TOKEN=$(cat "$WORK/data/admin.token")
start=$(date +%s)
for i in $(seq 1 "$APPS"); do
  "$BERTH" apps create "$PREFIX-$i" >/dev/null
  "$BERTH" deploy "$WORK/src" -a "$PREFIX-$i" >/dev/null 2>"$WORK/deploy.err" || {
    cat "$WORK/deploy.err" >&2; echo "deploy of app $i failed" >&2; exit 1; }
done
echo "deployed $APPS apps × 2 processes in $(( $(date +%s) - start )) s"

unreachable=0
for i in $(seq 1 "$APPS"); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: web.$PREFIX-$i.localhost" "http://127.0.0.1:$HTTP_PORT/")
  [ "$code" = 200 ] || { unreachable=$((unreachable + 1)); echo "app $PREFIX-$i answered $code"; }
done
echo "reachable through the router: $((APPS - unreachable))/$APPS"

python3 - "$API" "$BERTH_TOKEN" "$CLIENTS" "$REQUESTS" "$PREFIX" "$APPS" <<'PY'
import sys, time, threading, http.client, random
api, token, clients, total, prefix, apps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
host, port = api.split(":")
def run(paths):
    times, lost = [], [0]
    lock = threading.Lock()
    per = total // clients
    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for _ in range(per):
            path = random.choice(paths)
            t = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Authorization": "Bearer " + token})
                r = conn.getresponse(); r.read()
                ok = r.status == 200
            except Exception:
                ok = False
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            dt = time.perf_counter() - t
            with lock:
                if ok: times.append(dt)
                else: lost[0] += 1
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    wall = time.perf_counter() - start
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))] * 1000 if times else float("nan")
    return q(0.5), q(0.99), len(times) / wall, lost[0]
base = run(["/health"])
apps_ = run(["/apps"])
ps = run([f"/apps/{prefix}-{i}/processes" for i in range(1, apps + 1)])
print(f"{clients} clients, {total} requests per route:")
for name, (p50, p99, rps, lost) in [("GET /health (baseline)", base), ("GET /apps", apps_), ("GET /apps/{app}/processes", ps)]:
    print(f"  {name:28} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  {rps:8.0f} req/s  lost {lost}")
print(f"ratio p50 /apps ÷ /health: {apps_[0] / base[0]:.1f}×, processes ÷ health: {ps[0] / base[0]:.1f}×")
PY
