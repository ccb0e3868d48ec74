//! The JSON report (`--json FILE`): each spec's status, duration,
//! permutations and per-step timings, streamed to the file.

use super::{io_error, ReportError};
use crate::outcome::TestOutcome;
use std::io::Write;
use std::path::Path;

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

pub(super) fn write(path: &Path, outcomes: &[TestOutcome]) -> Result<(), ReportError> {
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
    let file = std::fs::File::create(path).map_err(io_error(path))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, &JsonReport { specs })?;
    w.write_all(b"\n")
        .and_then(|()| w.flush())
        .map_err(io_error(path))
}
