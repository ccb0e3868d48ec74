#!/usr/bin/env bash
# make check-action: the GitHub Action's scripts (action.yml runs
# scripts/action-install.sh, then scripts/action-run.sh) on this machine as
# on a runner: GITHUB_ACTIONS=true, the runner's files ($GITHUB_PATH,
# $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY, $RUNNER_TEMP) in target/action-check,
# and the release files served from dist/ (file://).
#   install: the archive for `latest` and for the exact version (checked
#     against SHA256SUMS), a version the release does not hold refused, and
#     pip as the fallback when no archive can be had;
#   run: the project's specs with one expected file broken, through a
#     throwaway server from postgres-version 15: exit 1, an ::error
#     annotation at the spec's permutation line, the job summary, the HTML
#     and JSON reports; then all passing against a server named by conninfo
#     (as a service container would be): exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
work=$root/target/action-check
fail() { echo "check-action: $*" >&2; exit 1; }
say() { echo "check-action: $*"; }
[ -f dist/SHA256SUMS ] || fail "run make dist first"
pgv=${ACTION_PG_VERSION:-$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1)}
[ -n "$pgv" ] || fail "no /usr/lib/postgresql/VERSION on this machine"

rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"
for v in $(env | sed -n 's/^\(PG[A-Z_]*\)=.*/\1/p; s/^\(ISOSPEC_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

runner() { # NAME: a fresh runner environment under $work/NAME
  local r=$work/$1
  mkdir -p "$r/temp" "$r/workspace"
  chmod 755 "$r" "$r/temp"
  : >"$r/path"; : >"$r/output"; : >"$r/summary"
  export GITHUB_ACTIONS=true RUNNER_TEMP=$r/temp GITHUB_PATH=$r/path GITHUB_OUTPUT=$r/output \
         GITHUB_STEP_SUMMARY=$r/summary GITHUB_WORKSPACE=$r/workspace ISOSPEC_REPOSITORY=isospec/isospec
  R=$r
}

# --- install ---------------------------------------------------------------------
for v in latest "$version"; do
  runner "install-$v"
  ISOSPEC_VERSION=$v ISOSPEC_RELEASE_URL=file://$root/dist scripts/action-install.sh >"$R/log" 2>&1 \
    || { cat "$R/log"; fail "install $v from the archive failed"; }
  grep -q "isospec-$version-x86_64-unknown-linux-gnu.tar.gz from file://" "$R/log" || { cat "$R/log"; fail "install $v: not from the archive"; }
  [ "$("$(cat "$R/path")/isospec" --version)" = "isospec $version" ] || fail "install $v: \$GITHUB_PATH names no working isospec"
done
say "install: the release archive for latest and $version, checked against SHA256SUMS"

runner install-missing
if ISOSPEC_VERSION=9.9.9 ISOSPEC_RELEASE_URL=file://$root/dist ISOSPEC_PIP_ARGS="--no-index --find-links $root/dist" \
   scripts/action-install.sh >"$R/log" 2>&1; then
  cat "$R/log"; fail "install 9.9.9 succeeded although no release holds it"
fi
grep -q "not version 9.9.9" "$R/log" || { cat "$R/log"; fail "install 9.9.9: no word on the version mismatch"; }
say "install: a version the release does not hold is refused"

runner install-pip
ISOSPEC_VERSION=$version ISOSPEC_RELEASE_URL=file://$work/no-such-release ISOSPEC_PIP_ARGS="--no-index --find-links $root/dist" \
  scripts/action-install.sh >"$R/log" 2>&1 || { cat "$R/log"; fail "install with pip failed"; }
grep -q "falling back to pip" "$R/log" && grep -q "isospec==$version with pip" "$R/log" || { cat "$R/log"; fail "install: no pip fallback"; }
[ "$("$(cat "$R/path")/isospec" --version)" = "isospec $version" ] || fail "install with pip: no working isospec"
say "install: pip when no archive can be had"
bin=$(cat "$work/install-latest/path")

# --- run: a failing spec through a throwaway server ---------------------------------
runner run-failing
cp -r specs expected conf "$R/workspace/"
# deadlock's first permutation now expects other output.
sed -i '0,/^step s1_row1:/s/^step s1_row1:/step s1_row1 (changed):/' "$R/workspace/expected/deadlock.out"
status=0
(cd "$R/workspace" && PATH=$bin:$PATH ISOSPEC_SPECS=specs ISOSPEC_POSTGRES_VERSION=$pgv \
   ISOSPEC_ARGS="--temp-config conf/isolation.conf" "$root/scripts/action-run.sh" >"$R/log" 2>&1) || status=$?
[ "$status" = 1 ] || { cat "$R/log"; fail "run with a failing spec exited $status, not 1"; }
grep -q '^exit-code=1$' "$R/output" || fail "run: no exit-code=1 output"
report=$(sed -n 's/^report-dir=//p' "$R/output")
grep -q '^::error file=specs/deadlock.spec,line=[0-9]*' "$R/log" || { cat "$R/log"; fail "run: no annotation at specs/deadlock.spec"; }
grep -q 'deadlock' "$R/summary" || fail "run: the job summary does not name the failing spec"
[ -s "$report/report.html" ] && [ -s "$report/report.json" ] && [ -s "$report/regression.diffs" ] \
  || fail "run: report.html, report.json or regression.diffs missing in $report"
say "run: postgres-version $pgv, a failing spec: exit 1, $(grep -c '^::error ' "$R/log") annotation(s) ($(grep -m1 -o '^::error file=[^,]*,line=[0-9]*' "$R/log")), summary $(wc -c <"$R/summary") bytes, report.html $(wc -c <"$report/report.html") bytes"

# --- run: passing, against a server named by conninfo --------------------------------
runner run-conninfo
cp -r specs expected conf "$R/workspace/"
export BINDIR=/usr/lib/postgresql/$pgv/bin
# shellcheck source=scripts/pg-server.sh
. scripts/pg-server.sh
trap pg_server_stop_all EXIT
port=$((20000 + RANDOM % 20000))
# A service container is configured by its workflow: here as conf/isolation.conf says.
PG_EXTRA_CONF=$(grep -v "^#" conf/isolation.conf) pg_server_start "$work/service" "$port"
status=0
(cd "$R/workspace" && PATH=$bin:$PATH ISOSPEC_SPECS="specs" \
   ISOSPEC_ACTION_CONNINFO="host=$PG_SOCK port=$port user=postgres dbname=postgres" \
   "$root/scripts/action-run.sh" >"$R/log" 2>&1) || status=$?
[ "$status" = 0 ] || { cat "$R/log"; fail "run against conninfo exited $status"; }
grep -q '^exit-code=0$' "$R/output" || fail "run: no exit-code=0 output"
! grep -q '^::error' "$R/log" || fail "run: annotations although every spec passed"
say "run: conninfo (a service container's way), every spec passed: exit 0, no annotation"

# --- run: a version the runner does not have: isospec --postgres fetches it --------------
runner run-fetched
cp -r specs expected conf "$R/workspace/"
status=0
(cd "$R/workspace" && PATH=$bin:$PATH ISOSPEC_SPECS="specs/deadlock.spec specs/skip-locked-queue.spec" \
   ISOSPEC_POSTGRES_VERSION=16 "$root/scripts/action-run.sh" >"$R/log" 2>&1) || status=$?
[ ! -d /usr/lib/postgresql/16 ] || fail "this check needs a machine without PostgreSQL 16 installed"
[ "$status" = 0 ] || { cat "$R/log"; fail "run with postgres-version 16 exited $status"; }
grep -q "using PostgreSQL 16\.[0-9]* server binaries" "$R/log" || { cat "$R/log"; fail "run: PostgreSQL 16 was not fetched with --postgres"; }
say "run: postgres-version 16, not on this machine: fetched with isospec --postgres, specs passed"
say "ok"
