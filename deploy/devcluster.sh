#!/usr/bin/env bash
# deploy/devcluster.sh - the single-machine development clusters for ogc-hpc-gateway.
#
# Installs and runs, all on 127.0.0.1 of one Debian 12 machine (root, no systemd),
# two Slurm sites of different releases that share one munge and one MariaDB:
#   hpcgw       Debian's Slurm 22.05: slurmdbd, slurmctld, slurmd, slurmrestd
#               (JWT, :6820, OpenAPI v0.0.38), sshd :2222 as its login node;
#   mesocentre  Slurm 24.11 built from Debian 13's source (deploy/devcluster/
#               build-slurm.sh, cached): its own slurmdbd, slurmctld, slurmd,
#               slurmrestd (:6920, v0.0.40-v0.0.42), sshd :2223 as its login node;
# plus PostgreSQL 15 (:5432) for the gateway's job store.
#
# Usage: deploy/devcluster.sh install|start|status|stop|token USER [LIFESPAN] [CLUSTER]
#        |cli CLUSTER COMMAND [ARGS...]|env|daemon stop|start NAME [CLUSTER]
# Every subcommand is idempotent. See deploy/devcluster/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TPL_DIR="$HERE/devcluster"

SLURM_ACCOUNT=gep
OPS_ACCOUNT=hpcgw-ops
TEST_USERS=(alice bob)
SERVICE_USER=hpcgw
# the group and setgid workspace root of a gateway run as SERVICE_USER (tests/e2e)
WORK_GROUP=hpcgw-work
SHARED_WORK=/var/lib/hpcgw-work
REST_HOST=127.0.0.1
PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
CLUSTERS=(hpcgw mesocentre)

LOG_DIR=/var/log/slurm-dev
RUN_DIR=/run/slurm-dev
JWT_KEY=/etc/slurm/jwt_hs256.key
MUNGE_KEY=/etc/munge/munge.key
HPCGW_ETC=/etc/hpcgw
DBPASS_FILE=$HPCGW_ETC/slurmdbd_db_password
CA_KEY=$HPCGW_ETC/ssh_user_ca
CA_PUB_SSHD=/etc/ssh/hpcgw_user_ca.pub
MARIADB_CNF=/etc/mysql/mariadb.conf.d/99-hpcgw-slurmdbd.cnf

# The "mesocentre" site: Slurm 24.11 in its own prefix (or the distribution's
# packages where they are 24.11, see meso_prefix), its own config directory,
# ports, state, pid and log directories.
MESO_BUILD_PREFIX=/opt/slurm-24.11
MESO_ETC=/etc/slurm-mesocentre
MESO_JWT_KEY=$MESO_ETC/jwt_hs256.key
MESO_RUN=$RUN_DIR/mesocentre
MESO_LOG=$LOG_DIR/mesocentre
MESO_STATE=/var/lib/slurm-mesocentre
MESO_NODE=mesocentre-node
MESO_CTLD_PORT=6917
MESO_SLURMD_PORT=6918
MESO_DBD_PORT=6919
MESO_REST_PORT=6920
MESO_SSH_PORT=2223

# The distribution's Slurm is 24.11 (Debian 13): use it for mesocentre too.
distro_is_2411() { /usr/sbin/slurmctld -V 2>/dev/null | grep -q '^slurm 24\.11\.'; }
meso_prefix() { if distro_is_2411; then echo /usr; else echo "$MESO_BUILD_PREFIX"; fi; }

# use_cluster NAME : select a cluster profile. Sets the C_* variables every
# per-cluster function reads, and exports SLURM_CONF for the Slurm commands.
use_cluster() {
    case "$1" in
        hpcgw)
            C_NAME=hpcgw; C_PREFIX=/usr; C_ETC=/etc/slurm
            C_RUN=$RUN_DIR; C_LOG=$LOG_DIR; C_STATE=/var/lib/slurm
            C_NODE=hpcgw-node; C_PARTITION=debug
            C_JWT_KEY=$JWT_KEY; C_REST_PORT=6820; C_REST_API=v0.0.38; C_SSH_PORT=2222
            C_SSHD_CONF=/etc/ssh/hpcgw_sshd_config; C_SSHD_PID=$RUN_DIR/hpcgw_sshd.pid
            C_SSHD_LOG=$LOG_DIR/hpcgw_sshd.log
            C_REST_PID=$RUN_DIR/slurmrestd-supervisor.pid
            C_TPL_SLURM=slurm.conf.in; C_TPL_DBD=slurmdbd.conf.in; C_TPL_SSHD=hpcgw_sshd_config.in ;;
        mesocentre)
            C_NAME=mesocentre; C_PREFIX=$(meso_prefix); C_ETC=$MESO_ETC
            C_RUN=$MESO_RUN; C_LOG=$MESO_LOG; C_STATE=$MESO_STATE
            C_NODE=$MESO_NODE; C_PARTITION=short
            C_JWT_KEY=$MESO_JWT_KEY; C_REST_PORT=$MESO_REST_PORT; C_REST_API=v0.0.42
            C_SSH_PORT=$MESO_SSH_PORT
            C_SSHD_CONF=/etc/ssh/mesocentre_sshd_config; C_SSHD_PID=$MESO_RUN/sshd.pid
            C_SSHD_LOG=$MESO_LOG/sshd.log
            C_REST_PID=$MESO_RUN/slurmrestd-supervisor.pid
            C_TPL_SLURM=mesocentre-slurm.conf.in; C_TPL_DBD=mesocentre-slurmdbd.conf.in
            C_TPL_SSHD=mesocentre_sshd_config.in ;;
        *) die "unknown cluster '$1' (known: ${CLUSTERS[*]})" ;;
    esac
    C_BIN=$C_PREFIX/bin
    C_SBIN=$C_PREFIX/sbin
    C_CONF=$C_ETC/slurm.conf
    C_DBD_CONF=$C_ETC/slurmdbd.conf
    export SLURM_CONF=$C_CONF
}

