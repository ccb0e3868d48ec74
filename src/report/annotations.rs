//! GitHub Actions workflow commands: one `::error file=…,line=…` per failing
//! spec, at the spec line where its transcript departs (the permutation
//! line, or the step's definition for a spec without permutation lines),
//! the position of a syntax error, or the step a run error happened in.
//! GitHub shows them on the pull request's diff; a cap keeps a broken
//! suite from flooding the page.

use crate::outcome::{Departure, DepartureKind, Status, TestOutcome};
use std::path::{Path, PathBuf};

/// At most this many annotations, then one line that says how many more.
pub const CAP: usize = 10;

/// How annotations name files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// Paths are made relative to this directory (`GITHUB_WORKSPACE`),
    /// else to the current directory.
    pub workspace: Option<PathBuf>,
}

/// The failing specs' annotations, in the order they finished.
pub(super) fn lines(outcomes: &[TestOutcome], opts: &Annotations) -> Vec<String> {
    let failing: Vec<&TestOutcome> = outcomes.iter().filter(|o| failing(o)).collect();
    let mut out: Vec<String> = failing
        .iter()
        .take(CAP)
        .map(|o| annotation(o, opts).command)
        .collect();
    if failing.len() > CAP {
        let rest: Vec<&str> = failing[CAP..].iter().map(|o| o.name.as_str()).collect();
        let specs = if rest.len() == 1 { "spec" } else { "specs" };
        out.push(format!(
            "::error title={}::{}",
            property(&format!("isospec: {} more failing {specs}", rest.len())),
            data(&format!(
                "{} more {specs} failed and {} not annotated: {} (see the log and regression.diffs)",
                rest.len(),
                if rest.len() == 1 { "is" } else { "are" },
                shorten(&rest.join(", "), 400)
            ))
        ));
    }
    out
}

/// Whether a spec gets an annotation: it ran and did not pass.
pub(super) fn failing(o: &TestOutcome) -> bool {
    !o.status.passed() && !matches!(o.status, Status::NotRun(_))
}

/// One failing spec's annotation, as fields and as the workflow command
/// (`command`) that shows it; the JSON report carries it whole, so that
/// other front ends (the pytest plugin) print it as it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Annotation {
    /// The spec file, relative to the workspace (or the current
    /// directory) when under it.
    pub file: Option<String>,
    pub line: u32,
    /// Only for a spec that does not parse.
    pub col: Option<u32>,
    pub title: String,
    pub message: String,
    /// `::error file=…,line=…,title=…::message`.
    pub command: String,
}

/// One spec's annotation.
pub(super) fn annotation(o: &TestOutcome, opts: &Annotations) -> Annotation {
    let file = o
        .spec
        .as_deref()
        .map(|p| relative(p, opts.workspace.as_deref()));
    let (title, message, line, col) = match &o.departure {
        Some(d) => {
            let (t, m) = describe(&o.name, &o.status, d);
            (
                t,
                m,
                d.line,
                (d.kind == DepartureKind::BadSpec).then_some(d.col),
            )
        }
        None => {
            let (t, m) = match &o.status {
                Status::New => (
                    format!("{}: no expected output", o.name),
                    "the spec has no expected file: its transcript is new (isospec run --accept keeps it)"
                        .to_string(),
                ),
                s => (
                    format!("{}: {}", o.name, s.word()),
                    s.detail().unwrap_or("the spec did not pass").to_string(),
                ),
            };
            (t, m, 1, None)
        }
    };
    let title = shorten(&title, 200);
    let mut props = Vec::new();
    if let Some(f) = &file {
        props.push(format!("file={}", property(f)));
        props.push(format!("line={line}"));
        if let Some(c) = col {
            props.push(format!("col={c}"));
        }
    }
    props.push(format!("title={}", property(&title)));
    let command = format!("::error {}::{}", props.join(","), data(&message));
    Annotation {
        file,
        line,
        col,
        title,
        message,
        command,
    }
}

