#!/usr/bin/env bash
# make conformance-contrib: PostgreSQL 15's contrib and test-module
# isolation specs that the installed server can run, from the same Debian
# source package as make conformance-full, each run in check mode exactly as
# its Makefile does (through scripts/isospec-check.mk), with isospec as
# pg_isolation_regress.  Every transcript must be identical to the module's
# expected file, the drop-in must print nothing on stderr, and no backend
# may be cut off when the temporary instance stops.  Where PostgreSQL's own
# pg_isolation_regress is installed (postgresql-server-dev's PGXS, which
# scripts/provision.sh installs), each module is run with it too, the same
# way (as the postgres user: it cannot run as root), and its stdout
# (timings, ports and PIDs masked), stderr and results/ must equal
# isospec's.  Usage: scripts/contrib-check.sh [MODULE_DIR...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -x target/release/isospec ] || { echo "contrib-check: build isospec first (make build)" >&2; exit 2; }
scripts/provision.sh --check pgxs || exit 2
suite=$(scripts/fetch-pg-suite.sh 15)
bindir=$(pg_config --bindir)
export PATH="$root/target/release:$bindir:$PATH"
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(contrib/postgres_fdw contrib/test_decoding src/test/modules/brin src/test/modules/snapshot_too_old)
work=$root/target/contrib-check
rm -rf "$work" && mkdir -p "$work"
check='isospec pg_isolation_regress --temp-instance=./tmp_check_iso --inputdir=$(srcdir) --outputdir=output_iso --bindir= $(TEMP_CONF) $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)'
specs=0 failed=()
# PostgreSQL's own runner, where PGXS has it.
reference=$(dirname "$(pg_config --pgxs)")/../test/isolation/pg_isolation_regress
ref_check="$reference"' --temp-instance=./tmp_check_ref --inputdir=$(srcdir) --outputdir=output_ref --bindir= $(TEMP_CONF) $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)'
# stdout without what differs from run to run: timings, port, PID.
mask() {
  sed -E 's/ +[0-9]+ ms$/ N ms/; s/^running on port [0-9]+ with PID [0-9]+$/running on port N with PID N/' "$1"
}
# reference_compare MODULE: the module run with pg_isolation_regress in a
# copy of its own (as postgres), compared with isospec's run.
reference_compare() {
  local m=$1 ref=$work/ref/$1 as=()
  mkdir -p "$(dirname "$ref")"
  cp -r "$suite/tree/$m" "$ref"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$work/ref" && chmod 755 "$work" "$work/ref"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" make -C "$ref" --no-print-directory USE_PGXS=1 -f Makefile -f "$root/scripts/isospec-check.mk" \
    isospec-check ISOSPEC_SRCDIR="$work" pg_isolation_regress_check="$ref_check" \
    >"$work/ref-$(basename "$m").log" 2>"$work/ref-$(basename "$m").err" || true
  local ok=0
  # The command line each make echoes differs (the runner's path and
  # output directory): compared from the runner's first line on.
  if ! diff <(mask "$work/ref-$(basename "$m").log" | sed 1d) <(mask "$work/$(basename "$m").log" | sed 1d); then
    echo "contrib-check: $m: stdout differs from pg_isolation_regress's (above: < reference, > isospec)" >&2; ok=1
  fi
  if ! diff "$work/ref-$(basename "$m").err" "$work/$(basename "$m").err"; then
    echo "contrib-check: $m: stderr differs from pg_isolation_regress's" >&2; ok=1
  fi
  # (isospec's own .isospec-timings and .isospec-manifest aside)
  if ! diff -r -x '.isospec-*' "$ref/output_ref/results" "$work/$m/output_iso/results"; then
    echo "contrib-check: $m: results/ differ from pg_isolation_regress's" >&2; ok=1
  fi
  if [ -f "$ref/output_ref/regression.diffs" ] || [ -f "$work/$m/output_iso/regression.diffs" ]; then
    # The same files differ, with the same hunks (paths and times aside).
    if ! diff <(grep -vE '^(diff|---|\+\+\+) ' "$ref/output_ref/regression.diffs" 2>/dev/null) \
              <(grep -vE '^(diff|---|\+\+\+) ' "$work/$m/output_iso/regression.diffs" 2>/dev/null); then
      echo "contrib-check: $m: regression.diffs differs in shape from pg_isolation_regress's" >&2; ok=1
    fi
  fi
  [ "$ok" = 0 ] && echo "contrib-check: $m: stdout, stderr and results/ as pg_isolation_regress's"
  return "$ok"
}
for m in "${modules[@]}"; do
  mkdir -p "$work/$(dirname "$m")"
  cp -r "$suite/tree/$m" "$work/$m"
  # A module outside the tree may name files of the tree (logical.conf).
  echo "== $m"
  log=$work/$(basename "$m").log err=$work/$(basename "$m").err
  if make -C "$work/$m" --no-print-directory USE_PGXS=1 -f Makefile -f "$root/scripts/isospec-check.mk" \
       isospec-check ISOSPEC_SRCDIR="$work" pg_isolation_regress_check="$check" >"$log" 2>"$err"; then
    grep -E '^test |tests passed' "$log"
  else
    cat "$log" "$err"
    [ -f "$work/$m/output_iso/regression.diffs" ] && cat "$work/$m/output_iso/regression.diffs"
    failed+=("$m")
  fi
  # What pg_regress prints on stderr: nothing.
  if [ -s "$err" ]; then
    echo "contrib-check: $m: the drop-in printed on stderr:" >&2; cat "$err" >&2
    failed+=("$m (stderr)")
  fi
  # No backend cut off by the instance's stop: nothing terminated after
  # the shutdown request (a spec's own pg_terminate_backend comes before).
  pmlog=$work/$m/output_iso/log/postmaster.log
  if [ -f "$pmlog" ] && sed -n '/received .* shutdown request/,$p' "$pmlog" \
       | grep -E 'terminating connection due to administrator command|could not send data to client'; then
    echo "contrib-check: $m: sessions were cut off when the instance stopped ($pmlog)" >&2
    failed+=("$m (postmaster.log)")
  fi
  if [ -x "$reference" ]; then
    reference_compare "$m" || failed+=("$m (against pg_isolation_regress)")
  fi
  specs=$((specs + $(grep -cE '^test ' "$work/$(basename "$m").log" || true)))
done
echo "contrib-check: $specs specs in ${#modules[@]} modules, failed modules: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
