//! Reporting: pg_regress-style status lines and the closing summary, on
//! stdout and into `regression.out`.  Diagnostics go to stderr.

use std::fs::File;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The transcript differs from every expected variant.
    Failed,
    /// No expected file: the transcript is new.
    New,
    /// The spec could not be parsed or checked.
    SpecError(String),
    /// The spec stopped early (timeout, lost connection, setup failure…).
    RunError(String),
}

#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    pub status: Status,
    pub duration: Duration,
    pub permutations: u128,
}

/// Writes status lines to stdout and to `regression.out`.
pub struct Reporter {
    out_file: Option<File>,
    quiet: bool,
}

impl Reporter {
    pub fn new(out_file: Option<File>, quiet: bool) -> Self {
        Reporter { out_file, quiet }
    }

    fn line(&mut self, s: &str) {
        if !self.quiet {
            println!("{s}");
        }
        if let Some(f) = self.out_file.as_mut() {
            let _ = writeln!(f, "{s}");
        }
    }

    pub fn banner(&mut self, s: &str) {
        self.line(&format!("============== {s:<40} =============="));
    }

    pub fn note(&mut self, s: &str) {
        eprintln!("isospec: {s}");
    }

    pub fn outcome(&mut self, o: &TestOutcome) {
        let ms = o.duration.as_millis();
        let status = match &o.status {
            Status::Ok => "ok".to_string(),
            Status::Failed => "FAILED".to_string(),
            Status::New => "NEW (no expected output)".to_string(),
            Status::SpecError(_) => "FAILED (spec error)".to_string(),
            Status::RunError(_) => "FAILED (run error)".to_string(),
        };
        self.line(&format!(
            "test {:<28} ... {:<10} {:>8} ms",
            o.name, status, ms
        ));
        match &o.status {
            Status::SpecError(e) | Status::RunError(e) => {
                for l in e.lines() {
                    self.line(&format!("    {l}"));
                }
            }
            _ => {}
        }
    }

    pub fn summary(&mut self, outcomes: &[TestOutcome], diffs: Option<&str>, wall: Duration) {
        let total = outcomes.len();
        let failed = outcomes.iter().filter(|o| o.status != Status::Ok).count();
        let msg = if failed == 0 {
            format!(" All {total} tests passed. ")
        } else {
            format!(" {failed} of {total} tests failed. ")
        };
        let bar = "=".repeat(msg.len());
        self.line("");
        self.line(&bar);
        self.line(&msg);
        self.line(&bar);
        self.line(&format!("{} passed, {} failed", total - failed, failed));
        self.line(&format!("wall time: {:.1} s", wall.as_secs_f64()));
        if failed > 0 {
            if let Some(d) = diffs {
                self.line(&format!("The differences that caused some tests to fail can be viewed in the file \"{d}\"."));
            }
            let new: Vec<&str> = outcomes
                .iter()
                .filter(|o| o.status == Status::New)
                .map(|o| o.name.as_str())
                .collect();
            if !new.is_empty() {
                self.line(&format!(
                    "New specs without expected output: {}. Review results/NAME.out and copy it to expected/NAME.out to accept it.",
                    new.join(", ")
                ));
            }
        }
        self.line("");
    }
}
