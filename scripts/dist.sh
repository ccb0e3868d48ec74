#!/usr/bin/env bash
# make dist: what a release ships, built and checked here. The release
# workflow runs this same script, one target per job (DIST_TARGETS), so
# what is checked here is what ships.
#
#   dist/isospec-V-py3-none-manylinux_2_17_x86_64.whl   maturin --zig, glibc floor 2.17
#   dist/isospec-V-py3-none-musllinux_1_2_x86_64.whl    when the musl target can be had
#   dist/isospec-V-x86_64-unknown-linux-gnu.tar.gz      the manylinux wheel's binary, README, LICENSE
#   dist/isospec-V-x86_64-unknown-linux-musl.tar.gz     the musl wheel's binary (static)
#   dist/isospec-V.tar.gz                               the sdist
#   dist/SHA256SUMS
#
# DIST_TARGETS: the wheels to build, as TRIPLE:COMPAT words (COMPAT is
# maturin's --compatibility for Linux, "native" for a build on the
# target's own OS, macOS); default: x86_64 glibc and musl. DIST_SDIST=0
# leaves out the sdist and the crate check (a release job per target).
# Each target is compiled once: its wheel's binary is the archive's, and
# the crate check packages the crate without building it again.
#
# Every Linux wheel's tag is confirmed by auditwheel, and the highest GLIBC
# symbol version a glibc binary needs is read off it (scripts/glibc-needs.py,
# any architecture), not assumed. `cargo publish --dry-run` checks the crate's package, whose file
# list must hold nothing but what a build needs.
# Set DIST_MUSL=0 to leave the musl artifacts out, DIST_MUSL=1 to require them.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(scripts/dist-tools.sh)
export PATH="$bin:$PATH"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
glibc_floor=2.17
musl_wanted=${DIST_MUSL:-auto}
targets=${DIST_TARGETS-x86_64-unknown-linux-gnu:manylinux2014 x86_64-unknown-linux-musl:musllinux_1_2}
started=$(date +%s)

rm -rf dist
mkdir -p dist
say() { echo "dist: $*"; }
fail() { echo "dist: $*" >&2; exit 1; }

# The tag auditwheel finds must be the one the file name claims.
check_tag() { # WHEEL TAG
  local out
  out=$(auditwheel show "$1" 2>&1 | tr -s ' \n' '  ')
  grep -q "consistent with the following platform tag: \"$2\"" <<<"$out" \
    || fail "auditwheel does not confirm $2 for $1: $out"
  say "$(basename "$1"): auditwheel confirms $2"
}

# The wheel's own binary, into DIR/isospec (scripts/wheel-binary.py).
wheel_binary() { python3 scripts/wheel-binary.py "$1" "$2" >/dev/null; }

