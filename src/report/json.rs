//! The JSON report (`--json FILE`): each spec's status, duration,
//! permutations and per-step timings, streamed to the file.  The structs
//! are the format; docs/schemas/run.schema.json describes it, and the tests
//! validate every report they produce against it.

use super::{io_error, Diffs, ReportError};
use crate::outcome::{Departure, DepartureKind, TestOutcome};
use std::io::Write;
use std::path::Path;

#[derive(serde::Serialize)]
struct JsonStep<'a> {
    step: &'a str,
    micros: u64,
}

/// What the document is, for a reader that gets one without context.
pub const FORMAT: &str = "isospec-run";
/// Raised when a field changes meaning or goes away (a new field does not
/// raise it).
pub const FORMAT_VERSION: u32 = 1;

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    format: &'static str,
    format_version: u32,
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
    /// The spec file, the result file, the diff against the closest
    /// expected file, and where the transcript departs from it.
    spec: Option<String>,
    result_file: Option<String>,
    diff: Option<String>,
    #[serde(rename = "where")]
    departure: Option<JsonWhere>,
    /// Invariants that did not hold after a permutation.
    violations: Vec<JsonViolation<'a>>,
    /// For a spec that did not pass (and ran): its GitHub annotation, as
    /// fields and as the workflow command `isospec run` prints.
    annotation: Option<super::Annotation>,
}

#[derive(serde::Serialize)]
struct JsonViolation<'a> {
    invariant: &'a str,
    /// Its `# isospec: invariant` line (null: `--invariant`).
    line: Option<u32>,
    /// 1-based.
    permutation: usize,
    permutation_steps: &'a [String],
    /// What it returned instead of true (an anomaly: how the outcome
    /// differs from every serial order).
    got: &'a str,
    /// "invariant", or "anomaly" (`# isospec: anomalies`).
    kind: &'static str,
    /// `# isospec: known-violations`: reported, not failed.
    known: bool,
}

#[derive(serde::Serialize)]
struct JsonWhere {
    kind: &'static str,
    file: Option<String>,
    line: u32,
    column: u32,
    /// 1-based.
    permutation: Option<usize>,
    permutations: String,
    permutation_steps: Vec<String>,
    step: Option<String>,
    session: Option<String>,
    expected: Option<String>,
    actual: Option<String>,
    title: String,
    message: String,
}

fn departure(o: &TestOutcome, d: &Departure) -> JsonWhere {
    let (title, message) = super::annotations::describe(&o.name, &o.status, d);
    JsonWhere {
        kind: match d.kind {
            DepartureKind::Differs => "differs",
            DepartureKind::BadSpec => "spec-error",
            DepartureKind::RunError => "run-error",
            DepartureKind::Invariant => "invariant",
            DepartureKind::Anomaly => "anomaly",
        },
        file: o.spec.as_ref().map(|p| p.display().to_string()),
        line: d.line,
        column: d.col,
        permutation: d.permutation,
        permutations: d.permutations.to_string(),
        permutation_steps: d.permutation_steps.clone(),
        step: d.step.clone(),
        session: d.session.clone(),
        expected: d.expected.clone(),
        actual: d.actual.clone(),
        title,
        message,
    }
}

pub(super) fn write(
    path: &Path,
    outcomes: &[TestOutcome],
    diffs: &Diffs,
    workspace: Option<&Path>,
) -> Result<(), ReportError> {
    let names = super::Annotations {
        workspace: workspace.map(Path::to_path_buf),
    };
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
            spec: o.spec.as_ref().map(|p| p.display().to_string()),
            result_file: o.result_file.as_ref().map(|p| p.display().to_string()),
            diff: Some(diffs.of(&o.name)).filter(|d| !d.is_empty()),
            departure: o.departure.as_ref().map(|d| departure(o, d)),
            violations: o
                .violations
                .iter()
                .map(|v| JsonViolation {
                    invariant: &v.invariant,
                    line: v.line,
                    permutation: v.permutation,
                    permutation_steps: &v.steps,
                    got: &v.got,
                    kind: if v.anomaly { "anomaly" } else { "invariant" },
                    known: v.known,
                })
                .collect(),
            annotation: super::annotations::failing(o)
                .then(|| super::annotations::annotation(o, &names)),
        })
        .collect();
    // Streamed to the file: a suite's per-step timings are large.
    let file = std::fs::File::create(path).map_err(io_error(path))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(
        &mut w,
        &JsonReport {
            format: FORMAT,
            format_version: FORMAT_VERSION,
            specs,
        },
    )?;
    w.write_all(b"\n")
        .and_then(|()| w.flush())
        .map_err(io_error(path))
}
