#!/usr/bin/env bash
# OID parity: runs a suite with PostgreSQL's own pg_isolation_regress /
# isolationtester on one fresh server and with isospec on another fresh
# server of the same binaries, then creates one table on each and compares
# its OID.  Equal OIDs mean isospec made the server allocate exactly the
# objects isolationtester did, so specs whose transcripts print an OID
# (PostgreSQL 17.9's pub-concurrent-drop: "could not open relation with OID
# N") give the same number when run after the same specs.
#   scripts/oid-parity.sh SUITE_DIR [--bindir DIR] [-- SELECTION...]
# SELECTION defaults to SUITE_DIR's isolation_schedule (+ prepared_schedule).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:?usage: scripts/oid-parity.sh SUITE_DIR [--bindir DIR] [-- SELECTION...]}; shift
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case $1 in
    --bindir) BINDIR=$2; shift 2 ;;
    *) echo "oid-parity: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "${1:-}" = -- ] && shift
selection=("$@")
if [ ${#selection[@]} = 0 ]; then
  selection=(--schedule "$suite/isolation_schedule")
  [ -f "$suite/prepared_schedule" ] && selection+=(--schedule "$suite/prepared_schedule")
fi
PIR=$(pg_config --pgxs 2>/dev/null | sed 's|src/makefiles/pgxs.mk|src/test/isolation/pg_isolation_regress|')
[ -x "$PIR" ] || { echo "oid-parity: pg_isolation_regress not found (PostgreSQL's server dev package)" >&2; exit 2; }
OUT=target/oid-parity; rm -rf "$OUT"; mkdir -p "$OUT"; chmod 755 "$OUT"
. scripts/pg-server.sh
probe() { # SOCK PORT: the OID the next table gets
  psql -X -qAt -h "$1" -p "$2" -U postgres -d isolation_regression \
    -c "CREATE TABLE oid_parity_probe ()" -c "SELECT 'oid_parity_probe'::regclass::oid"
}
pg_server_start "$OUT/server-isolationtester" 5451
mkdir -p "$OUT/isolationtester"; [ "$(id -u)" = 0 ] && chown postgres "$OUT/isolationtester"
"${AS_PG[@]}" "$PIR" --inputdir="$suite" --outputdir="$OUT/isolationtester" --host="$PG_SOCK" --port=5451 \
  "${selection[@]}" > "$OUT/isolationtester.log" 2>&1 || true
it_oid=$(probe "$PG_SOCK" 5451)
pg_server_start "$OUT/server-isospec" 5452
target/release/isospec run --quiet --host "$PG_SOCK" --port 5452 --user postgres --inputdir "$suite" \
  --outputdir "$OUT/isospec" "${selection[@]}" > "$OUT/isospec.log" 2>&1 || true
is_oid=$(probe "$PG_SOCK" 5452)
echo "isolationtester: $(grep -hE 'tests passed|tests failed' "$OUT/isolationtester.log" | tr -s ' ' | head -n 1); next OID $it_oid"
echo "isospec:         $(grep -h 'passed,' "$OUT/isospec/regression.out"); next OID $is_oid"
if [ "$it_oid" = "$is_oid" ]; then echo "OID parity: equal"; else echo "OID parity: DIFFERENT" >&2; exit 1; fi
