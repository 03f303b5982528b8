#!/usr/bin/env bash
# Makes this machine able to run berth's tests: installs the Debian packages
# they need when missing (as root) and starts dockerd if no engine answers.
# scripts/test.sh and CI run it first; running it twice costs nothing.
set -euo pipefail

log() { printf '==> %s\n' "$*"; }

missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
# Test apps are built FROM scratch from Debian's static busybox.
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# CI checks module circles with a Python script.
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# scripts/schemathesis.sh installs schemathesis into a venv (Debian's venv
# needs ensurepip from python3-venv).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# tests/tls.rs speaks HTTPS with curl and makes a key with openssl.
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# tests/engine_restart.rs runs a private dockerd on a bridge it makes with `ip`
# and signals it with the kill program.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
{ [ -x /usr/bin/kill ] || [ -x /bin/kill ]; } || missing+=(procps)
# tests/console.rs drives the web console in headless Chromium through chromedriver.
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
# tests/acme.rs runs Let's Encrypt's test CA.
{ command -v pebble >/dev/null 2>&1 || [ -x /usr/bin/pebble ]; } || missing+=(pebble)
# scripts/testssl.sh (run by .ci/run) checks the HTTPS router with Debian's testssl.sh.
command -v testssl >/dev/null 2>&1 || missing+=(testssl.sh)
# tests/metrics.rs scrapes berth with a real Prometheus.
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# tests/drains.rs sends log drains to its own rsyslogd (TCP, and TLS through gnutls).
{ command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ]; } || missing+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || missing+=(rsyslog-gnutls)
# tests/resources.rs builds postgres, redis and psql images FROM scratch from
# Debian's packages (scripts/debian-images.sh; their services are not started).
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/pg_dump ] || missing+=(postgresql-client-15)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/bin/redis-cli ] || missing+=(redis-tools)
# scripts/deb-test.sh builds berth's .deb (cargo-deb reads the libraries it
# needs with dpkg-shlibdeps) and a bookworm rootfs to install it in.
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the tests need these Debian packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run this as root" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Only the binaries are wanted: no postgres or redis service is started
  # (policy-rc.d tells the packages' scripts not to start services).
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  apt-get install -y -qq "${missing[@]}" >/dev/null
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

if ! timeout 10 docker info >/dev/null 2>&1; then
  log "no Docker engine answers; starting dockerd"
  (dockerd >/tmp/berth-test-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 10 docker info >/dev/null 2>&1 || { cat /tmp/berth-test-dockerd.log; echo "dockerd did not start" >&2; exit 1; }
fi
log "engine: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

