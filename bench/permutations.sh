#!/usr/bin/env bash
# make bench, part 3: specs with over 10,000 permutations (no permutation
# lines), isospec against PostgreSQL's isolationtester (when installed,
# pgxs) on one throwaway server, with both transcripts compared.
#   bench/specs/permutations-locks.spec  10,080 interleavings where single
#       statements queue behind open transactions' row locks;
#   bench/specs/permutations-plain.spec  11,550 interleavings where nothing
#       waits: every step is one round trip and the server's work (a table
#       created and dropped per permutation) is the whole cost.
# Also prints the server's CPU time per run: where it is close to the wall
# time, the run is bound by the server, not by the runner.
#   BENCH_PERMUTATION_SPECS  the specs (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
ISOSPEC=target/release/isospec
OUT=target/bench-permutations
SPECS=${BENCH_PERMUTATION_SPECS:-bench/specs/permutations-locks.spec bench/specs/permutations-plain.spec}
rm -rf "$OUT" && mkdir -p "$OUT" && chmod 755 "$OUT"
. scripts/pg-server.sh
pg_server_start "$OUT/server" 5435
"${AS_PG[@]}" "$BINDIR/psql" -X -q -h "$PG_SOCK" -p 5435 -U postgres -d postgres -c "CREATE DATABASE isolation_regression"
ISO=$(dirname "$(pg_config --pgxs 2>/dev/null || echo /nonexistent/x/x)")/../../src/test/isolation/isolationtester
# The server's CPU time counts a backend once it has exited and been
# reaped: wait until no backend of the test database is left.
settled() {
  until [ "$("${AS_PG[@]}" "$BINDIR/psql" -X -A -t -h "$PG_SOCK" -p 5435 -U postgres -d postgres \
    -c "SELECT count(*) FROM pg_stat_activity WHERE datname = 'isolation_regression'")" = 0 ]; do :; done
}
server_cpu() { settled; awk '{printf "%.2f", ($14 + $15 + $16 + $17) / 100}' "/proc/$(head -n 1 "$PG_DATA/postmaster.pid")/stat"; }

printf "%-28s %13s %22s %22s %7s %s\n" spec permutations "isospec (server CPU)" "isolationtester (srv)" ratio transcripts
for spec in $SPECS; do
  name=$(basename "$spec" .spec)
  before=$(server_cpu)
  /usr/bin/time -f "%e" -o "$OUT/time" "$ISOSPEC" run --quiet --host "$PG_SOCK" --port 5435 --user postgres \
    --use-existing --outputdir "$OUT/run" "$spec" >/dev/null 2>&1 || true
  wall=$(tail -n 1 "$OUT/time"); srv=$(printf "%.2f" "$(echo "$(server_cpu) - $before" | bc)")
  perms=$(grep -c '^starting permutation' "$OUT/run/results/$name.out" || true)
  iso="-" isrv="-" ratio="-" same="-"
  if [ -x "$ISO" ]; then
    before=$(server_cpu)
    /usr/bin/time -f "%e" -o "$OUT/time" env PGHOST=$PG_SOCK PGPORT=5435 PGUSER=postgres PGTZ=America/Los_Angeles \
      PGDATESTYLE="Postgres, MDY" PGOPTIONS="-c intervalstyle=postgres_verbose" \
      "$ISO" "dbname=isolation_regression" <"$spec" >"$OUT/iso-$name.out" 2>&1 || true
    iso=$(tail -n 1 "$OUT/time"); isrv=$(printf "%.2f" "$(echo "$(server_cpu) - $before" | bc)")
    ratio=$(echo "scale=2; $wall / $iso" | bc | sed 's/^\./0./')
    if cmp -s "$OUT/iso-$name.out" "$OUT/run/results/$name.out"; then same=identical; else same=DIFFER; fi
  fi
  printf "%-28s %13s %10s s (%5s s) %10s s (%5s s) %7s %s\n" "$name" "$perms" "$wall" "$srv" "$iso" "$isrv" "$ratio" "$same"
done
