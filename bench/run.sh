#!/usr/bin/env bash
# make bench: times the PostgreSQL 15 conformance suite with isospec, serially
# and with -j, against one throwaway server; prints wall time, CPU time and
# peak RSS of the runner, and the slowest specs.  When PostgreSQL's own
# pg_isolation_regress is installed (pgxs), times it against the same server
# for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=${PG15_SUITE:-../shared/pg15-isolation}
JOBS=${BENCH_JOBS:-4}
ISOSPEC=target/release/isospec
OUT=target/bench
[ -d "$SUITE" ] || { echo "bench: $SUITE not found (set PG15_SUITE)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT" && chmod 755 "$OUT"

# One server for every measurement, so runs are comparable.
cat > "$OUT/run-server.conf" <<CONF
max_prepared_transactions = 10
CONF
SOCK=$(mktemp -d /tmp/isospec-bench-XXXXXX); chmod 777 "$SOCK"
DATA="$OUT/data"
BINDIR=$(pg_config --bindir 2>/dev/null || dirname "$(command -v initdb)")
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$DATA"; [ "$(id -u)" = 0 ] && chown postgres "$OUT" "$DATA"
as_pg "$BINDIR/initdb" -D "$DATA" -A trust -E UTF8 --locale=C --no-sync -U postgres >/dev/null
cat "$OUT/run-server.conf" >> "$DATA/postgresql.conf"
printf "fsync = off\nlisten_addresses = ''\nport = 5433\nunix_socket_directories = '%s'\n" "$SOCK" >> "$DATA/postgresql.conf"
as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$OUT/server.log" -w start >/dev/null
trap 'as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; rm -rf "$SOCK"' EXIT
CONN=(--host "$SOCK" --port 5433 --user postgres --drop-existing)

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/time" "$@" >/dev/null 2>"$OUT/$label.stderr" || true
  read -r wall user sys rss < <(tail -n 1 "$OUT/time")
  printf "%-28s wall %6.2f s   cpu %6.2f s   peak RSS %6d KB   %s\n" "$label" "$wall" "$(echo "$user + $sys" | bc)" "$rss" "$(grep -h 'passed,' "$OUT/$label/regression.out" 2>/dev/null || echo '')"
}

echo "PostgreSQL 15 conformance suite ($(ls "$SUITE"/specs/*.spec | wc -l) specs), one server, $(nproc) cores"
measure serial "$ISOSPEC" run --quiet "${CONN[@]}" --inputdir "$SUITE" --schedule "$SUITE/isolation_schedule" --schedule "$SUITE/prepared_schedule" --outputdir "$OUT/serial" --json "$OUT/serial.json"
measure "serial-pg-locks" "$ISOSPEC" run --quiet "${CONN[@]}" --wait-detector pg-locks --inputdir "$SUITE" --schedule "$SUITE/isolation_schedule" --schedule "$SUITE/prepared_schedule" --outputdir "$OUT/serial-pg-locks"
measure "j$JOBS" "$ISOSPEC" run --quiet "${CONN[@]}" -j "$JOBS" --alone intra-grant-inplace-db --inputdir "$SUITE" "$SUITE/specs" --outputdir "$OUT/j$JOBS"

PIR=$(pg_config --pgxs 2>/dev/null | sed 's|src/makefiles/pgxs.mk|src/test/isolation/pg_isolation_regress|')
if [ -n "$PIR" ] && [ -x "$PIR" ]; then
  mkdir -p "$OUT/isolationtester"; [ "$(id -u)" = 0 ] && chown postgres "$OUT/isolationtester"
  as_pg /usr/bin/time -f "%e %U %S %M" -o "$OUT/isolationtester/time" "$PIR" --inputdir="$SUITE" --outputdir="$OUT/isolationtester" \
    --host="$SOCK" --port=5433 --schedule="$SUITE/isolation_schedule" --schedule="$SUITE/prepared_schedule" >/dev/null 2>&1 || true
  read -r wall user sys rss < <(tail -n 1 "$OUT/isolationtester/time")
  printf "%-28s wall %6.2f s   (pg_isolation_regress + isolationtester, for reference)\n" "isolationtester (PG)" "$wall"
fi
echo
echo "slowest specs (serial, ms):"
grep '^test' "$OUT/serial/regression.out" | awk '{print $(NF-1), $2}' | sort -rn | head -10 | awk '{printf "  %6d  %s\n", $1, $2}'
