#!/usr/bin/env bash
# The demo's local EO mirror (static STAC catalog of generated sample scenes) on
# http://127.0.0.1:8190. DEVELOPMENT ONLY; started and stopped by deploy/demo.sh.
#
#   deploy/eo_mirror/run.sh start      generate the scenes once (cached), serve them in the background
#   deploy/eo_mirror/run.sh stop | status
#   deploy/eo_mirror/run.sh urls       the catalog, the NDVI sample Item and its COG
#
# Scenes are cached in $HPCGW_EO_MIRROR_DIR (default ~/.cache/hpcgw/eo-mirror/v<N>);
# state (pid, log) lives in $EO_MIRROR_STATE (default var/eo-mirror).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
PORT=${EO_MIRROR_PORT:-8190}
STATE=${EO_MIRROR_STATE:-var/eo-mirror}
PIDFILE=$STATE/mirror.pid
URL=http://127.0.0.1:$PORT

up() { curl -sf -o /dev/null "$URL/catalog.json"; }
alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-status}" in
  start)
    if up; then echo "EO mirror already running at $URL"; exit 0; fi
    mkdir -p "$STATE"
    echo "EO mirror scenes in $("$PY" -m deploy.eo_mirror generate)"
    nohup setsid "$PY" -m deploy.eo_mirror serve --port "$PORT" \
      >>"$STATE/mirror.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 50); do up && break; sleep 0.2; done
    up || { echo "EO mirror did not start; see $STATE/mirror.log" >&2; exit 1; }
    echo "EO mirror running at $URL/catalog.json (log: $STATE/mirror.log)"
    ;;
  stop)
    if alive; then kill "$(cat "$PIDFILE")"; echo "EO mirror stopped"
    else echo "EO mirror not running"; fi
    rm -f "$PIDFILE"
    ;;
  status)
    if up; then echo "EO mirror up at $URL/catalog.json"; else echo "EO mirror down"; exit 1; fi
    ;;
  urls) "$PY" -m deploy.eo_mirror urls --port "$PORT" ;;
  *) echo "usage: $0 start|stop|status|urls" >&2; exit 2 ;;
esac
