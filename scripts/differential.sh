#!/usr/bin/env bash
# Differential conformance: runs every spec of DIR with PostgreSQL's own
# isolationtester (from pg_config --pgxs) and with isospec against the same
# throwaway server, each spec in a fresh database, and reports every spec
# whose transcripts differ.  Useful for specs that have no expected files
# (an extension's, or upstream ones for another version).  Specs that rely on
# isospec-only options (`# isospec: prepared-waits`) make isolationtester wait
# until its step timeout (PGISOLATIONTIMEOUT, default 300 s here too).
#   scripts/differential.sh DIR [isospec run options...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/differential.sh DIR [isospec options]}; shift
IT=$(pg_config --pgxs 2>/dev/null | sed 's|src/makefiles/pgxs.mk|src/test/isolation/isolationtester|')
[ -x "$IT" ] || { echo "differential: isolationtester not found (install PostgreSQL's server dev package)" >&2; exit 2; }
OUT=target/differential; rm -rf "$OUT"; mkdir -p "$OUT/expected"; chmod 755 "$OUT"
. scripts/pg-server.sh
pg_server_start "$OUT/server" 5434
SOCK=$PG_SOCK
psql_admin() { psql -X -q -h "$SOCK" -p 5434 -U postgres -d postgres "$@"; }
for spec in "$dir"/*.spec; do
  name=$(basename "$spec" .spec)
  psql_admin -c "DROP DATABASE IF EXISTS isolation_regression" -c "CREATE DATABASE isolation_regression TEMPLATE template0" \
    -c "ALTER DATABASE isolation_regression SET lc_messages TO 'C'" -c "ALTER DATABASE isolation_regression SET bytea_output TO 'hex'"
  PGAPPNAME="isolation/$name" PGTZ=America/Los_Angeles PGDATESTYLE="Postgres, MDY" PGOPTIONS="-c intervalstyle=postgres_verbose" \
    timeout 600 "$IT" "host=$SOCK port=5434 user=postgres dbname=isolation_regression" < "$spec" > "$OUT/expected/$name.out" 2>&1 || true
done
psql_admin -c "DROP DATABASE IF EXISTS isolation_regression"
# isospec against the same server, each spec compared with isolationtester's transcript.
mkdir -p "$OUT/specs"; cp "$dir"/*.spec "$OUT/specs/"
target/release/isospec run --host "$SOCK" --port 5434 --user postgres --inputdir "$OUT" --outputdir "$OUT" "$@" "$OUT/specs"
