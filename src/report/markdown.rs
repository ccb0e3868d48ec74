//! The Markdown summary appended to `$GITHUB_STEP_SUMMARY`: the counts and
//! each failing spec's diff, folded.

use super::counts::Counts;
use super::{io_error, Diffs, ReportError};
use crate::outcome::{Status, TestOutcome};
use std::io::Write;
use std::path::Path;

pub(super) fn text(outcomes: &[TestOutcome], diffs: &Diffs) -> String {
    let c = Counts::of(outcomes);
    let mut md = format!("### isospec: {} of {} specs passed", c.passed, c.total);
    if c.not_run > 0 {
        md.push_str(&format!(", {} not run", c.not_run));
    }
    md.push_str("\n\n");
    for o in outcomes
        .iter()
        .filter(|o| !o.status.passed() && !matches!(o.status, Status::NotRun(_)))
    {
        md.push_str(&format!(
            "<details><summary>{} ({})</summary>\n\n```diff\n{}```\n</details>\n\n",
            o.name,
            o.status.word(),
            diffs.of(&o.name)
        ));
    }
    md
}

pub(super) fn append(
    path: &Path,
    outcomes: &[TestOutcome],
    diffs: &Diffs,
) -> Result<(), ReportError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))?;
    f.write_all(text(outcomes, diffs).as_bytes())
        .map_err(io_error(path))
}