# The archive, laid out as the release workflow lays it out (scripts/archive.sh).
archive() { # TRIPLE BINARY
  scripts/archive.sh "$version" "$1" "$2" dist >/dev/null
  say "isospec-$version-$1.tar.gz"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One target: its wheel (compiled once), its checks, its archive.
build_target() { # TRIPLE COMPAT
  local triple=$1 compat=$2 arch=${1%%-*} before whl tag highest file_out
  if ! rustup target list --installed 2>/dev/null | grep -qx "$triple" \
     && ! rustup target add "$triple" >/dev/null 2>&1; then
    if [ "$triple" = x86_64-unknown-linux-musl ] && [ "$musl_wanted" = auto ]; then
      say "musl: the Rust target $triple cannot be installed here; no musllinux wheel or musl archive"
      return 0
    fi
    fail "the Rust target $triple cannot be installed here (rustup target add $triple failed)"
  fi
  before=$(ls dist/*.whl 2>/dev/null || true)
  case $compat in
    native) maturin build --release --locked --target "$triple" --out dist ;;
    *) maturin build --release --locked --zig --compatibility "$compat" --target "$triple" --out dist ;;
  esac
  whl=$(comm -13 <(echo "$before") <(ls dist/*.whl) | head -n1)
  [ -n "$whl" ] || fail "maturin wrote no wheel for $triple"
  wheel_binary "$whl" "$tmp/$triple"
  case $triple in
    *-linux-gnu)
      tag=manylinux_${glibc_floor/./_}_$arch
      check_tag "$whl" "$tag"
      highest=$("$bin/python" scripts/glibc-needs.py "$tmp/$triple/isospec")
      [ -n "$highest" ] || fail "no GLIBC symbol versions found in the $triple binary (is it dynamically linked?)"
      [ "$(printf '%s\n%s\n' "$highest" "$glibc_floor" | sort -V | tail -n1)" = "$glibc_floor" ] \
        || fail "the $triple binary needs GLIBC_$highest, above the floor $glibc_floor"
      say "the $triple binary needs at most GLIBC_$highest (floor $glibc_floor)"
      ;;
    *-linux-musl)
      check_tag "$whl" "musllinux_1_2_$arch"
      file_out=$(file -b "$tmp/$triple/isospec" 2>/dev/null || true)
      if command -v file >/dev/null; then
        grep -q "statically linked" <<<"$file_out" || fail "the $triple binary is not static: $file_out"
      else
        ! readelf -l "$tmp/$triple/isospec" | grep -q "INTERP" || fail "the $triple binary asks for a dynamic loader"
      fi
      say "the $triple binary is statically linked"
      ;;
    *) say "$(basename "$whl")" ;;
  esac
  archive "$triple" "$tmp/$triple/isospec"
}

for t in $targets; do
  triple=${t%%:*} compat=${t#*:}
  [ "$triple" = x86_64-unknown-linux-musl ] && [ "$musl_wanted" = 0 ] && continue
  build_target "$triple" "$compat"
done
if [ "${DIST_SDIST:-1}" = 0 ]; then
  (cd dist && sha256sum -- * > SHA256SUMS)
  say "$(ls dist | wc -l) files in $(( $(date +%s) - started )) s"
  exit 0
fi

# --- sdist -------------------------------------------------------------------
maturin sdist --out dist
sdist="dist/isospec-$version.tar.gz"
[ -f "$sdist" ] || fail "maturin sdist did not write $sdist"
listing=$(tar -tzf "$sdist")
for f in pyproject.toml Cargo.toml Cargo.lock LICENSE src/main.rs src/lib.rs python/isospec/__init__.py \
         python/isospec/pytest_plugin.py python/isospec/py.typed python/README.md; do
  grep -q "^isospec-[^/]*/$f\$" <<<"$listing" || fail "$sdist lacks $f"
done
if grep -E "^isospec-[^/]*/(tests|specs|expected|bench|fuzz|docs)/" <<<"$listing" | head -n3 | grep -q .; then
  fail "$sdist holds files a build does not need: $(grep -E "^isospec-[^/]*/(tests|specs|expected|bench|fuzz|docs)/" <<<"$listing" | head -n3 | tr '\n' ' ')"
fi
say "$(basename "$sdist")"

(cd dist && sha256sum -- * > SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
say "SHA256SUMS"

# --- the crate as crates.io would get it -------------------------------------
crate_files=$(cargo package --list --locked --allow-dirty 2>/dev/null)
unwanted=$(grep -vE '^(src/|Cargo\.toml$|Cargo\.toml\.orig$|Cargo\.lock$|README\.md$|LICENSE$|\.cargo_vcs_info\.json$)' <<<"$crate_files" || true)
[ -z "$unwanted" ] || fail "the crate package holds files a build does not need: $unwanted"
# --no-verify: the sources were compiled above (maturin, --locked); a
# verifying dry run would compile them a third time, in the debug profile.
cargo publish --dry-run --no-verify --locked --allow-dirty
say "cargo publish --dry-run: $(wc -l <<<"$crate_files") files"

echo
say "built in $(( $(date +%s) - started )) s"
echo "dist: in dist/:"
(cd dist && for f in *; do printf '  %-64s %8s\n' "$f" "$(du -k "$f" | awk '{ printf "%.1f MB", $1 / 1024 }')"; done)
