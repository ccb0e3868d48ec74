//! Observers for `--shrink`: steps that only read, and whether what one
//! of them read tells a class's representative apart from an uneventful
//! run.  Such a step changes no outcome, so plain shrinking would drop
//! it, yet it is often what shows the anomaly in the pinned transcript
//! (a `SELECT * FROM ids` listing the duplicate); shrinking keeps it.

use crate::spec::sql::read_only;
use std::collections::HashMap;

/// The rows each step returned in one permutation, by step name (step
/// names are unique in a spec).  A step with several result sets has
/// them concatenated.
pub type StepRows = HashMap<String, Vec<Vec<Option<String>>>>;

/// The observers of a representative: the read-only steps among `steps`
/// (name and SQL) that returned rows in `shown` (the representative's
/// run) other than those they returned in `baseline` (an uneventful
/// run).  A step that did not run in the baseline, or that returned no
/// rows in the representative, is no observer.
pub fn observers<'a>(
    steps: impl IntoIterator<Item = (&'a str, &'a str)>,
    shown: &StepRows,
    baseline: &StepRows,
) -> Vec<String> {
    steps
        .into_iter()
        .filter(|(_, sql)| read_only(sql))
        .filter_map(|(name, _)| match (shown.get(name), baseline.get(name)) {
            (Some(a), Some(b)) if a != b => Some(name.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observer_is_a_read_that_shows_something_else_than_the_baseline() {
        let rows = |v: &[&str]| -> Vec<Vec<Option<String>>> {
            v.iter().map(|s| vec![Some(s.to_string())]).collect()
        };
        let mut shown = StepRows::new();
        let mut base = StepRows::new();
        shown.insert("look".into(), rows(&["1", "2", "2"]));
        base.insert("look".into(), rows(&["1", "2", "3"]));
        shown.insert("count".into(), rows(&["3"]));
        base.insert("count".into(), rows(&["3"]));
        shown.insert("i1".into(), rows(&["9"]));
        base.insert("i1".into(), rows(&["8"]));
        let steps = [
            ("look", "SELECT id FROM t ORDER BY id"),
            ("count", "SELECT count(*) FROM t"),
            ("i1", "INSERT INTO t VALUES (1) RETURNING id"),
            ("never", "SELECT 1"),
        ];
        assert_eq!(observers(steps, &shown, &base), vec!["look".to_string()]);
    }
}
