#!/usr/bin/env bash
# The Debian package, tested as a user installs it: builds berth's .deb with
# cargo-deb from the debug binary the tests built (no release build), installs
# it with `dpkg -i` in a throwaway bookworm container (no systemd in it, like
# many containers and build boxes), starts the server the way the package's
# postinst says to, deploys a FROM-scratch busybox app with `berth deploy` as
# root and fetches it through the router on 127.0.0.1. Then reinstalls (the
# flags and the admin token stay), removes (the data stays) and purges (the
# data goes). Then the same package in a container whose PID 1 is systemd:
# installing starts berth.service and prints the API's URL and the admin
# token, root's CLI reaches the server, an upgrade restarts it and keeps the
# token, removing stops it, purging deletes the data.
#
# The containers are made from a bookworm rootfs that debootstrap builds once
# (a few minutes) and `docker import`s as $IMAGE; docker.io and systemd are
# installed in it then, so `dpkg -i` needs no network later. The first
# container shares the host's network and Docker socket: berth inside it
# drives the host's engine, and its router listens on the host's loopback.
# The systemd one has a network of its own (the unit's default ports stay
# inside it) and the host's Docker socket.
#
# Usage: scripts/deb-test.sh            (CI runs it after the tests)
#   BERTH: the binary to package (default target/debug/berth, built when missing)
#   KEEP=1: leave the container and its log for a look after a failure
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=berth-test/debian-bookworm:2
NAME=berthdeb-install
SYSTEMD_NAME=berthdeb-systemd
APP=berthdeb
API_PORT=19100
HTTP_PORT=19101
DOMAIN=deb.localhost
BERTH=${BERTH:-target/debug/berth}
OUT=$PWD/target/berthdeb

log() { printf '==> [%3ss] %s\n' "$SECONDS" "$*"; }
fail() { printf 'deb-test: %s\n' "$*" >&2; exit 1; }
in_box() { docker exec -i "$NAME" "$@"; }

started=$SECONDS
WORK=$(mktemp -d /tmp/berthdeb-XXXXXX)
ROOTFS=

