#!/usr/bin/env bash
# Keycloak for development and tests: realm `gep` (deploy/keycloak/realm-gep.json) on
# http://127.0.0.1:8180, dev mode (start-dev, embedded H2), loopback only.
# DEVELOPMENT ONLY: fixed dev passwords, generated secrets, HTTP.
#
#   deploy/keycloak/keycloak.sh install          fetch (Maven) and unpack the distribution, once
#   deploy/keycloak/keycloak.sh start            start it in the background and wait until ready
#   deploy/keycloak/keycloak.sh stop | status
#   deploy/keycloak/keycloak.sh token USER [PW]  an access token (password grant, client ogc-gateway)
#   deploy/keycloak/keycloak.sh jwks FILE        write the realm's JWKS to FILE (Slurm jwks=)
#   deploy/keycloak/keycloak.sh reset            stop and forget the realm state (next start re-imports)
#
# Environment: KC_VERSION (default below), KC_PORT (8180), KC_HEAP (JAVA_OPTS_KC_HEAP,
# default "-Xms64m -Xmx512m"), KC_CACHE (~/.cache/hpcgw/keycloak), KC_STATE (var/keycloak).
#
# The distribution comes from Maven (org.keycloak:keycloak-quarkus-dist, tar.gz) and is
# unpacked once per version into $KC_CACHE/<version>; that unpacked copy is also where
# Quarkus keeps its first-start build. Per checkout, $KC_STATE holds the generated
# secrets (hpcgw-sync.secret, gep-portal.secret, admin.password: the master realm's
# bootstrap admin `hpcgw-admin`), the H2 database (data/) and the log. The realm file is
# imported on the first start; the database is kept across restarts (same keys, same
# user ids) until the realm file or a secret changes, or `reset`.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${KC_VERSION:-26.7.3}
PORT=${KC_PORT:-8180}
CACHE=${KC_CACHE:-$HOME/.cache/hpcgw/keycloak}
STATE=${KC_STATE:-$PWD/var/keycloak}
HOME_DIR=$CACHE/$VERSION/keycloak-$VERSION
REALM_FILE=deploy/keycloak/realm-gep.json
URL=http://127.0.0.1:$PORT
PIDFILE=$STATE/keycloak.pid
LOG=$STATE/keycloak.log

up() { curl -sf -o /dev/null "$URL/realms/gep/.well-known/openid-configuration"; }
alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

install_dist() {
  [ -x "$HOME_DIR/bin/kc.sh" ] && return 0
  if ! command -v mvn >/dev/null || ! command -v java >/dev/null; then
    echo "== installing Maven and a Java runtime (Debian packages maven, default-jre-headless)"
    local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven default-jre-headless
  fi
  local dl=$CACHE/$VERSION.download
  echo "== fetching org.keycloak:keycloak-quarkus-dist:$VERSION (tar.gz, ~160 MB) with Maven"
  mkdir -p "$dl"
  mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$VERSION:tar.gz" \
    -DoutputDirectory="$dl" -Dmdep.overWriteReleases=true
  mkdir -p "$CACHE/$VERSION.tmp"
  tar -xzf "$dl/keycloak-quarkus-dist-$VERSION.tar.gz" -C "$CACHE/$VERSION.tmp"
  rm -rf "$CACHE/$VERSION" "$dl"
  mv "$CACHE/$VERSION.tmp" "$CACHE/$VERSION"
  echo "Keycloak $VERSION unpacked in $CACHE/$VERSION"
}

secret() {  # a generated secret, kept per checkout
  local file=$STATE/$1
  [ -s "$file" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$file")
  cat "$file"
}

start() {
  if up; then
    local used
    used=$(readlink "$HOME_DIR/data" 2>/dev/null || true)
    # compared resolved: a worktree's var/keycloak may be a symlink to the same state
    if [ -n "$used" ] && [ "$(realpath -m "$used")" != "$(realpath -m "$STATE/data")" ]; then
      echo "Keycloak at $URL runs with the realm state of another checkout ($used):" \
        "its secrets are not in $STATE. Stop it there first:" \
        "KC_STATE=${used%/data} $0 stop" >&2
      exit 1
    fi
    echo "Keycloak already running at $URL"; return 0
  fi
  install_dist
  mkdir -p "$STATE"
  export HPCGW_SYNC_SECRET HPCGW_PORTAL_SECRET KC_BOOTSTRAP_ADMIN_PASSWORD
  HPCGW_SYNC_SECRET=$(secret hpcgw-sync.secret)
  HPCGW_PORTAL_SECRET=$(secret gep-portal.secret)
  KC_BOOTSTRAP_ADMIN_PASSWORD=$(secret admin.password)
  # A changed realm file or secret means a fresh database (an import never overwrites).
  local stamp
  stamp=$(cat "$REALM_FILE" "$STATE"/*.secret "$STATE/admin.password" | sha256sum | cut -c1-16)
  if [ "$(cat "$STATE/data/stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$STATE/data"
    mkdir -p "$STATE/data/import"
    echo "$stamp" >"$STATE/data/stamp"
  fi
  cp "$REALM_FILE" "$STATE/data/import/realm-gep.json"
  # kc.sh reads data/import and data/h2 under its home: point both at $STATE/data.
  rm -rf "$HOME_DIR/data"
  ln -sfn "$STATE/data" "$HOME_DIR/data"
  echo "== starting Keycloak $VERSION on $URL (first start builds Quarkus: a minute or more)"
  KC_BOOTSTRAP_ADMIN_USERNAME=hpcgw-admin JAVA_OPTS_KC_HEAP="${KC_HEAP:--Xms64m -Xmx512m}" \
    nohup setsid "$HOME_DIR/bin/kc.sh" start-dev --import-realm --http-host=127.0.0.1 \
    --http-port="$PORT" \
    >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local t0=$SECONDS
  until up; do
    alive || { echo "Keycloak exited during start; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
    [ $((SECONDS - t0)) -lt "${KC_START_TIMEOUT:-600}" ] || {
      echo "Keycloak not ready after ${KC_START_TIMEOUT:-600}s; see $LOG" >&2; exit 1; }
    sleep 1
  done
  echo "Keycloak running at $URL after $((SECONDS - t0))s (log: $LOG, admin: hpcgw-admin," \
    "password in $STATE/admin.password)"
}

stop() {
  if alive; then
    local pid
    pid=$(cat "$PIDFILE")
    kill -- "-$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    echo "Keycloak stopped"
  else
    echo "Keycloak not running"
  fi
  rm -f "$PIDFILE"
}

case "${1:-status}" in
  install) install_dist ;;
  start) start ;;
  stop) stop ;;
  reset) stop; rm -rf "$STATE/data"; echo "realm state removed; the next start re-imports $REALM_FILE" ;;
  status)
    if up; then echo "Keycloak up at $URL (realm gep)"; else echo "Keycloak down"; exit 1; fi ;;
  token)
    user=${2:?usage: keycloak.sh token USER [PASSWORD]}
    curl -sf -d grant_type=password -d client_id=ogc-gateway -d "username=$user" \
      -d "password=${3:-$user}" "$URL/realms/gep/protocol/openid-connect/token" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' ;;
  jwks)
    out=${2:?usage: keycloak.sh jwks FILE}
    curl -sf "$URL/realms/gep/protocol/openid-connect/certs" >"$out"
    chmod 0644 "$out"; echo "JWKS of realm gep written to $out" ;;
  *) echo "usage: $0 install|start|stop|status|reset|token USER [PASSWORD]|jwks FILE" >&2; exit 2 ;;
esac
