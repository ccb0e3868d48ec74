#!/usr/bin/env bash
# make conformance-contrib: PostgreSQL 15's contrib and test-module
# isolation specs that the installed server can run, from the same Debian
# source package as make conformance-full, each run in check mode exactly as
# its Makefile does (through scripts/isospec-check.mk), with isospec as
# pg_isolation_regress.  Every transcript must be identical to the module's
# expected file.  Usage: scripts/contrib-check.sh [MODULE_DIR...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -x target/release/isospec ] || { echo "contrib-check: build isospec first (make build)" >&2; exit 2; }
scripts/pg-dev.sh
suite=$(scripts/fetch-pg-suite.sh 15)
export PATH="$root/target/release:$(pg_config --bindir):$PATH"
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(contrib/postgres_fdw contrib/test_decoding src/test/modules/brin src/test/modules/snapshot_too_old)
work=$root/target/contrib-check
rm -rf "$work" && mkdir -p "$work"
check='isospec pg_isolation_regress --temp-instance=./tmp_check_iso --inputdir=$(srcdir) --outputdir=output_iso --bindir= $(TEMP_CONF) $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)'
specs=0 failed=()
for m in "${modules[@]}"; do
  mkdir -p "$work/$(dirname "$m")"
  cp -r "$suite/tree/$m" "$work/$m"
  # A module outside the tree may name files of the tree (logical.conf).
  echo "== $m"
  if make -C "$work/$m" --no-print-directory USE_PGXS=1 -f Makefile -f "$root/scripts/isospec-check.mk" \
       isospec-check ISOSPEC_SRCDIR="$work" pg_isolation_regress_check="$check" >"$work/$(basename "$m").log" 2>&1; then
    grep -E '^test |tests passed' "$work/$(basename "$m").log"
  else
    cat "$work/$(basename "$m").log"
    [ -f "$work/$m/output_iso/regression.diffs" ] && cat "$work/$m/output_iso/regression.diffs"
    failed+=("$m")
  fi
  specs=$((specs + $(grep -cE '^test ' "$work/$(basename "$m").log" || true)))
done
echo "contrib-check: $specs specs in ${#modules[@]} modules, failed modules: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
