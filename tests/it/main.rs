//! Integration tests: the built `isospec` binary against real throwaway
//! PostgreSQL instances that it (or the test) starts itself.  One test
//! binary of modules with shared helpers in `util`; tests that need
//! PostgreSQL's server binaries are skipped, with one line saying why,
//! where there are none.  Expected files under tests/fixtures and
//! tests/timeout were produced by PostgreSQL 15's own isolationtester.

#[macro_use]
mod util;

mod anomalies;
mod architecture;
mod check;
mod drop_in;
mod explore;
mod explore_scale;
mod faults;
mod hostile;
mod invariants;
mod parallel;
mod pooler;
mod postgres;
mod project;
mod pull_request;
mod races;
mod record;
mod reports;
mod run;
mod signals;
mod stop;
mod tls;
