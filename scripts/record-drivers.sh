#!/usr/bin/env bash
# Installs the client drivers that tests/python/test_record_drivers.py
# records, each pinned: node-postgres from the npm registry
# (tests/python/clients/node/package-lock.json, `npm ci`), and pgjdbc from
# Debian (libpostgresql-jdbc-java, with a headless JDK when java is
# missing).  The Python drivers (psycopg 3, psycopg2, asyncpg, SQLAlchemy)
# are pinned in tests/python/requirements.txt, which make check-python
# installs into its virtual environment.  Prints nothing on success.
# Usage: scripts/record-drivers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "record-drivers: install $* (Debian packages) to run the driver tests" >&2
    exit 2
  fi
  apt-get install -y -qq --no-upgrade "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-upgrade "$@" >/dev/null; }
}

command -v npm >/dev/null 2>&1 || apt_install npm
node_dir=tests/python/clients/node
npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error >/dev/null

command -v java >/dev/null 2>&1 || apt_install default-jdk-headless
[ -f /usr/share/java/postgresql.jar ] || apt_install libpostgresql-jdbc-java
