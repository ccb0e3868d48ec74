//! Grouping explored interleavings by what happened, and turning each group
//! into a permutation line worth pinning.
//!
//! An outcome is what a reviewer would call "the behaviour": which steps
//! failed (SQLSTATE and primary message), which had to wait, what the
//! outcome queries returned, and which invariants failed.  Interleavings
//! with equal outcomes form a class; its representative is a member with
//! the fewest preemptions (the easiest to read and to reason about), the
//! first such in the space's stable order, so the same spec always yields
//! the same line.

use std::collections::BTreeMap;

/// A step that failed: its name, SQLSTATE and primary message.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Failure {
    pub step: String,
    pub sqlstate: String,
    pub message: String,
}

/// What one interleaving did.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Outcome {
    /// Failed steps, in the order they failed.
    pub failures: Vec<Failure>,
    /// Steps that had to wait, in the order they were found waiting.
    pub waited: Vec<String>,
    /// Each outcome query's rows, in the order the queries were given.
    pub results: Vec<Vec<Vec<Option<String>>>>,
    /// The invariants (by position) that did not return true.
    pub violated: Vec<usize>,
    /// With `--anomalies`: the rows each step of a committed transaction
    /// returned (steps in the spec's order, rows sorted), which serial
    /// orders must reproduce.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<(String, Vec<Vec<Option<String>>>)>,
}

/// One class: an outcome, how many interleavings had it, and its
/// representative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub outcome: Outcome,
    /// The interleavings it stands for (with commuting steps, each run
    /// counts for its whole trace).
    pub count: u128,
    /// The interleavings of it that ran.
    pub runs: u64,
    /// The representative's index in the space.
    pub first: u128,
    /// The representative's preemptions: the fewest of any member that ran.
    pub preemptions: usize,
}

/// What is kept of a class while interleavings come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClassSoFar {
    count: u128,
    runs: u64,
    /// (preemptions, index) of the representative: the least.
    first: (usize, u128),
}

/// Explored interleavings, grouped by outcome.
#[derive(Debug, Default)]
pub struct Classes {
    by_outcome: BTreeMap<Outcome, ClassSoFar>,
}

impl Classes {
    /// Records that interleaving `index`, with `preemptions`, had
    /// `outcome`, standing for `weight` interleavings.
    pub fn add(&mut self, index: u128, preemptions: usize, weight: u128, outcome: Outcome) {
        let e = self.by_outcome.entry(outcome).or_insert(ClassSoFar {
            count: 0,
            runs: 0,
            first: (preemptions, index),
        });
        e.count += weight;
        e.runs += 1;
        e.first = e.first.min((preemptions, index));
    }

    /// Adds another exploration's classes (a shard of the same space).
    pub fn merge(&mut self, other: &[Class]) {
        for c in other {
            let e = self
                .by_outcome
                .entry(c.outcome.clone())
                .or_insert(ClassSoFar {
                    count: 0,
                    runs: 0,
                    first: (c.preemptions, c.first),
                });
            e.count += c.count;
            e.runs += c.runs;
            e.first = e.first.min((c.preemptions, c.first));
        }
    }

    /// The classes, ordered by their representative's place in the space.
    pub fn list(&self) -> Vec<Class> {
        let mut out: Vec<Class> = self
            .by_outcome
            .iter()
            .map(|(o, t)| Class {
                outcome: o.clone(),
                count: t.count,
                runs: t.runs,
                first: t.first.1,
                preemptions: t.first.0,
            })
            .collect();
        out.sort_by_key(|c| c.first);
        out
    }

    /// The interleavings the classes stand for.
    pub fn explored(&self) -> u128 {
        self.by_outcome.values().map(|v| v.count).sum()
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
    if !outcome.reads.is_empty() {
        let reads: Vec<String> = outcome
            .reads
            .iter()
            .map(|(step, rows)| format!("{step} {}", crate::explore::compare::rows_text(rows)))
            .collect();
        parts.push(format!("read: {}", reads.join("; ")));
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
        c.add(5, 1, 1, lost.clone());
        c.add(0, 0, 1, fine.clone());
        c.add(2, 2, 3, lost.clone());
        c.add(3, 0, 1, fine.clone());
        let list = c.list();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].first, list[0].count, list[0].runs), (0, 2, 2));
        assert_eq!(list[0].outcome, fine);
        // The fewest preemptions first, then the stable order.
        assert_eq!((list[1].first, list[1].preemptions), (5, 1));
        assert_eq!((list[1].count, list[1].runs), (4, 2));
        assert_eq!(c.explored(), 6);
        assert_eq!(list.iter().map(|c| c.runs).sum::<u64>(), 4);
        let mut merged = Classes::default();
        merged.merge(&list[..1]);
        merged.merge(&list[1..]);
        assert_eq!(merged.list(), list);
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
