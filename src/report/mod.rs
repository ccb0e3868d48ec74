//! Reporting: the only place that prints a run.  The `Reporter` consumes
//! the run's events (`outcome::RunEvent`) and fans them out:
//! - one rendering of the run as lines (`render::Render`): isospec's status
//!   lines and summary or TAP (`human`), or what pg_regress prints
//!   (`pg_regress`), written to any `io::Write` (stdout and regression.out
//!   in a run, buffers in the snapshot tests);
//! - notes and diagnostics on stderr, a progress bar on a terminal, the
//!   failing diffs (coloured on a terminal);
//! - the machine-readable reports, each in its own module: `junit`, `json`,
//!   `markdown` (GitHub's step summary), over one `counts` helper.

mod annotations;
pub mod console;
mod counts;
pub mod explore;
mod html;
mod human;
pub(crate) use human::phase_text;
mod json;
mod junit;
mod markdown;
mod pg_regress;
pub(crate) mod progress;
mod render;
#[cfg(test)]
mod tests;

pub use annotations::{Annotation, Annotations};

use crate::outcome::{RunEvent, TestOutcome};
use render::{note, Context, Line, Render, To};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Machine-readable reports to write at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct ReportFiles {
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// GITHUB_STEP_SUMMARY-style Markdown file to append to.
    pub markdown_summary: Option<PathBuf>,
    /// The self-contained HTML report with each permutation's timeline.
    pub html: Option<PathBuf>,
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
    /// GitHub Actions workflow commands: annotations at the failing specs'
    /// lines, diffs folded in groups.
    pub annotations: Option<Annotations>,
    /// What the JSON report's annotations name files relative to
    /// (`GITHUB_WORKSPACE`; None: the current directory).
    pub workspace: Option<PathBuf>,
}

/// pg_regress's output: classic or TAP by the server's version, and its
/// result files (regression.out and regression.diffs removed when every
/// test passed).
#[derive(Debug, Clone, Default)]
pub struct PgRegressStyle {
    /// For a server pg_regress did not start, the words after "using
    /// postmaster on" (e.g. "Unix socket, default port").
    pub existing_server: Option<String>,
    /// isospec's notes and diagnostics on stderr (`--isospec-verbose`);
    /// pg_regress prints none.
    pub verbose: bool,
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

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError {
    let path = path.display().to_string();
    move |source| ReportError::Io { path, source }
}

/// Each failing spec's diff, in the order they finished.
#[derive(Debug, Default)]
pub(super) struct Diffs(Vec<(String, String)>);

impl Diffs {
    /// The diff of spec `name` (empty when it has none).
    pub(super) fn of(&self, name: &str) -> String {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, d)| d.as_str())
            .collect()
    }
}

/// Where the lines go: stdout and stderr (any writers), regression.out
/// (opened at its first line), with a progress bar kept out of the way.
struct Output {
    stdout: Box<dyn Write>,
    stderr: Box<dyn Write>,
    log_path: Option<PathBuf>,
    log: Option<File>,
    quiet: bool,
    /// A progress bar on stderr, only when it is a terminal.
    progress: Option<progress::Progress>,
    /// The first error writing a file; the run goes on, and `finish` says so.
    error: Option<ReportError>,
}

impl Output {
    fn write(&mut self, l: &Line) {
        let (stdout, stderr, log) = match l.to {
            To::StdoutAndLog => (!self.quiet, false, true),
            To::Stdout => (true, false, false),
            To::StderrAndLog => (false, true, true),
            To::Stderr => (false, true, false),
        };
        if stdout || stderr {
            let w = if stdout {
                &mut self.stdout
            } else {
                &mut self.stderr
            };
            match &self.progress {
                Some(pb) => pb.suspend(|| {
                    let _ = writeln!(w, "{}", l.text);
                }),
                None => {
                    let _ = writeln!(w, "{}", l.text);
                }
            }
        }
        if log {
            self.log(&l.text);
        }
    }

    /// One line to regression.out.
    fn log(&mut self, s: &str) {
        if self.log.is_none() && self.error.is_none() {
            if let Some(path) = self.log_path.clone() {
                match File::create(&path) {
                    Ok(f) => self.log = Some(f),
                    Err(e) => self.error = Some(io_error(&path)(e)),
                }
            }
        }
        if let Some(f) = self.log.as_mut() {
            let _ = writeln!(f, "{s}");
        }
    }

    fn finish_progress(&mut self) {
        if let Some(pb) = self.progress.take() {
            pb.finish();
        }
    }
}

/// Shows a run: its one rendering, notes, progress, diffs and report files.
pub struct Reporter {
    opts: ReporterOptions,
    render: Box<dyn Render>,
    output: Output,
    diffs: Diffs,
}

impl Reporter {
    pub fn new(opts: ReporterOptions) -> Self {
        Self::with_writers(
            opts,
            Box::new(std::io::stdout()),
            Box::new(std::io::stderr()),
        )
    }

    /// A reporter writing to `stdout` and `stderr` (the snapshot tests'
    /// buffers).
    fn with_writers(opts: ReporterOptions, stdout: Box<dyn Write>, stderr: Box<dyn Write>) -> Self {
        let render: Box<dyn Render> = match &opts.pg_regress {
            Some(s) => Box::new(pg_regress::PgRegressOutput::new(s.existing_server.clone())),
            None => Box::new(human::Human { tap: opts.tap }),
        };
        Reporter {
            output: Output {
                stdout,
                stderr,
                log_path: opts.regression_out.clone(),
                log: None,
                quiet: opts.quiet,
                progress: None,
                error: None,
            },
            render,
            opts,
            diffs: Diffs::default(),
        }
    }

