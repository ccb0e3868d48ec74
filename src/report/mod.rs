//! Reporting: the only place that prints a run.  It consumes the run's
//! events (`outcome::RunEvent`): pg_regress-style status lines (or TAP) and
//! the closing summary on stdout and in `regression.out`, a progress bar on
//! a terminal, notes and diagnostics on stderr, the failing diffs
//! (coloured on a terminal), and the machine-readable reports: JUnit XML,
//! JSON and a Markdown summary for GitHub Actions.

mod pg_regress;

use crate::outcome::{FlakyReport, Phase, RunEvent, Status, TestOutcome};
use pg_regress::{PgRegressOutput, To};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Machine-readable reports to write at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct ReportFiles {
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// GITHUB_STEP_SUMMARY-style Markdown file to append to.
    pub markdown_summary: Option<PathBuf>,
}

/// How the reporter shows a run.
#[derive(Debug, Clone, Default)]
pub struct ReporterOptions {
    /// Where `regression.out` goes (None: nowhere).
    pub regression_out: Option<PathBuf>,
    /// No status lines on stdout (regression.out still has them).
    pub quiet: bool,
    /// TAP instead of pg_regress's status lines.
    pub tap: bool,
    /// Colour the diffs printed at the end.
    pub color: bool,
    pub files: ReportFiles,
    /// Print what pg_regress prints instead (`isospec pg_isolation_regress`).
    pub pg_regress: Option<PgRegressStyle>,
}

