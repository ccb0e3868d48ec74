//! The isolation spec language: the syntax tree of a `.spec` file, its parser
//! and its semantic checks.
//!
//! The language is the one PostgreSQL's isolationtester reads (identical in
//! PostgreSQL 14–18).  The tree keeps source positions so every later error
//! can name `file:line:col`, and it prints back to spec text (`Display`), so a
//! parsed spec can be shown, normalised or round-trip tested.

mod check;
mod directives;
mod parse;
pub mod sql;

pub use check::{check, CheckError, CheckedBlocker, CheckedSpec, CheckedStep};
pub use parse::{parse, ParseError, ParseErrors};

use std::fmt;
use std::path::Path;

/// Why a spec file could not be loaded: each error names `file:line:col`
/// (or the file, when it cannot be read).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: error: could not read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseErrors),
    #[error(transparent)]
    Check(#[from] CheckError),
}

impl LoadError {
    /// Where the first error is (None when the file could not be read).
    pub fn position(&self) -> Option<Pos> {
        match self {
            LoadError::Read { .. } => None,
            LoadError::Parse(e) => e.errors.first().map(|e| e.pos),
            LoadError::Check(e) => e.errors.first().map(|(p, _)| *p),
        }
    }
}

/// Reads, parses and checks the spec file at `path` (named as given).
pub fn load(path: &Path) -> Result<CheckedSpec, LoadError> {
    let file = path.display().to_string();
    let src = std::fs::read(path).map_err(|source| LoadError::Read {
        file: file.clone(),
        source,
    })?;
    let spec = parse(&file, &src)?;
    Ok(check(&file, spec)?)
}

/// A position in a spec file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A whole spec file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestSpec {
    /// Global `setup` blocks, run in order on the control connection.
    pub setup: Vec<String>,
    /// Global `teardown` block.
    pub teardown: Option<String>,
    pub sessions: Vec<Session>,
    /// Explicit permutations; empty means "every interleaving".
    pub permutations: Vec<Permutation>,
    /// isospec options from `# isospec: …` comment lines (invisible to
    /// isolationtester, which reads them as comments).
    pub options: SpecOptions,
}

/// Per-spec options, written as `# isospec: OPTION …` comment lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecOptions {
    /// `prepared-waits`: a step waiting on a prepared transaction counts as
    /// blocked (isolationtester never sees such a wait).
    pub prepared_waits: bool,
    /// `alone`: under `-j`, run this spec with no other spec alongside
    /// (for specs that touch cluster-wide state).
    pub alone: bool,
    /// `known-violations`: the spec demonstrates an anomaly on purpose: its
    /// pinned permutations violate its invariants, and `isospec run`
    /// reports the violations without failing the spec.
    pub known_violations: bool,
    /// `pooled`: the spec studies a connection pool itself; behind a
    /// pooler its sessions may share or change server connections (isospec
    /// otherwise stops such a spec).
    pub pooled: bool,
    /// `anomalies`: `isospec explore` checks every class against the
    /// serial orders of its committed transactions, and `isospec run`
    /// fails a pinned permutation that no serial order explains.
    pub anomalies: bool,
    /// `outcome SQL`: for `isospec explore`, a query run after each
    /// interleaving's steps whose rows are part of its outcome.
    pub outcomes: Vec<String>,
    /// `invariant SQL`: a query that must return true after every
    /// interleaving (`isospec explore`) and every permutation (`isospec
    /// run`).
    pub invariants: Vec<String>,
    /// Where each of `invariants` is written.
    pub invariant_pos: Vec<Pos>,
    /// `commutes STEP…`: for `isospec explore --reduce`, steps that
    /// cannot affect or be affected by other sessions' steps (with where
    /// the directive is, for errors).
    pub commutes: Vec<(String, Pos)>,
    /// `volatile STEP…`: for `--anomalies`, steps whose rows differ from
    /// run to run (times, random values): set aside when outcomes are
    /// compared with serial orders.
    pub volatile: Vec<(String, Pos)>,
}

