#!/usr/bin/env bash
# Runs a PostgreSQL isolation suite with isospec against a throwaway server,
# once per wait detector, and fails unless every spec gives its expected
# file byte for byte.  Used by the conformance targets of the Makefile.
#
#   scripts/conformance.sh LABEL SUITE_DIR [options] -- SELECTION...
#     --bindir DIR        server binaries (default: pg_config / PATH)
#   SELECTION: isospec run arguments choosing the specs (--schedule ..., names)
set -euo pipefail
cd "$(dirname "$0")/.."
label=${1:?usage: conformance.sh LABEL SUITE_DIR [--bindir DIR] -- SELECTION...}
suite=${2:?suite directory}
shift 2
bindir=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case $1 in
    --bindir) bindir=(--bindir "$2"); shift 2 ;;
    *) echo "conformance.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "${1:-}" = -- ] && shift
ISOSPEC=${ISOSPEC:-target/release/isospec}
status=0
for det in function pg-locks; do
  out=target/$label-$det
  echo "== $label: $(basename "$suite"), wait detector $det"
  "$ISOSPEC" run --quiet --wait-detector "$det" "${bindir[@]}" --inputdir "$suite" "$@" \
    --outputdir "$out" --temp-instance "$out/tmp_check" --temp-config conf/conformance.conf && rc=0 || rc=$?
  # 1 means some spec differed (judged below); anything else is a broken run.
  if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then echo "$label: isospec exited with $rc" >&2; status=1; continue; fi
  grep -E 'passed,|wall time' "$out/regression.out" || { echo "$label: no summary in $out/regression.out" >&2; status=1; continue; }
  # Every spec must say "ok" (a missing expected file is not a pass here).
  failed=$(awk '/^test / && $4 != "ok" {print $2}' "$out/regression.out")
  if [ -n "$failed" ]; then
    echo "$label: not identical with detector $det:" $failed >&2
    head -n 200 "$out/regression.diffs" >&2 2>/dev/null || true
    status=1
  fi
done
exit $status
