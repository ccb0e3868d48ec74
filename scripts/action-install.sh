#!/usr/bin/env bash
# The GitHub Action's install step (action.yml): puts isospec on the job's
# PATH (through $GITHUB_PATH).
#
#   On Linux x86_64: the release archive isospec-V-x86_64-unknown-linux-gnu.tar.gz
#   (glibc 2.17 or newer), checked against the release's SHA256SUMS.
#   Elsewhere, or when the download fails: pip, into a venv of its own.
#
# ISOSPEC_VERSION      latest (default) or a version such as 0.1.0
# ISOSPEC_REPOSITORY   owner/name whose releases hold the archives
# ISOSPEC_RELEASE_URL  base URL of the release files instead of GitHub's
#                      (make check-action: file://…/dist)
# ISOSPEC_PIP_ARGS     more pip arguments (make check-action: --no-index --find-links dist)
set -euo pipefail
version=${ISOSPEC_VERSION:-latest}
repo=${ISOSPEC_REPOSITORY:-isospec/isospec}
tmp=${RUNNER_TEMP:-$(mktemp -d)}
dest=$tmp/isospec-install
rm -rf "$dest"
mkdir -p "$dest"
log() { echo "isospec install: $*"; }

if [ -n "${ISOSPEC_RELEASE_URL:-}" ]; then
  base=$ISOSPEC_RELEASE_URL
elif [ "$version" = latest ]; then
  base=https://github.com/$repo/releases/latest/download
else
  base=https://github.com/$repo/releases/download/v${version#v}
fi

from_archive() {
  local sums name
  sums=$dest/SHA256SUMS
  curl -fsSL --retry 3 -o "$sums" "$base/SHA256SUMS" || return 1
  name=$(sed -n 's/^[0-9a-f]\{64\}  \(isospec-[^ ]*-x86_64-unknown-linux-gnu\.tar\.gz\)$/\1/p' "$sums" | head -n1)
  [ -n "$name" ] || { log "SHA256SUMS at $base names no x86_64-unknown-linux-gnu archive"; return 1; }
  if [ "$version" != latest ] && [ "$name" != "isospec-${version#v}-x86_64-unknown-linux-gnu.tar.gz" ]; then
    log "SHA256SUMS at $base is for $name, not version $version"; return 1
  fi
  curl -fsSL --retry 3 -o "$dest/$name" "$base/$name" || return 1
  (cd "$dest" && grep "  $name\$" SHA256SUMS | sha256sum -c --quiet -) || { log "$name does not match SHA256SUMS"; return 1; }
  tar -C "$dest" -xzf "$dest/$name"
  bin=$dest/${name%.tar.gz}
  "$bin/isospec" --version >/dev/null || return 1
  log "$name from $base"
}

from_pip() {
  local spec=isospec
  [ "$version" = latest ] || spec="isospec==${version#v}"
  python3 -m venv "$dest/venv"
  # shellcheck disable=SC2086
  "$dest/venv/bin/python" -m pip install -q --disable-pip-version-check ${ISOSPEC_PIP_ARGS:-} "$spec"
  bin=$dest/venv/bin
  log "$spec with pip"
}

bin=
if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] && from_archive; then
  :
else
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] && log "no release archive; falling back to pip"
  from_pip
fi
"$bin/isospec" --version
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$bin" >> "$GITHUB_PATH"
else
  echo "$bin"
fi
