//! Shows an exploration as `report` shows a run: one reporter takes the
//! driver's `ExploreEvent`s and fans them out to the terminal (the
//! classes on stdout; phases, notes and diagnostics on stderr), the
//! progress bar, `--write` (permutation lines appended to the spec), and
//! the JSON and HTML files written at the end.
//!
//! - `text`: the terminal report, the search's preface, `--write`'s lines;
//!   the JSON document's types are `explore::document`'s (shared with
//!   `--merge`, which reads them back).

pub mod text;

use super::html::{ExploreClass, ExploreReport};
use super::progress::Progress;
use super::{io_error, ReportError};
use crate::explore::document::{self as json, ExploreDocument};
use crate::explore::driver::{ExploreEvent, SpecExplored};
use crate::outcome::RunEvent;
use crate::words::counted;
use std::io::Write;
use std::path::PathBuf;

/// What to make of an exploration besides the terminal report.
#[derive(Debug, Clone, Default)]
pub struct ExploreReportOptions {
    /// `--json FILE`.
    pub json: Option<PathBuf>,
    /// `--html FILE`.
    pub html: Option<PathBuf>,
    /// `--write`: append each class's line to its spec.
    pub write: bool,
}

/// Shows one exploration.
pub struct ExploreReporter {
    opts: ExploreReportOptions,
    stdout: Box<dyn Write>,
    stderr: Box<dyn Write>,
    progress: Option<Progress>,
    docs: Vec<json::SpecDocument>,
    pages: Vec<ExploreReport>,
    /// The first error writing a file; the exploration goes on.
    error: Option<ReportError>,
}

impl ExploreReporter {
    pub fn new(opts: ExploreReportOptions) -> Self {
        ExploreReporter {
            opts,
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            progress: None,
            docs: Vec::new(),
            pages: Vec::new(),
            error: None,
        }
    }

    fn out(&mut self, text: &str) {
        let w = &mut self.stdout;
        match &self.progress {
            Some(p) => p.suspend(|| {
                let _ = write!(w, "{text}");
            }),
            None => {
                let _ = write!(w, "{text}");
            }
        }
    }

    fn note(&mut self, text: &str) {
        let w = &mut self.stderr;
        let line = format!("isospec: {text}");
        match &self.progress {
            Some(p) => p.suspend(|| {
                let _ = writeln!(w, "{line}");
            }),
            None => {
                let _ = writeln!(w, "{line}");
            }
        }
    }

    /// Shows one event.
    pub fn handle(&mut self, ev: ExploreEvent) {
        match ev {
            ExploreEvent::Run(RunEvent::Note(n)) => self.note(&n),
            ExploreEvent::Run(RunEvent::Diagnostic { spec, text }) => {
                for l in text.lines() {
                    self.note(&format!("{spec}: {l}"));
                }
            }
            ExploreEvent::Run(RunEvent::Phase(p)) => {
                if let Some(t) = super::human::phase_text(&p) {
                    self.note(&t);
                }
            }
            ExploreEvent::Run(_) => {}
            ExploreEvent::SpecStarted {
                name,
                spec,
                search,
                max,
                budget,
            } => {
                self.out(&text::search_preface(&name, &spec, &search, max, budget));
                self.progress = Progress::interleavings(&name);
            }
            ExploreEvent::Progress { done, planned } => {
                if let Some(p) = &self.progress {
                    p.set(done, planned);
                }
            }
            ExploreEvent::SpecExplored(s) => self.explored(*s),
            ExploreEvent::Interrupted => {
                self.out("interrupted: the classes above are those found so far\n")
            }
        }
    }

    fn explored(&mut self, s: SpecExplored) {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
        let report = text::text(&s.name, &s.spec, &s.exploration, s.seed, &s.invariants);
        self.out(&report);
        if self.opts.write {
            if let Err(e) = self.write_lines(&s) {
                self.error.get_or_insert(e);
            }
        }
        if self.opts.html.is_some() {
            let summary = report.lines().next().unwrap_or_default().to_string();
            self.pages.push(page(&s, summary));
        }
        self.docs.push(json::spec_document(
            &s.name,
            &s.spec,
            &s.exploration,
            s.seed,
            &s.invariants,
        ));
    }

    /// `--write`: the classes' lines the spec does not have yet, appended.
    fn write_lines(&mut self, s: &SpecExplored) -> Result<(), ReportError> {
        let existing = std::fs::read_to_string(&s.path).map_err(io_error(&s.path))?;
        let directives = text::given_directives(&s.given);
        let more = directives.clone() + &text::appendix(&s.spec, &s.exploration, &existing);
        if more.is_empty() {
            return Ok(());
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&s.path)
            .and_then(|mut f| f.write_all(more.as_bytes()))
            .map_err(io_error(&s.path))?;
        let queries = directives.matches("\n# isospec: outcome ").count()
            + directives.matches("\n# isospec: invariant ").count();
        self.out(&format!(
            "wrote {}{}{} to {}\n",
            counted(more.matches("\npermutation").count() as u64, "permutation line", "permutation lines"),
            if queries == 0 {
                String::new()
            } else {
                format!(
                    " and the command line's {} (as # isospec: lines: `isospec run` checks the invariants, explore reads both)",
                    counted(queries as u64, "query", "queries")
                )
            },
            if s.given.anomalies {
                " and `# isospec: anomalies` (`isospec run` then fails a permutation no serial order explains)"
            } else {
                ""
            },
            s.name
        ));
        Ok(())
    }

    /// Ends the report of an exploration that could not be made: no file
    /// is written.
    pub fn abandon(mut self) {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
        let _ = self.stdout.flush();
    }

    /// Ends the report: the JSON and HTML files, then the first error met
    /// writing a file, if any.
    pub fn finish(mut self) -> Result<(), ReportError> {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
        let _ = self.stdout.flush();
        if let Some(path) = &self.opts.json {
            let doc = ExploreDocument::new(std::mem::take(&mut self.docs));
            let text = serde_json::to_string_pretty(&doc)?;
            if let Err(e) = std::fs::write(path, text + "\n").map_err(io_error(path)) {
                self.error.get_or_insert(e);
            }
        }
        if let Some(path) = &self.opts.html {
            if let Err(e) = super::html::write_explore(path, &self.pages) {
                self.error.get_or_insert(e);
            }
        }
        self.error.map_or(Ok(()), Err)
    }
}

/// One spec's part of the HTML report: its classes, and the timelines of
/// their representatives (a failure to record them is noted on the page,
/// not fatal: the classes stand).
fn page(s: &SpecExplored, summary: String) -> ExploreReport {
    let classes = s.exploration.classes.list();
    let (summary, trace) = match &s.trace {
        Some(Ok(t)) => (summary, Some(t.clone())),
        Some(Err(e)) => (
            format!("{summary} (the representatives' timelines could not be recorded: {e})"),
            None,
        ),
        None => (summary, None),
    };
    ExploreReport {
        spec: s.name.clone(),
        file: s.name.clone(),
        summary,
        classes: classes
            .iter()
            .map(|c| ExploreClass {
                count: c.count,
                outcome: crate::explore::classes::describe(&c.outcome),
                preemptions: c.preemptions,
                violation: !c.outcome.violated.is_empty(),
                anomaly: s
                    .exploration
                    .anomalies
                    .get(&c.first)
                    .is_some_and(|v| v.is_anomaly()),
                verdict: s
                    .exploration
                    .anomalies
                    .get(&c.first)
                    .map(text::verdict_line),
                line: crate::explore::lines::class_line(&s.spec, &s.exploration, c),
            })
            .collect(),
        trace,
    }
}
