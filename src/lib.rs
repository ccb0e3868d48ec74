//! isospec: an isolation spec runner for PostgreSQL.
//!
//! A faithful port of PostgreSQL's isolationtester and pg_isolation_regress.
//! The crate is split by job (ARCHITECTURE.md has the map): `spec` parses
//! and checks spec files, `run` drives a run and emits `outcome::RunEvent`s,
//! `executor` runs one spec over `pgwire` connections and emits typed
//! events, `wait` asks the server whether a step is blocked, `transcript`
//! renders isolationtester's text, `differ` compares transcripts with
//! expected files, `report` shows (only it and `cli` print), `schedule` reads pg_regress
//! schedules, `server` manages a throwaway instance, `pgdist` fetches and caches a
//! chosen version's server binaries, `timeouts` chooses the
//! step timeout, `jobs` and `affinity` place -j work, `explore` walks the
//! interleavings nobody wrote down, `environment` holds the variables
//! isospec reads, and `cli` is the command line, the one place that
//! reads the process's environment.

// Public: what the binary (`main`), the integration tests (`server`,
// `environment`) and the fuzz targets (`spec`, `schedule`, the backend
// `protocol`) use.
// Everything else is private, so that the compiler flags what nothing uses.
mod affinity;
mod c_atoi;
mod cli;
mod differ;
pub mod environment;
mod executor;
mod exit;
mod explore;
mod jobs;
mod outcome;
mod pgdist;
mod pgwire;
mod record;
mod report;
mod run;
pub mod schedule;
pub mod server;
mod settings;
pub mod spec;
mod stop;
mod timeline;
mod timeouts;
mod transcript;
mod wait;
mod words;

pub use cli::main;
pub use pgwire::protocol;