cleanup() {
  local status=$?
  if [ -n "$ROOTFS" ]; then
    umount "$ROOTFS/proc" 2>/dev/null || true
    rm -rf "$ROOTFS"
  fi
  if [ "$status" -ne 0 ] && docker inspect "$NAME" >/dev/null 2>&1; then
    log "failed; the server's log:"
    docker exec "$NAME" sh -c 'tail -40 /root/berth-server.log' 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && docker inspect "$SYSTEMD_NAME" >/dev/null 2>&1; then
    log "failed; berth.service's journal:"
    docker exec "$SYSTEMD_NAME" journalctl -u berth.service -n 40 --no-pager 2>/dev/null || true
  fi
  if [ "${KEEP:-}" != 1 ]; then
    # Killing the container ends the server and its router (they run in it).
    docker rm -f "$NAME" "$SYSTEMD_NAME" >/dev/null 2>&1 || true
    # The app's objects on the host's engine, if `berth apps delete` did not
    # get to remove them.
    docker ps -aq --filter "label=berth.app=$APP" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter "label=berth.app=$APP" | xargs -r docker network rm >/dev/null 2>&1 || true
    docker images -q --filter "label=berth.app=$APP" | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT

# A bookworm rootfs from debootstrap, with docker.io (the package's
# dependency) and systemd installed but not started, imported as $IMAGE.
build_image() {
  [ "$(id -u)" -eq 0 ] || fail "building $IMAGE (debootstrap, chroot) needs root: run this as root once"
  command -v debootstrap >/dev/null 2>&1 || fail "debootstrap is missing: run scripts/setup-test-host.sh (as root)"
  ROOTFS=$(mktemp -d /tmp/berthdeb-rootfs-XXXXXX)
  log "debootstrap bookworm into $ROOTFS (once; cached as $IMAGE)"
  debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed (see above)"; }
  mount -t proc proc "$ROOTFS/proc"
  # Services are not started in the chroot (policy-rc.d), only installed.
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
  chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
  chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io systemd systemd-sysv \
    >"$WORK/docker-io.log" 2>&1 || { tail -20 "$WORK/docker-io.log"; fail "installing docker.io and systemd in the rootfs failed"; }
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
  chroot "$ROOTFS" apt-get clean
  umount "$ROOTFS/proc"
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/*
  tar -C "$ROOTFS" -c . | docker import --change 'CMD ["sleep", "infinity"]' - "$IMAGE" >/dev/null
  rm -rf "$ROOTFS"
  ROOTFS=
}

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  t=$SECONDS
  build_image
  log "built $IMAGE in $((SECONDS - t)) s"
fi
[ "${1:-}" = image ] && exit 0

# cargo-deb, installed once into ~/.cargo/bin (like cargo-machete in CI).
command -v cargo-deb >/dev/null 2>&1 || { log "cargo install cargo-deb"; cargo install --locked --quiet cargo-deb; }
if [ ! -x "$BERTH" ]; then
  log "cargo build -p berth"
  cargo build -p berth --quiet
fi

# The debug binary the tests use, copied (cargo-deb strips it in place) to
# where cargo-deb's asset (target/release/berth) looks for it, so nothing is
# compiled again.
log "cargo deb (the debug binary, stripped)"
mkdir -p "$OUT/release"
cp "$BERTH" "$OUT/release/berth"
CARGO_TARGET_DIR=$OUT cargo deb -p berth --no-build --fast --output "$WORK/berth.deb" >"$WORK/cargo-deb.log" 2>&1 ||
  { cat "$WORK/cargo-deb.log"; fail "cargo deb failed"; }
log "package: $(du -h "$WORK/berth.deb" | cut -f1)"

# What the package holds and needs.
deps=$(dpkg-deb -f "$WORK/berth.deb" Depends)
case $deps in *"docker.io | docker-ce"*) ;; *) fail "Depends is \"$deps\": docker.io | docker-ce is missing" ;; esac
files=$(dpkg-deb -c "$WORK/berth.deb")
for f in ./usr/bin/berth ./usr/lib/systemd/system/berth.service ./usr/lib/systemd/system/berth-agent.service; do
  grep -q " $f\$" <<<"$files" || fail "the package lacks $f"
done

log "container $NAME ($IMAGE, host network, host Docker socket)"
docker rm -f "$NAME" >/dev/null 2>&1 || true
mkdir -p "$WORK/app"
cp -r examples/hello/. "$WORK/app/"
cp /bin/busybox "$WORK/app/busybox"
sed -i "s/^app: hello$/app: $APP/" "$WORK/app/berth.yml"
docker run -d --name "$NAME" --network host \
  -v /var/run/docker.sock:/var/run/docker.sock -v "$WORK:/berthdeb" "$IMAGE" sleep infinity >/dev/null

log "dpkg -i"
in_box dpkg -i /berthdeb/berth.deb >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; fail "dpkg -i failed"; }
# Without systemd, postinst says how to start the server; that is what runs it here.
start=$(sed -n "s/.*run \`\(sh -c '[^']*'\)\`.*/\1/p" "$WORK/dpkg.log")
[ -n "$start" ] || { cat "$WORK/dpkg.log"; fail "postinst did not say how to start the server without systemd"; }
in_box test -f /etc/berth/server.env || fail "postinst wrote no /etc/berth/server.env"
[ "$(in_box stat -c %a /var/lib/berth)" = 700 ] || fail "/var/lib/berth is not 0700"

log "berth install -- FLAGS (the package's unit stays; the flags change)"
in_box berth install -- --api "127.0.0.1:$API_PORT" --http "127.0.0.1:$HTTP_PORT" --domain "$DOMAIN" \
  >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "berth install -- FLAGS failed"; }
in_box grep -q "^BERTH_FLAGS=\"--api 127.0.0.1:$API_PORT " /etc/berth/server.env || fail "the flags were not written"

log "start: $start"
# exec keeps the shell's pid for the server, so it can be stopped (minbase has no pgrep).
docker exec -d "$NAME" sh -c "echo \$\$ >/root/server.pid; exec $start >/root/berth-server.log 2>&1"
api=http://127.0.0.1:$API_PORT
for _ in $(seq 150); do curl -fsS -o /dev/null "$api/health" 2>/dev/null && break; sleep 0.2; done
curl -fsS -o /dev/null "$api/health" || fail "the server did not answer on $api"
in_box grep -q "admin token: berth_" /root/berth-server.log || fail "the server printed no admin token"
token=$(in_box cat /var/lib/berth/admin.token)

log "berth deploy as root (the CLI config the server wrote)"
in_box sh -c "cd /berthdeb/app && berth apps create $APP && berth deploy" >"$WORK/deploy.log" 2>&1 ||
  { cat "$WORK/deploy.log"; fail "berth deploy failed"; }
host=web.$APP.$DOMAIN
page=$(curl -fsS -H "Host: $host" "http://127.0.0.1:$HTTP_PORT/") || fail "the router did not serve $host"
grep -q "Hello from berth!" <<<"$page" || fail "$host answered: $page"
log "served $host through the router on 127.0.0.1:$HTTP_PORT"

in_box berth apps delete "$APP" --yes >/dev/null
# The router outlives the server by design: it is stopped too.
in_box sh -c 'kill -TERM "$(cat /root/server.pid)"; kill -KILL "$(cat /var/lib/berth/router.pid)"' || true

log "dpkg -i again (an upgrade keeps the flags and the data)"
in_box dpkg -i /berthdeb/berth.deb >"$WORK/dpkg2.log" 2>&1 || { cat "$WORK/dpkg2.log"; fail "reinstalling failed"; }
in_box grep -q -- "--domain $DOMAIN" /etc/berth/server.env || fail "reinstalling lost the flags"
[ "$(in_box cat /var/lib/berth/admin.token)" = "$token" ] || fail "reinstalling changed the admin token"

log "dpkg -r keeps the data; dpkg -P deletes it"
in_box dpkg -r berth >"$WORK/remove.log" 2>&1 || { cat "$WORK/remove.log"; fail "dpkg -r failed"; }
in_box test ! -e /usr/bin/berth || fail "dpkg -r left /usr/bin/berth"
in_box test -f /var/lib/berth/admin.token || fail "dpkg -r deleted the data"
in_box dpkg -P berth >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; fail "dpkg -P failed"; }
in_box test ! -e /var/lib/berth || fail "dpkg -P left /var/lib/berth"
in_box test ! -e /etc/berth || fail "dpkg -P left /etc/berth"

