#!/usr/bin/env bash
# Prints the bin/ directory of target/dist-tools, a virtual environment with
# the pinned tools of scripts/dist-requirements.txt (maturin, ziglang,
# auditwheel, uv, actionlint), made or remade when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/dist-tools
req=scripts/dist-requirements.txt
stamp=$venv/.requirements
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$stamp"; then
  echo "$PWD/$venv/bin"; exit 0
fi
rm -rf "$venv"
# Debian's python3 keeps venv (ensurepip) in a package of its own.
python3 -m venv "$venv" 2>/dev/null || { scripts/provision.sh --check venv; exit 2; }
# actionlint's wheel is Linux's only (make check-workflows runs on Linux):
# elsewhere (the release's macOS jobs) it is left out.
if [ "$(uname -s)" = Linux ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$req" >&2
else
  grep -v '^actionlint' "$req" >"$venv/requirements"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$venv/requirements" >&2
fi
cp "$req" "$stamp"
echo "$PWD/$venv/bin"
