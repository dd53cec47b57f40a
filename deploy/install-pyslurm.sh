#!/usr/bin/env bash
# Install pyslurm, built for THIS host's Slurm, into a Python environment.
#
#   bash deploy/install-pyslurm.sh [PYTHON]        (default PYTHON: .venv/bin/python)
#
# pyslurm X.Y.* wraps libslurm of Slurm X.Y exactly; PyPI only serves recent
# releases (none for Debian 12's Slurm 22.05), so the matching release is built
# from source (Cython, against libslurm-dev) ONCE and kept as a wheel in
# $HPCGW_WHEEL_CACHE (default ~/.cache/hpcgw-wheels/slurm-<version>/); later
# runs install that wheel in seconds. The C code Cython generates is compiled
# with -O0 by default (PYSLURM_CFLAGS): ~65 CPU-seconds instead of ~6 CPU-minutes
# at -O2, and the wrapper's own speed does not matter next to its RPCs.
#
# Overrides: PYSLURM_VERSION (e.g. 22.5.3), PYSLURM_SOURCE (anything `pip wheel`
# accepts: a local checkout, a tarball, a git URL; default: the GitHub tag),
# SLURM_LIB_DIR (where libslurm.so is; default: the multiarch lib directory).
# Idempotent: does nothing when the environment already imports a matching pyslurm.
set -euo pipefail

PYTHON="${1:-.venv/bin/python}"
header=/usr/include/slurm/slurm_version.h

log() { echo "[install-pyslurm] $*" >&2; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
[ -f "$header" ] || need+=(libslurm-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc python3-dev)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# '#define SLURM_VERSION_NUMBER 0x160508' is 22.05.8; pyslurm spells that release 22.5.
number=$(sed -n 's/^#define SLURM_VERSION_NUMBER \(0x[0-9a-fA-F]*\).*/\1/p' "$header")
if [ -z "$number" ]; then
    log "cannot read SLURM_VERSION_NUMBER from $header"
    exit 1
fi
major=$(((number >> 16) & 0xff)) minor=$(((number >> 8) & 0xff)) micro=$((number & 0xff))
slurm_version=$(printf '%d.%02d.%d' "$major" "$minor" "$micro")
release="$major.$minor"

# The newest pyslurm patch release known for each Slurm release.
declare -A latest=(
    [22.5]=22.5.3 [23.2]=23.2.3 [23.11]=23.11.1 [24.5]=24.5.1
    [24.11]=24.11.0 [25.5]=25.5.0 [25.11]=25.11.2
)
version="${PYSLURM_VERSION:-${latest[$release]:-}}"
if [ -z "$version" ]; then
    log "no known pyslurm release for Slurm $slurm_version; set PYSLURM_VERSION"
    exit 1
fi

installed=$("$PYTHON" -c 'import pyslurm; print(pyslurm.__version__)' 2>/dev/null || true)
if [ "$installed" = "$version" ]; then
    exit 0
fi

cache="${HPCGW_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpcgw-wheels}/slurm-$slurm_version"
mkdir -p "$cache"
pytag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
cached() { find "$cache" -maxdepth 1 -name "pyslurm-$version-$pytag-*.whl" | head -n 1; }
wheel=$(cached)

if [ -z "$wheel" ]; then
    libdir="${SLURM_LIB_DIR:-}"
    for d in "/usr/lib/$(gcc -print-multiarch 2>/dev/null)" /usr/lib64 /usr/lib; do
        [ -z "$libdir" ] && [ -e "$d/libslurm.so" ] && libdir="$d"
    done
    if [ -z "$libdir" ]; then
        log "libslurm.so not found: install libslurm-dev or set SLURM_LIB_DIR"
        exit 1
    fi
    source="${PYSLURM_SOURCE:-git+https://github.com/PySlurm/pyslurm@v$version}"
    log "building pyslurm $version for Slurm $slurm_version from $source (takes minutes)"
    start=$(date +%s)
    CFLAGS="${PYSLURM_CFLAGS:--O0 -g0}" SLURM_INCLUDE_DIR=/usr/include SLURM_LIB_DIR="$libdir" \
        "$PYTHON" -m pip wheel -q --no-deps -w "$cache" "$source"
    log "built in $(($(date +%s) - start)) s"
    wheel=$(cached)
fi

log "installing $(basename "$wheel")"
"$PYTHON" -m pip install -q --no-deps --force-reinstall "$wheel"
"$PYTHON" -c 'import pyslurm; print("[install-pyslurm] pyslurm", pyslurm.__version__)' >&2
