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
PREFIX=scale$RANDOM
COUNT=2
. bench/apps.sh
echo "deployed $APPS apps × 2 processes in $DEPLOY_SECS s"

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
