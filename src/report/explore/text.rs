//! An exploration as text: the terminal report of each spec, the preface
//! of a bounded or reduced search, and the permutation lines `--write`
//! appends to the spec.  Pure functions of an `Exploration`.

use crate::explore::bound;
use crate::explore::classes::{describe, Class};
use crate::explore::compare::Verdict;
use crate::explore::lines::{class_line, interleaving_line, line};
use crate::explore::space::Space;
use crate::explore::walk::{self, Exploration, Search};
use crate::spec::CheckedSpec;
pub use crate::words::{counted, thousands};

fn size_text(size: Option<u128>) -> String {
    size.map_or("more than 2^128".to_string(), thousands)
}

/// What a bounded or reduced search is about to run, printed before it
/// runs: the size of a preemption bound's part of the space, or the
/// commuting steps.
pub fn search_preface(
    name: &str,
    spec: &CheckedSpec,
    search: &Search,
    max: Option<u64>,
    budget: bool,
) -> String {
    let steps: Vec<usize> = spec.spec.sessions.iter().map(|s| s.steps.len()).collect();
    match search {
        Search::Space | Search::RisingPreemptions => String::new(),
        Search::Preemptions(k) => {
            let count = bound::count_bounded(&steps, *k);
            let limit = max.unwrap_or(walk::DEFAULT_MAX);
            let capped = match count {
                Some(_) if budget && max.is_none() => {
                    " (as many as --budget allows; more once steps are seen waiting)".to_string()
                }
                Some(c) if c > u128::from(limit) => {
                    format!(
                        " (the first {} of them: --max {limit})",
                        thousands(limit.into())
                    )
                }
                Some(_) => String::new(),
                None if budget && max.is_none() => " (as many as --budget allows)".to_string(),
                None => format!(" (at most {} of them: --max)", thousands(limit.into())),
            };
            format!(
                "{name}: K={k}: {} with at most {} (of {}); steps seen waiting add more{capped}\n",
                count.map_or("too many to count interleavings".to_string(), |n| {
                    counted(n, "interleaving", "interleavings")
                }),
                counted(*k as u64, "preemption", "preemptions"),
                size_text(Space::new(steps).size())
            )
        }
        Search::Reduced(commutes) => {
            let names: Vec<&str> = spec
                .spec
                .sessions
                .iter()
                .zip(commutes)
                .flat_map(|(s, c)| {
                    s.steps
                        .iter()
                        .zip(c)
                        .filter(|(_, &yes)| yes)
                        .map(|(st, _)| st.name.as_str())
                })
                .collect();
            if names.is_empty() {
                format!("{name}: no step commutes: nothing to reduce\n")
            } else {
                format!("{name}: commuting steps: {}\n", names.join(" "))
            }
        }
    }
}

