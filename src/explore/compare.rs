//! How a run's observations compare with a serial run's, for
//! `--anomalies`: what is compared (the committed transactions' reads and
//! the final state), the values set aside because they differ between two
//! runs of one serial order (`now()`, sequence values, transaction ids),
//! how far two runs are apart, what one shows that no serial order does,
//! and the verdict a class gets.  Pure functions; `anomaly` runs.

use std::collections::{BTreeMap, BTreeSet};

/// Rows as the executor reports them.
pub type Rows = Vec<Vec<Option<String>>>;

/// What a volatile value shows as once set aside.
pub const BLANK: &str = "…";

/// What the check says of one outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// A serial order produces it.
    Serializable {
        /// That order, as `s1[…] s2[…]`.
        order: String,
        /// Values set aside (they differ between runs of one order).
        volatile: Vec<String>,
    },
    /// No serial order produces it.
    Anomaly {
        /// The serial order with the fewest differing rows (None when
        /// every serial order failed a step).
        closest: Option<String>,
        /// Rows apart from the closest order.
        distance: usize,
        /// The first thing no serial order shows.
        difference: String,
        /// How many serial orders were compared.
        orders: usize,
        volatile: Vec<String>,
    },
    /// The check could not model it, and says why.
    NotChecked { reason: String },
}

impl Verdict {
    pub fn is_anomaly(&self) -> bool {
        matches!(self, Verdict::Anomaly { .. })
    }

    /// One line for the terminal and the reports.
    pub fn describe(&self) -> String {
        let aside = |v: &[String]| {
            if v.is_empty() {
                String::new()
            } else {
                format!("; set aside as volatile: {}", v.join(", "))
            }
        };
        match self {
            Verdict::Serializable { order, volatile } => {
                format!("serializable: as {order}{}", aside(volatile))
            }
            Verdict::Anomaly {
                closest,
                difference,
                orders,
                volatile,
                ..
            } => format!(
                "not serializable: {difference}{}{}",
                closest.as_ref().map_or(String::new(), |c| format!(
                    "; closest serial order: {c} (of {} compared)",
                    orders
                )),
                aside(volatile)
            ),
            Verdict::NotChecked { reason } => {
                format!("not checked against serial orders: {reason}")
            }
        }
    }
}

/// What a run is compared on: the committed steps' rows, and the final
/// state (each outcome query's rows, or its error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub reads: Vec<(String, Rows)>,
    pub finals: Vec<Rows>,
}

/// Where two runs of the same serial order differed: those values are
/// set aside.  A column index, or the whole part (None) when the row
/// counts differed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Volatile {
    pub reads: BTreeMap<String, Option<BTreeSet<usize>>>,
    pub finals: BTreeMap<usize, Option<BTreeSet<usize>>>,
}

fn volatile_columns(a: &Rows, b: &Rows) -> Option<Option<BTreeSet<usize>>> {
    if a.len() != b.len() {
        return Some(None);
    }
    let cols: BTreeSet<usize> = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| (0..x.len().max(y.len())).filter(move |&c| x.get(c) != y.get(c)))
        .collect();
    (!cols.is_empty()).then_some(Some(cols))
}

impl Volatile {
    /// The values that differ between two runs of the same order.
    pub fn between(a: &Observed, b: &Observed) -> Volatile {
        let mut v = Volatile::default();
        for ((name, x), (_, y)) in a.reads.iter().zip(&b.reads) {
            if let Some(cols) = volatile_columns(x, y) {
                v.reads.insert(name.clone(), cols);
            }
        }
        for (k, (x, y)) in a.finals.iter().zip(&b.finals).enumerate() {
            if let Some(cols) = volatile_columns(x, y) {
                v.finals.insert(k, cols);
            }
        }
        v
    }

