//! The sink every finished spec goes through, serially or from -j lanes:
//! its diff appended to regression.diffs, `--accept`, the transcripts kept
//! for flake hunting, and the `SpecFinished` event.  Its own module so that
//! the passes (which own it) and the lanes (which feed it) need not import
//! each other.

use super::accept::accept_transcript;
use super::flaky::Variants;
use super::one::SpecRun;
use super::{Events, RunConfig, RunError, Runtime};
use crate::outcome::{RunEvent, Status, TestOutcome};
use std::path::Path;

/// What the specs of a run have given so far.
pub(super) struct ClassSoFar {
    pub outcomes: Vec<TestOutcome>,
    /// Distinct transcripts per test (flake hunting).
    pub variants: Vec<Variants>,
    /// Which tests of the current pass have finished.
    pub finished: Vec<bool>,
}

/// Takes each finished spec run as it completes: diff, accept, flake
/// bookkeeping, status line.
pub(super) struct Sink<'x> {
    pub cfg: &'x RunConfig,
    pub rt: &'x Runtime,
    pub events: &'x Events,
    pub diffs_path: &'x Path,
    pub tally: &'x mut ClassSoFar,
    pub counter: usize,
    /// A spec of the current pass did not pass.
    pub failed: bool,
    pub pass: usize,
}

impl Sink<'_> {
    pub(super) fn done(&mut self, k: usize, mut r: SpecRun) -> Result<(), RunError> {
        if matches!(r.outcome.status, Status::NotRun(_)) {
            // Reported with the others that did not run, at the end.
            return Ok(());
        }
        self.tally.finished[k] = true;
        self.counter += 1;
        let t = &self.cfg.tests[k];
        if self.cfg.accept && matches!(r.outcome.status, Status::Failed | Status::New) {
            match accept_transcript(&t.expected_dir, &t.name, &r.transcript) {
                Ok(p) => {
                    r.outcome.accepted = Some(p.display().to_string());
                    r.outcome.status = Status::Accepted(p.display().to_string());
                }
                Err(e) => r.outcome.status = Status::RunError(format!("could not accept: {e}")),
            }
        }
        // regression.diffs holds the differences that fail: an accepted
        // transcript's is shown apart, as what --accept changed.
        if let (Some(d), None) = (&r.diff, &r.outcome.accepted) {
            append(self.diffs_path, d)?;
        }
        // A transcript that matches (or was just accepted) does not make a
        // spec pass while an invariant is violated.
        if r.outcome.status.passed() && r.outcome.violations.iter().any(|v| !v.known) {
            let mut text: Vec<String> = r
                .outcome
                .violations
                .iter()
                .filter(|v| !v.known)
                .map(|v| v.describe())
                .collect();
            if let Status::Accepted(p) = &r.outcome.status {
                text.push(format!("(its transcript was accepted into {p})"));
                // The transcript's departure is gone with the accept: the
                // spec departs at the invariant now.
                r.outcome.departure = r
                    .outcome
                    .violations
                    .iter()
                    .find(|v| !v.known)
                    .map(|v| Box::new(super::one::invariant_departure(v)));
            }
            r.outcome.status = Status::Violated(text.join("\n"));
        }
        self.failed |= !r.outcome.status.passed();
        // Transcripts are kept only to compare repeats (flake hunting).
        if self.cfg.repeat > 1 || self.cfg.until_fail {
            self.tally.variants[k].add(&r.transcript);
        }
        // A new spec: show what it produced, and how to keep it.
        let new_transcript =
            (r.outcome.status == Status::New && self.pass == 0).then(|| r.transcript.clone());
        self.events.emit(RunEvent::SpecFinished {
            number: self.counter,
            outcome: Box::new(r.outcome.clone()),
            diff: r.diff,
            new_transcript,
        });
        self.tally.outcomes.push(r.outcome);
        Ok(())
    }
}

fn append(path: &Path, text: &str) -> Result<(), RunError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })?;
    f.write_all(text.as_bytes())
        .map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })
}
