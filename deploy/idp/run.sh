#!/usr/bin/env bash
# Development identity provider (Keycloak stand-in): realm `gep` on http://127.0.0.1:8180.
# DEVELOPMENT ONLY, never started by default.
#
#   deploy/idp/run.sh start            start it in the background (idempotent)
#   deploy/idp/run.sh stop | status
#   deploy/idp/run.sh token alice      print an access token (password grant, client ogc-gateway)
#
# State (signing key, generated client secrets, a jwks.json copy for Slurm) lives in
# $IDP_STATE (default var/idp); the users of deploy/idp/realm-gep.json keep their ids.
# IDP_SUN_PREFIX (default gep_) prefixes the Slurm `sun` claim; it must match the
# gateway identity rule (deploy/config/demo.yaml: `gep_{preferred_username}`).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
PORT=${IDP_PORT:-8180}
STATE=${IDP_STATE:-var/idp}
PIDFILE=$STATE/idp.pid
URL=http://127.0.0.1:$PORT/realms/gep

up() { curl -sf -o /dev/null "$URL/.well-known/openid-configuration"; }
alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-status}" in
  start)
    if up; then echo "identity provider already running at $URL"; exit 0; fi
    mkdir -p "$STATE"
    nohup setsid "$PY" -m deploy.idp.server --port "$PORT" --state-dir "$STATE" \
      --sun-prefix "${IDP_SUN_PREFIX-gep_}" \
      >>"$STATE/idp.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 50); do up && break; sleep 0.2; done
    up || { echo "identity provider did not start; see $STATE/idp.log" >&2; exit 1; }
    echo "identity provider running at $URL (log: $STATE/idp.log)"
    ;;
  stop)
    if alive; then kill "$(cat "$PIDFILE")"; echo "identity provider stopped"
    else echo "identity provider not running"; fi
    rm -f "$PIDFILE"
    ;;
  status)
    if up; then echo "identity provider up at $URL"; else echo "identity provider down"; exit 1; fi
    ;;
  token)
    user=${2:?usage: run.sh token USER [PASSWORD]}
    curl -sf -d grant_type=password -d client_id=ogc-gateway -d "username=$user" \
      -d "password=${3:-$user}" "$URL/protocol/openid-connect/token" |
      "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
    ;;
  *) echo "usage: $0 start|stop|status|token USER [PASSWORD]" >&2; exit 2 ;;
esac
