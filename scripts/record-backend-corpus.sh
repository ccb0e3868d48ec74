#!/usr/bin/env bash
# Seeds the backend-protocol fuzz corpus from real sessions: a throwaway
# server (scripts/pg-server.sh), a recording proxy in front of it
# (TCP -> the server's Unix socket), and isospec running the fixture specs
# (results, errors with cursors, notices, NOTIFY, waits, a terminated
# backend) through the proxy.  Every server-to-client byte stream becomes
# one corpus file.
#   scripts/record-backend-corpus.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: record-backend-corpus.sh OUTDIR}
isospec=target/release/isospec
[ -x "$isospec" ] || { echo "record-backend-corpus: build isospec first (make build)" >&2; exit 2; }
. scripts/pg-server.sh
trap pg_server_stop_all EXIT
work=$(mktemp -d /tmp/isospec-corpus-XXXXXX)
chmod 755 "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pg_server_start "$work/srv" "$port"
mkdir -p "$out"
python3 - "$PG_SOCK/.s.PGSQL.$port" "$out" "$work/proxy.port" <<'PY' &
import os, socket, sys, threading
upstream, out, portfile = sys.argv[1], sys.argv[2], sys.argv[3]
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(200)
open(portfile + ".tmp", "w").write(str(l.getsockname()[1])); os.rename(portfile + ".tmp", portfile)
n = 0
def pump(src, dst, record):
    try:
        while True:
            b = src.recv(65536)
            if not b: break
            if record is not None: record.write(b)
            dst.sendall(b)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
        if record is not None: record.close()
while True:
    c, _ = l.accept()
    u = socket.socket(socket.AF_UNIX); u.connect(upstream)
    n += 1
    rec = open(os.path.join(out, "session-%04d" % n), "wb")
    threading.Thread(target=pump, args=(c, u, None), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, rec), daemon=True).start()
PY
proxy=$!
trap 'kill $proxy 2>/dev/null; pg_server_stop_all' EXIT
for _ in $(seq 1 500); do [ -f "$work/proxy.port" ] && break; sleep 0.02; done
"$isospec" run --quiet -d "host=127.0.0.1 port=$(cat "$work/proxy.port") user=postgres sslmode=disable" \
  --outputdir "$work/out" tests/fixtures/specs/*.spec specs/deadlock.spec specs/two-phase-commit.spec >/dev/null || true
kill $proxy 2>/dev/null || true
# Empty streams (cancel requests) seed nothing.
find "$out" -name 'session-*' -empty -delete
echo "record-backend-corpus: $(ls "$out" | wc -l) streams, $(du -sh "$out" | cut -f1) in $out"
rm -rf "$work"
