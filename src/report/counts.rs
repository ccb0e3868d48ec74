//! The counts every summary shows, computed once: how many specs ran,
//! passed, failed and were not run (with why).

use crate::outcome::{Status, TestOutcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Counts {
    pub total: usize,
    pub ran: usize,
    pub passed: usize,
    pub failed: usize,
    /// Specs without an expected file: not failed, not passed either.
    pub new: usize,
    /// Of the passed, those whose transcript `--accept` copied.
    pub accepted: usize,
    pub not_run: usize,
    /// Why the first spec that did not run did not.
    pub not_run_why: Option<String>,
}

impl Counts {
    pub fn of(outcomes: &[TestOutcome]) -> Counts {
        let not_run: Vec<&TestOutcome> = outcomes
            .iter()
            .filter(|o| matches!(o.status, Status::NotRun(_)))
            .collect();
        let new = outcomes.iter().filter(|o| o.status == Status::New).count();
        let failed = outcomes
            .iter()
            .filter(|o| !o.status.passed() && !matches!(o.status, Status::NotRun(_) | Status::New))
            .count();
        let ran = outcomes.len() - not_run.len();
        Counts {
            total: outcomes.len(),
            ran,
            passed: ran - failed - new,
            failed,
            new,
            accepted: outcomes
                .iter()
                .filter(|o| matches!(o.status, Status::Accepted(_)))
                .count(),
            not_run: not_run.len(),
            not_run_why: not_run.first().and_then(|o| match &o.status {
                Status::NotRun(why) => Some(why.clone()),
                _ => None,
            }),
        }
    }

    /// "2 passed, 1 failed, 3 new": failed shown when some failed or none
    /// is new, new when some are.
    pub fn tally(&self) -> String {
        let mut parts = vec![if self.accepted > 0 {
            format!("{} passed ({} accepted)", self.passed, self.accepted)
        } else {
            format!("{} passed", self.passed)
        }];
        if self.failed > 0 || self.new == 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if self.new > 0 {
            parts.push(format!("{} new", self.new));
        }
        parts.join(", ")
    }

    /// ", 2 not run (interrupted)" when some did not run.
    pub fn not_run_note(&self) -> String {
        match &self.not_run_why {
            Some(why) => format!(", {} not run ({why})", self.not_run),
            None => String::new(),
        }
    }
}
