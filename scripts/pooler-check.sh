#!/usr/bin/env bash
# make check-pooler: isospec through PgBouncer (installed from Debian's
# packages when missing), started with a throwaway server by
# scripts/pgbouncer.sh as the unprivileged OS user.
#   - session pooling: PostgreSQL 15's complete suite (same source as
#     conformance-full) with both wait detectors, and the project's specs;
#     every transcript identical except the exceptions docs/connecting.md lists;
#   - client-side TLS (client_tls_sslmode = require, certificates made
#     here with openssl): the project's specs over sslmode=verify-full,
#     identical to direct, and a connection without TLS refused;
#   - transaction pooling with one server connection:
#     specs/pooler-session-state gives its pooled variant, and an ordinary
#     spec is stopped with the line that asks for session pooling.
set -euo pipefail
cd "$(dirname "$0")/.."
isospec=target/release/isospec
[ -x "$isospec" ] || { echo "pooler-check: build isospec first (make build)" >&2; exit 2; }
suite=$(scripts/fetch-pg-suite.sh 15)
work=target/pooler-check
rm -rf "$work" && mkdir -p "$work"
srv=$(mktemp -d /tmp/isospec-pooler-XXXXXX)
srv2=$(mktemp -d /tmp/isospec-pooler-XXXXXX)
srv3=$(mktemp -d /tmp/isospec-pooler-XXXXXX)
cleanup() {
  local d
  for d in "$srv" "$srv2" "$srv3"; do scripts/pgbouncer.sh stop "$d"; done
  rm -rf "$srv" "$srv2" "$srv3"
}
trap cleanup EXIT
# Specs whose transcript legitimately differs through PgBouncer (docs/connecting.md,
# "Through a connection pooler or proxy").
exceptions=" temp-schema-cleanup "
status=0

fresh_db() { # the test database, made on the server itself
  psql -X -q -h "$SERVER_SOCKET" -p "$SERVER_PORT" -U "$POOLER_USER" -d postgres \
    -c "DROP DATABASE IF EXISTS isolation_regression WITH (FORCE)" -c "CREATE DATABASE isolation_regression"
}
judge() { # judge LABEL OUTDIR: every spec ok, but the exceptions
  local label=$1 out=$2 total failed unexpected=""
  total=$(grep -c '^test ' "$out/regression.out" || true)
  failed=$(awk '/^test / && $4 != "ok" {print $2}' "$out/regression.out")
  for f in $failed; do case "$exceptions" in *" $f "*) ;; *) unexpected="$unexpected $f" ;; esac; done
  echo "$label: $((total - $(echo $failed | wc -w))) of $total identical; differing:${failed:+ }$(echo $failed)"
  if [ -n "$unexpected" ]; then
    echo "$label: unexpected differences:$unexpected" >&2
    head -n 200 "$out/regression.diffs" >&2 2>/dev/null || true
    status=1
  fi
}

eval "$(scripts/pgbouncer.sh start "$srv")"
through=(--host "$POOLER_HOST" --port "$POOLER_PORT" --user "$POOLER_USER" --use-existing --timeout 60)
echo "== PgBouncer $(pgbouncer --version 2>/dev/null | head -1 | awk '{print $2}' || true) in session pooling at $POOLER_HOST:$POOLER_PORT"
for det in function pg-locks; do
  fresh_db
  out=$work/suite-$det
  "$isospec" run --quiet --wait-detector "$det" "${through[@]}" --inputdir "$suite" \
    --schedule "$suite/isolation_schedule" prepared-transactions prepared-transactions-cic \
    --outputdir "$out" && rc=0 || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 1 ] || { echo "pooler-check: isospec exited with $rc" >&2; status=1; continue; }
  judge "PostgreSQL 15 suite, detector $det" "$out"
done
for det in function pg-locks; do
  fresh_db
  out=$work/specs-$det
  "$isospec" run --quiet --wait-detector "$det" "${through[@]}" --outputdir "$out" specs/ && rc=0 || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 1 ] || { echo "pooler-check: isospec exited with $rc" >&2; status=1; continue; }
  judge "project specs, detector $det" "$out"
  cmp -s "$out/results/pooler-session-state.out" expected/pooler-session-state.out \
    || { echo "pooler-check: session pooling must give pooler-session-state.out itself" >&2; status=1; }
done

# Client-side TLS: a CA and a certificate for 127.0.0.1, made now.
certs=$srv3/certs
mkdir -p "$certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=isospec pooler-check CA" -keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$certs/server.key" -out "$certs/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$certs/san.ext"
openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
  -days 2 -extfile "$certs/san.ext" -out "$certs/server.crt" 2>/dev/null
chmod 600 "$certs/server.key"
[ "$(id -u)" = 0 ] && chown -R "${ISOSPEC_TEMP_INSTANCE_USER:-postgres}" "$certs"
eval "$(scripts/pgbouncer.sh start "$srv3" 'client_tls_sslmode = require' \
  "client_tls_key_file = $certs/server.key" "client_tls_cert_file = $certs/server.crt")"
tls=(-d "host=$POOLER_HOST port=$POOLER_PORT user=$POOLER_USER sslmode=verify-full sslrootcert=$certs/ca.crt"
     --use-existing --timeout 60)
echo "== PgBouncer with client_tls_sslmode = require at $POOLER_HOST:$POOLER_PORT"
fresh_db
out=$work/specs-tls
"$isospec" run --quiet "${tls[@]}" --outputdir "$out" specs/ && rc=0 || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 1 ] || { echo "pooler-check: isospec exited with $rc" >&2; status=1; }
judge "project specs over TLS (verify-full)" "$out"
if "$isospec" run -d "host=$POOLER_HOST port=$POOLER_PORT user=$POOLER_USER sslmode=disable" --use-existing \
    --outputdir "$work/tls-refused" specs/deadlock.spec >"$work/tls-refused.log" 2>&1; then
  echo "pooler-check: a connection without TLS was accepted by a TLS-only PgBouncer" >&2; status=1
else
  echo "without TLS: refused ($(grep -o 'failed: .*' "$work/tls-refused.log" | head -1))"
fi

eval "$(scripts/pgbouncer.sh start "$srv2" 'pool_mode = transaction' 'default_pool_size = 1')"
through=(--host "$POOLER_HOST" --port "$POOLER_PORT" --user "$POOLER_USER" --use-existing --timeout 60)
echo "== PgBouncer in transaction pooling, one server connection, at $POOLER_HOST:$POOLER_PORT"
fresh_db
out=$work/transaction
"$isospec" run "${through[@]}" --outputdir "$out" specs/pooler-session-state.spec tests/fixtures/specs/locks.spec \
  >"$out.log" 2>&1 && rc=0 || rc=$?
cat "$out.log"
if cmp -s "$out/results/pooler-session-state.out" expected/pooler-session-state_1.out; then
  echo "transaction pooling: pooler-session-state gives its pooled variant (the SET leaks until DISCARD ALL)"
else
  echo "pooler-check: pooler-session-state through transaction pooling is not its _1 variant" >&2; status=1
fi
if [ "$rc" = 1 ] && grep -q "use session pooling" "$out/regression.out"; then
  echo "transaction pooling: locks stopped with the line asking for session pooling"
else
  echo "pooler-check: locks was not stopped with a clear line in transaction pooling (exit $rc)" >&2; status=1
fi
exit $status
