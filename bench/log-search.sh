#!/usr/bin/env bash
# How fast `berth logs --grep TEXT --since 24h` searches a busy app's day of
# logs: SIZE_MIB (default 1024) of realistic log lines (router access lines,
# app output, a few events) spread over the last 24 hours, written as the
# app's segments in a real server's data dir. Times `berth logs --grep` for a
# rare string (about 10 lines) and a common one (about 6 % of the lines; all
# of them printed, then only `--tail 100`), each against `grep -c -F` over
# the same files in the same run (both from the page
# cache: the files are read once before), and prints the ratios.
#
# Needs: python3 and a release build of berth (BERTH=path, default
# target/release/berth). Uses SIZE_MIB + a little of disk in a temp dir.
#
#   bench/log-search.sh
#   SIZE_MIB=256 ROUNDS=5 bench/log-search.sh
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-3}
BERTH=${BERTH:-$(dirname "$0")/../target/release/berth}
command -v python3 >/dev/null || { echo "bench/log-search.sh needs python3" >&2; exit 1; }
[ -x "$BERTH" ] || { echo "no berth binary at $BERTH; run cargo build --release -p berth or set BERTH" >&2; exit 1; }
BERTH=$(realpath "$BERTH")

WORK=$(mktemp -d)
API=127.0.0.1:$((42000 + RANDOM % 500))
HTTP=127.0.0.1:$((42500 + RANDOM % 500))
APP=lgkbench
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  [ -f "$WORK/data/router.pid" ] && kill "$(cat "$WORK/data/router.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The retention must keep the whole day: a bound above the size.
"$BERTH" server --data "$WORK/data" --api "$API" --http "$HTTP" \
  --log-max-size "$((SIZE_MIB * 2))MiB" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://$API/health" >/dev/null 2>&1 && break; sleep 0.1; done
export BERTH_HOST=http://$API BERTH_TOKEN=$(cat "$WORK/data/admin.token")
export HOME=$WORK XDG_CONFIG_HOME=$WORK/config
"$BERTH" apps create "$APP" >/dev/null

echo "writing $SIZE_MIB MiB of log lines over the last 24 h ..."
python3 - "$WORK/data/logs/$APP" "$SIZE_MIB" <<'EOF'
import json, os, random, sys, time
dir, size_mib = sys.argv[1], int(sys.argv[2])
total = size_mib * 1024 * 1024
segment = 64 * 1024 * 1024
random.seed(7)
now = time.time()
start = now - 24 * 3600 + 60
paths = ["/", "/api/orders", "/api/orders/{}", "/api/users/{}", "/static/app.{}.js", "/health", "/api/cart"]
agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "curl/8.5.0", "Go-http-client/1.1"]
def ts(t):
    s = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%09dZ" % int((t - s) * 1e9)
def stamp(t):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(int(t)))
lines_total = total // 190
step = (now - 60 - start) / lines_total
rare_every = lines_total // 10
seq, written, n, t = 100, 0, 0, start
while written < total:
    buf, size, first = [], 0, t
    while size < segment and written + size < total:
        r = random.random()
        if n % rare_every == rare_every // 2:
            e = {"ts": ts(t), "source": "web/web-3f9a2c", "text": "payment %d failed: lgk-rare-needle card declined" % n}
        elif r < 0.55:
            p = random.choice(paths).format(random.randint(1, 99999))
            code = random.choice([200] * 30 + [201, 204, 301, 304, 404, 500])
            e = {"ts": ts(t), "source": "router", "text": '10.0.%d.%d "GET %s HTTP/1.1" %d %d %.3fms "%s"' % (random.randint(0, 255), random.randint(1, 254), p, code, random.randint(100, 90000), random.random() * 40, random.choice(agents))}
        elif r < 0.60:
            e = {"ts": ts(t), "source": "worker/worker-81d2e0", "text": "job %d done: cache miss for key user:%d after %dms" % (n, random.randint(1, 99999), random.randint(1, 900))}
        elif r < 0.999:
            e = {"ts": ts(t), "source": "web/web-3f9a2c", "text": "INFO request_id=%016x user=%d handled %s in %dms" % (random.getrandbits(64), random.randint(1, 99999), random.choice(paths).format(n), random.randint(1, 300))}
        else:
            e = {"ts": ts(t), "source": "berth", "text": "process web-3f9a2c is healthy", "service": "web"}
        line = json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n"
        buf.append(line)
        size += len(line)
        n += 1
        t += step
    name = "%08d_%s_%s.ndjson" % (seq, stamp(first), stamp(t))
    with open(os.path.join(dir, name), "w") as f:
        f.write("".join(buf))
    written += size
    seq += 1
EOF
FILES=("$WORK/data/logs/$APP"/*.ndjson)
du -sh "$WORK/data/logs/$APP" | sed 's/^/log dir: /'
cat "${FILES[@]}" >/dev/null

now_ms() { date +%s%N | cut -c1-13; }
# One timed run: prints "MS COUNT".
time_berth() {
  local t0 t1 count
  t0=$(now_ms)
  count=$("$BERTH" logs -a "$APP" --grep "$1" --since 24h --tail "$2" | wc -l)
  t1=$(now_ms)
  echo "$((t1 - t0)) $count"
}
time_grep() {
  local t0 t1 count
  t0=$(now_ms)
  count=$(grep -c -F -- "$1" "${FILES[@]}" | awk -F: '{s += $NF} END {print s}')
  t1=$(now_ms)
  echo "$((t1 - t0)) $count"
}

# The common needle twice: every match printed (352k lines for 1 GiB), and
# only the last 100 (the server still parses every candidate line).
printf '%-12s %6s %10s %10s %14s %8s\n' needle round "berth ms" "grep ms" matches ratio
for case in "rare:lgk-rare-needle:all" "common:cache miss:all" "common-tail:cache miss:100"; do
  IFS=: read -r label needle lines <<<"$case"
  for round in $(seq 1 "$ROUNDS"); do
    read -r b_ms b_count < <(time_berth "$needle" "$lines")
    read -r g_ms g_count < <(time_grep "$needle")
    ratio=$(python3 -c "print('%.2fx' % ($b_ms / max($g_ms, 1)))")
    printf '%-12s %6s %10s %10s %14s %8s\n' "$label" "$round" "$b_ms" "$g_ms" "$b_count/$g_count" "$ratio"
  done
done
