#!/usr/bin/env bash
# The one script that installs what the tests and release checks need on a
# Debian machine (run as root); no test script installs anything itself.
# Each piece is checked first and installed only when missing, never
# upgrading what is there (PostgreSQL's server above all).
#
#   scripts/provision.sh                 install every missing piece
#   scripts/provision.sh PIECE...        only these
#   scripts/provision.sh --check PIECE...  install nothing: say what is
#                                        missing and exit 1 (the test
#                                        scripts call this)
#
# Pieces: server (PostgreSQL 15's initdb/postgres), pgxs (PGXS's build
# files at the installed server's version), pgbouncer, openssl, chromium,
# the shellcheck linter, venv (python3 -m venv), npm, drivers (node-postgres from the
# npm registry by tests/python/clients/node's lock file; pgjdbc and a
# headless JDK from Debian), musl (Rust's x86_64-unknown-linux-musl
# target, for make dist).  Python tools are pinned in requirements files
# and installed by pip into the project's own virtual environments
# (scripts/dist-tools.sh, scripts/check-python.sh), as cargo fetches crates.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(server pgxs pgbouncer openssl chromium shellcheck venv npm drivers musl)
check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
pieces=("$@")
[ ${#pieces[@]} -gt 0 ] || pieces=("${all[@]}")

pg_config=${PG_CONFIG:-pg_config}
if ! command -v "$pg_config" >/dev/null && [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
  pg_config=/usr/lib/postgresql/15/bin/pg_config
fi

# Whether PIECE is there (exit status), silently.
have() {
  case $1 in
    server) command -v initdb >/dev/null || command -v "$pg_config" >/dev/null ;;
    pgxs)
      command -v "$pg_config" >/dev/null || return 1
      [ -f "$(dirname "$("$pg_config" --pgxs)")/../Makefile.global" ] ;;
    pgbouncer) command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] ;;
    openssl | chromium | shellcheck | npm) command -v "$1" >/dev/null ;;
    venv)
      local t ok=0; t=$(mktemp -d)
      python3 -m venv "$t/v" >/dev/null 2>&1 || ok=1
      rm -rf "$t"; return $ok ;;
    drivers)
      [ -d tests/python/clients/node/node_modules/pg ] && command -v java >/dev/null \
        && [ -f /usr/share/java/postgresql.jar ] ;;
    musl) ! command -v rustup >/dev/null || rustup target list --installed | grep -x x86_64-unknown-linux-musl >/dev/null ;;
    *) echo "provision: unknown piece \"$1\" (one of: ${all[*]})" >&2; exit 2 ;;
  esac
}

apt() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "provision: install the Debian packages $* (as root: scripts/provision.sh)" >&2
    exit 2
  fi
  apt-get install -y -qq --no-upgrade "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-upgrade "$@" >/dev/null; }
}

install() {
  case $1 in
    server) apt postgresql-15 ;;
    pgxs)
      have server || install server
      local major version pkg
      major=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
      version=$(dpkg-query -W -f='${Version}' "postgresql-$major" 2>/dev/null || true)
      pkg="postgresql-server-dev-$major${version:+=$version}"
      # The installed server's exact version may have left the archive:
      # PGXS's build files of a later minor release build the same
      # extensions.
      ( apt "$pkg" ) 2>/dev/null || apt "postgresql-server-dev-$major" ;;
    pgbouncer | openssl | chromium | shellcheck | npm) apt "$1" ;;
    venv) apt python3-venv ;;
    drivers)
      have npm || install npm
      npm ci --prefix tests/python/clients/node --no-audit --no-fund --loglevel=error >/dev/null
      command -v java >/dev/null || apt default-jdk-headless
      [ -f /usr/share/java/postgresql.jar ] || apt libpostgresql-jdbc-java ;;
    musl) rustup target add x86_64-unknown-linux-musl >/dev/null ;;
  esac
}

missing=()
for p in "${pieces[@]}"; do
  if ! have "$p"; then
    if [ $check = 1 ]; then missing+=("$p"); else install "$p"; have "$p" || { echo "provision: $p installed but still missing" >&2; exit 2; }; fi
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} (install with: scripts/provision.sh ${missing[*]}, as root on Debian)" >&2
  exit 1
fi
