//! isospec's own renderings of a run: pg_regress-style status lines and
//! summary (`Human`), or TAP (`Human { tap: true }`): the two differ only
//! in how a line is dressed.

use super::counts::Counts;
use super::render::{line, Context, Line, Render, To};
use crate::outcome::{FlakyReport, Phase, RunEvent, Status, TestOutcome};
use std::path::Path;
use std::time::Duration;

pub(super) struct Human {
    pub tap: bool,
}

fn out(text: impl Into<String>) -> Line {
    line(text, To::StdoutAndLog)
}

impl Render for Human {
    fn render(&mut self, event: &RunEvent, _: &Context<'_>) -> Vec<Line> {
        match event {
            RunEvent::Phase(p) => self.phase(p),
            RunEvent::SpecFinished {
                number,
                outcome,
                new_transcript,
                ..
            } => {
                let mut lines = self.outcome(*number, outcome);
                if let Some(text) = new_transcript {
                    lines.extend(self.transcript(&outcome.name, text));
                }
                lines
            }
            RunEvent::StoppedAfterPass(pass) => {
                vec![out(format!("stopping after pass {pass}: a spec failed"))]
            }
            RunEvent::Flaky(f) => flaky(f),
            RunEvent::Stable { name, runs } => {
                vec![out(format!("stable {name}: 1 transcript in {runs} runs"))]
            }
            RunEvent::Finished {
                outcomes,
                wall,
                diffs_file,
            } => self.summary(outcomes, diffs_file.as_deref(), *wall),
            RunEvent::Note(_) | RunEvent::Diagnostic { .. } | RunEvent::Started { .. } => {
                Vec::new()
            }
        }
    }
}

fn flaky(f: &FlakyReport) -> Vec<Line> {
    let counts: Vec<String> = f
        .counts
        .iter()
        .enumerate()
        .map(|(i, n)| format!("#{} seen {}x", i + 1, n))
        .collect();
    let mut lines = vec![out(format!(
        "FLAKY {}: {} distinct transcripts ({})",
        f.name,
        f.counts.len(),
        counts.join(", ")
    ))];
    for d in &f.diffs {
        lines.extend(d.lines().map(out));
    }
    lines
}

