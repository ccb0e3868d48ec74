#!/usr/bin/env bash
# make check-python: the Python distribution as a user gets it.
#
# A fresh virtual environment in target/python-check (python3 -m venv),
# the pinned tools from PyPI (tests/python/requirements.txt: maturin,
# pytest, pytest-xdist), the wheel (maturin build --release) and the sdist
# (maturin sdist) built, the wheel installed, mypy --strict over the
# installed package (it ships py.typed) and the tests, then pytest over
# tests/python: the plugin through pytester against a real server (a
# temporary instance the plugin starts), the API, python -m isospec.
# Prints the wheel's size and the times.  Under ISOSPEC_TESTS_REQUIRE_ALL=1
# (CI) a skipped test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
work=target/python-check
venv=$work/venv
dist=$work/dist

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

rm -rf "$work"
mkdir -p "$dist"
# Debian's python3 keeps venv (ensurepip) in a package of its own.
"$PYTHON" -m venv "$venv" 2>/dev/null || { scripts/provision.sh --check venv; exit 2; }
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

t=$(now)
"$venv/bin/maturin" build --release --locked --out "$dist"
"$venv/bin/maturin" sdist --out "$dist"
build_time=$(elapsed "$t")

wheel=$(ls "$dist"/isospec-*.whl)
sdist=$(ls "$dist"/isospec-*.tar.gz)
# The sdist holds what a source build needs.
listing=$(tar -tzf "$sdist")
for f in pyproject.toml Cargo.toml Cargo.lock src/main.rs src/lib.rs python/isospec/__init__.py \
         python/isospec/pytest_plugin.py python/isospec/py.typed python/README.md LICENSE; do
  grep -q "^isospec-[^/]*/$f\$" <<<"$listing" || { echo "check-python: $sdist lacks $f" >&2; exit 1; }
done

"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-index "$wheel"

# The installed package's type hints (py.typed), and the tests', strictly.
(cd tests/python && "../../$venv/bin/python" -m mypy --strict -p isospec && "../../$venv/bin/python" -m mypy --strict .)

t=$(now)
(cd tests/python && "../../$venv/bin/python" -m pytest "$@")
test_time=$(elapsed "$t")

size() { du -k "$1" | awk '{ printf "%.1f MB", $1 / 1024 }'; }
echo "check-python: wheel $(basename "$wheel") $(size "$wheel"), sdist $(basename "$sdist") $(size "$sdist")"
echo "check-python: build (wheel + sdist) $build_time, tests $test_time"