/// The terminal report for one spec.
pub fn text(
    name: &str,
    spec: &CheckedSpec,
    e: &Exploration,
    seed: u64,
    invariants: &[String],
) -> String {
    let mut out = String::new();
    let steps: Vec<String> = spec
        .spec
        .sessions
        .iter()
        .map(|s| s.steps.len().to_string())
        .collect();
    let total_steps: usize = spec.spec.sessions.iter().map(|s| s.steps.len()).sum();
    out.push_str(&format!(
        "{name}: {} {} of {} ({} {})\n",
        size_text(e.space),
        if e.space == Some(1) {
            "interleaving"
        } else {
            "interleavings"
        },
        counted(spec.spec.sessions.len() as u64, "session", "sessions"),
        steps.join(" + "),
        if total_steps == 1 { "step" } else { "steps" }
    ));
    let secs = e.elapsed.as_secs_f64().max(1e-9);
    let how = if let Search::Preemptions(k) = e.search {
        format!(
            "{} with at most {}{}",
            counted(e.runs as u128, "interleaving", "interleavings"),
            counted(k as u64, "preemption", "preemptions"),
            if e.complete {
                ", all of them"
            } else {
                ", cut short"
            }
        )
    } else if e.search == Search::RisingPreemptions {
        let per: Vec<String> = e
            .per_k
            .iter()
            .enumerate()
            .map(|(k, n)| format!("K={k}: {}", thousands(*n)))
            .collect();
        format!(
            "{} by rising preemptions ({}){}",
            counted(e.runs as u128, "interleaving", "interleavings"),
            per.join(", "),
            if e.complete { ", all of them" } else { "" }
        )
    } else if let Search::Reduced(_) = e.search {
        format!(
            "{} standing for {}{} (reduction x{:.1})",
            counted(e.runs as u128, "interleaving", "interleavings"),
            thousands(e.explored()),
            if e.exhaustive { ", all of them" } else { "" },
            e.explored() as f64 / (e.runs.max(1)) as f64
        )
    } else if e.exhaustive {
        "all of them".to_string()
    } else if e.partition.is_some() && !e.sampled {
        counted(e.runs as u128, "interleaving", "interleavings")
    } else if !e.sampled {
        format!(
            "the first {} in the stable order before stopping",
            thousands(e.explored())
        )
    } else if e.interrupted {
        format!(
            "a uniform sample of {} (seed {seed})",
            thousands(e.explored())
        )
    } else {
        format!(
            "a uniform sample of {} (seed {seed}; --seed {seed} --max {} reproduces it)",
            e.explored(),
            e.explored()
        )
    };
    let part = e
        .partition
        .map_or(String::new(), |(k, n)| format!(" (part {k} of {n})"));
    out.push_str(&format!(
        "explored {how}{part} in {:.1} s ({:.1} interleavings/s)\n",
        e.elapsed.as_secs_f64(),
        e.runs as f64 / secs
    ));
    if !e.waiting.is_empty() {
        out.push_str(&format!(
            "moving on from a step that waits is no preemption; seen waiting: {}\n",
            e.waiting.join(" ")
        ));
    }
    let classes = e.classes.list();
    out.push_str(&format!(
        "{} over {}",
        counted(classes.len() as u64, "class", "classes"),
        counted(e.classes.explored(), "interleaving", "interleavings")
    ));
    if e.unrealizable > 0 {
        out.push_str(&format!(
            "; {} not realizable (a step was due while its session waited for a step not yet run)",
            e.unrealizable
        ));
    }
    out.push('\n');
    if !e.anomalies.is_empty() {
        out.push_str(&anomaly_summary(e));
    }
    // Anomalies and violations first (keeping their numbers); past 20
    // classes, the others one line per kind.
    let flagged = |c: &Class| {
        !c.outcome.violated.is_empty() || e.anomalies.get(&c.first).is_some_and(Verdict::is_anomaly)
    };
    let mut shown: Vec<(usize, &Class)> = classes
        .iter()
        .enumerate()
        .filter(|(_, c)| flagged(c))
        .collect();
    let rest: Vec<(usize, &Class)> = classes
        .iter()
        .enumerate()
        .filter(|(_, c)| !flagged(c))
        .collect();
    let summarised = classes.len() > SHOWN_CLASSES;
    if !summarised {
        shown.extend(rest.iter().copied());
    }
    for (k, c) in shown {
        out.push_str(&format!(
            "\nclass {} ({}, {}): {}\n",
            k + 1,
            counted(c.count, "interleaving", "interleavings"),
            counted(c.preemptions as u64, "preemption", "preemptions"),
            describe(&c.outcome)
        ));
        for &v in &c.outcome.violated {
            out.push_str(&format!(
                "  INVARIANT VIOLATED: {}\n",
                invariants.get(v).map_or("?", String::as_str)
            ));
        }
        if let Some(v) = e.anomalies.get(&c.first) {
            out.push_str(&format!("  {}\n", verdict_line(v)));
        }
        out.push_str(&format!("  {}\n", line(spec, c)));
        if let Some(steps) = e.shrunk.get(&c.first) {
            out.push_str(&format!("  shrunk: {}\n", spec.permutation_text(steps)));
        }
    }
    if summarised && !rest.is_empty() {
        out.push_str(&kinds(e, &rest));
    }
    for (index, message) in &e.errors {
        let interleaving = Space::of(spec).nth(*index).unwrap_or_default();
        out.push_str(&format!(
            "\nerror in {}: {message}\n",
            interleaving_line(spec, &interleaving)
        ));
    }
    out
}

/// Classes shown one by one; past this many, the classes with no anomaly
/// and no violation are summed up one line per kind.
pub const SHOWN_CLASSES: usize = 20;

/// A class's verdict, one line: `NOT SERIALIZABLE: …` stands out as
/// `INVARIANT VIOLATED` does.
pub fn verdict_line(v: &Verdict) -> String {
    match v {
        Verdict::Anomaly { .. } => {
            let d = v.describe();
            format!(
                "NOT SERIALIZABLE: {}",
                d.strip_prefix("not serializable: ").unwrap_or(&d)
            )
        }
        _ => v.describe(),
    }
}

