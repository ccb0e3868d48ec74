//! `isospec explore --json`'s format, as types: the reporter
//! (`report::explore`) writes a document of them, and `--merge` reads
//! the parts' documents back through the same types and combines them,
//! so the two cannot drift.  docs/schemas/explore.schema.json describes
//! it for the people who parse it, and the tests validate every document
//! they produce against it.
//!
//! Numbers that may exceed what JSON numbers hold exactly (indices in the
//! space, its size, per-K counts) are strings.

use super::classes::{describe, Class, Outcome};
use super::lines::{class_line, line, parse_search, search_word};
use super::walk::Exploration;
use crate::spec::CheckedSpec;
use serde::{Deserialize, Serialize};

/// What the document is, for a reader that gets one without context.
pub const FORMAT: &str = "isospec-explore";
/// Raised when a field changes meaning or goes away (a new field does not
/// raise it).
pub const FORMAT_VERSION: u32 = 1;

/// A whole `--json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExploreDocument {
    pub format: String,
    pub format_version: u32,
    pub specs: Vec<SpecDocument>,
}

/// One spec's exploration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecDocument {
    /// The spec as named on the command line.
    pub spec: String,
    /// The number of interleavings, or "more than 2^128".
    pub space: String,
    pub exhaustive: bool,
    pub sampled: bool,
    pub cut_short: bool,
    pub seed: u64,
    /// "space", "preemptions K", "preemptions auto" or "reduced".
    pub search: String,
    pub max: Option<u64>,
    /// "K/N" with `--partition`.
    pub partition: Option<String>,
    pub complete: bool,
    pub per_k: Vec<String>,
    pub runs: u64,
    pub invariants: Vec<String>,
    pub explored: u64,
    pub unrealizable: u64,
    pub seconds: f64,
    pub classes: Vec<ClassDocument>,
    pub errors: Vec<ErrorDocument>,
}

/// One class of interleavings with the same outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassDocument {
    pub count: u64,
    pub runs: u64,
    pub preemptions: usize,
    /// The outcome as data (invariants by position), what `--merge` groups by.
    pub outcome: Outcome,
    pub shrunk: Option<String>,
    /// The representative's index in the stable order.
    pub first: String,
    pub permutation: String,
    pub description: String,
    pub failures: Vec<super::classes::Failure>,
    pub waited: Vec<String>,
    pub results: Vec<Vec<Vec<Option<String>>>>,
    /// The violated invariants' SQL.
    pub violated: Vec<String>,
    /// With `--anomalies`: the class's verdict against the serial orders
    /// of its committed transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<super::compare::Verdict>,
}

/// An interleaving that could not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDocument {
    pub first: String,
    pub message: String,
}

/// One spec's exploration as its document.
pub fn spec_document(
    name: &str,
    spec: &CheckedSpec,
    e: &Exploration,
    seed: u64,
    invariants: &[String],
) -> SpecDocument {
    let classes = e
        .classes
        .list()
        .iter()
        .map(|c| ClassDocument {
            count: u64::try_from(c.count).unwrap_or(u64::MAX),
            runs: c.runs,
            preemptions: c.preemptions,
            outcome: c.outcome.clone(),
            shrunk: e.shrunk.get(&c.first).map(|_| class_line(spec, e, c)),
            first: c.first.to_string(),
            permutation: line(spec, c),
            description: describe(&c.outcome),
            failures: c.outcome.failures.clone(),
            waited: c.outcome.waited.clone(),
            results: c.outcome.results.clone(),
            violated: c
                .outcome
                .violated
                .iter()
                .map(|&v| invariants.get(v).cloned().unwrap_or_else(|| "?".into()))
                .collect(),
            anomaly: e.anomalies.get(&c.first).cloned(),
        })
        .collect();
    SpecDocument {
        spec: name.to_string(),
        // Digits alone (the terminal groups them): --merge reads it back.
        space: e
            .space
            .map_or_else(|| "more than 2^128".to_string(), |n| n.to_string()),
        exhaustive: e.exhaustive,
        sampled: e.sampled,
        cut_short: e.cut_short,
        seed,
        search: search_word(&e.search),
        max: e.max,
        partition: e.partition.map(|(k, n)| format!("{k}/{n}")),
        complete: e.complete,
        per_k: e.per_k.iter().map(|n| n.to_string()).collect(),
        runs: e.runs,
        invariants: invariants.to_vec(),
        explored: u64::try_from(e.explored()).unwrap_or(u64::MAX),
        unrealizable: u64::try_from(e.unrealizable).unwrap_or(u64::MAX),
        seconds: e.elapsed.as_secs_f64(),
        classes,
        errors: e
            .errors
            .iter()
            .map(|(i, m)| ErrorDocument {
                first: i.to_string(),
                message: m.clone(),
            })
            .collect(),
    }
}

