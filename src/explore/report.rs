//! What `isospec explore` prints and writes: the classes as text for the
//! terminal, as JSON for tooling, and as permutation lines appended to the
//! spec (`--write`).  Pure functions of an `Exploration`.

use super::bound;
use super::classes::{describe, Class, Outcome};
use super::space::Space;
use super::walk::{Exploration, Search};
use crate::spec::CheckedSpec;

fn space_of(spec: &CheckedSpec) -> Space {
    Space::new(spec.spec.sessions.iter().map(|s| s.steps.len()).collect())
}

/// The representative's permutation line of a class.
pub fn line(spec: &CheckedSpec, class: &Class) -> String {
    let interleaving = space_of(spec)
        .nth(class.first)
        .expect("a class's index is in the space");
    interleaving_line(spec, &interleaving)
}

/// The permutation line of an interleaving (session numbers in the order
/// their steps run), as the spec's own syntax prints it.
pub fn interleaving_line(spec: &CheckedSpec, interleaving: &[usize]) -> String {
    let mut next = vec![0usize; spec.spec.sessions.len()];
    let steps: Vec<crate::spec::PStep> = interleaving
        .iter()
        .map(|&s| {
            next[s] += 1;
            crate::spec::PStep {
                session: s,
                step: next[s] - 1,
                blockers: Vec::new(),
            }
        })
        .collect();
    spec.permutation_text(&steps)
}

/// The line a class is shown and pinned with: its shrunk representative
/// (`--shrink`), else its representative.
pub fn class_line(spec: &CheckedSpec, e: &Exploration, class: &Class) -> String {
    match e.shrunk.get(&class.first) {
        Some(steps) => spec.permutation_text(steps),
        None => line(spec, class),
    }
}

fn size_text(size: Option<u128>) -> String {
    size.map_or("more than 2^128".to_string(), thousands)
}

/// "1 interleaving", "5,280 interleavings": grouped as every number of a
/// line is.
fn counted(n: u128, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// 1234567 as "1,234,567".
pub fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// "1 class", "3 classes".
fn plural_es(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "es" })
}