/// The title and message of a departure.
pub(super) fn describe(name: &str, status: &Status, d: &Departure) -> (String, String) {
    let where_ = place(d);
    match d.kind {
        DepartureKind::BadSpec => (
            format!("{name}: the spec does not parse"),
            d.actual.clone().unwrap_or_default(),
        ),
        DepartureKind::RunError => (
            format!("{name}: stopped{}", prefixed(", ", &where_)),
            status
                .detail()
                .map(str::to_string)
                .or_else(|| d.actual.clone())
                .unwrap_or_default(),
        ),
        DepartureKind::Invariant | DepartureKind::Anomaly => (
            if d.kind == DepartureKind::Anomaly {
                format!("{name}: not serializable{}", prefixed(": ", &where_))
            } else {
                format!("{name}: invariant violated{}", prefixed(" after ", &where_))
            },
            format!(
                "{}\n{}",
                d.expected
                    .as_deref()
                    .map_or(String::new(), |l| shorten(l, 300)),
                d.actual.as_deref().unwrap_or_default()
            ),
        ),
        DepartureKind::Differs => {
            let e = d
                .expected
                .as_deref()
                .map_or("(no line)".to_string(), |l| shorten(l, 200));
            let a = d
                .actual
                .as_deref()
                .map_or("(no line)".to_string(), |l| shorten(l, 200));
            (
                format!("{name}: output differs{}", prefixed(" in ", &where_)),
                format!("expected: {e}\nactual:   {a}"),
            )
        }
    }
}

/// "permutation 2 of 4 (s1 s2 s1c), step s2".
pub(super) fn place(d: &Departure) -> String {
    let mut parts = Vec::new();
    if let Some(k) = d.permutation {
        parts.push(format!(
            "permutation {k} of {} ({})",
            d.permutations,
            shorten(&d.permutation_steps.join(" "), 120)
        ));
    }
    if let Some(s) = &d.step {
        parts.push(format!("step {s}"));
    }
    parts.join(", ")
}

fn prefixed(prefix: &str, s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("{prefix}{s}")
    }
}

/// A path as GitHub wants it: relative to the workspace (or the current
/// directory) when under it.
fn relative(path: &Path, workspace: Option<&Path>) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let base = workspace
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .map(|b| std::fs::canonicalize(&b).unwrap_or(b));
    match base.as_deref().and_then(|b| abs.strip_prefix(b).ok()) {
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

/// At most `max` characters, with "…" when cut.
pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A workflow command's message, escaped as the Actions toolkit does.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The start and end of a folded part of the log.
pub(super) fn group(title: &str) -> String {
    format!("::group::{}", data(title))
}

pub(super) const END_GROUP: &str = "::endgroup::";

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(name: &str) -> TestOutcome {
        let mut o = TestOutcome::new(
            name,
            Status::BadSpec("x".into()),
            std::time::Duration::ZERO,
            0,
        );
        o.spec = Some(PathBuf::from(format!("/nonexistent/{name}.spec")));
        o.departure = Some(Box::new(crate::timeline::bad_spec(
            crate::spec::Pos { line: 3, col: 2 },
            "syntax error",
        )));
        o
    }

    #[test]
    fn a_broken_suite_gets_at_most_the_cap_and_one_line_more() {
        let outcomes: Vec<TestOutcome> = (1..=13).map(|i| failing(&format!("t{i}"))).collect();
        let lines = lines(&outcomes, &Annotations::default());
        assert_eq!(lines.len(), CAP + 1);
        assert_eq!(
            lines[0],
            "::error file=/nonexistent/t1.spec,line=3,col=2,title=t1%3A the spec does not parse::syntax error"
        );
        assert_eq!(
            lines[CAP],
            "::error title=isospec%3A 3 more failing specs::3 more specs failed and are not annotated: t11, t12, t13 (see the log and regression.diffs)"
        );
        let ok = TestOutcome::new("fine", Status::Ok, std::time::Duration::ZERO, 1);
        assert!(super::lines(&[ok], &Annotations::default()).is_empty());
    }

    #[test]
    fn paths_are_relative_to_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("specs")).unwrap();
        let spec = dir.path().join("specs/a.spec");
        std::fs::write(&spec, "").unwrap();
        assert_eq!(relative(&spec, Some(dir.path())), "specs/a.spec");
        assert_eq!(
            relative(Path::new("/elsewhere/a.spec"), Some(dir.path())),
            "/elsewhere/a.spec"
        );
    }

    #[test]
    fn escapes_as_the_toolkit() {
        assert_eq!(data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn shortens_by_characters() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("é", 1), "é");
    }
}
