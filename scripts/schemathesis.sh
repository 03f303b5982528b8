#!/usr/bin/env bash
# The API against its own OpenAPI document: starts a real `berth server` (a
# temp data dir, free loopback ports, the real Docker engine) with its admin
# token, then runs schemathesis (from PyPI, in a venv under target/) over every
# route of GET /openapi.json with a fixed seed and a fixed number of examples.
# Checks: no 5xx answer (not_a_server_error) and every answer as the document
# says (response_schema_conformance). Exits non-zero on any failure.
#
# Left out, and why:
# - GET /apps/{app}/logs and GET /rack/logs: with `follow=true` the answer is
#   a live stream that never ends by design, so a generated request (naming an
#   existing app) would hang the run (the routes' other parameters are covered
#   by the berth-server API tests and tests/logs.rs).
# - DELETE /tokens/{id}: revoking the run's own admin token (once another admin
#   token was made by POST /tokens, the last-admin guard no longer stops it)
#   would turn every later request into a 401.
#
# Usage: scripts/schemathesis.sh [SCHEMATHESIS ARGS...]
#   e.g. `--operation-id post_apps_app_deploy --cassette-path c.yaml` to look at
#   one route's requests. EXAMPLES (default 25) per operation; BERTH the binary
#   (default target/debug/berth, built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${EXAMPLES:-25}
SEED=20261201
VENV=target/schemathesis-venv
BERTH=${BERTH:-target/debug/berth}

WORK=$(mktemp -d -t oap-schemathesis.XXXXXX)
DATA=$WORK/rack
# shellcheck source=scripts/server-common.sh
. scripts/server-common.sh

if [ ! -x "$VENV/bin/st" ]; then
  log "installing schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'schemathesis==3.39.16' 'hypothesis==6.127.0'
fi
need_berth

API_PORT=$(free_port)
HTTP_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT

cleanup() {
  local token
  token=$(cat "$DATA/admin.token" 2>/dev/null || true)
  if [ -n "$SERVER_PID" ] && [ -n "$token" ]; then
    # The apps the run made, with their containers, networks and volumes.
    for app in $(curl -fsS -H "Authorization: Bearer $token" "$API/apps" 2>/dev/null |
      python3 -c 'import json,sys; print(" ".join(a["name"] for a in json.load(sys.stdin)))' 2>/dev/null); do
      curl -fsS -o /dev/null -X DELETE -H "Authorization: Bearer $token" "$API/apps/$app?volumes=true" || true
    done
  fi
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT

log "berth server on $API (data $DATA)"
start_server "$API_PORT" "$HTTP_PORT"
TOKEN=$(cat "$DATA/admin.token")
# The document's example apps, so the explicit examples reach past "no such
# app": `shop`, and `old-shop` for DELETE /apps/{app}.
for app in shop old-shop; do
  curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$app\"}" "$API/apps"
done

# Tar bodies are sent as the bytes generated for them.
cat >"$WORK/hooks.py" <<'PY'
import schemathesis

@schemathesis.serializer("application/x-tar")
class Tar:
    def as_requests(self, context, value):
        return {"data": value if isinstance(value, bytes) else str(value).encode()}

    def as_werkzeug(self, context, value):
        return self.as_requests(context, value)
PY

log "schemathesis: $EXAMPLES examples per operation, seed $SEED"
status=0
SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$WORK timeout 300 "$VENV/bin/st" run "$API/openapi.json" \
  --experimental=openapi-3.1 \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error --checks response_schema_conformance \
  --data-generation-method all \
  --hypothesis-max-examples "$EXAMPLES" --hypothesis-seed "$SEED" \
  --hypothesis-deadline 60000 --request-timeout 20000 \
  --exclude-operation-id get_apps_app_logs --exclude-operation-id get_rack_logs --exclude-operation-id delete_tokens_id \
  --no-color --show-trace "$@" || status=$?
if [ "$status" -ne 0 ]; then
  log "schemathesis failed; the server's log:"
  tail -50 "$WORK/server.log"
fi
exit "$status"