impl SpecOptions {
    pub(crate) const KNOWN: &'static [&'static str] = &[
        "prepared-waits",
        "alone",
        "pooled",
        "known-violations",
        "anomalies",
        "outcome SQL",
        "invariant SQL",
        "commutes STEP…",
        "volatile STEP…",
    ];

    /// Sets one option by name; false when the name is unknown.
    pub fn set(&mut self, name: &str) -> bool {
        match name {
            "prepared-waits" => self.prepared_waits = true,
            "alone" => self.alone = true,
            "pooled" => self.pooled = true,
            "known-violations" => self.known_violations = true,
            "anomalies" => self.anomalies = true,
            _ => return false,
        }
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    pub name: String,
    pub pos: Pos,
    pub setup: Option<String>,
    pub steps: Vec<Step>,
    pub teardown: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    pub name: String,
    pub pos: Pos,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permutation {
    pub pos: Pos,
    pub steps: Vec<PermutationStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermutationStep {
    pub name: String,
    pub pos: Pos,
    pub blockers: Vec<Blocker>,
}

/// A marker in parentheses after a permutation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// `*`: report the step as waiting when it is launched.
    Once { pos: Pos },
    /// `other`: don't report completion while step `other` is active.
    OtherStep { step: String, pos: Pos },
    /// `other notices N`: don't report completion until `other`'s session
    /// has emitted N more notices since launch.
    Notices { step: String, count: i64, pos: Pos },
}

const KEYWORDS: [&str; 6] = [
    "notices",
    "permutation",
    "session",
    "setup",
    "step",
    "teardown",
];

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Writes a name the way the spec language reads it back: bare when it is a
/// plain identifier and not a keyword, otherwise double-quoted.
pub(crate) fn quote_name(name: &str) -> String {
    let b = name.as_bytes();
    let plain = !b.is_empty()
        && is_ident_start(b[0])
        && b.iter().all(|&c| is_ident_cont(c))
        && !KEYWORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn write_block(f: &mut fmt::Formatter<'_>, keyword: &str, sql: &str) -> fmt::Result {
    writeln!(f, "{keyword} {{ {sql} }}")
}

impl fmt::Display for TestSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.options.prepared_waits {
            writeln!(f, "# isospec: prepared-waits")?;
        }
        if self.options.alone {
            writeln!(f, "# isospec: alone")?;
        }
        if self.options.pooled {
            writeln!(f, "# isospec: pooled")?;
        }
        if self.options.known_violations {
            writeln!(f, "# isospec: known-violations")?;
        }
        if self.options.anomalies {
            writeln!(f, "# isospec: anomalies")?;
        }
        for q in &self.options.outcomes {
            writeln!(f, "# isospec: outcome {q}")?;
        }
        for q in &self.options.invariants {
            writeln!(f, "# isospec: invariant {q}")?;
        }
        for (word, names) in [
            ("commutes", &self.options.commutes),
            ("volatile", &self.options.volatile),
        ] {
            if !names.is_empty() {
                let names: Vec<String> = names.iter().map(|(n, _)| quote_name(n)).collect();
                writeln!(f, "# isospec: {word} {}", names.join(" "))?;
            }
        }
        for s in &self.setup {
            write_block(f, "setup", s)?;
        }
        if let Some(t) = &self.teardown {
            write_block(f, "teardown", t)?;
        }
        for session in &self.sessions {
            writeln!(f, "\nsession {}", quote_name(&session.name))?;
            if let Some(s) = &session.setup {
                write_block(f, "setup", s)?;
            }
            for step in &session.steps {
                write_block(f, &format!("step {}", quote_name(&step.name)), &step.sql)?;
            }
            if let Some(t) = &session.teardown {
                write_block(f, "teardown", t)?;
            }
        }
        if !self.permutations.is_empty() {
            writeln!(f)?;
        }
        for p in &self.permutations {
            writeln!(f, "{p}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Permutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "permutation")?;
        for s in &self.steps {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for PermutationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", quote_name(&self.name))?;
        if !self.blockers.is_empty() {
            let parts: Vec<String> = self.blockers.iter().map(|b| b.to_string()).collect();
            write!(f, "({})", parts.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Once { .. } => write!(f, "*"),
            Blocker::OtherStep { step, .. } => write!(f, "{}", quote_name(step)),
            Blocker::Notices { step, count, .. } => {
                write!(f, "{} notices {}", quote_name(step), count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_names() {
        assert_eq!(quote_name("s1"), "s1");
        assert_eq!(quote_name("step"), "\"step\"");
        assert_eq!(quote_name("a b"), "\"a b\"");
        assert_eq!(quote_name("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_name("1a"), "\"1a\"");
        assert_eq!(quote_name("x$1"), "x$1");
        assert_eq!(quote_name(""), "\"\"");
    }
}
