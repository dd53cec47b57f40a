#!/usr/bin/env bash
# `make demo`: start the gateway (SQLite, embedded worker) on 127.0.0.1:5000 if it
# is not already up, then run one echo job through the HTTP API and print its URLs.
# `deploy/demo.sh stop` stops the gateway again.
set -euo pipefail
cd "$(dirname "$0")/.."
export HPCGW_CONFIG=deploy/config/demo.yaml
run=var/demo
pidfile=$run/gateway.pid
mkdir -p "$run"

if [ "${1:-}" = stop ]; then
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null && echo "gateway stopped" || echo "gateway not running"
  rm -f "$pidfile"; exit 0
fi

install -d -m 0755 /var/lib/hpcgw/work 2>/dev/null || sudo install -d -m 0755 /var/lib/hpcgw/work

up() { curl -sf -o /dev/null http://127.0.0.1:5000/conformance; }
if up; then
  echo "gateway already running on http://127.0.0.1:5000"
else
  nohup setsid .venv/bin/hpcgw serve >"$run/gateway.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 60); do up && break; sleep 0.5; done
  up || { echo "gateway did not start; see $run/gateway.log" >&2; tail -20 "$run/gateway.log" >&2; exit 1; }
  echo "gateway started on http://127.0.0.1:5000 (log: $run/gateway.log, stop: deploy/demo.sh stop)"
fi
.venv/bin/python deploy/demo_job.py http://127.0.0.1:5000