    /// The values set aside, for the report: `step r1 column 2`, `final
    /// state 1 column 1`, `step r2` (every row).
    pub fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |what: String, cols: &Option<BTreeSet<usize>>| match cols {
            None => out.push(what),
            Some(cols) => {
                let cols: Vec<String> = cols.iter().map(|c| (c + 1).to_string()).collect();
                out.push(format!(
                    "{what} column{} {}",
                    if cols.len() == 1 { "" } else { "s" },
                    cols.join(", ")
                ));
            }
        };
        for (name, cols) in &self.reads {
            push(format!("step {name}"), cols);
        }
        for (k, cols) in &self.finals {
            push(format!("final state {}", k + 1), cols);
        }
        out
    }

    /// Every row of the steps named (`# isospec: volatile STEP…`).
    pub fn named<'a>(steps: impl IntoIterator<Item = &'a str>) -> Volatile {
        Volatile {
            reads: steps.into_iter().map(|s| (s.to_string(), None)).collect(),
            finals: BTreeMap::new(),
        }
    }

    /// Both sets of volatile values.
    pub fn union(&self, other: &Volatile) -> Volatile {
        fn join(
            a: &Option<BTreeSet<usize>>,
            b: &Option<BTreeSet<usize>>,
        ) -> Option<BTreeSet<usize>> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.union(b).copied().collect()),
                _ => None,
            }
        }
        let mut out = self.clone();
        for (k, cols) in &other.reads {
            let joined = out.reads.get(k).map_or(cols.clone(), |c| join(c, cols));
            out.reads.insert(k.clone(), joined);
        }
        for (k, cols) in &other.finals {
            let joined = out.finals.get(k).map_or(cols.clone(), |c| join(c, cols));
            out.finals.insert(*k, joined);
        }
        out
    }

    /// Blanks the volatile values of an outcome's reads and results in
    /// place (as `…`), so that interleavings differing only there fall in
    /// one class.
    pub fn blank(&self, reads: &mut [(String, Rows)], results: &mut [Rows]) {
        for (name, rows) in reads.iter_mut() {
            *rows = Self::mask(rows, self.reads.get(name), true);
        }
        for (k, rows) in results.iter_mut().enumerate() {
            *rows = Self::mask(rows, self.finals.get(&k), true);
        }
    }

    fn mask(rows: &Rows, cols: Option<&Option<BTreeSet<usize>>>, sort: bool) -> Rows {
        match cols {
            None => {
                let mut out = rows.clone();
                if sort {
                    out.sort();
                }
                out
            }
            Some(None) => vec![vec![Some(BLANK.to_string())]],
            Some(Some(cols)) => {
                let mut out: Rows = rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .enumerate()
                            .map(|(c, v)| {
                                if cols.contains(&c) {
                                    Some(BLANK.to_string())
                                } else {
                                    v.clone()
                                }
                            })
                            .collect()
                    })
                    .collect();
                if sort {
                    out.sort();
                }
                out
            }
        }
    }

    /// `o` with the volatile values blanked (final states re-sorted).
    pub fn apply(&self, o: &Observed) -> Observed {
        Observed {
            reads: o
                .reads
                .iter()
                .map(|(n, r)| (n.clone(), Self::mask(r, self.reads.get(n), true)))
                .collect(),
            finals: o
                .finals
                .iter()
                .enumerate()
                .map(|(k, r)| Self::mask(r, self.finals.get(&k), true))
                .collect(),
        }
    }
}

/// Rows in one multiset and not the other, both ways.
fn row_difference(a: &Rows, b: &Rows) -> usize {
    let mut count: BTreeMap<&Vec<Option<String>>, i64> = BTreeMap::new();
    for r in a {
        *count.entry(r).or_default() += 1;
    }
    for r in b {
        *count.entry(r).or_default() -= 1;
    }
    count.values().map(|n| n.unsigned_abs() as usize).sum()
}

/// How far two (masked) observations are apart: differing rows.
pub fn distance(a: &Observed, b: &Observed) -> usize {
    let reads: usize = a
        .reads
        .iter()
        .map(|(name, rows)| {
            match b.reads.iter().find(|(n, _)| n == name) {
                Some((_, other)) if other == rows => 0,
                // Read in another order: one row at least.
                Some((_, other)) => row_difference(rows, other).max(1),
                None => rows.len().max(1),
            }
        })
        .sum();
    let finals: usize = a
        .finals
        .iter()
        .zip(&b.finals)
        .map(|(x, y)| row_difference(x, y))
        .sum();
    reads + finals
}

