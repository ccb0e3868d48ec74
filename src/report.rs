//! Reporting: pg_regress-style status lines (or TAP) and the closing
//! summary on stdout and in `regression.out`; the failing diffs (coloured on
//! a terminal); and the machine-readable reports: JUnit XML, JSON and a
//! Markdown summary for GitHub Actions.  Diagnostics go to stderr.

use crate::runner::ReportFiles;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The transcript differs from every expected variant.
    Failed,
    /// No expected file: the transcript is new.
    New,
    /// The transcript differed or was new and was copied to this expected file.
    Accepted(String),
    /// The spec could not be parsed or checked.
    SpecError(String),
    /// The spec stopped early (timeout, lost connection, setup failure…).
    RunError(String),
    /// The spec was not started, for this reason (e.g. "interrupted"); its
    /// earlier results file was left as it was.
    NotRun(String),
}

impl Status {
    pub fn passed(&self) -> bool {
        matches!(self, Status::Ok | Status::Accepted(_))
    }

    fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::New => "new",
            Status::Accepted(_) => "accepted",
            Status::SpecError(_) => "spec-error",
            Status::RunError(_) => "run-error",
            Status::NotRun(_) => "not-run",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    pub status: Status,
    pub duration: Duration,
    pub permutations: u128,
    /// (step, microseconds from launch to completion), in completion order.
    pub steps: Vec<(String, u64)>,
}

impl TestOutcome {
    pub fn new(name: &str, status: Status, duration: Duration, permutations: u128) -> Self {
        TestOutcome {
            name: name.to_string(),
            status,
            duration,
            permutations,
            steps: Vec::new(),
        }
    }
}

/// A diagnostic about one spec, on stderr (`isospec: NAME: …`, one line per
/// line of `text`), while the run goes on.
pub fn diagnostic(spec: &str, text: &str) {
    for l in text.lines() {
        eprintln!("isospec: {spec}: {l}");
    }
}

/// A note about the whole run on stderr (`isospec: …`).
pub fn notice(text: &str) {
    eprintln!("isospec: {text}");
}

/// Writes status lines to stdout and to `regression.out`.
pub struct Reporter {
    out_file: Option<File>,
    quiet: bool,
    tap: bool,
    /// A progress bar on stderr, only when it is a terminal.
    progress: Option<indicatif::ProgressBar>,
}

#[derive(serde::Serialize)]
struct JsonStep<'a> {
    step: &'a str,
    micros: u64,
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    specs: Vec<JsonSpec<'a>>,
}

#[derive(serde::Serialize)]
struct JsonSpec<'a> {
    name: &'a str,
    status: &'a str,
    detail: Option<&'a str>,
    duration_ms: u128,
    permutations: String,
    steps: Vec<JsonStep<'a>>,
}

impl Reporter {
    pub fn new(out_file: Option<File>, quiet: bool, tap: bool) -> Self {
        Reporter {
            out_file,
            quiet,
            tap,
            progress: None,
        }
    }

