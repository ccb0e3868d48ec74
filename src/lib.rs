//! isospec: an isolation spec runner for PostgreSQL.
//!
//! A faithful port of PostgreSQL's isolationtester and pg_isolation_regress.
//! The crate is split by job: `spec` parses and checks spec files,
//! `executor` runs them over `pgwire` connections and emits events,
//! `wait` asks the server whether a step is blocked, `transcript` formats
//! events as isolationtester's text, `differ` compares transcripts with
//! expected files, `schedule` reads pg_regress schedules, `server` manages a
//! throwaway PostgreSQL instance, `report` prints status lines and summaries,
//! `timeouts` chooses the step timeout
//! as the server version's isolationtester does, `jobs` decides the order in which -j starts specs, `affinity` binds -j
//! lanes and their backends to CPUs, and `runner` ties them together for the
//! command line (`cli`).

pub mod affinity;
pub mod cli;
pub mod differ;
pub mod executor;
pub mod jobs;
pub mod outcome;
pub mod pgwire;
pub mod report;
pub mod run;
pub mod schedule;
pub mod server;
pub mod spec;
pub mod timeouts;
pub mod transcript;
pub mod wait;
