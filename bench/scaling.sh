#!/usr/bin/env bash
# make bench, part 2: how the cost of one spec grows with its sessions.
# The spec is issue #13's FIFO lock queue: N sessions BEGIN, each takes
# pg_advisory_xact_lock(1) and updates a counter (all but the first wait),
# then they commit in order, each commit releasing the next waiter; one
# permutation.  Prints, per N, isospec's wall time and peak RSS and, when
# PostgreSQL's isolationtester is installed (pgxs), its wall time for the
# same spec (skipped above BENCH_ISO_MAX sessions: it grows with N^2), and
# checks that both transcripts are identical.
#
#   BENCH_SESSIONS  the Ns (default: 10 50 100 200 400)
#   BENCH_ISO_MAX   largest N timed with isolationtester (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${BENCH_SESSIONS:-10 50 100 200 400}
ISO_MAX=${BENCH_ISO_MAX:-100}
ISOSPEC=target/release/isospec
OUT=target/bench-scaling
rm -rf "$OUT" && mkdir -p "$OUT/specs" && chmod -R 755 "$OUT"

# queue_spec N: the FIFO queue with N sessions.
queue_spec() {
  local n=$1 i perm=""
  echo "# $n sessions queue on one advisory lock; each commit releases the next."
  echo "setup { CREATE TABLE counter (n int); INSERT INTO counter VALUES (0); }"
  echo "teardown { DROP TABLE counter; }"
  for i in $(seq 1 "$n"); do
    echo "session s$i"
    echo "step b$i { BEGIN; }"
    echo "step l$i { SELECT pg_advisory_xact_lock(1); UPDATE counter SET n = n + 1 RETURNING n; }"
    echo "step c$i { COMMIT; }"
  done
  for p in b l c; do for i in $(seq 1 "$n"); do perm="$perm $p$i"; done; done
  echo "permutation$perm"
}

max=0
for n in $SESSIONS; do [ "$n" -gt "$max" ] && max=$n; done
. scripts/pg-server.sh
PG_EXTRA_CONF="max_connections = $((max * 2 + 20))" pg_server_start "$OUT/server" 5434
"${AS_PG[@]}" "$BINDIR/psql" -X -q -h "$PG_SOCK" -p 5434 -U postgres -d postgres -c "CREATE DATABASE isolation_regression"
ISO=$(dirname "$(pg_config --pgxs 2>/dev/null || echo /nonexistent/x/x)")/../../src/test/isolation/isolationtester

printf "%-9s %12s %12s %18s %s\n" sessions "isospec" "peak RSS" "isolationtester" "transcripts"
for n in $SESSIONS; do
  spec=$OUT/specs/queue$n.spec
  queue_spec "$n" >"$spec"
  /usr/bin/time -f "%e %M" -o "$OUT/time" "$ISOSPEC" run --quiet --host "$PG_SOCK" --port 5434 --user postgres \
    --use-existing --outputdir "$OUT/run$n" "$spec" >/dev/null 2>&1 || true
  read -r wall rss < <(tail -n 1 "$OUT/time")
  iso="-" same="-"
  if [ -x "$ISO" ] && [ "$n" -le "$ISO_MAX" ]; then
    start=$(date +%s.%N)
    PGHOST=$PG_SOCK PGPORT=5434 PGUSER=postgres PGTZ=America/Los_Angeles PGDATESTYLE="Postgres, MDY" \
      PGOPTIONS="-c intervalstyle=postgres_verbose" "$ISO" "dbname=isolation_regression" <"$spec" >"$OUT/iso$n.out" 2>&1 || true
    iso="$(echo "$(date +%s.%N) - $start" | bc | xargs printf "%.2f") s"
    if cmp -s "$OUT/iso$n.out" "$OUT/run$n/results/queue$n.out"; then same=identical; else same=DIFFER; fi
  fi
  printf "%-9s %10s s %9s MB %18s %s\n" "$n" "$wall" "$((rss / 1024))" "$iso" "$same"
done