# sl COMMAND ARGS... : run one of the selected cluster's Slurm client commands.
sl() { local cmd=$1; shift; "$C_BIN/$cmd" "$@"; }

PACKAGES=(slurm-wlm slurmctld slurmd slurm-client slurmrestd slurmdbd slurm-wlm-jwt-plugin munge libslurm-dev
          mariadb-server openssh-server postgresql "postgresql-$PG_VERSION" procps curl
          openssl ca-certificates)

say() { printf '[devcluster] %s\n' "$*"; }
warn() { printf '[devcluster] WARNING: %s\n' "$*" >&2; }
die() { printf '[devcluster] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND... : poll until COMMAND succeeds.
# With WAIT_ALIVE="COMMAND ARGS" (and WAIT_LOG=FILE) set, give up early when
# that command fails (the daemon died during start-up).
wait_for() {
    local what=$1 timeout=$2 start elapsed
    shift 2
    start=$(date +%s)
    until "$@" >/dev/null 2>&1; do
        elapsed=$(( $(date +%s) - start ))
        # shellcheck disable=SC2086  # WAIT_ALIVE is a command line
        if [ -n "${WAIT_ALIVE:-}" ] && [ "$elapsed" -ge 2 ] && ! $WAIT_ALIVE; then
            [ -n "${WAIT_LOG:-}" ] && tail -n 5 "$WAIT_LOG" >&2
            die "$what died during start-up (log: ${WAIT_LOG:-$LOG_DIR})"
        fi
        if [ "$elapsed" -ge "$timeout" ]; then
            die "timed out after ${timeout}s waiting for $what (logs: $LOG_DIR)"
        fi
        sleep 0.3
    done
}

# wait_gone TIMEOUT PID... : wait for processes to exit; SIGKILL the survivors.
wait_gone() {
    local timeout=$1 start pid alive
    shift
    start=$(date +%s)
    while :; do
        alive=()
        for pid in "$@"; do
            # A zombie counts as gone (PID 1 here may be slow to reap orphans).
            if kill -0 "$pid" 2>/dev/null \
                && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
                alive+=("$pid")
            fi
        done
        [ ${#alive[@]} -eq 0 ] && return 0
        if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then
            warn "killing ${alive[*]} after ${timeout}s"
            kill -KILL "${alive[@]}" 2>/dev/null || true
            return 0
        fi
        sleep 0.2
    done
}

# pids_of NAME : pids of live (non-zombie) processes named exactly NAME.
pids_of() {
    local pid
    for pid in $(pgrep -x "$1" 2>/dev/null || true); do
        grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null || echo "$pid"
    done
}
running() { [ -n "$(pids_of "$1")" ]; }

# daemon_up NAME : the selected cluster's daemon NAME (slurmctld, slurmd,
# slurmdbd) is alive, by its pid file (both clusters' daemons share names).
daemon_up() { pidfile_alive "$C_RUN/$1.pid" "$C_SBIN/$1"; }
daemon_pid() { daemon_up "$1" && cat "$C_RUN/$1.pid"; }

# pidfile_alive FILE PATTERN : the pid in FILE is alive and its command line
# contains PATTERN (guards against stale pid files from a previous machine).
pidfile_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

# render TEMPLATE DEST OWNER MODE : fill @PLACEHOLDERS@, write DEST only if it
# changed. Sets RENDER_CHANGED=1 when DEST was (re)written.
RENDER_CHANGED=0
render() {
    local tpl=$1 dest=$2 owner=$3 mode=$4 tmp
    tmp=$(mktemp)
    sed -e "s|@JWT_KEY@|$C_JWT_KEY|g" \
        -e "s|@LOG_DIR@|$C_LOG|g" \
        -e "s|@RUN_DIR@|$C_RUN|g" \
        -e "s|@NODE_NAME@|$C_NODE|g" \
        -e "s|@MESO_ETC@|$MESO_ETC|g" \
        -e "s|@MESO_PREFIX@|$C_PREFIX|g" \
        -e "s|@MESO_JWT_KEY@|$MESO_JWT_KEY|g" \
        -e "s|@MESO_RUN@|$MESO_RUN|g" \
        -e "s|@MESO_LOG@|$MESO_LOG|g" \
        -e "s|@MESO_STATE@|$MESO_STATE|g" \
        -e "s|@MESO_NODE@|$MESO_NODE|g" \
        -e "s|@MESO_CTLD_PORT@|$MESO_CTLD_PORT|g" \
        -e "s|@MESO_SLURMD_PORT@|$MESO_SLURMD_PORT|g" \
        -e "s|@MESO_DBD_PORT@|$MESO_DBD_PORT|g" \
        -e "s|@MESO_SSH_PORT@|$MESO_SSH_PORT|g" \
        -e "s|@CPUS@|${NODE_CPUS:-}|g" \
        -e "s|@REAL_MEMORY@|${NODE_MEM:-}|g" \
        -e "s|@REAL_HW@|${REAL_HW:-}|g" \
        -e "s|@DB_PASS@|${DB_PASS:-}|g" \
        -e "s|@MEM_MODE@|${MEM_MODE:-}|g" \
        -e "s|@TASK_PLUGIN@|${TASK_PLUGIN:-}|g" \
        -e "s|@JOBACCT_GATHER_PARAMS_LINE@|${JOBACCT_GATHER_PARAMS_LINE:-}|g" \
        "$tpl" >"$tmp"
    RENDER_CHANGED=0
    if ! cmp -s "$tmp" "$dest" 2>/dev/null; then
        install -D -o "${owner%%:*}" -g "${owner##*:}" -m "$mode" "$tmp" "$dest"
        RENDER_CHANGED=1
    else
        chown "$owner" "$dest"
        chmod "$mode" "$dest"
    fi
    rm -f "$tmp"
}

# ---------------------------------------------------------------- install ----

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages: all present, skipping apt"
        return 0
    fi
    mkdir -p "$LOG_DIR"
    say "packages: installing ${missing[*]} (log: $LOG_DIR/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${PACKAGES[@]}"; } >"$LOG_DIR/apt.log" 2>&1; then
        tail -n 30 "$LOG_DIR/apt.log" >&2
        die "apt-get failed"
    fi
}

ensure_users() {
    local u
    for u in "${TEST_USERS[@]}"; do
        if ! id "$u" >/dev/null 2>&1; then
            useradd --create-home --shell /bin/bash --user-group "$u"
            # '*' = no password but not "locked" (sshd pubkey/cert login works).
            usermod -p '*' "$u"
            say "users: created $u"
        fi
    done
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --create-home --home-dir "/var/lib/$SERVICE_USER" \
            --shell /usr/sbin/nologin "$SERVICE_USER"
        say "users: created service user $SERVICE_USER"
    fi
    # Workspaces of a gateway that runs as the service account (not root): a setgid
    # folder of a group the service account shares with the users (docs/installing.md).
    getent group "$WORK_GROUP" >/dev/null || groupadd --system "$WORK_GROUP"
    for u in "$SERVICE_USER" "${TEST_USERS[@]}"; do
        id -nG "$u" | tr ' ' '\n' | grep -qx "$WORK_GROUP" || usermod -aG "$WORK_GROUP" "$u"
    done
    install -d -o "$SERVICE_USER" -g "$WORK_GROUP" -m 2770 "$SHARED_WORK"
}

ensure_keys() {
    install -d -o root -g root -m 0755 "$HPCGW_ETC"
    # munge key (the munge package normally creates one).
    if [ ! -s "$MUNGE_KEY" ]; then
        install -d -o munge -g munge -m 0700 /etc/munge
        mungekey --create --keyfile="$MUNGE_KEY"
        say "keys: created munge key"
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
    # JWT HS256 keys, one per cluster (each site signs its own tokens): 32 random
    # bytes, slurm-owned 0600 (root reads them anyway).
    local key
    for key in "$JWT_KEY" "$MESO_JWT_KEY"; do
        if [ ! -s "$key" ] || [ "$(stat -c %s "$key")" -lt 32 ]; then
            install -d -m 0755 "$(dirname "$key")"
            (umask 077 && head -c 32 /dev/urandom >"$key")
            say "keys: created $key"
        fi
        chown slurm:slurm "$key"
        chmod 0600 "$key"
    done
    # slurmdbd's MariaDB password, generated once.
    if [ ! -s "$DBPASS_FILE" ]; then
        (umask 077 && openssl rand -hex 16 >"$DBPASS_FILE")
    fi
    chmod 0600 "$DBPASS_FILE"
    # SSH user CA for the SSH adapter.
    if [ ! -s "$CA_KEY" ] || [ ! -s "$CA_KEY.pub" ]; then
        rm -f "$CA_KEY" "$CA_KEY.pub"
        ssh-keygen -q -t ed25519 -N '' -C "hpcgw dev user CA" -f "$CA_KEY"
        say "keys: created SSH user CA $CA_KEY"
    fi
    chmod 0600 "$CA_KEY"
    install -o root -g root -m 0644 "$CA_KEY.pub" "$CA_PUB_SSHD"
    # sshd host keys (openssh-server normally creates them).
    ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -A
}

node_hardware() {
    # slurmd -C: "NodeName=x CPUs=2 ... RealMemory=24105"
    local line cpus mem
    line=$(slurmd -C | head -n 1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$line")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
    if [ -z "$cpus" ] || [ -z "$mem" ]; then die "cannot parse 'slurmd -C': $line"; fi
    REAL_HW="CPUs=$cpus RealMemory=$mem"
    # Over-subscribe: advertise 8x the real CPUs (at least 16) so many small
    # test jobs run concurrently. Keep ~10% of memory (at least 512 MB) back.
    NODE_CPUS=$(( cpus * 8 ))
    [ "$NODE_CPUS" -ge 16 ] || NODE_CPUS=16
    NODE_MEM=$(( mem * 9 / 10 ))
    [ $(( mem - NODE_MEM )) -ge 512 ] || NODE_MEM=$(( mem - 512 ))
    [ "$NODE_MEM" -ge 1024 ] || NODE_MEM=1024
}

# Memory enforcement: "cgroup" (task/cgroup on a mounted cgroup v1 memory
# controller; jobs end OUT_OF_MEMORY) or "jobacct" (task/none + OverMemoryKill
# polling; jobs end FAILED with signal 9). DEVCLUSTER_MEMORY_ENFORCEMENT=
# cgroup|jobacct forces one; default auto-detects.
memory_mode() {
    local want=${DEVCLUSTER_MEMORY_ENFORCEMENT:-auto}
    case "$want" in
        cgroup|jobacct) MEM_MODE=$want ;;
        auto)
            if awk '$3 == "cgroup" && $2 == "/sys/fs/cgroup/memory" { found = 1 } END { exit !found }' /proc/mounts \
                && [ -w /sys/fs/cgroup/memory ]; then
                MEM_MODE=cgroup
            else
                MEM_MODE=jobacct
            fi ;;
        *) die "DEVCLUSTER_MEMORY_ENFORCEMENT must be auto, cgroup or jobacct" ;;
    esac
    if [ "$MEM_MODE" = cgroup ]; then
        TASK_PLUGIN=task/cgroup
        JOBACCT_GATHER_PARAMS_LINE="# JobAcctGatherParams=OverMemoryKill is off: task/cgroup enforces memory."
    else
        TASK_PLUGIN=task/none
        JOBACCT_GATHER_PARAMS_LINE="# Kill a step whose RSS exceeds its memory request (job ends FAILED, signal 9).\nJobAcctGatherParams=OverMemoryKill"
    fi
}

