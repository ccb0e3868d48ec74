#!/usr/bin/env bash
# Runs the integration tests N times in a row with a busy loop on every
# core, and fails unless every run passes: the tests must wait for states,
# never for durations, so load must not change their outcome.
#   scripts/flake-check.sh N
# Builds into target/flake-check, so that other builds meanwhile do not
# change what is being checked.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/flake-check}
cargo build --locked --bin isospec
bin=$(cargo test --locked --test it --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "flake-check: could not build the integration tests" >&2; exit 2; }
cores=$(nproc)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for _ in $(seq "$cores"); do
  ( while :; do :; done ) &
  pids+=($!)
done
echo "flake-check: $n runs of the integration tests, $cores busy loops"
passed=0 failed=0
log=$CARGO_TARGET_DIR/flake-check.log
: > "$log"
for i in $(seq "$n"); do
  start=$(date +%s)
  if "$bin" >> "$log" 2>&1; then
    passed=$((passed + 1)); verdict=pass
  else
    failed=$((failed + 1)); verdict=FAIL
  fi
  echo "run $i/$n: $verdict ($(( $(date +%s) - start )) s)"
done
grep -E '^test .* FAILED$|panicked at' "$log" | sort | uniq -c || true
echo "flake-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