/// `checked against serial orders: 2 not serializable, 5 serializable, 1 not checked`.
fn anomaly_summary(e: &Exploration) -> String {
    let (mut bad, mut good, mut not) = (0u64, 0u64, 0u64);
    for v in e.anomalies.values() {
        match v {
            Verdict::Anomaly { .. } => bad += 1,
            Verdict::Serializable { .. } => good += 1,
            Verdict::NotChecked { .. } => not += 1,
        }
    }
    let mut parts = vec![
        format!("{bad} not serializable"),
        format!("{good} serializable"),
    ];
    if not > 0 {
        parts.push(format!("{not} not checked"));
    }
    format!("checked against serial orders: {}\n", parts.join(", "))
}

/// The classes not shown, one line per kind (what happened, and the
/// verdict when checked), with their numbers.
fn kinds(e: &Exploration, rest: &[(usize, &Class)]) -> String {
    let mut by_kind: std::collections::BTreeMap<String, (u128, Vec<usize>)> = Default::default();
    for (k, c) in rest {
        let what = if !c.outcome.failures.is_empty() {
            "with failed steps"
        } else if !c.outcome.waited.is_empty() {
            "with waits, no failure"
        } else {
            "every step succeeded without waiting"
        };
        let verdict = match e.anomalies.get(&c.first) {
            Some(Verdict::Serializable { .. }) => "serializable, ",
            Some(Verdict::NotChecked { .. }) => "not checked, ",
            _ => "",
        };
        let entry = by_kind.entry(format!("{verdict}{what}")).or_default();
        entry.0 += c.count;
        entry.1.push(k + 1);
    }
    let mut out = format!(
        "\n{} more, by kind:\n",
        counted(rest.len() as u64, "class", "classes")
    );
    for (kind, (count, numbers)) in by_kind {
        let mut list: Vec<String> = numbers.iter().take(12).map(usize::to_string).collect();
        if numbers.len() > 12 {
            list.push("…".into());
        }
        out.push_str(&format!(
            "  {} ({}): {kind}: classes {}\n",
            counted(numbers.len() as u64, "class", "classes"),
            counted(count, "interleaving", "interleavings"),
            list.join(", ")
        ));
    }
    out.push_str("  (--json and --html list every class)\n");
    out
}

/// The text `--write` appends to the spec: each class's representative
/// line with a comment naming its outcome; lines already in the spec are
/// left out.  Empty when there is nothing new.
/// The `# isospec: outcome` and `# isospec: invariant` lines of the
/// queries given on the command line that the spec lacks: a violation
/// found with `--invariant` stays a failing test once the permutations are
/// pinned.  A query is one line (its line breaks become spaces).
pub fn given_directives(given: &crate::explore::driver::Given) -> String {
    if given.outcomes.is_empty() && given.invariants.is_empty() && !given.anomalies {
        return String::new();
    }
    let one_line = |q: &str| {
        q.split(['\n', '\r'])
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = String::from("\n# isospec explore: the queries given on its command line\n");
    for q in &given.outcomes {
        out.push_str(&format!("# isospec: outcome {}\n", one_line(q)));
    }
    for q in &given.invariants {
        out.push_str(&format!("# isospec: invariant {}\n", one_line(q)));
    }
    if given.anomalies {
        out.push_str("# isospec: anomalies\n");
    }
    out
}

pub fn appendix(spec: &CheckedSpec, e: &Exploration, existing: &str) -> String {
    let have: Vec<String> = existing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut out = String::new();
    for (k, c) in e.classes.list().iter().enumerate() {
        let l = class_line(spec, e, c);
        if have.contains(&l) {
            continue;
        }
        let verdict = e
            .anomalies
            .get(&c.first)
            .filter(|v| v.is_anomaly())
            .map_or(String::new(), |v| format!("\n# {}", verdict_line(v)));
        out.push_str(&format!(
            "\n# isospec explore, class {} ({}): {}{verdict}\n{l}\n",
            k + 1,
            counted(c.count, "interleaving", "interleavings"),
            describe(&c.outcome)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(63_063_000), "63,063,000");
    }

    #[test]
    fn lines_follow_each_sessions_order_and_quote_names() {
        let text = "session a\nstep r1 { SELECT 1; }\nstep w1 { SELECT 1; }\n\
                    session b\nstep \"r 2\" { SELECT 1; }\nstep w2 { SELECT 1; }\n";
        let spec = crate::spec::parse("t.spec", text.as_bytes()).unwrap();
        let checked = crate::spec::check("t.spec", spec).unwrap();
        assert_eq!(
            interleaving_line(&checked, &[0, 1, 1, 0]),
            "permutation r1 \"r 2\" w2 w1"
        );
    }
}
