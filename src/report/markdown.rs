//! The Markdown summary appended to `$GITHUB_STEP_SUMMARY`: the counts and
//! each failing spec's diff, folded.

use super::counts::Counts;
use super::{io_error, Diffs, ReportError};
use crate::outcome::{Status, TestOutcome};
use std::io::Write;
use std::path::Path;

pub(super) fn text(outcomes: &[TestOutcome], diffs: &Diffs) -> String {
    let c = Counts::of(outcomes);
    let mut md = format!(
        "### isospec: {} of {} passed",
        c.passed,
        crate::words::counted(c.total as u64, "spec", "specs")
    );
    if c.new > 0 {
        md.push_str(&format!(", {} new", c.new));
    }
    if c.not_run > 0 {
        md.push_str(&format!(", {} not run", c.not_run));
    }
    md.push_str("\n\n");
    for o in outcomes
        .iter()
        .filter(|o| !o.status.passed() && !matches!(o.status, Status::NotRun(_)))
    {
        let where_ = o.departure.as_ref().map_or(String::new(), |d| {
            let file = o
                .spec
                .as_ref()
                .map_or(String::new(), |p| format!("`{}:{}`", p.display(), d.line));
            let place = super::annotations::place(d);
            let (_, message) = super::annotations::describe(&o.name, &o.status, d);
            let message: Vec<String> = message
                .lines()
                .map(|l| format!("> `{}`", l.replace('`', "'")))
                .collect();
            format!(
                "**Where:** {file}{}{place}\n\n{}\n\n",
                if place.is_empty() || file.is_empty() {
                    ""
                } else {
                    " — "
                },
                message.join("<br>\n")
            )
        });
        let diff = diffs.of(&o.name);
        let diff = if diff.is_empty() {
            String::new()
        } else {
            format!("```diff\n{diff}```\n")
        };
        md.push_str(&format!(
            "<details><summary>{} ({})</summary>\n\n{where_}{diff}</details>\n\n",
            o.name,
            o.status.word(),
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
