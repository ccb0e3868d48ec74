#!/usr/bin/env bash
# make bench, part 4 (make bench-record): what isospec record's proxy costs
# a program.  One psycopg 3 connection makes BENCH_RECORD_N INSERT and as
# many SELECT round trips (bench/record_client.py), directly against a
# throwaway server and then through `isospec record`, best of
# BENCH_RECORD_TRIES each.  Prints both loop times, their ratio, and the
# proxy's CPU per statement (the CPU isospec used during the loop, read
# from /proc by the program, its child, over 2N statements).  The target
# (issue #39): proxied at most 1.25x direct.
#
# Then the same with BENCH_RECORD_THREADS connections on as many threads,
# where the proxy's one-statement-at-a-time gate serializes them.
#
#   BENCH_RECORD_N        round trips of each kind (default 10000)
#   BENCH_RECORD_TRIES    runs of each (default 3)
#   BENCH_RECORD_THREADS  connections of the second measure (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_RECORD_N:-10000}
TRIES=${BENCH_RECORD_TRIES:-3}
ISOSPEC=$PWD/target/release/isospec
OUT=target/bench-record
rm -rf "$OUT" && mkdir -p "$OUT" && chmod 755 "$OUT"

# psycopg, pinned as the record tests pin it, in a virtual environment of
# the bench's own.
venv=$OUT/venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check \
  "$(grep -E '^psycopg==' tests/python/requirements.txt)" "$(grep -E '^psycopg-binary==' tests/python/requirements.txt)"
py=$PWD/$venv/bin/python

. scripts/pg-server.sh
pg_server_start "$OUT/server" 5436
export PGHOST=$PG_SOCK PGPORT=5436 PGUSER=postgres
echo "CREATE TABLE bench (id int PRIMARY KEY, v text);" > "$OUT/setup.sql"

best() { sort -n | head -n 1; }
# measure THREADS: direct and proxied loop times, best of TRIES.
measure() {
  local threads=$1 line direct=() proxied=() cpu=()
  for _ in $(seq "$TRIES"); do
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bench_direct" -c "CREATE DATABASE bench_direct" >/dev/null 2>&1
    psql -X -q -d bench_direct -f "$OUT/setup.sql" >/dev/null
    line=$(PGDATABASE=bench_direct "$py" bench/record_client.py "$N" "$threads")
    direct+=("$(sed -E 's/.*wall=([0-9.]+).*/\1/' <<<"$line")")
    line=$(cd "$OUT" && "$ISOSPEC" record -o bench.spec --host "$PG_SOCK" --port 5436 --user postgres \
      --dbname bench_proxied --setup setup.sql -- "$py" "$OLDPWD/bench/record_client.py" "$N" "$threads" 2>/dev/null)
    proxied+=("$(sed -E 's/.*wall=([0-9.]+).*/\1/' <<<"$line")")
    cpu+=("$(sed -E 's/.*parent_cpu=([0-9.]+).*/\1/' <<<"$line")")
  done
  local d p c
  d=$(printf "%s\n" "${direct[@]}" | best)
  p=$(printf "%s\n" "${proxied[@]}" | best)
  c=$(printf "%s\n" "${cpu[@]}" | best)
  echo "bench-record: $((2 * N)) round trips on $threads connection(s), best of $TRIES"
  echo "bench-record:   direct  ${d} s   (runs: ${direct[*]})"
  echo "bench-record:   proxied ${p} s   (runs: ${proxied[*]})"
  awk -v d="$d" -v p="$p" -v c="$c" -v n="$((2 * N))" -v t="$threads" 'BEGIN {
    printf "bench-record:   ratio %.2fx%s; proxy CPU %.1f us per statement\n", p / d,
      (t == 1 ? " (target at most 1.25x)" : " (the gate runs one statement at a time)"), c * 1e6 / n }'
}
measure 1
measure "${BENCH_RECORD_THREADS:-4}"