# render_configs : render the selected cluster's config files; sets
# C_CONF_CHANGED when slurm.conf (or hpcgw's cgroup.conf) changed.
C_CONF_CHANGED=0
render_configs() {
    [ -n "${REAL_HW:-}" ] || node_hardware
    memory_mode
    [ "$C_NAME" = hpcgw ] || { TASK_PLUGIN=task/none; MEM_MODE=jobacct; }
    DB_PASS=$(cat "$DBPASS_FILE")
    install -d -m 0755 "$C_ETC"
    render "$TPL_DIR/$C_TPL_SLURM" "$C_CONF" root:root 0644
    C_CONF_CHANGED=$RENDER_CHANGED
    if [ "$C_NAME" = hpcgw ]; then
        render "$TPL_DIR/cgroup.conf.in" "$C_ETC/cgroup.conf" root:root 0644
        [ "$RENDER_CHANGED" = 1 ] && C_CONF_CHANGED=1
    fi
    render "$TPL_DIR/$C_TPL_DBD" "$C_DBD_CONF" slurm:slurm 0600
    render "$TPL_DIR/$C_TPL_SSHD" "$C_SSHD_CONF" root:root 0644
    unset DB_PASS
}

render_mariadb_config() {
    printf '[mysqld]\n# slurmdbd recommendations (dev cluster)\ninnodb_lock_wait_timeout=900\nbind-address=127.0.0.1\n' \
        >"$MARIADB_CNF.tmp"
    if cmp -s "$MARIADB_CNF.tmp" "$MARIADB_CNF"; then rm -f "$MARIADB_CNF.tmp"; else mv "$MARIADB_CNF.tmp" "$MARIADB_CNF"; fi
}

