#!/usr/bin/env bash
# deploy/devcluster/build-slurm.sh - Slurm 24.11 for the "mesocentre" dev cluster.
#
# Debian 12 ships Slurm 22.05 only. This builds a current release from Debian
# 13's own source package: a deb-src entry for trixie in a file of its own
# (the machine's debian.sources is never edited), `apt-get source
# --download-only slurm-wlm` for the upstream tarball (the .dsc may answer 404;
# the tarball is all `configure && make` needs), then
#   ./configure --prefix=$MESO_PREFIX --sysconfdir=$MESO_ETC && make && make install
# The installed tree is cached as a tarball under ~/.cache/hpcgw/ keyed by
# version, architecture and distribution, so a second machine session (or CI
# on the same machine) restores it in seconds.
#
# On a distribution that already ships 24.11 (Debian 13) nothing is built: the
# distribution's packages are used (see devcluster.sh, MESO_PREFIX=/usr).
#
# Usage (as root): build-slurm.sh PREFIX SYSCONFDIR LOGFILE
# Prints the installed version on success.
set -euo pipefail

PREFIX=${1:?usage: build-slurm.sh PREFIX SYSCONFDIR LOGFILE}
SYSCONFDIR=${2:?usage: build-slurm.sh PREFIX SYSCONFDIR LOGFILE}
LOG=${3:?usage: build-slurm.sh PREFIX SYSCONFDIR LOGFILE}
SERIES=${MESO_SLURM_SERIES:-24.11}
CACHE_DIR=${HPCGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hpcgw}
SRC_LIST=/etc/apt/sources.list.d/hpcgw-trixie-src.sources
STAMP=$PREFIX/.hpcgw-slurm-version
# Build dependencies, all in bookworm; their runtime libraries stay installed
# for the built daemons (libmunge, libjwt, json-c, http-parser, libyaml, MariaDB).
BUILD_DEPS=(build-essential pkg-config libmunge-dev libjwt-dev libjson-c-dev
            libhttp-parser-dev libyaml-dev default-libmysqlclient-dev libpam0g-dev)

say() { printf '[build-slurm] %s\n' "$*" >&2; }
die() { printf '[build-slurm] ERROR: %s\n' "$*" >&2; exit 1; }

installed_version() {
    [ -x "$PREFIX/sbin/slurmctld" ] && [ -s "$STAMP" ] && cat "$STAMP"
}

install_build_deps() {
    local missing=() p
    for p in "${BUILD_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >>"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; die "apt-get install failed"; }
}

# The machine's own Debian mirror (first non-security entry of its apt sources),
# so no host name is written here.
debian_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] && [ "$f" != "$SRC_LIST" ] || continue
        uri=$(awk '/^$/ {u=""} /^URIs:/ {u=$2} /^Suites:/ && u != "" && $0 !~ /security/ {print u; exit}' "$f")
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    if [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list)
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    fi
    return 1
}

ensure_trixie_sources() {
    local mirror
    if [ ! -s "$SRC_LIST" ]; then
        mirror=$(debian_mirror) || die "cannot find the machine's Debian mirror in /etc/apt"
        printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" >"$SRC_LIST"
        say "added deb-src for trixie ($SRC_LIST)"
    fi
    if ! apt-cache showsrc slurm-wlm 2>/dev/null | grep -q "^Version: $SERIES\."; then
        apt-get update -q >>"$LOG" 2>&1 || die "apt-get update failed (see $LOG)"
    fi
}

# newest $SERIES.x version of slurm-wlm among the source packages apt knows
source_version() {
    apt-cache showsrc slurm-wlm 2>/dev/null | awk -v s="$SERIES." \
        '/^Version:/ && index($2, s) == 1 { print $2 }' | sort -V | tail -n 1
}

build_from_source() {
    local debver upstream work tarball
    ensure_trixie_sources
    debver=$(source_version)
    [ -n "$debver" ] || die "no slurm-wlm $SERIES source package is listed"
    upstream=${debver%%-*}
    work=$(mktemp -d /tmp/hpcgw-slurm-build.XXXXXX)
    say "downloading slurm-wlm $debver sources (log: $LOG)"
    # The .dsc and Debian patches may answer 404; only the upstream tarball is needed.
    (cd "$work" && apt-get source --download-only "slurm-wlm=$debver" >>"$LOG" 2>&1) || true
    tarball="$work/slurm-wlm_${upstream}.orig.tar.gz"
    [ -s "$tarball" ] || die "could not download slurm-wlm_${upstream}.orig.tar.gz (see $LOG)"
    mkdir "$work/src"
    tar -xzf "$tarball" -C "$work/src" --strip-components=1
    say "building Slurm $upstream into $PREFIX (about 4 minutes on 2 cores)"
    (
        cd "$work/src"
        ./configure --prefix="$PREFIX" --sysconfdir="$SYSCONFDIR" \
            --with-jwt --with-json --with-http-parser --with-yaml --without-hdf5
        make -j"$(nproc)"
        make install
    ) >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "Slurm $upstream build failed (see $LOG)"; }
    echo "$upstream" >"$STAMP"
    rm -rf "$work"
}

main() {
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    mkdir -p "$(dirname "$LOG")"
    local have arch codename cache
    if have=$(installed_version); then
        echo "$have"
        return 0
    fi
    install_build_deps
    arch=$(dpkg --print-architecture)
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
    mkdir -p "$CACHE_DIR"
    cache=$(ls -1 "$CACHE_DIR"/slurm-"$SERIES".*-"$arch"-"$codename".tar.gz 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$cache" ]; then
        say "restoring $(basename "$cache")"
        tar -xzf "$cache" -C /
    else
        build_from_source
        cache="$CACHE_DIR/slurm-$(cat "$STAMP")-$arch-$codename.tar.gz"
        tar -czf "$cache.tmp" -C / "${PREFIX#/}" && mv "$cache.tmp" "$cache"
        say "cached the build as $cache"
    fi
    installed_version || die "$PREFIX has no usable Slurm after install"
}

main "$@"
