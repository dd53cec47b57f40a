#!/usr/bin/env bash
# Tools the test suite needs beyond the Python packages: headless Chromium and its
# matching chromedriver (Debian packages), for the dashboard's browser tests, and
# nginx (nginx-light), the TLS reverse proxy of the deployment tests.
# Idempotent: installs nothing when both are present. Called by `make test`.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[install-test-tools] installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# The tests run their own nginx on loopback ports; the package's service (port 80 on
# every address, started by the package on a systemd host) is not wanted here.
if [[ " ${need[*]} " == *" nginx-light "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now nginx.service >/dev/null 2>&1 || true
fi
