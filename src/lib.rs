//! isospec: an isolation spec runner for PostgreSQL.
//!
//! A faithful port of PostgreSQL's isolationtester and pg_isolation_regress.
//! The crate is split by job (ARCHITECTURE.md has the map): `spec` parses
//! and checks spec files, `run` drives a run and emits `outcome::RunEvent`s,
//! `executor` runs one spec over `pgwire` connections and emits typed
//! events, `wait` asks the server whether a step is blocked, `transcript`
//! renders isolationtester's text, `differ` compares transcripts with
//! expected files, `report` alone prints, `schedule` reads pg_regress
//! schedules, `server` manages a throwaway instance, `timeouts` chooses the
//! step timeout, `jobs` and `affinity` place -j work, `explore` walks the
//! interleavings nobody wrote down, and `cli` is the command line.

pub mod affinity;
pub mod cli;
pub mod differ;
pub mod executor;
pub mod explore;
pub mod jobs;
pub mod outcome;
pub mod pgwire;
pub mod report;
pub mod run;
pub mod schedule;
pub mod server;
pub mod spec;
pub mod stop;
pub mod timeouts;
pub mod transcript;
pub mod wait;
