#!/usr/bin/env bash
# Makes sure PGXS can build against the installed server: installs Debian's
# postgresql-server-dev-MAJOR at exactly the installed server's version
# (never upgrading the server) when its Makefile.global is missing.
# Prints nothing on success.  Usage: scripts/pg-dev.sh
set -euo pipefail
pg_config=${PG_CONFIG:-pg_config}
command -v "$pg_config" >/dev/null || { echo "pg-dev: $pg_config not found" >&2; exit 2; }
global="$(dirname "$("$pg_config" --pgxs)")/../Makefile.global"
[ -f "$global" ] && exit 0
major=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "pg-dev: PGXS's $global is missing: install postgresql-server-dev-$major" >&2
  exit 2
fi
version=$(dpkg-query -W -f='${Version}' "postgresql-$major" 2>/dev/null || true)
pkg="postgresql-server-dev-$major${version:+=$version}"
if ! apt-get install -y -qq --no-upgrade "$pkg" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  # The installed server's exact version may have left the archive: PGXS's
  # build files of a later minor release build the same extensions.
  apt-get install -y -qq --no-upgrade "$pkg" >/dev/null 2>&1 \
    || apt-get install -y -qq --no-upgrade "postgresql-server-dev-$major" >/dev/null
fi
[ -f "$global" ] || { echo "pg-dev: $pkg installed but $global is still missing" >&2; exit 2; }
