//! The HTML report (`--html FILE`): one self-contained page (no network,
//! no CDN) with a summary of the specs and, for each spec and permutation,
//! a timeline: one lane per session, each step a box from when it was sent
//! to when it completed, the time it waited drawn as such with the
//! sessions that blocked it, errors, notices, cancellations and timeouts
//! on their step; for a failing spec, the expected and actual transcripts
//! side by side from the step where they depart, that step marked on the
//! timeline.  `isospec explore` writes the same page for its outcome
//! classes, each with its representative interleaving's timeline.
//!
//! The page is the data (JSON in a `<script>` element) and a small script
//! that draws it (`assets/report.js`, `assets/report.css`), so that a
//! 100-session run stays a few hundred kilobytes and timelines are drawn
//! only when opened.

use super::{io_error, Diffs, ReportError};
use crate::outcome::{Departure, SpecTrace, Status, TestOutcome};
use serde::Serialize;
use similar::{DiffTag, TextDiff};
use std::path::Path;

const CSS: &str = include_str!("assets/report.css");
const JS: &str = include_str!("assets/report.js");

#[derive(Serialize)]
struct Page<'a> {
    kind: &'static str,
    title: String,
    specs: Vec<Spec<'a>>,
    /// `explore`: the classes of each spec, by the spec's name.
    classes: Vec<ClassJson<'a>>,
}

#[derive(Serialize)]
struct Spec<'a> {
    name: &'a str,
    status: &'static str,
    passed: bool,
    detail: Option<&'a str>,
    duration_ms: u128,
    permutations: String,
    file: Option<String>,
    result_file: Option<String>,
    #[serde(rename = "where")]
    departure: Option<Where>,
    diff: Option<String>,
    trace: Option<Trace<'a>>,
    /// Every invariant that did not hold, described (also when the
    /// transcript differs as well).
    violations: Vec<String>,
}

#[derive(Serialize)]
struct Where {
    line: u32,
    col: u32,
    place: String,
    title: String,
    message: String,
    /// Index into the trace's permutations.
    perm: Option<usize>,
    step: Option<String>,
    session: Option<usize>,
    expected_line: usize,
    actual_line: usize,
}

#[derive(Serialize)]
struct Trace<'a> {
    sessions: &'a [String],
    perms: Vec<Perm<'a>>,
    actual: &'a str,
    expected: Option<&'a str>,
    expected_file: Option<String>,
    /// Side by side: [tag, expected line, actual line], tags "=", "-", "+".
    rows: Vec<(char, Option<usize>, Option<usize>)>,
}

#[derive(Serialize)]
struct Perm<'a> {
    index: usize,
    steps: &'a [String],
    start: u64,
    end: u64,
    lines: (usize, usize),
    boxes: Vec<BoxJson<'a>>,
    marks: &'a [(u64, String)],
}

#[derive(Serialize)]
struct BoxJson<'a> {
    s: usize,
    step: &'a str,
    sql: &'a str,
    t0: u64,
    t1: Option<u64>,
    w: Option<u64>,
    by: &'a [String],
    err: &'a [String],
    notes: &'a [String],
    rows: &'a [String],
    cancel: bool,
    timeout: bool,
    lines: &'a [usize],
}

/// `isospec explore`'s page: each spec's classes.
#[derive(Debug, Clone)]
pub struct ExploreReport {
    pub spec: String,
    pub file: String,
    /// The size of the space and what was explored, as the terminal says it.
    pub summary: String,
    pub classes: Vec<ExploreClass>,
    /// The representatives' run: permutation `i` is class `i`'s.
    pub trace: Option<SpecTrace>,
}

/// One outcome class of an exploration.
#[derive(Debug, Clone)]
pub struct ExploreClass {
    /// The interleavings it stands for.
    pub count: u128,
    /// The representative's preemptions.
    pub preemptions: usize,
    pub outcome: String,
    pub violation: bool,
    /// With `--anomalies`: no serial order produces it.
    pub anomaly: bool,
    /// With `--anomalies`: the verdict, one line.
    pub verdict: Option<String>,
    /// The representative's permutation line.
    pub line: String,
}