make_dirs() {
    # slurm-owned: slurmctld/slurmdbd chdir into their log directory as slurm.
    install -d -o slurm -g slurm -m 0755 "$LOG_DIR" "$RUN_DIR"
    local name f
    for name in "${CLUSTERS[@]}"; do
        use_cluster "$name"
        install -d -o slurm -g slurm -m 0755 "$C_LOG" "$C_RUN" "$C_STATE" "$C_STATE/slurmctld"
        # Log files of daemons that open them after dropping privileges.
        for f in slurmctld slurmdbd; do
            [ -e "$C_LOG/$f.log" ] || install -o slurm -g slurm -m 0640 /dev/null "$C_LOG/$f.log"
        done
        install -d -o root -g root -m 0755 "$C_STATE/slurmd"
    done
    [ -e "$LOG_DIR/munged.log" ] || install -o munge -g munge -m 0640 /dev/null "$LOG_DIR/munged.log"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    install -d -o root -g root -m 0755 /run/sshd
    install -d -o postgres -g postgres -m 2775 /run/postgresql
}

# install_mesocentre : Slurm 24.11 for the mesocentre cluster: the distribution's
# when it is 24.11, else built once from Debian 13's source and cached.
install_mesocentre() {
    if distro_is_2411; then
        say "mesocentre: using the distribution's Slurm $(/usr/sbin/slurmctld -V | cut -d' ' -f2)"
        return 0
    fi
    local version
    version=$(bash "$TPL_DIR/build-slurm.sh" "$MESO_BUILD_PREFIX" "$MESO_ETC" "$LOG_DIR/mesocentre-build.log") \
        || die "Slurm 24.11 for mesocentre is not installed (see $LOG_DIR/mesocentre-build.log)"
    say "mesocentre: Slurm $version in $MESO_BUILD_PREFIX"
}

cmd_install() {
    need_root
    install_packages
    install_mesocentre
    ensure_users
    ensure_keys
    make_dirs
    render_mariadb_config
    local name
    for name in "${CLUSTERS[@]}"; do
        use_cluster "$name"
        render_configs
        /usr/sbin/sshd -t -f "$C_SSHD_CONF" || die "sshd config $C_SSHD_CONF is invalid"
    done
    ensure_pg_cluster
    if [ ! -d /var/lib/mysql/mysql ]; then
        mariadb-install-db --user=mysql >/dev/null
        say "mariadb: initialised data directory"
    fi
    say "install done (next: $0 start)"
}

# ------------------------------------------------------------------ start ----

mariadb_up() { mariadb-admin ping >/dev/null 2>&1; }
start_mariadb() {
    if running mariadbd || running mysqld; then
        say "mariadb: already running"
    else
        # No mariadbd is running, so any socket/pid file is stale.
        rm -f /run/mysqld/mysqld.pid /run/mysqld/mysqld.sock /run/mysqld/mysqld.sock.lock
        setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
            --log-error="$LOG_DIR/mariadb.log" </dev/null >>"$LOG_DIR/mariadb.log" 2>&1 &
        say "mariadb: starting"
    fi
    WAIT_ALIVE="running mariadbd" WAIT_LOG="$LOG_DIR/mariadb.log" wait_for "mariadb" 60 mariadb_up
    local pass
    pass=$(cat "$DBPASS_FILE")
    # One accounting database per cluster, for its own slurmdbd.
    mariadb -uroot <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE DATABASE IF NOT EXISTS slurm_acct_db_mesocentre;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL PRIVILEGES ON slurm_acct_db_mesocentre.* TO 'slurm'@'localhost';
SQL
}