/// Rows as text: `1|x, 2|y` (`no rows`).
pub fn rows_text(rows: &Rows) -> String {
    if rows.is_empty() {
        return "no rows".to_string();
    }
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| v.as_deref().unwrap_or("NULL"))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first thing `got` shows that no serial order does: a step's read
/// that every serial order reads otherwise, else final rows no serial
/// order leaves, else rows every serial order leaves that are missing;
/// `closest` is the serial order's observation shown beside it.
pub fn first_difference(got: &Observed, serials: &[&Observed], closest: &Observed) -> String {
    for (name, rows) in &got.reads {
        let same = |o: &&Observed| o.reads.iter().any(|(n, r)| n == name && r == rows);
        if !serials.iter().any(same) {
            let theirs = closest
                .reads
                .iter()
                .find(|(n, _)| n == name)
                .map_or("nothing".to_string(), |(_, r)| rows_text(r));
            return format!(
                "step {name} read {} where every serial order reads something else (the closest: {theirs})",
                rows_text(rows)
            );
        }
    }
    for (k, rows) in got.finals.iter().enumerate() {
        if !serials.iter().any(|o| o.finals.get(k) == Some(rows)) {
            let theirs = closest.finals.get(k).map_or("nothing".into(), rows_text);
            return format!(
                "final state {} is {}, which no serial order leaves (the closest leaves {theirs})",
                k + 1,
                rows_text(rows)
            );
        }
    }
    // Each part is some order's: say where the closest order differs.
    for (name, rows) in &got.reads {
        if let Some((_, theirs)) = closest.reads.iter().find(|(n, _)| n == name) {
            if theirs != rows {
                return format!(
                    "step {name} read {} where the closest serial order reads {} (each read is some serial order's, never all in one)",
                    rows_text(rows),
                    rows_text(theirs)
                );
            }
        }
    }
    for (k, (rows, theirs)) in got.finals.iter().zip(&closest.finals).enumerate() {
        if rows != theirs {
            return format!(
                "final state {} is {} where the closest serial order leaves {} (each part is some serial order's, never all in one)",
                k + 1,
                rows_text(rows),
                rows_text(theirs)
            );
        }
    }
    "each part matches some serial order, but no one order matches them all".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_steps_are_set_aside_whole() {
        let row = |v: &str| vec![Some(v.to_string())];
        let v = Volatile::named(["pid"]);
        let a = Observed {
            reads: vec![
                ("pid".into(), vec![row("101")]),
                ("r".into(), vec![row("1")]),
            ],
            finals: vec![],
        };
        let b = Observed {
            reads: vec![
                ("pid".into(), vec![row("202"), row("3")]),
                ("r".into(), vec![row("1")]),
            ],
            finals: vec![],
        };
        assert_eq!(v.apply(&a), v.apply(&b));
        assert_eq!(v.list(), vec!["step pid"]);
        let c = Observed {
            reads: vec![
                ("pid".into(), vec![row("101")]),
                ("r".into(), vec![row("2")]),
            ],
            finals: vec![],
        };
        assert_ne!(v.apply(&a), v.apply(&c));
    }

    #[test]
    fn volatile_values_are_set_aside_and_distances_count_rows() {
        let row = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        let a = Observed {
            reads: vec![("r".into(), vec![row(&["1", "10:00"])])],
            finals: vec![vec![row(&["1", "x"]), row(&["2", "y"])]],
        };
        let b = Observed {
            reads: vec![("r".into(), vec![row(&["1", "10:01"])])],
            finals: vec![vec![row(&["2", "x"]), row(&["3", "y"])]],
        };
        let v = Volatile::between(&a, &b);
        assert_eq!(v.list(), vec!["step r column 2", "final state 1 column 1"]);
        assert_eq!(v.apply(&a), v.apply(&b));
        let c = Observed {
            reads: vec![("r".into(), vec![row(&["2", "10:02"])])],
            finals: vec![vec![row(&["7", "x"])]],
        };
        let (ma, mc) = (v.apply(&a), v.apply(&c));
        // r read another row (2 rows apart), and one final row is missing.
        assert_eq!(distance(&mc, &ma), 2 + 1);
        assert_eq!(
            first_difference(&mc, &[&ma], &ma),
            "step r read 2|… where every serial order reads something else (the closest: 1|…)"
        );
    }
}