#[derive(Serialize)]
struct ClassJson<'a> {
    spec: &'a str,
    file: &'a str,
    summary: &'a str,
    count: String,
    preemptions: usize,
    outcome: &'a str,
    violation: bool,
    anomaly: bool,
    verdict: Option<&'a str>,
    line: &'a str,
    /// Index into the page's specs (the spec's entry holding the trace).
    trace_spec: usize,
    perm: usize,
}

fn trace_json<'a>(t: &'a SpecTrace, departure: Option<&Departure>) -> Trace<'a> {
    let rows = match &t.expected {
        Some(e) if departure.is_some() => side_by_side(e, &t.actual),
        _ => Vec::new(),
    };
    Trace {
        sessions: &t.sessions,
        perms: t
            .permutations
            .iter()
            .map(|p| Perm {
                index: p.index,
                steps: &p.steps,
                start: p.start_us,
                end: p.end_us,
                lines: p.lines,
                marks: &p.marks,
                boxes: p
                    .boxes
                    .iter()
                    .map(|b| BoxJson {
                        s: b.session,
                        step: &b.step,
                        sql: &b.sql,
                        t0: b.start_us,
                        t1: b.end_us,
                        w: b.waited_us,
                        by: &b.blocked_by,
                        err: &b.errors,
                        notes: &b.notices,
                        rows: &b.rows,
                        cancel: b.canceled,
                        timeout: b.timed_out,
                        lines: &b.lines,
                    })
                    .collect(),
            })
            .collect(),
        actual: &t.actual,
        expected: t.expected.as_deref(),
        expected_file: t.expected_file.as_ref().map(|p| p.display().to_string()),
        rows,
    }
}

/// The two transcripts aligned line by line.
fn side_by_side(expected: &str, actual: &str) -> Vec<(char, Option<usize>, Option<usize>)> {
    let diff = TextDiff::from_lines(expected, actual);
    let mut rows = Vec::new();
    for op in diff.ops() {
        let (old, new) = (op.old_range(), op.new_range());
        match op.tag() {
            DiffTag::Equal => rows.extend(old.zip(new).map(|(e, a)| ('=', Some(e), Some(a)))),
            DiffTag::Delete => rows.extend(old.map(|e| ('-', Some(e), None))),
            DiffTag::Insert => rows.extend(new.map(|a| ('+', None, Some(a)))),
            DiffTag::Replace => {
                // Changed lines side by side, the longer side's rest alone.
                let (mut o, mut n) = (old, new);
                loop {
                    match (o.next(), n.next()) {
                        (Some(e), Some(a)) => rows.push(('~', Some(e), Some(a))),
                        (Some(e), None) => rows.push(('-', Some(e), None)),
                        (None, Some(a)) => rows.push(('+', None, Some(a))),
                        (None, None) => break,
                    }
                }
            }
        }
    }
    rows
}

fn spec_json<'a>(o: &'a TestOutcome, diffs: &Diffs) -> Spec<'a> {
    let departure = o.departure.as_deref();
    let trace = o.trace.as_deref();
    Spec {
        name: &o.name,
        status: o.status.word(),
        passed: o.status.passed(),
        detail: o.status.detail(),
        duration_ms: o.duration.as_millis(),
        permutations: o.permutations.to_string(),
        file: o.spec.as_ref().map(|p| p.display().to_string()),
        result_file: o.result_file.as_ref().map(|p| p.display().to_string()),
        departure: departure.map(|d| where_json(o, d, trace)),
        diff: Some(diffs.of(&o.name)).filter(|d| !d.is_empty()),
        trace: trace.map(|t| trace_json(t, departure)),
        violations: o
            .violations
            .iter()
            .filter(|v| !v.known)
            .map(|v| v.describe())
            .collect(),
    }
}

fn where_json(o: &TestOutcome, d: &Departure, trace: Option<&SpecTrace>) -> Where {
    let (title, message) = super::annotations::describe(&o.name, &o.status, d);
    let perm = d
        .permutation
        .and_then(|k| trace.and_then(|t| t.permutations.iter().position(|p| p.index + 1 == k)));
    Where {
        line: d.line,
        col: d.col,
        place: super::annotations::place(d),
        title,
        message,
        perm,
        step: d.step.clone(),
        session: d
            .session
            .as_ref()
            .and_then(|s| trace.and_then(|t| t.sessions.iter().position(|x| x == s))),
        expected_line: d.expected_line,
        actual_line: d.actual_line,
    }
}

