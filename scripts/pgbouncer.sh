#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server and a PgBouncer in front of it, as the
# unprivileged OS user when run as root, and prints shell assignments for
# them (eval them).  pgbouncer must be installed (scripts/provision.sh).
#
#   eval "$(scripts/pgbouncer.sh start DIR [pgbouncer settings...])"
#       sets SERVER_SOCKET SERVER_PORT POOLER_HOST POOLER_PORT POOLER_USER
#   scripts/pgbouncer.sh stop DIR
#
# Settings are "name = value" lines for pgbouncer.ini's [pgbouncer]
# section (pool_mode = session by default).  The server gets
# conf/conformance.conf and conf/isolation.conf (specs/ runs through it).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?usage: pgbouncer.sh start|stop DIR [settings...]}
dir=${2:?directory}
shift 2
user=$(id -un)
as_user=()
if [ "$(id -u)" = 0 ]; then user=${ISOSPEC_TEMP_INSTANCE_USER:-postgres}; as_user=(runuser -u "$user" --); fi

if [ "$cmd" = stop ]; then
  [ -f "$dir/pgbouncer.pid" ] && kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
  "${as_user[@]}" pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  exit 0
fi

scripts/provision.sh --check pgbouncer || exit 2
pgbouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
pg_bindir=$(pg_config --bindir)
export PATH="$pg_bindir:$PATH"

mkdir -p "$dir" && chmod 755 "$dir"
chown "$user" "$dir"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sport=$(free_port)
pport=$(free_port)
"${as_user[@]}" initdb -D "$dir/data" -A trust -U "$user" >"$dir/initdb.log" 2>&1
cat conf/conformance.conf conf/isolation.conf >>"$dir/data/postgresql.conf"
"${as_user[@]}" pg_ctl -D "$dir/data" -l "$dir/postmaster.log" -w \
  -o "-k $dir -c listen_addresses= -p $sport" start >/dev/null

{
  echo "[databases]"
  echo "* = host=$dir port=$sport"
  echo "[pgbouncer]"
  echo "listen_addr = 127.0.0.1"
  echo "listen_port = $pport"
  echo "unix_socket_dir = $dir"
  echo "auth_type = trust"
  echo "auth_file = $dir/userlist.txt"
  echo "admin_users = $user"
  echo "logfile = $dir/pgbouncer.log"
  echo "pidfile = $dir/pgbouncer.pid"
  echo "max_client_conn = 1000"
  echo "default_pool_size = 200"
  echo "server_reset_query = DISCARD ALL"
  has_mode=0
  for s in "$@"; do echo "$s"; case $s in pool_mode*) has_mode=1 ;; esac; done
  [ "$has_mode" = 1 ] || echo "pool_mode = session"
} >"$dir/pgbouncer.ini"
echo "\"$user\" \"\"" >"$dir/userlist.txt"
chown "$user" "$dir/pgbouncer.ini" "$dir/userlist.txt"
"${as_user[@]}" "$pgbouncer" -d "$dir/pgbouncer.ini" >/dev/null
for _ in $(seq 1 500); do
  if python3 -c "import socket,sys; s=socket.socket(); s.connect(('127.0.0.1',$pport))" 2>/dev/null; then break; fi
  sleep 0.02
done
echo "SERVER_SOCKET=$dir SERVER_PORT=$sport POOLER_HOST=127.0.0.1 POOLER_PORT=$pport POOLER_USER=$user"