log "under systemd: dpkg -i starts berth.service and prints the admin token"
# systemd as PID 1 of an unprivileged container: it needs the cgroup tree
# (read-only) and a tmpfs /run. The engine is the host's (the server does not
# start without one): docker.service and docker.socket are masked (a unit
# file that is /dev/null), so the container's systemd never runs a dockerd or
# binds the socket's path.
docker run -d --name "$SYSTEMD_NAME" -v /sys/fs/cgroup:/sys/fs/cgroup:ro --tmpfs /run --tmpfs /run/lock \
  -v /dev/null:/etc/systemd/system/docker.service:ro -v /dev/null:/etc/systemd/system/docker.socket:ro \
  -v /var/run/docker.sock:/var/run/docker.sock -v "$WORK:/berthdeb" "$IMAGE" /lib/systemd/systemd >/dev/null
in_sd() { docker exec -i "$SYSTEMD_NAME" "$@"; }
for _ in $(seq 100); do
  case $(in_sd systemctl is-system-running 2>/dev/null) in running | degraded) break ;; esac
  sleep 0.2
done
case $(in_sd systemctl is-system-running 2>/dev/null) in
  running | degraded) ;;
  *) docker logs "$SYSTEMD_NAME" 2>&1 | tail -20; fail "systemd did not boot in the container (see its log above)" ;;
esac
in_sd dpkg -i /berthdeb/berth.deb >"$WORK/sd-dpkg.log" 2>&1 || { cat "$WORK/sd-dpkg.log"; fail "dpkg -i under systemd failed"; }
grep -q "berth.service is running; the API is at http://127.0.0.1:7070" "$WORK/sd-dpkg.log" ||
  { cat "$WORK/sd-dpkg.log"; fail "postinst did not say where the API is"; }
token=$(in_sd cat /var/lib/berth/admin.token)
grep -q "admin token: $token " "$WORK/sd-dpkg.log" || { cat "$WORK/sd-dpkg.log"; fail "postinst did not print the admin token"; }
in_sd berth apps >/dev/null || fail "root's CLI cannot reach the server berth.service runs"
pid=$(in_sd systemctl show -p MainPID --value berth.service)
in_sd dpkg -i /berthdeb/berth.deb >"$WORK/sd-dpkg2.log" 2>&1 || { cat "$WORK/sd-dpkg2.log"; fail "reinstalling under systemd failed"; }
[ "$(in_sd systemctl show -p MainPID --value berth.service)" != "$pid" ] || fail "an upgrade did not restart berth.service"
[ "$(in_sd cat /var/lib/berth/admin.token)" = "$token" ] || fail "an upgrade changed the admin token"
in_sd berth apps >/dev/null || fail "the server did not come back after the upgrade"
in_sd dpkg -r berth >/dev/null 2>&1 || fail "dpkg -r under systemd failed"
! in_sd systemctl is-active --quiet berth.service || fail "dpkg -r left berth.service running"
in_sd test -f /var/lib/berth/admin.token || fail "dpkg -r deleted the data"
in_sd dpkg -P berth >/dev/null 2>&1 || fail "dpkg -P under systemd failed"
in_sd test ! -e /var/lib/berth || fail "dpkg -P left /var/lib/berth"

log "the package works ($((SECONDS - started)) s)"
