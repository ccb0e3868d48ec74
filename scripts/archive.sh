#!/usr/bin/env bash
# scripts/archive.sh VERSION TRIPLE BINARY OUTDIR
# Writes OUTDIR/isospec-VERSION-TRIPLE.tar.gz: one directory of that name
# holding the binary (isospec), README.md and LICENSE. Reproducible: fixed
# order, owner and time (SOURCE_DATE_EPOCH, else 0), gzip without a name.
# Used by make dist and by the release workflow, so both lay archives out
# the same way.
set -euo pipefail
[ $# = 4 ] || { echo "usage: $0 VERSION TRIPLE BINARY OUTDIR" >&2; exit 2; }
version=$1 triple=$2 binary=$3 out=$4
root=$(cd "$(dirname "$0")/.." && pwd)
name=isospec-$version-$triple
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
install -m 755 "$binary" "$stage/$name/isospec"
install -m 644 "$root/README.md" "$root/LICENSE" "$stage/$name/"
mkdir -p "$out"
# GNU tar's options: gtar where tar is BSD's (macOS, brew install gnu-tar).
tar=$(command -v gtar || command -v tar)
"$tar" -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@${SOURCE_DATE_EPOCH:-0}" -cf - "$name" | gzip -9n > "$out/$name.tar.gz"
echo "$out/$name.tar.gz"
