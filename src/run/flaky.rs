//! Flake hunting over repeated passes: the distinct transcripts each spec
//! gave, and the report of those that gave more than one.

use super::RunConfig;
use crate::outcome::{FlakyReport, RunEvent};

/// Distinct transcripts seen for one spec over repeated runs.
#[derive(Debug, Default)]
pub(super) struct Variants {
    seen: Vec<(String, usize)>,
}

impl Variants {
    pub(super) fn add(&mut self, text: &str) {
        match self.seen.iter_mut().find(|(t, _)| t == text) {
            Some((_, n)) => *n += 1,
            None => self.seen.push((text.to_string(), 1)),
        }
    }
}

/// The specs that gave more than one transcript, each as an event
/// (`Flaky`, with the diffs between them, or `Stable`).
pub(super) fn flaky_reports(cfg: &RunConfig, variants: &[Variants]) -> Vec<RunEvent> {
    if cfg.repeat <= 1 && !cfg.until_fail {
        return Vec::new();
    }
    let mut events = Vec::new();
    for (t, v) in cfg.tests.iter().zip(variants) {
        if v.seen.len() > 1 {
            let diffs = v
                .seen
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, (text, _))| {
                    crate::differ::unified_diff(
                        &v.seen[0].0,
                        text,
                        &format!("{} #1", t.name),
                        &format!("{} #{}", t.name, i + 1),
                    )
                })
                .collect();
            events.push(RunEvent::Flaky(FlakyReport {
                name: t.name.clone(),
                counts: v.seen.iter().map(|(_, n)| *n).collect(),
                diffs,
            }));
        } else if let Some((_, n)) = v.seen.first() {
            events.push(RunEvent::Stable {
                name: t.name.clone(),
                runs: *n,
            });
        }
    }
    events
}
