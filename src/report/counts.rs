//! The counts every summary shows, computed once: how many specs ran,
//! passed, failed and were not run (with why).

use crate::outcome::{Status, TestOutcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Counts {
    pub total: usize,
    pub ran: usize,
    pub passed: usize,
    pub failed: usize,
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
        let failed = outcomes
            .iter()
            .filter(|o| !o.status.passed() && !matches!(o.status, Status::NotRun(_)))
            .count();
        let ran = outcomes.len() - not_run.len();
        Counts {
            total: outcomes.len(),
            ran,
            passed: ran - failed,
            failed,
            not_run: not_run.len(),
            not_run_why: not_run.first().and_then(|o| match &o.status {
                Status::NotRun(why) => Some(why.clone()),
                _ => None,
            }),
        }
    }

    /// ", 2 not run (interrupted)" when some did not run.
    pub fn not_run_note(&self) -> String {
        match &self.not_run_why {
            Some(why) => format!(", {} not run ({why})", self.not_run),
            None => String::new(),
        }
    }
}
