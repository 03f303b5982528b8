#!/usr/bin/env bash
# debian-images.sh - test images for resources, built FROM scratch out of Debian's own binaries
# (this machine reaches no image registry). Each image follows the interface of the official
# image of the same name, so code written against it works with the real thing:
#   postgres: POSTGRES_USER [postgres], POSTGRES_PASSWORD, POSTGRES_DB [$POSTGRES_USER],
#             PGDATA [/var/lib/postgresql/data], port 5432, initialises an empty data dir once.
#   redis:    port 6379, data in /data, `redis-server` arguments as CMD.
#   psql:     busybox + psql/pg_dump/pg_restore/pg_isready + redis-cli, for app fixtures and checks.
# Usage: debian-images.sh postgres|redis|psql|all [TAG_PREFIX]   (default prefix: berth-test/)
# Installs the Debian packages it needs (postgresql-15, postgresql-client-15, redis-server,
# busybox-static) without starting their services.
set -euo pipefail
what=${1:-all}; PFX=${2:-berth-test/}
need() { local missing=(); for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; }
# copy FILE... into ROOT with the shared libraries ldd names
copy_bins() { local root=$1; shift; local f lib
  for f in "$@"; do mkdir -p "$root$(dirname "$f")"; cp -L "$f" "$root$f"
    for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do mkdir -p "$root$(dirname "$lib")"; cp -Ln "$lib" "$root$lib" 2>/dev/null || true; done
  done; }
base_root() { local root=$1
  mkdir -p "$root"/{bin,etc,tmp,var/run,root}; chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"; for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\nredis:x:998:998:redis:/data:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\npostgres:x:999:\nredis:x:998:\nnogroup:x:65534:\n' > "$root/etc/group"; }
import() { # ROOT TAG CMD-JSON [ENV...]
  local root=$1 tag=$2 cmd=$3; shift 3; local changes=(--change "CMD $cmd")
  for e in "$@"; do changes+=(--change "ENV $e"); done
  tar -C "$root" -c . | docker import "${changes[@]}" - "$tag" >/dev/null; echo "built $tag"; }

build_postgres() {
  need busybox-static postgresql-15; local v=15 root; root=$(mktemp -d)
  base_root "$root"
  copy_bins "$root" /usr/lib/postgresql/$v/bin/{postgres,initdb,pg_ctl,pg_isready,psql,pg_dump,pg_restore}
  mkdir -p "$root/usr/lib/postgresql/$v/lib" "$root/usr/share/postgresql" "$root/var/lib/postgresql" "$root/var/run/postgresql"
  cp -a /usr/lib/postgresql/$v/lib/. "$root/usr/lib/postgresql/$v/lib/"
  cp -a /usr/share/postgresql/$v "$root/usr/share/postgresql/"
  for so in "$root"/usr/lib/postgresql/$v/lib/*.so; do for lib in $(ldd "$so" 2>/dev/null | grep -o '/[^ ]*'); do mkdir -p "$root$(dirname "$lib")"; cp -Ln "$lib" "$root$lib" 2>/dev/null || true; done; done
  cat > "$root/docker-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
: "${PGDATA:=/var/lib/postgresql/data}"; : "${POSTGRES_USER:=postgres}"; : "${POSTGRES_DB:=$POSTGRES_USER}"
B=/usr/lib/postgresql/15/bin
mkdir -p "$PGDATA" /var/run/postgresql; chown -R postgres:postgres "$PGDATA" /var/run/postgresql; chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "error: POSTGRES_PASSWORD is not set" >&2; exit 1; }
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pw; chown postgres /tmp/pw
  su postgres -s /bin/sh -c "$B/initdb -D '$PGDATA' --username='$POSTGRES_USER' --pwfile=/tmp/pw --auth-local=trust --auth-host=scram-sha-256 --locale=C --encoding=UTF8" >/dev/null
  rm -f /tmp/pw
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\";" | su postgres -s /bin/sh -c "$B/postgres --single -D '$PGDATA' postgres" >/dev/null
  fi
  echo "database initialised in $PGDATA"
fi
exec su postgres -s /bin/sh -c "exec $B/postgres -D '$PGDATA' -c listen_addresses='*'"
SH
  chmod +x "$root/docker-entrypoint.sh"
  import "$root" "${PFX}postgres:15" '["/docker-entrypoint.sh"]' "PGDATA=/var/lib/postgresql/data" "PATH=/usr/lib/postgresql/15/bin:/bin"
  rm -rf "$root"; }

build_redis() {
  need busybox-static redis-server; local root; root=$(mktemp -d)
  base_root "$root"; copy_bins "$root" /usr/bin/redis-server; mkdir -p "$root/data"
  import "$root" "${PFX}redis:7" '["/usr/bin/redis-server","--bind","0.0.0.0","--protected-mode","no","--dir","/data"]'
  rm -rf "$root"; }

build_psql() {
  need busybox-static postgresql-client-15 redis-tools; local root; root=$(mktemp -d)
  base_root "$root"; copy_bins "$root" /usr/lib/postgresql/15/bin/{psql,pg_dump,pg_restore,pg_isready} /usr/bin/redis-cli
  import "$root" "${PFX}psql:15" '["/bin/sh"]' "PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin"
  rm -rf "$root"; }

case $what in
  postgres) build_postgres ;; redis) build_redis ;; psql) build_psql ;;
  all) build_postgres; build_redis; build_psql ;;
  *) echo "usage: $0 postgres|redis|psql|all [TAG_PREFIX]" >&2; exit 2 ;;
esac