munge_up() { munge -n </dev/null | unmunge >/dev/null 2>&1; }
start_munge() {
    if running munged; then
        say "munged: already running"
    else
        # No munged is running, so any socket/pid/lock file is stale.
        rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
        # --force: tolerate a stale socket left by a previous machine session.
        runuser -u munge -- /usr/sbin/munged --force \
            --log-file="$LOG_DIR/munged.log" </dev/null >/dev/null 2>&1 \
            || die "munged failed to start (see $LOG_DIR/munged.log)"
        say "munged: starting"
    fi
    WAIT_ALIVE="running munged" WAIT_LOG="$LOG_DIR/munged.log" wait_for "munged" 20 munge_up
}

# ---- per cluster (after use_cluster NAME) ----

slurmdbd_up() { sl sacctmgr -n show cluster format=cluster >/dev/null 2>&1; }
start_slurmdbd() {
    if daemon_up slurmdbd; then
        say "$C_NAME slurmdbd: already running"
    else
        "$C_SBIN/slurmdbd" </dev/null >>"$C_LOG/slurmdbd.log" 2>&1 \
            || die "$C_NAME slurmdbd failed to start (see $C_LOG/slurmdbd.log)"
        say "$C_NAME slurmdbd: starting"
    fi
    WAIT_ALIVE="daemon_up slurmdbd" WAIT_LOG="$C_LOG/slurmdbd.log" \
        wait_for "$C_NAME slurmdbd (sacctmgr)" 60 slurmdbd_up
}

sacct_has() { [ -n "$(sl sacctmgr -nP "$@" 2>/dev/null)" ]; }
ensure_associations() {
    if ! sacct_has show cluster "$C_NAME" format=cluster; then
        sl sacctmgr -i add cluster "$C_NAME" >/dev/null
        say "$C_NAME accounting: added cluster $C_NAME"
    fi
    local acct desc u
    for acct in "$SLURM_ACCOUNT" "$OPS_ACCOUNT"; do
        if ! sacct_has show account "$acct" format=account; then
            desc="gateway test users"
            [ "$acct" = "$OPS_ACCOUNT" ] && desc="gateway service account"
            sl sacctmgr -i add account "$acct" Cluster="$C_NAME" Description="$desc" \
                Organization=hpcgw >/dev/null
            say "$C_NAME accounting: added account $acct"
        fi
    done
    for u in "${TEST_USERS[@]}" "$SERVICE_USER"; do
        acct=$SLURM_ACCOUNT
        [ "$u" = "$SERVICE_USER" ] && acct=$OPS_ACCOUNT
        if ! sacct_has show assoc where cluster="$C_NAME" account="$acct" user="$u" format=user; then
            sl sacctmgr -i add user "$u" Account="$acct" DefaultAccount="$acct" Cluster="$C_NAME" >/dev/null
            say "$C_NAME accounting: added user $u to account $acct"
        fi
    done
}

slurmctld_up() { sl scontrol ping 2>/dev/null | grep -q 'is UP'; }
start_slurmctld() {
    if [ "$C_CONF_CHANGED" = 1 ] && { daemon_up slurmctld || daemon_up slurmd; }; then
        # Plugin changes need a restart, not just `scontrol reconfigure`.
        # Running jobs survive (slurmstepd keeps them; state is saved).
        say "$C_NAME slurmctld+slurmd: config changed, restarting them"
        stop_slurm_daemons
    fi
    if daemon_up slurmctld; then
        say "$C_NAME slurmctld: already running"
    else
        "$C_SBIN/slurmctld" </dev/null >>"$C_LOG/slurmctld.log" 2>&1 \
            || die "$C_NAME slurmctld failed to start (see $C_LOG/slurmctld.log)"
        say "$C_NAME slurmctld: starting"
    fi
    WAIT_ALIVE="daemon_up slurmctld" WAIT_LOG="$C_LOG/slurmctld.log" \
        wait_for "$C_NAME slurmctld" 60 slurmctld_up
}

node_state() { sl sinfo -h -n "$C_NODE" -o '%T' 2>/dev/null | head -n 1; }
start_slurmd() {
    if daemon_up slurmd; then
        say "$C_NAME slurmd: already running"
    else
        "$C_SBIN/slurmd" -N "$C_NODE" </dev/null >>"$C_LOG/slurmd.log" 2>&1 \
            || die "$C_NAME slurmd failed to start (see $C_LOG/slurmd.log)"
        say "$C_NAME slurmd: starting"
    fi
    local start state resumed=0
    start=$(date +%s)
    while :; do
        state=$(node_state)
        case "$state" in
            idle|mixed|allocated|completing|idle+*|mixed+*|allocated+*) break ;;
            *drain*|*down*|*fail*)
                # A DOWN/DRAIN node left over from an earlier session: resume it
                # once slurmd has had a moment to register.
                if [ $(( $(date +%s) - start )) -ge 2 ] && [ $resumed -lt 3 ]; then
                    sl scontrol update nodename="$C_NODE" state=resume >/dev/null 2>&1 \
                        && say "$C_NAME slurmd: node was $state, resumed"
                    resumed=$(( resumed + 1 ))
                fi ;;
        esac
        if [ $(( $(date +%s) - start )) -ge 60 ]; then
            sl sinfo -N -l >&2 || true
            die "$C_NAME node $C_NODE is '$state' after 60s (see $C_LOG/slurmd.log)"
        fi
        sleep 0.5
    done
}