    /// Shows one event.
    pub fn handle(&mut self, event: RunEvent) {
        let own = self.opts.pg_regress.as_ref().is_none_or(|p| p.verbose);
        match &event {
            RunEvent::Note(_) | RunEvent::Diagnostic { .. } if !own => {}
            RunEvent::Note(s) => self.output.write(&note(s)),
            RunEvent::Diagnostic { spec, text } => {
                for l in text.lines() {
                    self.output.write(&note(&format!("{spec}: {l}")));
                }
            }
            RunEvent::Started { total: Some(total) } => self.start_progress(*total),
            RunEvent::SpecFinished { outcome, .. } => {
                if let Some(pb) = &self.output.progress {
                    pb.inc(&outcome.name);
                }
            }
            RunEvent::Finished { .. } => self.output.finish_progress(),
            _ => {}
        }
        let cx = Context {
            regression_out: self.opts.regression_out.as_deref(),
        };
        for l in self.render.render(&event, &cx) {
            self.output.write(&l);
        }
        match event {
            RunEvent::SpecFinished {
                outcome,
                diff: Some(d),
                ..
            } => self.diffs.0.push((outcome.name, d)),
            RunEvent::Finished {
                outcomes,
                diffs_file,
                ..
            } => self.finished(&outcomes, diffs_file.as_deref()),
            _ => {}
        }
    }

    /// The end of the run: pg_regress's removal of its logs when every
    /// test passed, the report files, the failing diffs.
    fn finished(&mut self, outcomes: &[TestOutcome], diffs_file: Option<&Path>) {
        let passed = outcomes.iter().all(|o| o.status.passed());
        if passed && self.render.removes_logs_when_all_passed() {
            self.output.log = None;
            if let Some(l) = &self.opts.regression_out {
                let _ = std::fs::remove_file(l);
            }
            if let Some(d) = diffs_file {
                let _ = std::fs::remove_file(d);
            }
        }
        if let Err(e) = self.write_files(outcomes) {
            self.output.error.get_or_insert(e);
        }
        if self.render.prints_diffs() && !self.opts.quiet {
            self.print_diffs(outcomes);
        }
        if let Some(a) = &self.opts.annotations {
            let _ = self.output.stdout.flush();
            for l in annotations::lines(outcomes, a) {
                let _ = writeln!(self.output.stdout, "{l}");
            }
        }
    }

    /// Ends the report: the first error met writing a file, if any.
    pub fn finish(mut self) -> Result<(), ReportError> {
        self.output.finish_progress();
        let _ = self.output.stdout.flush();
        self.output.error.map_or(Ok(()), Err)
    }

    /// Shows a progress bar for `total` spec runs when stderr is a terminal
    /// (plain status lines otherwise).
    fn start_progress(&mut self, total: u64) {
        if total > 1 && !self.opts.quiet {
            self.output.progress = progress::Progress::specs(total);
        }
    }

    /// Prints the diffs to stdout, coloured when asked: each failing
    /// spec's, and what `--accept` changed, under a heading per file.
    fn print_diffs(&mut self, outcomes: &[TestOutcome]) {
        let color = self.opts.color;
        let grouped = self.opts.annotations.is_some();
        let w = &mut self.output.stdout;
        let accepted = |name: &str| {
            outcomes
                .iter()
                .find(|o| o.name == name)
                .and_then(|o| o.accepted.clone())
        };
        // What --accept changed first, then the differences that fail.
        let mut diffs: Vec<&(String, String)> = self.diffs.0.iter().collect();
        diffs.sort_by_key(|(name, _)| accepted(name).is_none());
        let mut heading_done = false;
        for (name, d) in diffs {
            if grouped {
                let _ = writeln!(w, "{}", annotations::group(&format!("diff of {name}")));
            }
            if let Some(file) = accepted(name) {
                let _ = writeln!(
                    w,
                    "accepted {name}: {file} now holds its new transcript; what changed:"
                );
            } else if !heading_done && self.diffs.0.iter().any(|(n, _)| accepted(n).is_some()) {
                heading_done = true;
                let _ = writeln!(w, "failing:");
            }
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
                let _ = if code.is_empty() {
                    writeln!(w, "{l}")
                } else {
                    writeln!(w, "\x1b[{code}m{l}\x1b[0m")
                };
            }
            if grouped {
                let _ = writeln!(w, "{}", annotations::END_GROUP);
            }
        }
    }

    /// Writes the JUnit, JSON and Markdown reports that were asked for.
    fn write_files(&self, outcomes: &[TestOutcome]) -> Result<(), ReportError> {
        let files = &self.opts.files;
        if let Some(path) = &files.junit {
            junit::write(path, outcomes, &self.diffs)?;
        }
        if let Some(path) = &files.json {
            json::write(path, outcomes, &self.diffs, self.opts.workspace.as_deref())?;
        }
        if let Some(path) = &files.html {
            html::write_run(path, outcomes, &self.diffs)?;
        }
        if let Some(path) = &files.markdown_summary {
            markdown::append(path, outcomes, &self.diffs)?;
        }
        Ok(())
    }
}