impl ExploreDocument {
    pub fn new(specs: Vec<SpecDocument>) -> Self {
        ExploreDocument {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            specs,
        }
    }

    /// A document read from `text` (file `file`, for messages); documents
    /// of another format or a later version are refused.
    pub fn parse(file: &str, text: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("{file}: {e}"))?;
        match (v.get("format"), v.get("format_version")) {
            (Some(f), Some(n)) if f == FORMAT => {
                if n.as_u64() != Some(u64::from(FORMAT_VERSION)) {
                    return Err(format!(
                        "{file}: format version {n} of isospec explore --json; this isospec reads version {FORMAT_VERSION}"
                    ));
                }
            }
            (None, None) if v.get("specs").is_some() => {
                return Err(format!(
                    "{file}: written by an isospec older than format versions: explore the part again with this isospec"
                ))
            }
            _ => return Err(format!("{file}: not an isospec explore --json file")),
        }
        serde_json::from_value(v).map_err(|e| format!("{file}: {e}"))
    }
}

/// One spec's exploration put together from its parts' documents.
pub struct Merged {
    pub name: String,
    pub seed: u64,
    pub invariants: Vec<String>,
    pub exploration: Exploration,
}

/// What every part of one spec must share to be parts of one walk.
#[derive(PartialEq)]
struct Key<'a> {
    search: &'a str,
    /// Only a sample's parts must draw from the same seed.
    seed: Option<u64>,
    space: &'a str,
    parts: usize,
    max: Option<u64>,
    invariants: &'a [String],
}