rest_up() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://$REST_HOST:$C_REST_PORT/openapi/v3" 2>/dev/null) || true
    [ -n "$code" ] && [ "$code" != 000 ]
}
# slurmrestd 22.05 dies (fatal) on some malformed requests, e.g.
# GET /slurmdb/v0.0.38/jobs?step=abc, so each slurmrestd runs under a tiny
# respawn loop; every exit is logged to its slurmrestd.log as
# "[devcluster] slurmrestd exited".
REST_SUPERVISOR=devcluster-slurmrestd-supervisor
rest_supervisor_up() { pidfile_alive "$C_REST_PID" "$REST_SUPERVISOR"; }
# pids of the selected cluster's slurmrestd (by its listening address)
rest_pids() { pgrep -f "slurmrestd .*$REST_HOST:$C_REST_PORT\$" 2>/dev/null || true; }
start_slurmrestd() {
    if rest_supervisor_up; then
        say "$C_NAME slurmrestd: already running (supervised)"
    elif [ -n "$(rest_pids)" ]; then
        say "$C_NAME slurmrestd: already running (unsupervised)"
    else
        # slurmrestd refuses to run as root: drop to nobody. SLURM_JWT=daemon
        # makes it pass each request's X-SLURM-USER-TOKEN to slurmctld/slurmdbd.
        # shellcheck disable=SC2016  # $1/$2/$rc expand inside the loop's shell
        setsid bash -c 'while :; do
                SLURM_JWT=daemon "$1" -u nobody -g nogroup -a rest_auth/jwt "$2"
                rc=$?
                echo "[devcluster] $(date -Is) slurmrestd exited rc=$rc, restarting in 1s"
                sleep 1
            done' "$REST_SUPERVISOR" "$C_SBIN/slurmrestd" "$REST_HOST:$C_REST_PORT" \
            </dev/null >>"$C_LOG/slurmrestd.log" 2>&1 &
        echo $! >"$C_REST_PID"
        say "$C_NAME slurmrestd: starting on $REST_HOST:$C_REST_PORT"
    fi
    wait_for "$C_NAME slurmrestd (http://$REST_HOST:$C_REST_PORT)" 30 rest_up
}

sshd_up() { pidfile_alive "$C_SSHD_PID" "$C_SSHD_CONF"; }
start_sshd() {
    if sshd_up; then
        say "$C_NAME sshd:$C_SSH_PORT already running"
    else
        rm -f "$C_SSHD_PID"
        /usr/sbin/sshd -f "$C_SSHD_CONF" -E "$C_SSHD_LOG" </dev/null \
            || die "sshd:$C_SSH_PORT failed to start (see $C_SSHD_LOG)"
        say "$C_NAME sshd:$C_SSH_PORT starting"
    fi
    wait_for "sshd on port $C_SSH_PORT" 20 sshd_up
}

start_cluster() {
    use_cluster "$1"
    [ -x "$C_SBIN/slurmctld" ] || die "$C_NAME: Slurm is not installed: run $0 install first"
    render_configs
    start_slurmdbd
    ensure_associations
    start_slurmctld
    start_slurmd
    start_slurmrestd
    start_sshd
    say "$C_NAME up: $(sl sinfo -V), $(node_state) node $C_NODE," \
        "REST http://$REST_HOST:$C_REST_PORT/slurm/$C_REST_API/, login node ssh -p $C_SSH_PORT"
}

pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }
pg_online() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" \
        '$1 == v && $2 == c && $4 ~ /online/ { found = 1 } END { exit !found }'
}
# The cluster must exist and be configured for port 5432 (pg_createcluster
# picks 5433+ when it believes 5432 is taken, e.g. by another cluster).
ensure_pg_cluster() {
    if ! pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}' | grep -qx "$PG_VERSION/$PG_CLUSTER"; then
        pg_createcluster -p "$PG_PORT" "$PG_VERSION" "$PG_CLUSTER" >/dev/null
        say "postgresql: created cluster $PG_VERSION/$PG_CLUSTER"
    fi
    if [ "$(pg_conftool -s "$PG_VERSION" "$PG_CLUSTER" show port 2>/dev/null)" != "$PG_PORT" ]; then
        pg_conftool "$PG_VERSION" "$PG_CLUSTER" set port "$PG_PORT"
        say "postgresql: cluster $PG_VERSION/$PG_CLUSTER set to port $PG_PORT"
    fi
}
psql_q() { runuser -u postgres -- psql -X -q -t -A -p "$PG_PORT" -d postgres -c "$1"; }
start_postgres() {
    ensure_pg_cluster
    if pg_up; then
        say "postgresql: already running"
    elif pg_online; then
        # Running, but not answering on our port (port was just changed).
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart
        say "postgresql: restarting on port $PG_PORT"
    else
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
        say "postgresql: starting"
    fi
    wait_for "postgresql" 60 pg_up
    if [ -z "$(psql_q "SELECT 1 FROM pg_roles WHERE rolname='hpcgw'")" ]; then
        psql_q "CREATE ROLE hpcgw LOGIN CREATEDB PASSWORD 'hpcgw'"
        say "postgresql: created role hpcgw"
    fi
    local db
    for db in hpcgw hpcgw_test; do
        if [ -z "$(psql_q "SELECT 1 FROM pg_database WHERE datname='$db'")" ]; then
            psql_q "CREATE DATABASE $db OWNER hpcgw"
            say "postgresql: created database $db"
        fi
    done
}

