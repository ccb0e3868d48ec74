//! `isospec explore`: runs the interleavings of a spec's steps that nobody
//! wrote down as permutations, and groups them by outcome.
//!
//! - `space`: the interleaving space, its size, a stable numbering shared
//!   with isolationtester's enumeration order, and unranking, which turns
//!   both exhaustive walks and seeded uniform samples into walks over
//!   indices;
//! - `bound`: the searches beyond `--max`: interleavings with at most K
//!   preemptions, and one interleaving per trace of commuting steps;
//! - `order`: which interleavings a walk draws, in which order (and the
//!   waits a preemption search learns);
//! - `walk`: runs them through the executor in batches, in one or -j
//!   databases or one part of N, folding events into outcomes;
//! - `rerun`: a representative run again: shrunk (`--shrink`), or traced
//!   for the HTML report;
//! - `anomaly`: runs the serial orders and gives each class its verdict;
//! - `compare`: what a run is compared on, the volatile values set
//!   aside, and a class's verdict;
//! - `serial`: the spec's transactions, their serial orders, and how a
//!   run's observations compare with a serial run's (`--anomalies`);
//! - `observe`: the steps that only read and show what a class is
//!   about, which shrinking keeps;
//! - `classes`: groups interleavings by what happened, with a stable
//!   representative;
//! - `lines`: permutation lines of interleavings and classes;
//! - `document`: the `--json` format as types, and `--merge`, which reads
//!   parts' documents back and combines them;
//! - `driver`: the command's work on `run`'s ground (server, databases,
//!   signals), spec by spec, emitting `ExploreEvent`s; and `--merge`.
//!
//! Everything it shows is `report::explore`'s (text, progress, JSON,
//! HTML, `--write`); the command line is `cli::explore`, which fills an
//! `ExploreRequest` and prints nothing.

pub mod anomaly;
pub mod bound;
pub mod classes;
pub mod compare;
pub mod document;
pub mod driver;
pub mod lines;
pub mod observe;
pub mod order;
pub mod rerun;
pub mod serial;
pub mod space;
pub mod walk;