/// Combines the documents of the parts of one partitioned exploration
/// (same specs, search, seed and number of parts; each part once) into
/// what one exploration of the whole reports.
pub fn merge(parts: &[(String, ExploreDocument)]) -> Result<Vec<Merged>, String> {
    struct Acc<'a> {
        merged: Merged,
        seen: Vec<usize>,
        parts: usize,
        key: Key<'a>,
        /// The parts' verdicts, by outcome (a class's verdict is its
        /// outcome's, whichever part found it).
        verdicts: Vec<(super::classes::Outcome, super::compare::Verdict)>,
    }
    let mut acc: Vec<Acc> = Vec::new();
    for (file, doc) in parts {
        for sp in &doc.specs {
            let name = &sp.spec;
            let (k, n) = sp
                .partition
                .as_deref()
                .and_then(|p| p.split_once('/'))
                .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
                .ok_or_else(|| format!("{file}: {name} was not explored with --partition"))?;
            if k == 0 || k > n {
                return Err(format!("{file}: {name}: part {k}/{n} is not a part of {n}"));
            }
            let key = Key {
                search: &sp.search,
                seed: sp.sampled.then_some(sp.seed),
                space: &sp.space,
                parts: n,
                max: sp.max,
                invariants: &sp.invariants,
            };
            let idx = match acc.iter().position(|a| &a.merged.name == name) {
                Some(i) => {
                    if acc[i].key != key {
                        return Err(format!(
                            "{file}: {name} was explored differently from the other parts (search, space, --max, invariants, number of parts, or a sample's seed: give every part the same --seed)"
                        ));
                    }
                    i
                }
                None => {
                    acc.push(Acc {
                        merged: Merged {
                            name: name.clone(),
                            seed: sp.seed,
                            invariants: sp.invariants.clone(),
                            exploration: Exploration {
                                search: parse_search(&sp.search)
                                    .map_err(|e| format!("{file}: {name}: {e}"))?,
                                max: sp.max,
                                complete: true,
                                ..Exploration::default()
                            },
                        },
                        seen: Vec::new(),
                        parts: n,
                        key,
                        verdicts: Vec::new(),
                    });
                    acc.len() - 1
                }
            };
            let a = &mut acc[idx];
            if a.seen.contains(&k) {
                return Err(format!("{file}: part {k}/{n} of {name} is given twice"));
            }
            a.seen.push(k);
            let number = |what: &str, s: &str| -> Result<u128, String> {
                s.parse()
                    .map_err(|_| format!("{file}: {name}: \"{what}\" is not a number: {s}"))
            };
            let e = &mut a.merged.exploration;
            e.runs += sp.runs;
            e.unrealizable += u128::from(sp.unrealizable);
            e.space = sp.space.parse().ok();
            e.sampled = sp.sampled;
            e.complete &= sp.complete;
            e.cut_short |= sp.cut_short;
            e.elapsed = e
                .elapsed
                .max(std::time::Duration::from_secs_f64(sp.seconds.max(0.0)));
            for (i, v) in sp.per_k.iter().enumerate() {
                if e.per_k.len() <= i {
                    e.per_k.resize(i + 1, 0);
                }
                e.per_k[i] += number("per_k", v)?;
            }
            let mut classes = Vec::new();
            for c in &sp.classes {
                if let Some(v) = &c.anomaly {
                    a.verdicts.push((c.outcome.clone(), v.clone()));
                }
                classes.push(Class {
                    outcome: c.outcome.clone(),
                    count: u128::from(c.count),
                    runs: c.runs,
                    first: number("first", &c.first)?,
                    preemptions: c.preemptions,
                });
            }
            e.classes.merge(&classes);
            for err in &sp.errors {
                e.errors
                    .push((number("first", &err.first)?, err.message.clone()));
            }
        }
    }
    let mut out = Vec::new();
    for a in acc {
        let (mut m, seen, n) = (a.merged, a.seen, a.parts);
        for c in m.exploration.classes.list() {
            if let Some((_, v)) = a.verdicts.iter().find(|(o, _)| *o == c.outcome) {
                m.exploration.anomalies.insert(c.first, v.clone());
            }
        }
        if seen.len() != n {
            let mut missing: Vec<String> = (1..=n)
                .filter(|k| !seen.contains(k))
                .map(|k| format!("{k}/{n}"))
                .collect();
            missing.sort();
            return Err(format!("{}: missing parts {}", m.name, missing.join(", ")));
        }
        let e = &mut m.exploration;
        e.errors.sort_by_key(|(i, _)| *i);
        e.exhaustive = e.errors.is_empty() && e.space == Some(e.explored());
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_spaces_survive_the_round_trip_through_merge() {
        let text = "session a\nstep a1 { SELECT 1; }\nsession b\nstep b1 { SELECT 1; }\n";
        let spec = crate::spec::parse("t.spec", text.as_bytes()).unwrap();
        let checked = crate::spec::check("t.spec", spec).unwrap();
        let e = Exploration {
            space: Some(369_600),
            partition: Some((1, 1)),
            ..Exploration::default()
        };
        let doc = spec_document("t.spec", &checked, &e, 7, &[]);
        assert_eq!(doc.space, "369600");
        let merged = merge(&[("p.json".into(), ExploreDocument::new(vec![doc]))]).unwrap();
        assert_eq!(merged[0].exploration.space, Some(369_600));
    }

    #[test]
    fn documents_of_another_kind_or_version_are_refused() {
        let doc = ExploreDocument::new(Vec::new());
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(ExploreDocument::parse("a.json", &text).unwrap(), doc);
        let later = text.replace("\"format_version\":1", "\"format_version\":2");
        assert!(ExploreDocument::parse("a.json", &later)
            .unwrap_err()
            .contains("format version 2"));
        assert_eq!(
            ExploreDocument::parse("b.json", "{\"rows\": []}").unwrap_err(),
            "b.json: not an isospec explore --json file"
        );
        assert!(ExploreDocument::parse("c.json", "{\"specs\": []}")
            .unwrap_err()
            .contains("older than format versions"));
    }
}
