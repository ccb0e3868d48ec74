#!/usr/bin/env bash
# make check-pgxs: the PGXS extension tests/pgxs/isospec_demo switched to
# isospec exactly as docs/ci.md's "Switching an extension to isospec" says, and
# run as a user would:
#   1. make installcheck with PostgreSQL's own pg_isolation_regress, which
#      leaves its test database behind;
#   2. right after it, make installcheck through isospec (one make
#      variable on the command line): the database must be dropped and
#      recreated, both specs identical;
#   3. plain make installcheck with a link to isospec in place of PGXS's
#      pg_isolation_regress (in a copy of the PGXS tree);
#   4. make check (a temp instance) through isospec, also with PGXS's
#      NO_LOCALE=1 ENCODING=UTF8.
# Needs root (make install of the extension) or a writable PGXS install.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
isospec=$root/target/release/isospec
[ -x "$isospec" ] || { echo "pgxs-check: build isospec first (make build)" >&2; exit 2; }
scripts/provision.sh --check pgxs || exit 2
pg_bindir=$(pg_config --bindir)
export PATH="$root/target/release:$pg_bindir:$PATH"

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

# docs/ci.md's line, verbatim.
installcheck_override='isospec pg_isolation_regress --inputdir=$(srcdir) --outputdir=output_iso $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)'
echo "== make installcheck through isospec, right after"
make -C "$ext" installcheck pg_isolation_regress_installcheck="$installcheck_override" >"$work/2.out" 2>&1 \
  || { cat "$work/2.out"; fail "make installcheck through isospec failed"; }
cat "$work/2.out"
expect "$work/2.out" 'dropping database "isolation_regression"'
expect "$work/2.out" "All 2 tests passed."
[ ! -e "$ext/output_iso/regression.out" ] || fail "regression.out left behind although every test passed"

echo "== plain make installcheck with a link to isospec in place of pg_isolation_regress"
# docs/ci.md's other way, for packages without pg_isolation_regress, done on a
# copy of the PGXS tree (reached through a pg_config that names the copy),
# so that the installation itself is never touched.
pgxs_tree=$(cd "$(dirname "$(pg_config --pgxs)")/../.." && pwd)
fake=$work/fake-install
mkdir -p "$fake/lib"
cp -r "$pgxs_tree" "$fake/lib/pgxs"
ln -sf "$isospec" "$fake/lib/pgxs/src/test/isolation/pg_isolation_regress"
cat >"$fake/pg_config" <<WRAP
#!/bin/sh
if [ "\$*" = --pgxs ]; then echo "$fake/lib/pgxs/src/makefiles/pgxs.mk"; else exec "$(command -v pg_config)" "\$@"; fi
WRAP
chmod +x "$fake/pg_config"
make -C "$ext" installcheck PG_CONFIG="$fake/pg_config" >"$work/3.out" 2>&1 || { cat "$work/3.out"; fail "through the link"; }
expect "$work/3.out" "fake-install/lib/pgxs/src/makefiles/../../src/test/isolation/pg_isolation_regress"
expect "$work/3.out" "All 2 tests passed."

echo "== make check (temp instance) through isospec"
check_override='isospec pg_isolation_regress --temp-instance=./tmp_check_iso --inputdir=$(srcdir) --outputdir=output_iso --bindir= $(TEMP_CONF) $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)'
make -C "$ext" check pg_isolation_regress_check="$check_override" >"$work/4.out" 2>&1 \
  || { cat "$work/4.out"; fail "make check through isospec failed"; }
cat "$work/4.out"
expect "$work/4.out" "All 2 tests passed."
[ ! -e "$ext/tmp_check_iso" ] || fail "the temp instance was not removed although every test passed"

echo "== make check NO_LOCALE=1 ENCODING=UTF8 (PGXS's --no-locale and --encoding)"
make -C "$ext" check NO_LOCALE=1 ENCODING=UTF8 pg_isolation_regress_check="$check_override" >"$work/5.out" 2>&1 \
  || { cat "$work/5.out"; fail "make check with NOLOCALE and ENCODING failed"; }
expect "$work/5.out" "--encoding=UTF8 --no-locale"
expect "$work/5.out" "All 2 tests passed."
echo "pgxs-check: passed"
