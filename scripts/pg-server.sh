# shellcheck shell=bash
# Sourced by the bench and comparison scripts: throwaway PostgreSQL servers
# like the ones isospec's conformance runs use (max_prepared_transactions =
# 10, fsync off, Unix socket only), run as the OS user postgres when root.
#
#   pg_server_start DIR PORT   initdb + start in DIR/data; sets PG_SOCK, PG_DATA
#                              (PG_EXTRA_CONF: more postgresql.conf lines)
#   pg_server_stop_all         stops every server started (installed as EXIT trap)
# BINDIR: server binaries (default: pg_config --bindir, else initdb on PATH).

BINDIR=${BINDIR:-$(pg_config --bindir 2>/dev/null || dirname "$(command -v initdb)")}
AS_PG=()
[ "$(id -u)" = 0 ] && AS_PG=(runuser -u postgres --)
PG_SERVERS=() PG_SOCKS=()

pg_server_start() {
  local dir=$1 port=$2
  PG_DATA="$dir/data"
  PG_SOCK=$(mktemp -d /tmp/isospec-pg-XXXXXX)
  chmod 777 "$PG_SOCK"
  mkdir -p "$PG_DATA"
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
  "${AS_PG[@]}" "$BINDIR/initdb" -D "$PG_DATA" -A trust -E UTF8 --locale=C --no-sync -U postgres >/dev/null
  printf "max_prepared_transactions = 10\nfsync = off\nlisten_addresses = ''\nport = %s\nunix_socket_directories = '%s'\n" \
    "$port" "$PG_SOCK" >> "$PG_DATA/postgresql.conf"
  [ -z "${PG_EXTRA_CONF:-}" ] || printf "%s\n" "$PG_EXTRA_CONF" >> "$PG_DATA/postgresql.conf"
  PG_SERVERS+=("$PG_DATA") PG_SOCKS+=("$PG_SOCK")
  "${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -w start >/dev/null
}

pg_server_stop_all() {
  local d
  for d in "${PG_SERVERS[@]}"; do
    "${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true
  done
  [ ${#PG_SOCKS[@]} = 0 ] || rm -rf "${PG_SOCKS[@]}"
}
trap pg_server_stop_all EXIT
