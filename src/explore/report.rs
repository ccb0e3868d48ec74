//! What `isospec explore` prints and writes: the classes as text for the
//! terminal, as JSON for tooling, and as permutation lines appended to the
//! spec (`--write`).  Pure functions of an `Exploration`.

use super::classes::{describe, Class};
use super::space::Space;
use super::walk::Exploration;
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

fn size_text(size: Option<u128>) -> String {
    size.map_or("more than 2^128".to_string(), |s| s.to_string())
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
        "{name}: {} interleavings of {} sessions ({} steps)\n",
        size_text(e.space),
        spec.spec.sessions.len(),
        steps.join(" + ")
    ));
    let secs = e.elapsed.as_secs_f64().max(1e-9);
    let how = if e.exhaustive {
        "all of them".to_string()
    } else if !e.sampled {
        format!(
            "the first {} in the stable order before stopping",
            e.explored()
        )
    } else if e.interrupted {
        format!("a uniform sample of {} (seed {seed})", e.explored())
    } else {
        format!(
            "a uniform sample of {} (seed {seed}; --seed {seed} --max {} reproduces it)",
            e.explored(),
            e.explored()
        )
    };
    out.push_str(&format!(
        "explored {how} in {:.1} s ({:.1} interleavings/s)\n",
        e.elapsed.as_secs_f64(),
        e.explored() as f64 / secs
    ));
    let classes = e.classes.list();
    out.push_str(&format!(
        "{} classes over {} interleavings",
        classes.len(),
        e.classes.explored()
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
            "\nclass {} ({} interleavings): {}\n",
            k + 1,
            c.count,
            describe(&c.outcome)
        ));
        for &v in &c.outcome.violated {
            out.push_str(&format!(
                "  INVARIANT VIOLATED: {}\n",
                invariants.get(v).map_or("?", String::as_str)
            ));
        }
        out.push_str(&format!("  {}\n", line(spec, c)));
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
                "count": c.count,
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
        "explored": e.explored(),
        "unrealizable": e.unrealizable,
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
        let l = line(spec, c);
        if have.contains(&l) {
            continue;
        }
        out.push_str(&format!(
            "\n# isospec explore, class {} ({} interleavings): {}\n{l}\n",
            k + 1,
            c.count,
            describe(&c.outcome)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
