//! Grouping explored interleavings by what happened, and turning each group
//! into a permutation line worth pinning.
//!
//! An outcome is what a reviewer would call "the behaviour": which steps
//! failed (SQLSTATE and primary message), which had to wait, what the
//! outcome queries returned, and which invariants failed.  Interleavings
//! with equal outcomes form a class; its representative is the member
//! first in the space's stable order, so the same spec always yields the
//! same line.

use std::collections::BTreeMap;

/// A step that failed: its name, SQLSTATE and primary message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Failure {
    pub step: String,
    pub sqlstate: String,
    pub message: String,
}

/// What one interleaving did.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome {
    /// Failed steps, in the order they failed.
    pub failures: Vec<Failure>,
    /// Steps that had to wait, in the order they were found waiting.
    pub waited: Vec<String>,
    /// Each outcome query's rows, in the order the queries were given.
    pub results: Vec<Vec<Vec<Option<String>>>>,
    /// The invariants (by position) that did not return true.
    pub violated: Vec<usize>,
}

/// One class: an outcome, how many explored interleavings had it, and the
/// first of them in the stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub outcome: Outcome,
    pub count: u64,
    /// The representative's index in the space.
    pub first: u128,
}

/// Explored interleavings, grouped by outcome.
#[derive(Debug, Default)]
pub struct Classes {
    by_outcome: BTreeMap<Outcome, (u64, u128)>,
}

impl Classes {
    /// Records that interleaving `index` had `outcome`.
    pub fn add(&mut self, index: u128, outcome: Outcome) {
        let e = self.by_outcome.entry(outcome).or_insert((0, index));
        e.0 += 1;
        e.1 = e.1.min(index);
    }

    /// The classes, ordered by their representative's place in the space.
    pub fn list(&self) -> Vec<Class> {
        let mut out: Vec<Class> = self
            .by_outcome
            .iter()
            .map(|(o, &(count, first))| Class {
                outcome: o.clone(),
                count,
                first,
            })
            .collect();
        out.sort_by_key(|c| c.first);
        out
    }

    pub fn explored(&self) -> u64 {
        self.by_outcome.values().map(|v| v.0).sum()
    }
}

/// A one-line description of an outcome, for comments and the terminal:
/// `s2w failed 40001 (could not serialize ...); waited: s2w; invariant 1 violated`.
pub fn describe(outcome: &Outcome) -> String {
    let mut parts = Vec::new();
    for f in &outcome.failures {
        parts.push(format!("{} failed {} ({})", f.step, f.sqlstate, f.message));
    }
    if !outcome.waited.is_empty() {
        parts.push(format!("waited: {}", outcome.waited.join(" ")));
    }
    for (i, rows) in outcome.results.iter().enumerate() {
        let rows: Vec<String> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.as_deref().unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        parts.push(format!("outcome {}: {}", i + 1, rows.join(", ")));
    }
    for v in &outcome.violated {
        parts.push(format!("invariant {} violated", v + 1));
    }
    if parts.is_empty() {
        "every step succeeded without waiting".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_keep_counts_and_the_first_member() {
        let lost = Outcome {
            results: vec![vec![vec![Some("110".into())]]],
            violated: vec![0],
            ..Outcome::default()
        };
        let fine = Outcome {
            results: vec![vec![vec![Some("120".into())]]],
            ..Outcome::default()
        };
        let mut c = Classes::default();
        c.add(5, lost.clone());
        c.add(0, fine.clone());
        c.add(2, lost.clone());
        c.add(3, fine.clone());
        let list = c.list();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].first, list[0].count), (0, 2));
        assert_eq!(list[0].outcome, fine);
        assert_eq!((list[1].first, list[1].count), (2, 2));
        assert_eq!(c.explored(), 4);
        assert_eq!(describe(&lost), "outcome 1: 110; invariant 1 violated");
    }

    #[test]
    fn descriptions() {
        let o = Outcome {
            failures: vec![Failure {
                step: "w2".into(),
                sqlstate: "40001".into(),
                message: "could not serialize access due to concurrent update".into(),
            }],
            waited: vec!["w2".into()],
            ..Outcome::default()
        };
        assert_eq!(
            describe(&o),
            "w2 failed 40001 (could not serialize access due to concurrent update); waited: w2"
        );
        assert_eq!(
            describe(&Outcome::default()),
            "every step succeeded without waiting"
        );
    }
}