/// pg_regress's output: classic or TAP by the server's version, and its
/// result files (regression.out and regression.diffs removed when every
/// test passed).
#[derive(Debug, Clone, Default)]
pub struct PgRegressStyle {
    /// For a server pg_regress did not start, the words after "using
    /// postmaster on" (e.g. "Unix socket, default port").
    pub existing_server: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("could not write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("JUnit report: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    #[error("JSON report: {0}")]
    Json(#[from] serde_json::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError {
    let path = path.display().to_string();
    move |source| ReportError::Io { path, source }
}

/// Writes status lines to stdout and to `regression.out`.
pub struct Reporter {
    opts: ReporterOptions,
    /// regression.out, opened at the first line.
    out_file: Option<File>,
    /// A progress bar on stderr, only when it is a terminal.
    progress: Option<indicatif::ProgressBar>,
    /// Each failing spec's diff, in the order they finished.
    diffs: Vec<(String, String)>,
    /// The first error writing a file; the run goes on, and `finish` says so.
    error: Option<ReportError>,
    /// pg_regress's own output, when asked for.
    pg: Option<PgRegressOutput>,
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
    pub fn new(opts: ReporterOptions) -> Self {
        let pg = opts
            .pg_regress
            .as_ref()
            .map(|s| PgRegressOutput::new(s.existing_server.clone()));
        Reporter {
            pg,
            opts,
            out_file: None,
            progress: None,
            diffs: Vec::new(),
            error: None,
        }
    }

    /// Shows one event.
    pub fn handle(&mut self, event: RunEvent) {
        match event {
            RunEvent::Phase(p) => self.phase(p),
            RunEvent::Note(s) => self.note(&s),
            RunEvent::Diagnostic { spec, text } => {
                for l in text.lines() {
                    self.note(&format!("{spec}: {l}"));
                }
            }
            RunEvent::Started { total } => {
                if let Some(total) = total {
                    self.start_progress(total);
                }
            }
            RunEvent::SpecFinished {
                number,
                outcome,
                diff,
                new_transcript,
            } => {
                if self.pg.is_some() {
                    self.pg_outcome(&outcome);
                    if let Some(d) = diff {
                        self.diffs.push((outcome.name, d));
                    }
                    return;
                }
                self.outcome(number, &outcome);
                if let Some(text) = new_transcript {
                    self.transcript(&outcome.name, text.as_str());
                }
                if let Some(d) = diff {
                    self.diffs.push((outcome.name, d));
                }
            }
            RunEvent::StoppedAfterPass(pass) => {
                self.line(&format!("stopping after pass {pass}: a spec failed"))
            }
            RunEvent::Flaky(f) => self.flaky(&f),
            RunEvent::Stable { name, runs } => {
                self.line(&format!("stable {name}: 1 transcript in {runs} runs"))
            }
            RunEvent::Finished {
                outcomes,
                wall,
                diffs_file,
            } => {
                if self.pg.is_some() {
                    self.pg_summary(&outcomes, diffs_file.as_deref());
                    if let Err(e) = self.write_files(&outcomes) {
                        self.error.get_or_insert(e);
                    }
                    return;
                }
                self.summary(&outcomes, diffs_file.as_deref(), wall);
                if let Err(e) = self.write_files(&outcomes) {
                    self.error.get_or_insert(e);
                }
                if self.opts.color || !self.opts.quiet {
                    self.print_diffs();
                }
            }
        }
    }

    /// Ends the report: the first error met writing a file, if any.
    pub fn finish(mut self) -> Result<(), ReportError> {
        self.finish_progress();
        self.error.map_or(Ok(()), Err)
    }

    fn flaky(&mut self, f: &FlakyReport) {
        let counts: Vec<String> = f
            .counts
            .iter()
            .enumerate()
            .map(|(i, n)| format!("#{} seen {}x", i + 1, n))
            .collect();
        self.line(&format!(
            "FLAKY {}: {} distinct transcripts ({})",
            f.name,
            f.counts.len(),
            counts.join(", ")
        ));
        for d in &f.diffs {
            for l in d.lines() {
                self.line(l);
            }
        }
    }

    /// Shows a progress bar for `total` spec runs when stderr is a terminal
    /// (plain status lines otherwise).
    fn start_progress(&mut self, total: u64) {
        if total > 1 && !self.opts.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
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

    fn finish_progress(&mut self) {
        if let Some(pb) = self.progress.take() {
            pb.finish_and_clear();
        }
    }

    /// One line to stdout (unless quiet) and regression.out.
    fn line(&mut self, s: &str) {
        if !self.opts.quiet {
            match &self.progress {
                Some(pb) => pb.suspend(|| println!("{s}")),
                None => println!("{s}"),
            }
        }
        self.log_only(s);
    }

    /// One line to regression.out only.
    fn log_only(&mut self, s: &str) {
        if self.out_file.is_none() && self.error.is_none() {
            if let Some(path) = self.opts.regression_out.clone() {
                match File::create(&path) {
                    Ok(f) => self.out_file = Some(f),
                    Err(e) => self.error = Some(io_error(&path)(e)),
                }
            }
        }
        if let Some(f) = self.out_file.as_mut() {
            let _ = writeln!(f, "{s}");
        }
    }

    /// A note for the user on stderr.
    fn note(&mut self, s: &str) {
        match &self.progress {
            Some(pb) => pb.suspend(|| eprintln!("isospec: {s}")),
            None => eprintln!("isospec: {s}"),
        }
    }

    /// A phase: pg_regress's lines for it, or isospec's banner.
    fn phase(&mut self, p: Phase) {
        if let Some(pg) = self.pg.as_mut() {
            let lines = pg.phase(p);
            self.pg_lines(lines);
            return;
        }
        let text = match p {
            Phase::CreatingInstance(dir) => {
                format!("creating temporary instance in {}", dir.display())
            }
            Phase::DroppingDatabase(d) => format!("dropping database \"{d}\""),
            Phase::CreatingDatabase(d) => format!("creating database \"{d}\""),
            Phase::Installing(x) => format!("installing {x}"),
            Phase::DroppingRole(r) => format!("dropping role \"{r}\""),
            Phase::CreatingRole(r) => format!("creating role \"{r}\""),
            Phase::RunningTests => "running regression test queries".into(),
            _ => return,
        };
        self.banner(&text);
    }

    fn pg_lines(&mut self, lines: Vec<pg_regress::Line>) {
        for l in lines {
            match l.to {
                To::StdoutAndLog => self.line(&l.text),
                To::Stdout => match &self.progress {
                    Some(pb) => pb.suspend(|| println!("{}", l.text)),
                    None => println!("{}", l.text),
                },
                To::StderrAndLog => {
                    eprintln!("{}", l.text);
                    self.log_only(&l.text);
                }
            }
        }
    }

    /// pg_regress's status line; why a test failed at run time goes to stderr.
    fn pg_outcome(&mut self, o: &TestOutcome) {
        let Some(pg) = self.pg.as_mut() else { return };
        let lines = pg.outcome(o);
        self.pg_lines(lines);
        match &o.status {
            Status::BadSpec(e) | Status::RunError(e) => {
                for l in e.lines() {
                    self.note(&format!("{}: {l}", o.name));
                }
            }
            Status::New => self.note(&format!(
                "{}: no expected output; its transcript is in results/{}.out",
                o.name, o.name
            )),
            _ => {}
        }
    }

    /// pg_regress's summary; when every test passed, regression.out and
    /// regression.diffs are removed, as pg_regress does.
    fn pg_summary(&mut self, outcomes: &[TestOutcome], diffs: Option<&Path>) {
        let Some(pg) = self.pg.as_mut() else { return };
        let log = self.opts.regression_out.clone();
        let abs = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        let diffs_text = diffs.map(abs);
        let log_text = log.as_deref().map(abs);
        let lines = pg.summary(outcomes, diffs_text.as_deref(), log_text.as_deref());
        self.pg_lines(lines);
        let passed = outcomes.iter().all(|o| o.status.passed());
        if passed {
            self.out_file = None;
            if let Some(l) = &log {
                let _ = std::fs::remove_file(l);
            }
            if let Some(d) = diffs {
                let _ = std::fs::remove_file(d);
            }
        }
    }

    fn banner(&mut self, s: &str) {
        if self.opts.tap {
            self.line(&format!("# {s}"));
        } else {
            self.line(&format!("============== {s:<40} =============="));
        }
    }

    fn outcome(&mut self, number: usize, o: &TestOutcome) {
        if let Some(pb) = &self.progress {
            pb.inc(1);
            pb.set_message(o.name.clone());
        }
        let ms = o.duration.as_millis();
        if let Status::NotRun(why) = &o.status {
            if self.opts.tap {
                self.line(&format!("ok {number} - {} # SKIP not run ({why})", o.name));
            } else {
                self.line(&format!("test {:<28} ... not run ({why})", o.name));
            }
            return;
        }
        if self.opts.tap {
            let ok = if o.status.passed() { "ok" } else { "not ok" };
            self.line(&format!("{ok} {number} - {}  {ms} ms", o.name));
        } else {
            let status = match &o.status {
                Status::Ok => "ok".to_string(),
                Status::Failed => "FAILED".to_string(),
                Status::New => "NEW (no expected output)".to_string(),
                Status::Accepted(_) => "accepted".to_string(),
                Status::BadSpec(_) => "FAILED (spec error)".to_string(),
                Status::RunError(_) => "FAILED (run error)".to_string(),
                Status::NotRun(_) => unreachable!("handled above"),
            };
            self.line(&format!(
                "test {:<28} ... {:<10} {:>8} ms",
                o.name, status, ms
            ));
        }
        let prefix = if self.opts.tap { "# " } else { "    " };
        match &o.status {
            Status::BadSpec(e) | Status::RunError(e) => {
                for l in e.lines() {
                    self.line(&format!("{prefix}{l}"));
                }
            }
            Status::Accepted(path) => self.line(&format!("{prefix}transcript copied to {path}")),
            _ => {}
        }
    }

    /// Shows the transcript of a spec that has no expected output yet.
    fn transcript(&mut self, name: &str, text: &str) {
        let prefix = if self.opts.tap { "# " } else { "    | " };
        self.line(&format!(
            "{prefix}transcript of {name} (no expected output; `isospec accept {name}` keeps it):"
        ));
        for l in text.lines() {
            self.line(&format!("{prefix}{l}"));
        }
    }

    fn summary(&mut self, outcomes: &[TestOutcome], diffs: Option<&Path>, wall: Duration) {
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
        if self.opts.tap {
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
                    "The differences that caused some tests to fail can be viewed in the file \"{}\".",
                    d.display()
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

    /// Prints the failing diffs to stdout, coloured when asked.
    fn print_diffs(&mut self) {
        if self.opts.quiet {
            return;
        }
        let color = self.opts.color;
        for (_, d) in &self.diffs {
            for l in d.lines() {
                let code = if !color {
                    ""
                } else if l.starts_with("+++") || l.starts_with("---") || l.starts_with("diff ") {
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
    }

    /// Writes the JUnit, JSON and Markdown reports that were asked for.
    fn write_files(&self, outcomes: &[TestOutcome]) -> Result<(), ReportError> {
        let files = &self.opts.files;
        let diff_of = |name: &str| -> String {
            self.diffs
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, d)| d.as_str())
                .collect()
        };
        let io = io_error;
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
                    Status::BadSpec(e) | Status::RunError(e) => {
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
            let xml = report.to_string()?;
            std::fs::write(path, xml).map_err(io(path))?;
        }
        if let Some(path) = &files.json {
            let specs: Vec<JsonSpec> = outcomes
                .iter()
                .map(|o| JsonSpec {
                    name: &o.name,
                    status: o.status.word(),
                    detail: o.status.detail(),
                    duration_ms: o.duration.as_millis(),
                    permutations: o.permutations.to_string(),
                    steps: o
                        .steps
                        .iter()
                        .map(|t| JsonStep {
                            step: &t.step,
                            micros: t.micros,
                        })
                        .collect(),
                })
                .collect();
            // Streamed to the file: a suite's per-step timings are large.
            let file = File::create(path).map_err(io(path))?;
            let mut w = std::io::BufWriter::new(file);
            serde_json::to_writer_pretty(&mut w, &JsonReport { specs })?;
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