cmd_start() {
    need_root
    ensure_keys
    make_dirs
    render_mariadb_config
    start_postgres
    start_mariadb
    start_munge
    local name
    for name in "${CLUSTERS[@]}"; do
        start_cluster "$name"
    done
    say "all up"
}

# ----------------------------------------------------------------- status ----

STATUS_BAD=0
check() {
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then
        printf '%-28s up\n' "$name"
    else
        printf '%-28s DOWN\n' "$name"
        STATUS_BAD=1
    fi
}
node_ok() { case "$(node_state)" in idle*|mixed*|allocated*|completing*) return 0 ;; *) return 1 ;; esac; }
cmd_status() {
    STATUS_BAD=0
    check mariadb mariadb_up
    check munged munge_up
    check postgresql pg_up
    local name
    for name in "${CLUSTERS[@]}"; do
        use_cluster "$name"
        if [ ! -x "$C_SBIN/slurmctld" ]; then
            printf '%-28s NOT INSTALLED\n' "$C_NAME"
            STATUS_BAD=1
            continue
        fi
        check "$C_NAME slurmdbd" slurmdbd_up
        check "$C_NAME slurmctld" slurmctld_up
        check "$C_NAME slurmd" node_ok
        check "$C_NAME slurmrestd:$C_REST_PORT" rest_up
        check "$C_NAME sshd:$C_SSH_PORT" sshd_up
        printf '%-28s %s, node %s\n' "$C_NAME" "$(sl sinfo -V 2>/dev/null || echo '?')" "$(node_state || true)"
    done
    return $STATUS_BAD
}

# ------------------------------------------------------------------- stop ----

# `scontrol shutdown` stops the selected cluster's slurmctld and slurmd; a
# slurmd without a controller is signalled directly.
stop_slurm_daemons() {
    local pids
    pids="$(daemon_pid slurmctld || true) $(daemon_pid slurmd || true)"
    [ -n "${pids// /}" ] || return 0
    say "$C_NAME slurmctld+slurmd: stopping"
    if daemon_up slurmctld; then
        sl scontrol shutdown >/dev/null 2>&1 || true
    else
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
    fi
    # shellcheck disable=SC2086
    wait_gone 20 $pids
}

stop_slurmrestd() {
    local pids
    if rest_supervisor_up; then
        pids=$(cat "$C_REST_PID")
        kill "$pids" 2>/dev/null || true
        wait_gone 5 "$pids"
    fi
    pids=$(rest_pids)
    if [ -n "$pids" ]; then
        say "$C_NAME slurmrestd: stopping"
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone 10 $pids
    fi
    rm -f "$C_REST_PID"
}

# stop_daemon NAME TIMEOUT : SIGTERM the selected cluster's slurmctld, slurmd or
# slurmdbd (by pid file) and wait until it is gone; slurmctld saves its state.
stop_daemon() {
    local pid
    if pid=$(daemon_pid "$1"); then
        say "$C_NAME $1: stopping"
        kill "$pid" 2>/dev/null || true
        wait_gone "$2" "$pid"
    fi
}

stop_sshd() {
    local pid
    if sshd_up; then
        say "$C_NAME sshd:$C_SSH_PORT stopping"
        pid=$(cat "$C_SSHD_PID")
        kill "$pid" 2>/dev/null || true
        wait_gone 10 "$pid"
    fi
    rm -f "$C_SSHD_PID"
}

stop_cluster() {
    use_cluster "$1"
    stop_slurmrestd
    stop_slurm_daemons
    stop_daemon slurmdbd 15
    stop_sshd
}

cmd_stop() {
    need_root
    local pids name
    for name in "${CLUSTERS[@]}"; do
        stop_cluster "$name"
    done
    pids=$(pids_of munged)
    if [ -n "$pids" ]; then
        say "munged: stopping"
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone 10 $pids
    fi
    pids="$(pids_of mariadbd) $(pids_of mysqld) $(pids_of mysqld_safe)"
    if [ -n "${pids// /}" ]; then
        say "mariadb: stopping"
        # shellcheck disable=SC2046
        mariadb-admin shutdown >/dev/null 2>&1 || kill $(pids_of mariadbd) 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone 30 $pids
    fi
    if pg_online; then
        say "postgresql: stopping"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast || true
    fi
    say "stopped"
}

# daemon stop|start NAME [CLUSTER] : one daemon of one cluster (default hpcgw),
# for the fault tests (tests/faults.py). NAME: slurmrestd, slurmctld, slurmdbd,
# sshd (the login node's listener: open connections stay), or postgresql.
cmd_daemon() {
    need_root
    local action=${1:-} name=${2:-}
    [ -n "$name" ] || die "usage: $0 daemon stop|start NAME [CLUSTER]"
    use_cluster "${3:-hpcgw}"
    C_CONF_CHANGED=0
    case "$action:$name" in
        stop:slurmrestd) stop_slurmrestd ;;
        start:slurmrestd) start_slurmrestd ;;
        stop:slurmctld) stop_daemon slurmctld 30 ;;
        start:slurmctld) start_slurmctld ;;
        stop:slurmdbd) stop_daemon slurmdbd 15 ;;
        start:slurmdbd) start_slurmdbd ;;
        stop:sshd) stop_sshd ;;
        start:sshd) start_sshd ;;
        stop:postgresql) pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast ;;
        start:postgresql) start_postgres ;;
        *) die "usage: $0 daemon stop|start slurmrestd|slurmctld|slurmdbd|sshd|postgresql [CLUSTER]" ;;
    esac
}