fn page(p: &Page) -> Result<String, ReportError> {
    // No `<` at all in the script element: neither `</script` nor `<!--`
    // can end it early or change how it is read (JSON reads \u003c as <).
    let data = serde_json::to_string(p)?.replace('<', "\\u003c");
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
         <div id=\"app\"><noscript>This report draws its timelines with JavaScript.</noscript></div>\n\
         <script type=\"application/json\" id=\"isospec-data\">{data}</script>\n\
         <script>\n{JS}</script>\n</body>\n</html>\n",
        escape(&p.title)
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn write_page(path: &Path, p: &Page) -> Result<(), ReportError> {
    let text = page(p)?;
    std::fs::write(path, text).map_err(io_error(path))
}

/// Writes a run's page.
pub(super) fn write_run(
    path: &Path,
    outcomes: &[TestOutcome],
    diffs: &Diffs,
) -> Result<(), ReportError> {
    let failed = outcomes
        .iter()
        .filter(|o| !o.status.passed() && !matches!(o.status, Status::NotRun(_)))
        .count();
    let p = Page {
        kind: "run",
        title: format!(
            "isospec: {} of {} passed",
            outcomes.len() - failed,
            crate::words::counted(outcomes.len() as u64, "spec", "specs")
        ),
        specs: outcomes.iter().map(|o| spec_json(o, diffs)).collect(),
        classes: Vec::new(),
    };
    write_page(path, &p)
}

/// Writes `isospec explore`'s page: per spec, its classes, each with its
/// representative's timeline.
pub fn write_explore(path: &Path, reports: &[ExploreReport]) -> Result<(), ReportError> {
    let mut specs = Vec::new();
    let mut classes = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        specs.push(Spec {
            name: &r.spec,
            status: if r.classes.iter().any(|c| c.violation) {
                "violation"
            } else if r.classes.iter().any(|c| c.anomaly) {
                "anomaly"
            } else {
                "explored"
            },
            passed: !r.classes.iter().any(|c| c.violation || c.anomaly),
            detail: Some(&r.summary),
            duration_ms: 0,
            permutations: r.classes.len().to_string(),
            file: Some(r.file.clone()),
            result_file: None,
            departure: None,
            diff: None,
            trace: r.trace.as_ref().map(|t| trace_json(t, None)),
            violations: Vec::new(),
        });
        for (k, c) in r.classes.iter().enumerate() {
            classes.push(ClassJson {
                spec: &r.spec,
                file: &r.file,
                summary: &r.summary,
                count: c.count.to_string(),
                preemptions: c.preemptions,
                outcome: &c.outcome,
                violation: c.violation,
                anomaly: c.anomaly,
                verdict: c.verdict.as_deref(),
                line: &c.line,
                trace_spec: i,
                perm: k,
            });
        }
    }
    let p = Page {
        kind: "explore",
        title: format!(
            "isospec explore: {}",
            crate::words::counted(reports.len() as u64, "spec", "specs")
        ),
        specs,
        classes,
    };
    write_page(path, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_pairs_changed_lines() {
        let rows = side_by_side("a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(
            rows,
            vec![
                ('=', Some(0), Some(0)),
                ('~', Some(1), Some(1)),
                ('=', Some(2), Some(2)),
                ('+', None, Some(3)),
            ]
        );
    }

    #[test]
    fn the_data_cannot_close_its_script_element() {
        let p = Page {
            kind: "run",
            title: "<t>".into(),
            specs: Vec::new(),
            classes: Vec::new(),
        };
        let mut p = p;
        p.title = "a</script><b>".into();
        let html = page(&p).unwrap();
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        assert!(html.contains("<title>a&lt;/script&gt;&lt;b&gt;</title>"));
        p.title = "<!--<script>".into();
        let html = page(&p).unwrap();
        assert!(html.contains("\\u003c!--\\u003cscript>"), "{html}");
    }
}
