#!/usr/bin/env bash
# The browser assets the gateway's pages use (Bootstrap, Leaflet), from npm at the
# versions of package-lock.json, copied into gateway/web/static/vendor/ so that the
# gateway serves them itself: no page loads anything from another host.
# Called by `make web-assets` (a prerequisite of demo, test and dist).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "[web-assets] installing npm"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
fi
npm ci --ignore-scripts --no-audit --no-fund --silent
out=gateway/web/static/vendor
rm -rf "$out"
mkdir -p "$out/bootstrap" "$out/leaflet/images"
cp node_modules/bootstrap/dist/css/bootstrap.min.css "$out/bootstrap/"
cp node_modules/bootstrap/dist/js/bootstrap.bundle.min.js "$out/bootstrap/"
cp node_modules/bootstrap/LICENSE "$out/bootstrap/LICENSE"
cp node_modules/leaflet/dist/leaflet.css node_modules/leaflet/dist/leaflet.js "$out/leaflet/"
cp node_modules/leaflet/dist/images/*.png "$out/leaflet/images/"
cp node_modules/leaflet/LICENSE "$out/leaflet/LICENSE"
touch "$out/.installed"
echo "[web-assets] $(find "$out" -type f | wc -l) files in $out"
