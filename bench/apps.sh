# Sourced by the benchmarks that need one server with many apps (scale.sh,
# console.sh): builds berth (release), starts `berth server` on random ports
# with a network pool of its own (NETWORK_POOL, a /24 per app), deploys
# examples/hello as "$PREFIX-1" ... "$PREFIX-$APPS" with COUNT processes each,
# and removes it all on exit. Sets BERTH, WORK, API, HTTP_PORT, SERVER,
# BERTH_HOST, BERTH_TOKEN and DEPLOY_SECS.
[ -x /bin/busybox ] || { echo "apt-get install busybox-static" >&2; exit 1; }
cargo build --release --quiet -p berth
BERTH=$PWD/target/release/berth
WORK=$(mktemp -d)
API=127.0.0.1:$((20000 + RANDOM % 10000))
HTTP_PORT=$((30000 + RANDOM % 10000))
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
if [ "${COUNT:-1}" != 1 ]; then
  sed -i "s/^    port: 8080\$/    port: 8080\n    scale: {count: $COUNT}/" "$WORK/src/berth.yml"
fi

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
DEPLOY_SECS=$(( $(date +%s) - start ))