/// What a bounded or reduced search is about to run, printed before it
/// runs: the size of a preemption bound's part of the space, or the
/// commuting steps.
pub fn search_preface(name: &str, spec: &CheckedSpec, search: &Search, max: Option<u64>) -> String {
    let steps: Vec<usize> = spec.spec.sessions.iter().map(|s| s.steps.len()).collect();
    match search {
        Search::Space | Search::RisingPreemptions => String::new(),
        Search::Preemptions(k) => {
            let count = bound::count_bounded(&steps, *k);
            let limit = max.unwrap_or(super::walk::DEFAULT_MAX);
            let capped = match count {
                Some(c) if c > u128::from(limit) => {
                    format!(
                        " (the first {} of them: --max {limit})",
                        thousands(limit.into())
                    )
                }
                Some(_) => String::new(),
                None => format!(" (at most {} of them: --max)", thousands(limit.into())),
            };
            format!(
                "{name}: K={k}: {} interleavings with at most {} (of {}){capped}\n",
                count.map_or("too many to count".to_string(), thousands),
                plural(*k, "preemption"),
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
    out.push_str(&format!(
        "{name}: {} {} of {} ({} steps)\n",
        size_text(e.space),
        if e.space == Some(1) {
            "interleaving"
        } else {
            "interleavings"
        },
        plural(spec.spec.sessions.len(), "session"),
        steps.join(" + ")
    ));
    let secs = e.elapsed.as_secs_f64().max(1e-9);
    let how = if let Search::Preemptions(k) = e.search {
        format!(
            "{} with at most {}{}",
            counted(e.runs as u128, "interleaving", "interleavings"),
            plural(k, "preemption"),
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
    let classes = e.classes.list();
    out.push_str(&format!(
        "{} over {}",
        plural_es(classes.len(), "class"),
        counted(e.classes.explored(), "interleaving", "interleavings")
    ));
    if e.unrealizable > 0 {
        out.push_str(&format!(
            "; {} not realizable (a step was due while its session waited for a step not yet run)",
            e.unrealizable
        ));
    }
    out.push('\n');
    for (k, c) in classes.iter().enumerate() {
        out.push_str(&format!(
            "\nclass {} ({}, {}): {}\n",
            k + 1,
            counted(c.count, "interleaving", "interleavings"),
            plural(c.preemptions, "preemption"),
            describe(&c.outcome)
        ));
        for &v in &c.outcome.violated {
            out.push_str(&format!(
                "  INVARIANT VIOLATED: {}\n",
                invariants.get(v).map_or("?", String::as_str)
            ));
        }
        out.push_str(&format!("  {}\n", line(spec, c)));
        if let Some(steps) = e.shrunk.get(&c.first) {
            out.push_str(&format!("  shrunk: {}\n", spec.permutation_text(steps)));
        }
    }
    for (index, message) in &e.errors {
        let interleaving = space_of(spec).nth(*index).unwrap_or_default();
        out.push_str(&format!(
            "\nerror in {}: {message}\n",
            interleaving_line(spec, &interleaving)
        ));
    }
    out
}

/// One spec's exploration as a JSON value.
pub fn json(
    name: &str,
    spec: &CheckedSpec,
    e: &Exploration,
    seed: u64,
    invariants: &[String],
) -> serde_json::Value {
    let classes: Vec<serde_json::Value> = e
        .classes
        .list()
        .iter()
        .map(|c| {
            serde_json::json!({
                "count": u64::try_from(c.count).unwrap_or(u64::MAX),
                "runs": c.runs,
                "preemptions": c.preemptions,
                "outcome": c.outcome,
                "shrunk": e.shrunk.get(&c.first).map(|s| spec.permutation_text(s)),
                // The representative's index in the stable order (a string:
                // it may exceed what JSON numbers hold exactly).
                "first": c.first.to_string(),
                "permutation": line(spec, c),
                "description": describe(&c.outcome),
                "failures": c.outcome.failures.iter().map(|f| serde_json::json!({
                    "step": f.step, "sqlstate": f.sqlstate, "message": f.message,
                })).collect::<Vec<_>>(),
                "waited": c.outcome.waited,
                "results": c.outcome.results,
                "violated": c.outcome.violated.iter()
                    .map(|&v| invariants.get(v).map_or("?", String::as_str))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "spec": name,
        "space": size_text(e.space),
        "exhaustive": e.exhaustive,
        "sampled": e.sampled,
        "cut_short": e.cut_short,
        "seed": seed,
        "search": search_word(&e.search),
        "max": e.max,
        "partition": e.partition.map(|(k, n)| format!("{k}/{n}")),
        "complete": e.complete,
        "per_k": e.per_k.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "runs": e.runs,
        "invariants": invariants,
        "explored": u64::try_from(e.explored()).unwrap_or(u64::MAX),
        "unrealizable": u64::try_from(e.unrealizable).unwrap_or(u64::MAX),
        "seconds": e.elapsed.as_secs_f64(),
        "classes": classes,
        "errors": e.errors.iter().map(|(i, m)| serde_json::json!({
            "first": i.to_string(), "message": m,
        })).collect::<Vec<_>>(),
    })
}

/// The text `--write` appends to the spec: each class's representative
/// line with a comment naming its outcome; lines already in the spec are
/// left out.  Empty when there is nothing new.
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
        out.push_str(&format!(
            "\n# isospec explore, class {} ({}): {}\n{l}\n",
            k + 1,
            counted(c.count, "interleaving", "interleavings"),
            describe(&c.outcome)
        ));
    }
    out
}

fn search_word(search: &Search) -> String {
    match search {
        Search::Space => "space".into(),
        Search::Preemptions(k) => format!("preemptions {k}"),
        Search::RisingPreemptions => "preemptions auto".into(),
        Search::Reduced(_) => "reduced".into(),
    }
}

/// One spec's exploration put together from its parts' JSON.
pub struct Merged {
    pub name: String,
    pub seed: u64,
    pub invariants: Vec<String>,
    pub exploration: Exploration,
}

/// Combines the `--json` files of the parts of one partitioned
/// exploration (same specs, search, seed and number of parts; each part
/// once) into what one exploration of the whole reports.
pub fn merge(parts: &[(String, serde_json::Value)]) -> Result<Vec<Merged>, String> {
    let field =
        |file: &str, v: &serde_json::Value, key: &str| -> Result<serde_json::Value, String> {
            v.get(key)
                .cloned()
                .ok_or_else(|| format!("{file}: not an isospec explore --json file (no \"{key}\")"))
        };
    let mut merged: Vec<(Merged, Vec<usize>, usize, serde_json::Value)> = Vec::new();
    for (file, doc) in parts {
        let specs = field(file, doc, "specs")?;
        for sp in specs.as_array().into_iter().flatten() {
            let name = field(file, sp, "spec")?
                .as_str()
                .unwrap_or_default()
                .to_string();
            let partition = field(file, sp, "partition")?;
            let (k, n) = partition
                .as_str()
                .and_then(|p| p.split_once('/'))
                .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
                .ok_or_else(|| format!("{file}: {name} was not explored with --partition"))?;
            // The seed matters only to a sample: every part must draw the
            // same one.
            let sampled = field(file, sp, "sampled")?.as_bool().unwrap_or(false);
            let seed = if sampled {
                field(file, sp, "seed")?
            } else {
                serde_json::Value::Null
            };
            let key = serde_json::json!([
                field(file, sp, "search")?,
                seed,
                field(file, sp, "space")?,
                n,
                field(file, sp, "max")?,
                field(file, sp, "invariants")?,
            ]);
            if k == 0 || k > n {
                return Err(format!("{file}: {name}: part {k}/{n} is not a part of {n}"));
            }
            let idx = match merged.iter().position(|(m, _, _, _)| m.name == name) {
                Some(i) => {
                    if merged[i].3 != key {
                        return Err(format!(
                            "{file}: {name} was explored differently from the other parts (search, space, --max, invariants, number of parts, or a sample's seed: give every part the same --seed)"
                        ));
                    }
                    i
                }
                None => {
                    let seed = field(file, sp, "seed")?.as_u64().unwrap_or(0);
                    let invariants = serde_json::from_value(field(file, sp, "invariants")?)
                        .map_err(|e| format!("{file}: {e}"))?;
                    let search = match field(file, sp, "search")?.as_str().unwrap_or("") {
                        "space" => Search::Space,
                        "preemptions auto" => Search::RisingPreemptions,
                        "reduced" => Search::Reduced(Vec::new()),
                        s => Search::Preemptions(
                            s.trim_start_matches("preemptions ").parse().unwrap_or(0),
                        ),
                    };
                    merged.push((
                        Merged {
                            name: name.clone(),
                            seed,
                            invariants,
                            exploration: Exploration {
                                search,
                                max: field(file, sp, "max")?.as_u64(),
                                complete: true,
                                ..Exploration::default()
                            },
                        },
                        Vec::new(),
                        n,
                        key,
                    ));
                    merged.len() - 1
                }
            };
            let (m, seen, _, _) = &mut merged[idx];
            if seen.contains(&k) {
                return Err(format!("{file}: part {k}/{n} of {name} is given twice"));
            }
            seen.push(k);
            let e = &mut m.exploration;
            let num = |key: &str| -> Result<u128, String> {
                let v = field(file, sp, key)?;
                v.as_u64()
                    .map(u128::from)
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| format!("{file}: {name}: \"{key}\" is not a number"))
            };
            e.runs += num("runs")? as u64;
            e.unrealizable += num("unrealizable")?;
            e.space = field(file, sp, "space")?
                .as_str()
                .and_then(|s| s.parse().ok());
            e.sampled = field(file, sp, "sampled")?.as_bool().unwrap_or(false);
            e.complete &= field(file, sp, "complete")?.as_bool().unwrap_or(false);
            e.cut_short |= field(file, sp, "cut_short")?.as_bool().unwrap_or(false);
            e.elapsed = e.elapsed.max(std::time::Duration::from_secs_f64(
                field(file, sp, "seconds")?.as_f64().unwrap_or(0.0),
            ));
            for (i, v) in field(file, sp, "per_k")?
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if e.per_k.len() <= i {
                    e.per_k.resize(i + 1, 0);
                }
                e.per_k[i] += v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            let mut classes = Vec::new();
            for c in field(file, sp, "classes")?.as_array().into_iter().flatten() {
                let outcome: Outcome = serde_json::from_value(field(file, c, "outcome")?)
                    .map_err(|e| format!("{file}: {name}: {e}"))?;
                let count = field(file, c, "count")?;
                classes.push(Class {
                    outcome,
                    count: count
                        .as_u64()
                        .map(u128::from)
                        .or_else(|| count.as_str().and_then(|s| s.parse().ok()))
                        .unwrap_or(0),
                    runs: field(file, c, "runs")?.as_u64().unwrap_or(0),
                    first: field(file, c, "first")?
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                    preemptions: field(file, c, "preemptions")?.as_u64().unwrap_or(0) as usize,
                });
            }
            e.classes.merge(&classes);
            for err in field(file, sp, "errors")?.as_array().into_iter().flatten() {
                let first = err["first"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                e.errors
                    .push((first, err["message"].as_str().unwrap_or("").to_string()));
            }
        }
    }
    let mut out = Vec::new();
    for (mut m, seen, n, _) in merged {
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