# ------------------------------------------------------------ token / env ----

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# mint_jwt USER LIFESPAN : HS256 JWT {sun, iat, exp} signed with the selected
# cluster's key, exactly what slurmctld's auth/jwt accepts (same as `scontrol token`).
mint_jwt() {
    local user=$1 life=$2 now header payload hexkey sig
    [ -r "$C_JWT_KEY" ] || die "cannot read $C_JWT_KEY"
    now=$(date +%s)
    header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
    payload=$(printf '{"exp":%d,"iat":%d,"sun":"%s"}' $(( now + life )) "$now" "$user" | b64url)
    hexkey=$(od -An -v -tx1 "$C_JWT_KEY" | tr -d ' \n')
    sig=$(printf '%s.%s' "$header" "$payload" \
        | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | b64url)
    printf '%s.%s.%s\n' "$header" "$payload" "$sig"
}

cmd_token() {
    local user=${1:-} life=${2:-3600} out
    use_cluster "${3:-hpcgw}"
    [ -n "$user" ] || die "usage: $0 token USER [LIFESPAN_SECONDS] [CLUSTER]"
    [[ "$life" =~ ^[0-9]+$ ]] || die "LIFESPAN must be seconds"
    id "$user" >/dev/null 2>&1 || die "no such unix user: $user"
    if [ "${DEVCLUSTER_TOKEN_LOCAL:-0}" != 1 ] \
        && out=$(sl scontrol token username="$user" lifespan="$life" 2>/dev/null) \
        && [ -n "$out" ]; then
        printf '%s\n' "${out#SLURM_JWT=}"
    else
        [ "${DEVCLUSTER_TOKEN_LOCAL:-0}" = 1 ] || warn "scontrol token failed; minting locally from $C_JWT_KEY"
        mint_jwt "$user" "$life"
    fi
}

# cli CLUSTER COMMAND ARGS... : run a Slurm command against one cluster
# (e.g. `deploy/devcluster.sh cli mesocentre sacct -X`).
cmd_cli() {
    [ $# -ge 2 ] || die "usage: $0 cli CLUSTER COMMAND [ARGS...]"
    use_cluster "$1"
    shift
    case "$1" in */*) die "COMMAND is a Slurm command name, not a path" ;; esac
    exec "$C_BIN/$1" "${@:2}"
}

cmd_env() {
    use_cluster hpcgw
    local memory
    memory=$(sed -n 's/^TaskPlugin=task\/cgroup$/cgroup/p; s/^TaskPlugin=task\/none$/jobacct/p' "$C_CONF" 2>/dev/null)
    cat <<EOF
export SLURM_CONF=$C_CONF
export SLURM_CLUSTER=$C_NAME
export SLURM_PARTITION=$C_PARTITION
export SLURM_ACCOUNT=$SLURM_ACCOUNT
export SLURMRESTD_URL=http://$REST_HOST:$C_REST_PORT
export SLURMRESTD_API_VERSION=$C_REST_API
export SLURM_JWT_KEY=$C_JWT_KEY
export HPCGW_TEST_USERS="${TEST_USERS[*]}"
export HPCGW_SSH_HOST=127.0.0.1
export HPCGW_SSH_PORT=$C_SSH_PORT
export HPCGW_SSH_USER_CA_KEY=$CA_KEY
export HPCGW_SSH_USER_CA_PUB=$CA_KEY.pub
export HPCGW_DATABASE_URL=postgresql+psycopg://hpcgw:hpcgw@127.0.0.1:$PG_PORT/hpcgw
export HPCGW_TEST_DATABASE_URL=postgresql+psycopg://hpcgw:hpcgw@127.0.0.1:$PG_PORT/hpcgw_test
export HPCGW_DEVCLUSTER_LOG_DIR=$LOG_DIR
export HPCGW_DEVCLUSTER_MEMORY_ENFORCEMENT=$memory
EOF
    use_cluster mesocentre
    cat <<EOF
export MESOCENTRE_SLURM_CONF=$C_CONF
export MESOCENTRE_SLURM_BIN=$C_BIN
export MESOCENTRE_PARTITION=$C_PARTITION
export MESOCENTRE_SLURMRESTD_URL=http://$REST_HOST:$C_REST_PORT
export MESOCENTRE_JWT_KEY=$C_JWT_KEY
export MESOCENTRE_SSH_PORT=$C_SSH_PORT
EOF
}

usage() {
    cat <<EOF
usage: $0 COMMAND
  install               install packages, Slurm 24.11 (built once, cached), users,
                        keys and config of both clusters (idempotent)
  start                 start every component of both clusters and wait until it answers
  status                print each component up/DOWN; exit 0 only if all up
  stop                  stop every component
  token USER [SECONDS] [CLUSTER]
                        print a Slurm JWT for USER on CLUSTER (hpcgw|mesocentre,
                        default hpcgw; lifespan 3600)
                        (DEVCLUSTER_TOKEN_LOCAL=1: mint HS256 locally, no slurmctld)
  cli CLUSTER COMMAND [ARGS...]
                        run a Slurm command (sacct, squeue, sinfo, ...) on CLUSTER
  env                   print shell exports describing the clusters
  daemon stop|start NAME [CLUSTER]
                        stop or start one daemon (slurmrestd, slurmctld, slurmdbd,
                        sshd, postgresql) of CLUSTER (default hpcgw), for fault tests
EOF
}

main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case "$cmd" in
        install) cmd_install "$@" ;;
        start) cmd_start "$@" ;;
        status) cmd_status "$@" ;;
        stop) cmd_stop "$@" ;;
        token) cmd_token "$@" ;;
        cli) cmd_cli "$@" ;;
        env) cmd_env "$@" ;;
        daemon) cmd_daemon "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
