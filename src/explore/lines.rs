//! Permutation lines, as the spec's own syntax writes them: of an
//! interleaving, of a class's representative, of its shrunk form.  What
//! the terminal shows, `--write` appends and the JSON carries.

use super::classes::Class;
use super::space::Space;
use super::walk::{Exploration, Search};
use crate::spec::CheckedSpec;

/// The representative's permutation line of a class.
pub fn line(spec: &CheckedSpec, class: &Class) -> String {
    let interleaving = Space::of(spec)
        .nth(class.first)
        .expect("a class's index is in the space");
    interleaving_line(spec, &interleaving)
}

/// The permutation line of an interleaving (session numbers in the order
/// their steps run), as the spec's own syntax prints it.
pub fn interleaving_line(spec: &CheckedSpec, interleaving: &[usize]) -> String {
    let mut next = vec![0usize; spec.spec.sessions.len()];
    let steps: Vec<crate::spec::CheckedStep> = interleaving
        .iter()
        .map(|&s| {
            next[s] += 1;
            crate::spec::CheckedStep {
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

/// How a search is named in the JSON document (and read back).
pub fn search_word(search: &Search) -> String {
    match search {
        Search::Space => "space".into(),
        Search::Preemptions(k) => format!("preemptions {k}"),
        Search::RisingPreemptions => "preemptions auto".into(),
        Search::Reduced(_) => "reduced".into(),
    }
}

/// The search a document's `search` names (a reduction's commuting steps
/// are the spec's, worked out again by the reader).
pub fn parse_search(s: &str) -> Result<Search, String> {
    match s {
        "space" => Ok(Search::Space),
        "preemptions auto" => Ok(Search::RisingPreemptions),
        "reduced" => Ok(Search::Reduced(Vec::new())),
        s => s
            .strip_prefix("preemptions ")
            .and_then(|k| k.parse().ok())
            .map(Search::Preemptions)
            .ok_or_else(|| format!("unknown search \"{s}\"")),
    }
}
