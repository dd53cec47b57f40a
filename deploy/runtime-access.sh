#!/usr/bin/env bash
# Dev/CI only: jobs run as the test users (alice, bob) and execute the process
# runners with this checkout's virtualenv, so those users must be able to reach
# the checkout and the Python installation behind the venv. When they cannot,
# grant search (x) on the parent folders and read on those two trees only.
set -euo pipefail
repo=$(realpath "${1:?usage: runtime-access.sh REPO}")
py="$repo/.venv/bin/python"
check() {
  runuser -u alice -- "$py" -c 'import processes.runtime, rasterio, cwltool' 2>/dev/null
}
open_path() {  # o+x on every parent of $1, o+rX on $1 itself
  local dir; dir=$(dirname "$1")
  while [ "$dir" != "/" ]; do chmod o+x "$dir"; dir=$(dirname "$dir"); done
  chmod -R o+rX "$1"
}
cd /tmp
if PYTHONPATH="$repo" check; then exit 0; fi
base=$("$py" -c 'import sys; print(sys.base_prefix)')
open_path "$repo"
open_path "$base"
if PYTHONPATH="$repo" check; then
  echo "runtime-access: made $repo and $base readable by the test users (dev machine only)"
else
  echo "runtime-access: alice still cannot run $py; jobs will fail" >&2
  exit 1
fi
