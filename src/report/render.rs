//! One rendering of a run as text: the trait the human, TAP and
//! pg_regress renderings implement, and the lines they give, each with
//! where it goes.  The reporter writes the lines to any `io::Write`.

use crate::outcome::RunEvent;
use std::path::Path;

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// stdout only (pg_regress ≤ 15 keeps headers and the summary out of
    /// regression.out).
    Stdout,
    /// stdout and regression.out.
    StdoutAndLog,
    /// stderr and regression.out (TAP diagnostics).
    StderrAndLog,
    /// stderr only: a note for the user (`isospec: …`).
    Stderr,
}

/// A note for the user, as isospec shows them on stderr.
pub(super) fn note(text: &str) -> Line {
    line(format!("isospec: {text}"), To::Stderr)
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub to: To,
}

pub(super) fn line(text: impl Into<String>, to: To) -> Line {
    Line {
        text: text.into(),
        to,
    }
}

/// What a rendering may need beyond the event.
pub(super) struct Context<'a> {
    /// regression.out, when written.
    pub regression_out: Option<&'a Path>,
}

/// A rendering of the run's events as lines.  Notes and diagnostics are
/// the reporter's own (stderr, the same for every rendering).
pub(super) trait Render {
    fn render(&mut self, event: &RunEvent, cx: &Context<'_>) -> Vec<Line>;

    /// Whether the failing diffs are printed after the summary.
    fn prints_diffs(&self) -> bool {
        true
    }

    /// Whether regression.out and regression.diffs are removed when every
    /// spec passed (pg_regress does so).
    fn removes_logs_when_all_passed(&self) -> bool {
        false
    }
}
