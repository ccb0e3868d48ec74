# isospec — build, test and run isolation specs.
#
#   make check-isolation       build, start a throwaway PostgreSQL, run specs/ against expected/
#   make installcheck-isolation  the same against your running server (PGHOST/PGPORT/... or ISOSPEC_OPTS)
#   make test                  unit + integration tests and the PostgreSQL conformance suite
#   make conformance           only the conformance suite (../shared/pg15-isolation)

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

.PHONY: all build check-isolation installcheck-isolation test unit conformance bench clean

all: build

build:
	$(CARGO) build --release --locked

check-isolation: build
	$(ISOSPEC) run --temp-instance tmp_check --temp-config $(TEMP_CONFIG) $(ISOSPEC_OPTS) specs/

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
	set -e; for det in function pg-locks; do \
	  echo "== PostgreSQL 15 conformance, wait detector $$det"; \
	  $(ISOSPEC) run --quiet --wait-detector $$det --inputdir $(PG15_SUITE) \
	    --schedule $(PG15_SUITE)/isolation_schedule --schedule $(PG15_SUITE)/prepared_schedule \
	    --outputdir target/conformance-$$det --temp-instance target/conformance-$$det/tmp_check \
	    --temp-config conf/conformance.conf \
	    || { cat target/conformance-$$det/regression.diffs 2>/dev/null | head -200; exit 1; }; \
	  tail -n 4 target/conformance-$$det/regression.out; \
	done

test: unit conformance check-isolation

clean:
	$(CARGO) clean
	rm -rf tmp_check results/*.out regression.diffs regression.out

bench: build
	bench/run.sh
