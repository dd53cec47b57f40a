#!/usr/bin/env bash
# Apptainer for the dev clusters, built from source (Debian packages no Apptainer).
#
#   deploy/apptainer.sh install        build and install once (idempotent), print the bin folder
#   deploy/apptainer.sh bin            print the bin folder if installed, else exit 1
#   deploy/apptainer.sh image OUT.sif  a tiny image without any registry: static busybox
#                                      (sh, wc, cat, ...) whose runscript runs its arguments,
#                                      as Docker images converted by Apptainer do
#
# The source comes as a Go module (the Go toolchain's module download), is built
# without setuid (unprivileged user namespaces, `./mconfig --without-suid`) and is
# installed under a version-keyed cache folder, so a second run reuses it. A cold
# build takes 10 to 15 minutes on 2 shared cores. No FUSE helper (squashfuse) is installed:
# without it Apptainer unpacks a SIF image into a temporary sandbox for each run,
# which works where /dev/fuse is not usable by the users (as in the dev containers).
set -euo pipefail
VERSION=${HPCGW_APPTAINER_VERSION:-1.4.3}
CACHE=${HPCGW_CACHE:-$HOME/.cache/hpcgw}
PREFIX="$CACHE/apptainer-$VERSION"
BIN="$PREFIX/bin"
GO=${GO:-/usr/local/go/bin/go}
work=""
DEBS=(build-essential pkg-config libseccomp-dev libsubid-dev uidmap squashfs-tools busybox-static)

installed() { [ -x "$BIN/apptainer" ] && "$BIN/apptainer" --version | grep -qx "apptainer version $VERSION"; }

build() {
  local missing=()
  for deb in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  local src zip
  zip=$(cd /tmp && GOFLAGS=-mod=mod "$GO" mod download -json "github.com/apptainer/apptainer@v$VERSION" |
    sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$zip" ] || { echo "apptainer.sh: the Go module apptainer v$VERSION is not reachable" >&2; exit 1; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/apptainer-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  src="$work/apptainer"
  cp -r "$zip" "$src" && chmod -R u+w "$src"
  # a module zip keeps neither the git history (the version) nor the executable bits
  echo "$VERSION" >"$src/VERSION"
  grep -rlI '^#!' "$src" | while read -r f; do head -c2 "$f" | grep -q '#!' && chmod +x "$f" || true; done
  (
    cd "$src"
    PATH="$(dirname "$GO"):$PATH" ./mconfig --without-suid --without-network --prefix="$PREFIX"
    cd builddir
    PATH="$(dirname "$GO"):$PATH" nice make -j2 -s
    PATH="$(dirname "$GO"):$PATH" make -s install
  ) >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
  chmod -R o+rX "$PREFIX"
}

image() {
  local out=${1:?usage: apptainer.sh image OUT.sif} root
  root=$(mktemp -d "${TMPDIR:-/tmp}/apptainer-rootfs.XXXXXX")
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/.singularity.d"
  cp "$(command -v busybox)" "$root/bin/busybox"
  "$root/bin/busybox" --list | while read -r applet; do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf '#!/bin/sh\nexec "$@"\n' >"$root/.singularity.d/runscript"
  chmod 755 "$root/.singularity.d/runscript"
  "$BIN/apptainer" -q build -F "$out" "$root"
  chmod 644 "$out"
  rm -rf "$root"
}

case "${1:-install}" in
  install) installed || build; installed && echo "$BIN" ;;
  bin) installed && echo "$BIN" ;;
  image) installed && image "${2:-}" ;;
  *) echo "usage: $0 [install|bin|image OUT.sif]" >&2; exit 2 ;;
esac
