#!/usr/bin/env bash
# Fetches PostgreSQL's complete isolation suite (src/test/isolation: specs,
# expected files, schedules) of one release from Debian's source package in
# the Debian archive, checks it against the pinned SHA-256, caches it and
# prints the directory.  Usage: scripts/fetch-pg-suite.sh [15]
#
# ../shared/pg15-isolation holds only part of the PostgreSQL 15 suite; the
# full suite (117 specs) is what the compatibility contract and the speed
# targets are stated for.  Only the Debian archive is used (a package
# registry); the upstream files are test data and are never committed.
# The same source also gives the contrib and test modules that have
# isolation specs (make conformance-contrib); they are kept in DIR/tree with
# the source tree's layout.
# Cache: $ISOSPEC_SUITE_CACHE (default target/pg-suite).
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A VERSION=([15]=15.18)
declare -A SHA256=([15]=11df0df97fe3ea4ba9a791faaf39cee1d2fe571e78885b5b55d8517d27c323b4)
major=${1:-15}
version=${VERSION[$major]:-}
[ -n "$version" ] || { echo "fetch-pg-suite: no pinned source for PostgreSQL $major (have: ${!VERSION[*]})" >&2; exit 2; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${ISOSPEC_SUITE_CACHE:-target/pg-suite}
dest="$cache/$version"
modules="contrib/test_decoding contrib/postgres_fdw src/test/modules/brin src/test/modules/snapshot_too_old"
if [ ! -f "$dest/isolation_schedule" ] || [ ! -f "$dest/tree/contrib/test_decoding/Makefile" ]; then
  mkdir -p "$cache"
  tarball="$cache/postgresql-${major}_$version.orig.tar.bz2"
  url="$mirror/pool/main/p/postgresql-$major/postgresql-${major}_$version.orig.tar.bz2"
  if [ ! -f "$tarball" ] || ! echo "${SHA256[$major]}  $tarball" | sha256sum -c --status; then
    ok=0
    for attempt in 1 2 3; do
      if curl -fsSL --retry 2 -o "$tarball.part" "$url"; then ok=1; break; fi
      echo "fetch-pg-suite: download of $url failed (attempt $attempt)" >&2
      sleep $((attempt * 2))
    done
    [ "$ok" = 1 ] || { rm -f "$tarball.part"; echo "fetch-pg-suite: could not download $url" >&2; exit 1; }
    mv "$tarball.part" "$tarball"
  fi
  echo "${SHA256[$major]}  $tarball" | sha256sum -c --status \
    || { echo "fetch-pg-suite: $tarball does not have the pinned SHA-256 ${SHA256[$major]}" >&2; rm -f "$tarball"; exit 1; }
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  tar -xjf "$tarball" -C "$dest.tmp" --strip-components=4 \
    "postgresql-$version/src/test/isolation/specs" \
    "postgresql-$version/src/test/isolation/expected" \
    "postgresql-$version/src/test/isolation/isolation_schedule"
  tar -xjf "$tarball" -C "$dest.tmp" --strip-components=1 "postgresql-$version/COPYRIGHT"
  mkdir -p "$dest.tmp/tree"
  # shellcheck disable=SC2046
  tar -xjf "$tarball" -C "$dest.tmp/tree" --strip-components=1 \
    $(for m in $modules; do echo "postgresql-$version/$m"; done)
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  rm -f "$tarball"
fi
echo "$(cd "$dest" && pwd)"
