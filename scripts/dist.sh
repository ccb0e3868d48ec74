#!/usr/bin/env bash
# make dist: what a release ships, built and checked here.
#
#   dist/isospec-V-py3-none-manylinux_2_17_x86_64.whl   maturin --zig, glibc floor 2.17
#   dist/isospec-V-py3-none-musllinux_1_2_x86_64.whl    when the musl target can be had
#   dist/isospec-V-x86_64-unknown-linux-gnu.tar.gz      the manylinux wheel's binary, README, LICENSE
#   dist/isospec-V-x86_64-unknown-linux-musl.tar.gz     the musl wheel's binary (static)
#   dist/isospec-V.tar.gz                               the sdist
#   dist/SHA256SUMS
#
# Every wheel's tag is confirmed by auditwheel, and the highest GLIBC symbol
# version the glibc binary needs is read off it (objdump -T), not assumed.
# Then `cargo publish --dry-run` packages and builds the crate, whose file
# list must hold nothing but what a build needs.
# Set DIST_MUSL=0 to leave the musl artifacts out, DIST_MUSL=1 to require them.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(scripts/dist-tools.sh)
export PATH="$bin:$PATH"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
gnu=x86_64-unknown-linux-gnu
musl=x86_64-unknown-linux-musl
glibc_floor=2.17
musl_wanted=${DIST_MUSL:-auto}

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

# --- glibc: manylinux_2_17 -------------------------------------------------
maturin build --release --locked --zig --compatibility manylinux2014 --target "$gnu" --out dist
whl=$(ls dist/isospec-"$version"-*manylinux_2_17_x86_64*.whl)
check_tag "$whl" manylinux_2_17_x86_64
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
wheel_binary "$whl" "$tmp/gnu"
highest=$(objdump -T "$tmp/gnu/isospec" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
[ -n "$highest" ] || fail "no GLIBC symbol versions found in the binary (is it dynamically linked?)"
[ "$(printf '%s\n%s\n' "$highest" "$glibc_floor" | sort -V | tail -n1)" = "$glibc_floor" ] \
  || fail "the binary needs GLIBC_$highest, above the floor $glibc_floor"
say "the glibc binary needs at most GLIBC_$highest (floor $glibc_floor)"
archive "$gnu" "$tmp/gnu/isospec"

# --- musl: musllinux_1_2 and a static archive ------------------------------
have_musl=0
if [ "$musl_wanted" != 0 ]; then
  if rustup target list --installed 2>/dev/null | grep -qx "$musl" \
     || rustup target add "$musl" >/dev/null 2>&1; then
    have_musl=1
  elif [ "$musl_wanted" = 1 ]; then
    fail "the Rust target $musl cannot be installed here (rustup target add $musl failed)"
  else
    say "musl: the Rust target $musl cannot be installed here; no musllinux wheel or musl archive"
  fi
fi
if [ "$have_musl" = 1 ]; then
  maturin build --release --locked --zig --compatibility musllinux_1_2 --target "$musl" --out dist
  mwhl=$(ls dist/isospec-"$version"-*musllinux_1_2_x86_64*.whl)
  check_tag "$mwhl" musllinux_1_2_x86_64
  wheel_binary "$mwhl" "$tmp/musl"
  file_out=$(file -b "$tmp/musl/isospec" 2>/dev/null || true)
  if command -v file >/dev/null; then
    grep -q "statically linked" <<<"$file_out" || fail "the musl binary is not static: $file_out"
  else
    ! readelf -l "$tmp/musl/isospec" | grep -q "INTERP" || fail "the musl binary asks for a dynamic loader"
  fi
  say "the musl binary is statically linked"
  archive "$musl" "$tmp/musl/isospec"
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
cargo publish --dry-run --locked --allow-dirty
say "cargo publish --dry-run: $(wc -l <<<"$crate_files") files"

echo
echo "dist: in dist/:"
(cd dist && for f in *; do printf '  %-64s %8s\n' "$f" "$(du -k "$f" | awk '{ printf "%.1f MB", $1 / 1024 }')"; done)
