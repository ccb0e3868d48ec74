#!/usr/bin/env bash
# make check-pgxs: the PGXS extension tests/pgxs/isospec_demo switched to
# isospec exactly as README's "Switching an extension to isospec" says, and
# run as a user would:
#   1. make installcheck with PostgreSQL's own pg_isolation_regress, which
#      leaves its test database behind;
#   2. right after it, make installcheck through isospec (one make
#      variable on the command line): the database must be dropped and
#      recreated, both specs identical;
#   3. the same through a link named pg_isolation_regress;
#   4. make check (a temp instance) through isospec.
# Needs root (make install of the extension) or a writable PGXS install.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
isospec=$root/target/release/isospec
[ -x "$isospec" ] || { echo "pgxs-check: build isospec first (make build)" >&2; exit 2; }
scripts/pg-dev.sh
export PATH="$root/target/release:$(pg_config --bindir):$PATH"

work=$root/target/pgxs-check
rm -rf "$work" && mkdir -p "$work"
cp -r tests/pgxs/isospec_demo "$work/"
ext=$work/isospec_demo
make -s -C "$ext" install >/dev/null

# A running server for installcheck, as the unprivileged OS user when root.
user=$(id -un)
as_user=()
if [ "$(id -u)" = 0 ]; then user=${ISOSPEC_TEMP_INSTANCE_USER:-postgres}; as_user=(runuser -u "$user" --); fi
srv=$(mktemp -d /tmp/isospec-pgxs-XXXXXX)
chown "$user" "$srv"
"${as_user[@]}" initdb -D "$srv/data" -A trust -U "$user" >"$srv/initdb.log" 2>&1
"${as_user[@]}" pg_ctl -D "$srv/data" -l "$srv/postmaster.log" -w \
  -o "-k $srv -c listen_addresses= -p 54329" start >/dev/null
trap '"${as_user[@]}" pg_ctl -D "$srv/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$srv"' EXIT
export PGHOST=$srv PGPORT=54329 PGUSER=$user

fail() { echo "pgxs-check: $*" >&2; exit 1; }
expect() { # expect FILE PATTERN: the output must show PATTERN
  grep -qF -- "$2" "$1" || { cat "$1"; fail "expected \"$2\" in the output above"; }
}

echo "== make installcheck with PostgreSQL's pg_isolation_regress"
make -C "$ext" installcheck >"$work/1.out" 2>&1 || { cat "$work/1.out"; fail "PostgreSQL's pg_isolation_regress failed"; }
expect "$work/1.out" "All 2 tests passed."

# README's line, verbatim.
installcheck_override='isospec pg_isolation_regress --inputdir=$(srcdir) --outputdir=output_iso $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)'
echo "== make installcheck through isospec, right after"
make -C "$ext" installcheck pg_isolation_regress_installcheck="$installcheck_override" >"$work/2.out" 2>&1 \
  || { cat "$work/2.out"; fail "make installcheck through isospec failed"; }
cat "$work/2.out"
expect "$work/2.out" 'dropping database "isolation_regression"'
expect "$work/2.out" "All 2 tests passed."
[ ! -e "$ext/output_iso/regression.out" ] || fail "regression.out left behind although every test passed"

echo "== make installcheck through a link named pg_isolation_regress"
mkdir -p "$work/bin" && ln -sf "$isospec" "$work/bin/pg_isolation_regress"
make -C "$ext" installcheck \
  pg_isolation_regress_installcheck="$work/bin/pg_isolation_regress --inputdir=\$(srcdir) --outputdir=output_iso" \
  >"$work/3.out" 2>&1 || { cat "$work/3.out"; fail "through the link"; }
expect "$work/3.out" "All 2 tests passed."

echo "== make check (temp instance) through isospec"
check_override='isospec pg_isolation_regress --temp-instance=./tmp_check_iso --inputdir=$(srcdir) --outputdir=output_iso --bindir= $(TEMP_CONF) $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)'
make -C "$ext" check pg_isolation_regress_check="$check_override" >"$work/4.out" 2>&1 \
  || { cat "$work/4.out"; fail "make check through isospec failed"; }
cat "$work/4.out"
expect "$work/4.out" "All 2 tests passed."
[ ! -e "$ext/tmp_check_iso" ] || fail "the temp instance was not removed although every test passed"
echo "pgxs-check: passed"
