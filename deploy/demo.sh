#!/usr/bin/env bash
# `make demo`: start Keycloak (deploy/keycloak, dev mode, realm gep
# on 127.0.0.1:8180), synchronise its users to Slurm/unix accounts, start the gateway
# (SQLite, embedded worker) on 127.0.0.1:5000 if it is not already up, then run one
# echo job as alice through the HTTP API and print its URLs; then start the local EO
# mirror (deploy/eo_mirror, 127.0.0.1:8190) and run an NDVI job on one of its scenes.
# `deploy/demo.sh stop` stops the gateway, Keycloak and the EO mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
# HPCGW_CONFIG=deploy/config/demo-ssh.yaml runs the same demo through the SSH adapter.
export HPCGW_CONFIG=${HPCGW_CONFIG:-deploy/config/demo.yaml}
run=var/demo
pidfile=$run/gateway.pid
mkdir -p "$run"

# -- the local EO mirror (deploy/eo_mirror/README.md) and the NDVI job on one of its scenes --
eo_mirror() { bash deploy/eo_mirror/run.sh "$@"; }
demo_eo_job() {
  echo
  echo "== EO job: NDVI on a scene of the local EO mirror"
  eo_mirror start
  local item
  item=$(eo_mirror urls | sed -n 's/^ndvi_item //p')
  .venv/bin/python deploy/demo_job.py --ndvi "$item" http://127.0.0.1:5000 "$(deploy/keycloak/keycloak.sh token alice)" || {
    echo "(a gateway started before its configuration allowed the mirror refuses it:" \
      "deploy/demo.sh stop && deploy/demo.sh)" >&2
    return 1
  }
}

if [ "${1:-}" = stop ]; then
  if [ -f "$pidfile" ] && kill -- "-$(cat "$pidfile")" 2>/dev/null; then
    echo "gateway stopped"
  else
    echo "gateway not running"
  fi
  rm -f "$pidfile"
  deploy/keycloak/keycloak.sh stop
  eo_mirror stop
  exit 0
fi

# 1777 (sticky): with the SSH adapter users create their own job directories over SFTP.
install -d -m 1777 /var/lib/hpcgw/work 2>/dev/null || sudo install -d -m 1777 /var/lib/hpcgw/work
# known_hosts for the SSH adapter: the dev sshds' own host keys (nothing auto-accepted),
# for both sites' login nodes (hpcgw :2222, mesocentre :2223).
grep -q ':2223 ' "$run/ssh_known_hosts" 2>/dev/null || for port in 2222 2223; do
  for key in /etc/ssh/ssh_host_*_key.pub; do
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$key")"
  done
done >"$run/ssh_known_hosts"

deploy/keycloak/keycloak.sh start
echo "== hpcgw users sync (Keycloak group /hpc-users -> Slurm account gep), on both clusters"
# mesocentre's accounting is its own (Slurm 24.11, its own slurmdbd): the same sync with
# that cluster's sacctmgr/scancel (whose built-in SLURM_CONF is the mesocentre one).
meso_bin=$(bash deploy/devcluster.sh env | sed -n 's/^export MESOCENTRE_SLURM_BIN=//p')
sync_both() {
  .venv/bin/hpcgw users sync
  HPCGW_USERSYNC__SACCTMGR=$meso_bin/sacctmgr HPCGW_USERSYNC__SCANCEL=$meso_bin/scancel \
    HPCGW_USERSYNC__CLUSTER=mesocentre SLURM_CONF=/etc/slurm-mesocentre/slurm.conf \
    .venv/bin/hpcgw users sync
}
# A Keycloak reset (deploy/keycloak/keycloak.sh reset, a new realm import) re-creates
# alice and bob as new accounts. The sync never hands a login to a new account by itself
# (it would disable the old one's); the demo, whose old accounts are gone, relinks them
# explicitly first -- found by a dry run.
stale=$(.venv/bin/hpcgw users sync --dry-run 2>&1 |
  sed -n "s/.*skipped \([^:]*\): HPC login .* already belongs to portal user .*/\1/p" | sort -u)
for name in $stale; do .venv/bin/hpcgw users relink "$name"; done
sync_both
echo "== hpcgw sites check"
.venv/bin/hpcgw sites check || echo "(a site is down: see above)"

up() { curl -sf -o /dev/null http://127.0.0.1:5000/conformance; }
if up; then
  echo "gateway already running on http://127.0.0.1:5000"
else
  nohup setsid .venv/bin/hpcgw serve >"$run/gateway.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 60); do up && break; sleep 0.5; done
  up || { echo "gateway did not start; see $run/gateway.log" >&2; tail -20 "$run/gateway.log" >&2; exit 1; }
  echo "gateway started on http://127.0.0.1:5000 (log: $run/gateway.log, stop: deploy/demo.sh stop)"
fi
.venv/bin/python deploy/demo_job.py http://127.0.0.1:5000 "$(deploy/keycloak/keycloak.sh token alice)"
demo_eo_job
cat <<'TXT'

Try it yourself (tokens last 5 minutes):
  TOKEN=$(deploy/keycloak/keycloak.sh token alice)  # or: curl -d grant_type=password -d client_id=ogc-gateway \
                                              #   -d username=alice -d password=alice \
                                              #   http://127.0.0.1:8180/realms/gep/protocol/openid-connect/token
  curl -X POST http://127.0.0.1:5000/processes/echo/execution -H "Authorization: Bearer $TOKEN" \
       -H 'Prefer: respond-async' -H 'Content-Type: application/json' -d '{"inputs":{"string_input":"hi"}}'
  # add "hpcSite":"hpcgw" to the body to choose the site; the job's status says where and why
TXT
