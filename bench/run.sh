#!/usr/bin/env bash
# make bench: times PostgreSQL 15's isolation suite with isospec, serially
# and with -j, and with PostgreSQL's own pg_isolation_regress/isolationtester
# (when installed, pgxs) against the same throwaway server.  The modes run
# interleaved, BENCH_ROUNDS times, because this kind of machine drifts in
# speed by tens of percent over minutes: only ratios taken within one round
# are comparable.  Prints per round the wall time, the runner's CPU time and
# peak RSS, and the server's CPU time (what bounds -j on few cores); then
# the median ratios against the targets, and the slowest specs.
#
#   BENCH_SUITE   suite directory (default: the complete PostgreSQL 15 suite
#                 from scripts/fetch-pg-suite.sh, else ../shared/pg15-isolation)
#   BENCH_JOBS    -j for the parallel run (default: cores + 1)
#   BENCH_ROUNDS  rounds (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${BENCH_JOBS:-$(( $(nproc) + 1 ))}
ROUNDS=${BENCH_ROUNDS:-2}
ISOSPEC=target/release/isospec
OUT=target/bench
if [ -n "${BENCH_SUITE:-}" ]; then
  SUITE=$BENCH_SUITE
elif SUITE=$(scripts/fetch-pg-suite.sh 15); then
  :
else
  SUITE=../shared/pg15-isolation
  echo "bench: the complete suite could not be fetched; using $SUITE" >&2
fi
[ -d "$SUITE/specs" ] || { echo "bench: $SUITE/specs not found (set BENCH_SUITE)" >&2; exit 1; }
# PostgreSQL's order: isolation_schedule, then the prepared-transaction specs
# (the subset in ../shared lists those in prepared_schedule).
SELECTION=(--schedule "$SUITE/isolation_schedule")
if [ -f "$SUITE/prepared_schedule" ]; then
  SELECTION+=(--schedule "$SUITE/prepared_schedule")
else
  for t in prepared-transactions prepared-transactions-cic; do
    [ -f "$SUITE/specs/$t.spec" ] && SELECTION+=("$t")
  done
fi
rm -rf "$OUT" && mkdir -p "$OUT" && chmod 755 "$OUT"

# One server for every measurement.
. scripts/pg-server.sh
pg_server_start "$OUT/server" 5433
SOCK=$PG_SOCK DATA=$PG_DATA
as_pg() { "${AS_PG[@]}" "$@"; }
CONN=(--host "$SOCK" --port 5433 --user postgres --drop-existing)

# CPU seconds of the postmaster and every backend it has reaped.
server_cpu() { awk '{printf "%.2f", ($14 + $15 + $16 + $17) / 100}' "/proc/$(head -n 1 "$DATA/postmaster.pid")/stat"; }

# measure LABEL COMMAND...: sets WALL, CPU, RSS, SRV and checks the run passed.
measure() {
  local label=$1; shift
  local before; before=$(server_cpu)
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/time" "$@" >"$OUT/$label.stdout" 2>"$OUT/$label.stderr" || true
  read -r WALL user sys RSS < <(tail -n 1 "$OUT/time")
  CPU=$(echo "$user + $sys" | bc)
  SRV=$(echo "$(server_cpu) - $before" | bc)
  if ! grep -qE '(All [0-9]+ tests passed|, 0 failed)' "$OUT/$label.stdout" "$OUT/$label/regression.out" 2>/dev/null; then
    echo "bench: $label did not pass every spec (see $OUT/$label)" >&2
    FAILED=1
  fi
}
ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2] + a[NR/2+1]) / 2}'; }

PIR=$(pg_config --pgxs 2>/dev/null | sed 's|src/makefiles/pgxs.mk|src/test/isolation/pg_isolation_regress|')
[ -n "$PIR" ] && [ -x "$PIR" ] || PIR=
FAILED=0
echo "$(basename "$SUITE"): $(ls "$SUITE"/specs/*.spec | wc -l) specs, one PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') server, $(nproc) cores, $ROUNDS rounds"
printf "%-7s %-26s %8s %8s %10s %11s %7s\n" round mode "wall s" "cpu s" "RSS KB" "server cpu" ratio
: > "$OUT/ratios"
for r in $(seq 1 "$ROUNDS"); do
  it_wall=
  if [ -n "$PIR" ]; then
    mkdir -p "$OUT/it$r"; [ "$(id -u)" = 0 ] && chown postgres "$OUT/it$r"
    measure "it$r" "${AS_PG[@]}" "$PIR" --inputdir="$SUITE" --outputdir="$OUT/it$r" --host="$SOCK" --port=5433 \
      "${SELECTION[@]}"
    it_wall=$WALL
    printf "%-7s %-26s %8.2f %8s %10s %11.2f %7s\n" "$r" isolationtester "$WALL" - - "$SRV" 1.00
  fi
  measure "serial$r" "$ISOSPEC" run --quiet "${CONN[@]}" --inputdir "$SUITE" "${SELECTION[@]}" \
    --outputdir "$OUT/serial$r" --json "$OUT/serial$r.json"
  rs=${it_wall:+$(ratio "$WALL" "$it_wall")}
  printf "%-7s %-26s %8.2f %8.2f %10d %11.2f %7s\n" "$r" "isospec" "$WALL" "$CPU" "$RSS" "$SRV" "${rs:--}"
  measure "j$r" "$ISOSPEC" run --quiet "${CONN[@]}" -j "$JOBS" --inputdir "$SUITE" "$SUITE/specs" \
    --outputdir "$OUT/j$r"
  rj=${it_wall:+$(ratio "$WALL" "$it_wall")}
  printf "%-7s %-26s %8.2f %8.2f %10d %11.2f %7s\n" "$r" "isospec -j $JOBS" "$WALL" "$CPU" "$RSS" "$SRV" "${rj:--}"
  # The same without binding lanes to CPUs, to show what binding gives.
  measure "jnp$r" "$ISOSPEC" run --quiet "${CONN[@]}" -j "$JOBS" --no-pin --inputdir "$SUITE" "$SUITE/specs" \
    --outputdir "$OUT/jnp$r"
  rn=${it_wall:+$(ratio "$WALL" "$it_wall")}
  printf "%-7s %-26s %8.2f %8.2f %10d %11.2f %7s\n" "$r" "isospec -j $JOBS --no-pin" "$WALL" "$CPU" "$RSS" "$SRV" "${rn:--}"
  [ -n "$it_wall" ] && echo "$rs $rj $rn" >> "$OUT/ratios"
done
if [ -s "$OUT/ratios" ]; then
  echo
  echo "median ratio to isolationtester: serial $(awk '{print $1}' "$OUT/ratios" | median)x (target <= 0.8)," \
    "-j $JOBS $(awk '{print $2}' "$OUT/ratios" | median)x (target <= 0.35)," \
    "-j $JOBS --no-pin $(awk '{print $3}' "$OUT/ratios" | median)x"
fi
echo
echo "slowest specs (isospec serial, last round, ms):"
grep '^test' "$OUT/serial$ROUNDS/regression.out" | awk '{print $(NF-1), $2}' | sort -rn | head -10 | awk '{printf "  %6d  %s\n", $1, $2}'
exit $FAILED