    /// Shows a progress bar for `total` spec runs when stderr is a terminal
    /// (plain status lines otherwise).
    pub fn start_progress(&mut self, total: u64) {
        if total > 1 && !self.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let pb = indicatif::ProgressBar::new(total);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} specs  {elapsed_precise}  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            self.progress = Some(pb);
        }
    }

    pub fn finish_progress(&mut self) {
        if let Some(pb) = self.progress.take() {
            pb.finish_and_clear();
        }
    }

    /// One line to stdout (unless quiet) and regression.out.
    pub fn line(&mut self, s: &str) {
        if !self.quiet {
            match &self.progress {
                Some(pb) => pb.suspend(|| println!("{s}")),
                None => println!("{s}"),
            }
        }
        if let Some(f) = self.out_file.as_mut() {
            let _ = writeln!(f, "{s}");
        }
    }

    /// A note for the user on stderr.
    pub fn note(&mut self, s: &str) {
        match &self.progress {
            Some(pb) => pb.suspend(|| notice(s)),
            None => notice(s),
        }
    }

    pub fn banner(&mut self, s: &str) {
        if self.tap {
            self.line(&format!("# {s}"));
        } else {
            self.line(&format!("============== {s:<40} =============="));
        }
    }

    pub fn outcome(&mut self, number: usize, o: &TestOutcome) {
        if let Some(pb) = &self.progress {
            pb.inc(1);
            pb.set_message(o.name.clone());
        }
        let ms = o.duration.as_millis();
        if let Status::NotRun(why) = &o.status {
            if self.tap {
                self.line(&format!("ok {number} - {} # SKIP not run ({why})", o.name));
            } else {
                self.line(&format!("test {:<28} ... not run ({why})", o.name));
            }
            return;
        }
        if self.tap {
            let ok = if o.status.passed() { "ok" } else { "not ok" };
            self.line(&format!("{ok} {number} - {}  {ms} ms", o.name));
        } else {
            let status = match &o.status {
                Status::Ok => "ok".to_string(),
                Status::Failed => "FAILED".to_string(),
                Status::New => "NEW (no expected output)".to_string(),
                Status::Accepted(_) => "accepted".to_string(),
                Status::SpecError(_) => "FAILED (spec error)".to_string(),
                Status::RunError(_) => "FAILED (run error)".to_string(),
                Status::NotRun(_) => unreachable!("handled above"),
            };
            self.line(&format!(
                "test {:<28} ... {:<10} {:>8} ms",
                o.name, status, ms
            ));
        }
        let prefix = if self.tap { "# " } else { "    " };
        match &o.status {
            Status::SpecError(e) | Status::RunError(e) => {
                for l in e.lines() {
                    self.line(&format!("{prefix}{l}"));
                }
            }
            Status::Accepted(path) => self.line(&format!("{prefix}transcript copied to {path}")),
            _ => {}
        }
    }

    /// Shows the transcript of a spec that has no expected output yet.
    pub fn transcript(&mut self, name: &str, text: &str) {
        let prefix = if self.tap { "# " } else { "    | " };
        self.line(&format!(
            "{prefix}transcript of {name} (no expected output; `isospec accept {name}` keeps it):"
        ));
        for l in text.lines() {
            self.line(&format!("{prefix}{l}"));
        }
    }

    pub fn summary(&mut self, outcomes: &[TestOutcome], diffs: Option<&str>, wall: Duration) {
        self.finish_progress();
        let total = outcomes.len();
        let not_run: Vec<&TestOutcome> = outcomes
            .iter()
            .filter(|o| matches!(o.status, Status::NotRun(_)))
            .collect();
        let ran = total - not_run.len();
        let failed = outcomes
            .iter()
            .filter(|o| !o.status.passed() && !matches!(o.status, Status::NotRun(_)))
            .count();
        let passed = ran - failed;
        let not_run_note = match not_run.first() {
            Some(o) => {
                let Status::NotRun(why) = &o.status else {
                    unreachable!("filtered above")
                };
                format!(", {} not run ({why})", not_run.len())
            }
            None => String::new(),
        };
        if self.tap {
            self.line(&format!("1..{total}"));
            self.line(&format!("# {passed} passed, {failed} failed{not_run_note}"));
            self.line(&format!("# wall time: {:.1} s", wall.as_secs_f64()));
            return;
        }
        let msg = if !not_run.is_empty() {
            format!(" {ran} of {total} tests ran, {failed} failed{not_run_note}. ")
        } else if failed == 0 {
            format!(" All {total} tests passed. ")
        } else {
            format!(" {failed} of {total} tests failed. ")
        };
        let bar = "=".repeat(msg.len());
        self.line("");
        self.line(&bar);
        self.line(&msg);
        self.line(&bar);
        self.line(&format!("{passed} passed, {failed} failed{not_run_note}"));
        self.line(&format!("wall time: {:.1} s", wall.as_secs_f64()));
        if failed > 0 {
            if let Some(d) = diffs {
                self.line(&format!(
                    "The differences that caused some tests to fail can be viewed in the file \"{d}\"."
                ));
            }
            let new: Vec<&str> = outcomes
                .iter()
                .filter(|o| o.status == Status::New)
                .map(|o| o.name.as_str())
                .collect();
            if !new.is_empty() {
                self.line(&format!(
                    "New specs without expected output: {}. Review results/NAME.out, then `isospec accept NAME` copies it to expected/.",
                    new.join(", ")
                ));
            }
        }
        self.line("");
    }

    /// Prints regression.diffs to stdout, coloured when asked.
    pub fn print_diffs(&mut self, diffs: &Path, color: bool) {
        let Ok(text) = std::fs::read_to_string(diffs) else {
            return;
        };
        if self.quiet {
            return;
        }
        for l in text.lines() {
            if !color {
                println!("{l}");
                continue;
            }
            let code = if l.starts_with("+++") || l.starts_with("---") || l.starts_with("diff ") {
                "1"
            } else if l.starts_with('+') {
                "32"
            } else if l.starts_with('-') {
                "31"
            } else if l.starts_with("@@") {
                "36"
            } else {
                ""
            };
            if code.is_empty() {
                println!("{l}");
            } else {
                println!("\x1b[{code}m{l}\x1b[0m");
            }
        }
    }

    /// Writes the JUnit, JSON and Markdown reports that were asked for.
    pub fn write_files(
        &mut self,
        files: &ReportFiles,
        outcomes: &[TestOutcome],
        diffs: &Path,
    ) -> Result<(), crate::runner::RunError> {
        let all_diffs = std::fs::read_to_string(diffs).unwrap_or_default();
        let diff_of = |name: &str| -> String {
            // regression.diffs holds one "diff -U3 …/NAME.out …" block per failure.
            let mut out = String::new();
            let mut on = false;
            for l in all_diffs.lines() {
                if l.starts_with("diff -U3 ") {
                    on = l.ends_with(&format!("/{name}.out"))
                        || l.ends_with(&format!(" {name}.out"));
                }
                if on {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            out
        };
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source: std::io::Error| crate::runner::RunError::Output { path, source }
        };
        if let Some(path) = &files.junit {
            let mut report = quick_junit::Report::new("isospec");
            let mut suite = quick_junit::TestSuite::new("isolation");
            for o in outcomes {
                let status = match &o.status {
                    Status::Ok | Status::Accepted(_) => quick_junit::TestCaseStatus::success(),
                    Status::Failed | Status::New => {
                        let mut s = quick_junit::TestCaseStatus::non_success(
                            quick_junit::NonSuccessKind::Failure,
                        );
                        s.set_message(if o.status == Status::New {
                            "no expected output"
                        } else {
                            "transcript differs from expected output"
                        });
                        s.set_description(diff_of(&o.name));
                        s
                    }
                    Status::NotRun(why) => {
                        let mut s = quick_junit::TestCaseStatus::skipped();
                        s.set_message(format!("not run ({why})"));
                        s
                    }
                    Status::SpecError(e) | Status::RunError(e) => {
                        let mut s = quick_junit::TestCaseStatus::non_success(
                            quick_junit::NonSuccessKind::Error,
                        );
                        s.set_message(e.lines().next().unwrap_or("error").to_string());
                        s.set_description(format!("{e}\n{}", diff_of(&o.name)));
                        s
                    }
                };
                let mut tc = quick_junit::TestCase::new(o.name.clone(), status);
                tc.set_time(o.duration);
                suite.add_test_case(tc);
            }
            report.add_test_suite(suite);
            let xml = report
                .to_string()
                .map_err(|e| crate::runner::RunError::Usage(format!("JUnit report: {e}")))?;
            std::fs::write(path, xml).map_err(io(path))?;
        }
        if let Some(path) = &files.json {
            let specs: Vec<JsonSpec> = outcomes
                .iter()
                .map(|o| JsonSpec {
                    name: &o.name,
                    status: o.status.word(),
                    detail: match &o.status {
                        Status::SpecError(e)
                        | Status::RunError(e)
                        | Status::Accepted(e)
                        | Status::NotRun(e) => Some(e),
                        _ => None,
                    },
                    duration_ms: o.duration.as_millis(),
                    permutations: o.permutations.to_string(),
                    steps: o
                        .steps
                        .iter()
                        .map(|(s, m)| JsonStep {
                            step: s,
                            micros: *m,
                        })
                        .collect(),
                })
                .collect();
            // Streamed to the file: a suite's per-step timings are large.
            let file = File::create(path).map_err(io(path))?;
            let mut w = std::io::BufWriter::new(file);
            serde_json::to_writer_pretty(&mut w, &JsonReport { specs })
                .map_err(|e| crate::runner::RunError::Usage(format!("JSON report: {e}")))?;
            w.write_all(b"\n")
                .and_then(|()| w.flush())
                .map_err(io(path))?;
        }
        if let Some(path) = &files.markdown_summary {
            let failed: Vec<&TestOutcome> = outcomes
                .iter()
                .filter(|o| !o.status.passed() && !matches!(o.status, Status::NotRun(_)))
                .collect();
            let not_run = outcomes
                .iter()
                .filter(|o| matches!(o.status, Status::NotRun(_)))
                .count();
            let passed = outcomes.iter().filter(|o| o.status.passed()).count();
            let mut md = format!("### isospec: {passed} of {} specs passed", outcomes.len());
            if not_run > 0 {
                md.push_str(&format!(", {not_run} not run"));
            }
            md.push_str("\n\n");
            for o in &failed {
                md.push_str(&format!(
                    "<details><summary>{} ({})</summary>\n\n```diff\n{}```\n</details>\n\n",
                    o.name,
                    o.status.word(),
                    diff_of(&o.name)
                ));
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io(path))?;
            f.write_all(md.as_bytes()).map_err(io(path))?;
        }
        Ok(())
    }
}
