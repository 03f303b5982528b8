#!/usr/bin/env bash
# The web console with 50 apps on one server: the time each console page takes
# (signed in as admin, server-rendered from in-process API calls), against
# `GET /apps` (the JSON the CLI reads) and `GET /health` measured the same way
# in the same run. Prints p50/p99/max per page and the ratio of its p50 to
# `GET /apps`'s; the budget is 50 ms a page.
#
#   APPS=50 REQUESTS=200 bench/console.sh
#
# Each app gets its own engine network; the server gets a pool of its own
# (NETWORK_POOL, a /24 per app), as in bench/scale.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
APPS=${APPS:-50}
REQUESTS=${REQUESTS:-200}
NETWORK_POOL=${NETWORK_POOL:-10.213.0.0/16}
PREFIX=cons$RANDOM
. bench/apps.sh
echo "deployed $APPS apps in $DEPLOY_SECS s"
"$BERTH" env set GREETING=again -a "$PREFIX-1" --promote >/dev/null

python3 - "$API" "$BERTH_TOKEN" "$REQUESTS" "$PREFIX-1" <<'PY'
import sys, time, re, http.client, urllib.parse
api, token, total, app = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host, port = api.split(":")
conn = http.client.HTTPConnection(host, int(port), timeout=30)

def req(method, path, headers=None, body=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.getheaders(), r.read()

# Sign in as a browser would.
status, headers, body = req("GET", "/console/signin")
signin = [v.split(";")[0] for k, v in headers if k.lower() == "set-cookie"][0]
csrf = re.search(rb'name="_csrf" value="([0-9a-f]+)"', body).group(1).decode()
form = urllib.parse.urlencode({"token": token, "_csrf": csrf})
status, headers, _ = req("POST", "/console/signin",
    {"Cookie": signin, "Content-Type": "application/x-www-form-urlencoded"}, form)
assert status == 303, status
session = [v.split(";")[0] for k, v in headers if k.lower() == "set-cookie" and v.startswith("berth_session=")][0]

def measure(path, headers):
    status, _, _ = req("GET", path, headers)  # warm-up, and the check
    assert status == 200, (path, status)
    times = []
    for _ in range(total):
        t = time.perf_counter()
        status, _, _ = req("GET", path, headers)
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, (path, status)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1], times[-1]

bearer = {"Authorization": "Bearer " + token}
cookie = {"Cookie": session}
base = measure("/apps", bearer)
health = measure("/health", {})
rows = [("GET /health (baseline)", health), ("GET /apps JSON (baseline)", base)]
pages = ["/console/", f"/console/apps/{app}", f"/console/apps/{app}/releases",
         f"/console/apps/{app}/builds", f"/console/apps/{app}/builds/B1", f"/console/apps/{app}/env",
         f"/console/apps/{app}/volumes", f"/console/apps/{app}/timers", f"/console/apps/{app}/certs",
         f"/console/apps/{app}/logs", "/console/tokens", "/console/audit"]
for page in pages:
    rows.append(("console " + page.replace(app, "APP"), measure(page, cookie)))
print(f"{total} sequential requests per page, one keep-alive connection")
print(f"{'page':42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p50 / GET /apps':>16}")
worst = 0.0
for name, (p50, p99, mx) in rows:
    print(f"{name:42} {p50:8.2f} {p99:8.2f} {mx:8.2f} {p50 / base[0]:15.1f}x")
    if name.startswith("console"):
        worst = max(worst, p99)
print(f"slowest console page p99: {worst:.1f} ms (budget 50 ms): {'OK' if worst < 50 else 'OVER BUDGET'}")
PY