impl Human {
    /// A comment line: `# …` in TAP, indented otherwise.
    fn prefix(&self) -> &'static str {
        if self.tap {
            "# "
        } else {
            "    "
        }
    }

    fn banner(&self, s: &str) -> Line {
        if self.tap {
            out(format!("# {s}"))
        } else {
            out(format!("============== {s:<40} =============="))
        }
    }

    fn phase(&self, p: &Phase) -> Vec<Line> {
        match phase_text(p) {
            Some(text) => vec![self.banner(&text)],
            None => Vec::new(),
        }
    }

    fn outcome(&self, number: usize, o: &TestOutcome) -> Vec<Line> {
        let ms = o.duration.as_millis();
        if let Status::NotRun(why) = &o.status {
            return vec![if self.tap {
                out(format!("ok {number} - {} # SKIP not run ({why})", o.name))
            } else {
                out(format!("test {:<28} ... not run ({why})", o.name))
            }];
        }
        let mut lines = vec![if self.tap {
            let ok = if o.status.passed() { "ok" } else { "not ok" };
            out(format!("{ok} {number} - {}  {ms} ms", o.name))
        } else {
            // One word in the status column, so that the times line up;
            // what kind of failure it is follows the time.
            let (status, why) = match &o.status {
                Status::Ok => ("ok", ""),
                Status::Failed => ("FAILED", ""),
                Status::New => ("NEW", "  (no expected output)"),
                Status::Accepted(_) => ("accepted", ""),
                Status::BadSpec(_) => ("FAILED", "  (spec error)"),
                Status::RunError(_) => ("FAILED", "  (run error)"),
                Status::Violated(_) if o.violations.iter().all(|v| v.anomaly || v.known) => {
                    ("FAILED", "  (anomaly)")
                }
                Status::Violated(_) => ("FAILED", "  (invariant)"),
                Status::NotRun(_) => unreachable!("handled above"),
            };
            out(format!(
                "test {:<28} ... {:<10} {:>8} ms{why}",
                o.name, status, ms
            ))
        }];
        let prefix = self.prefix();
        match &o.status {
            Status::BadSpec(e) | Status::RunError(e) | Status::Violated(e) => {
                lines.extend(e.lines().map(|l| out(format!("{prefix}{l}"))));
            }
            Status::Accepted(path) => {
                lines.push(out(format!("{prefix}transcript copied to {path}")))
            }
            _ => {}
        }
        // A spec that failed otherwise still says which invariants broke.
        if !matches!(o.status, Status::Violated(_)) {
            for v in &o.violations {
                lines.push(out(format!("{prefix}{}", v.describe())));
            }
        }
        lines
    }

    /// The transcript of a spec that has no expected output yet.
    fn transcript(&self, name: &str, text: &str) -> Vec<Line> {
        let prefix = if self.tap { "# " } else { "    | " };
        let mut lines = vec![out(format!(
            "{prefix}transcript of {name} (no expected output; `isospec accept {name}` keeps it):"
        ))];
        lines.extend(text.lines().map(|l| out(format!("{prefix}{l}"))));
        lines
    }

    fn summary(&self, outcomes: &[TestOutcome], diffs: Option<&Path>, wall: Duration) -> Vec<Line> {
        let c = Counts::of(outcomes);
        let not_run_note = c.not_run_note();
        if self.tap {
            return vec![
                out(format!("1..{}", c.total)),
                out(format!("# {}{not_run_note}", c.tally())),
                out(format!("# wall time: {:.1} s", wall.as_secs_f64())),
            ];
        }
        let tests = |n: usize| crate::words::counted(n as u64, "test", "tests");
        let msg = if c.not_run > 0 {
            format!(
                " {} of {} ran: {}{not_run_note}. ",
                c.ran,
                tests(c.total),
                c.tally()
            )
        } else if c.failed == 0 && c.new == 0 {
            if c.total == 1 {
                " The test passed. ".to_string()
            } else {
                format!(" All {} passed. ", tests(c.total))
            }
        } else if c.failed == 0 {
            format!(
                " {} of {} new (no expected output). ",
                c.new,
                tests(c.total)
            )
        } else if c.new == 0 {
            format!(" {} of {} failed. ", c.failed, tests(c.total))
        } else {
            format!(
                " {} of {} failed, {} new. ",
                c.failed,
                tests(c.total),
                c.new
            )
        };
        let bar = "=".repeat(msg.len());
        let mut lines = vec![
            out(""),
            out(bar.clone()),
            out(msg),
            out(bar),
            out(format!("{}{not_run_note}", c.tally())),
            out(format!("wall time: {:.1} s", wall.as_secs_f64())),
        ];
        if c.failed > 0 {
            if let Some(d) = diffs {
                lines.push(out(format!(
                    "The differences that caused some tests to fail can be viewed in the file \"{}\".",
                    d.display()
                )));
            }
        }
        let new: Vec<&str> = outcomes
            .iter()
            .filter(|o| o.status == Status::New)
            .map(|o| o.name.as_str())
            .collect();
        if !new.is_empty() {
            lines.push(out(format!(
                "New {} without expected output: {}. Review results/NAME.out, then `isospec accept NAME` copies it to expected/.",
                if new.len() == 1 { "spec" } else { "specs" },
                new.join(", ")
            )));
        }
        lines.push(out(""));
        lines
    }
}

/// What a phase of the set-up is called where it is shown (None: not
/// shown): `run`'s banners, `explore`'s notes.
pub(crate) fn phase_text(p: &Phase) -> Option<String> {
    Some(match p {
        Phase::CreatingInstance(dir) => {
            format!("creating temporary instance in {}", dir.display())
        }
        Phase::DroppingDatabase(d) => format!("dropping database \"{d}\""),
        Phase::CreatingDatabase(d) => format!("creating database \"{d}\""),
        Phase::Installing(x) => format!("installing {x}"),
        Phase::DroppingRole(r) => format!("dropping role \"{r}\""),
        Phase::CreatingRole(r) => format!("creating role \"{r}\""),
        Phase::RunningTests => "running regression test queries".into(),
        _ => return None,
    })
}
