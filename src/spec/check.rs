//! Semantic checks of a parsed spec, with isolationtester's messages, and the
//! resolution of permutation steps and markers to sessions and steps.

use super::{Blocker, Pos, TestSpec};
use std::collections::BTreeMap;
use std::fmt;

/// A resolved marker of a permutation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckedBlocker {
    /// `(*)`
    Once,
    /// `(other)`: blocked while `other` (session, step index) is active.
    OtherStep { session: usize, step: usize },
    /// `(other notices N)`: blocked until `other`'s session has sent `count`
    /// more notices.
    Notices {
        session: usize,
        step: usize,
        count: i64,
    },
}

/// One step of a permutation, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedStep {
    pub session: usize,
    pub step: usize,
    pub blockers: Vec<CheckedBlocker>,
}

impl CheckedSpec {
    /// The `permutation` line of a resolved permutation, in the spec's own
    /// syntax (names quoted where needed, markers included): the one way
    /// isospec prints a permutation (`list`, explore's lines).
    pub fn permutation_text(&self, steps: &[CheckedStep]) -> String {
        let name =
            |session: usize, step: usize| self.spec.sessions[session].steps[step].name.clone();
        let p = super::Permutation {
            pos: Default::default(),
            steps: steps
                .iter()
                .map(|ps| super::PermutationStep {
                    name: name(ps.session, ps.step),
                    pos: Default::default(),
                    blockers: ps
                        .blockers
                        .iter()
                        .map(|b| match b {
                            CheckedBlocker::Once => super::Blocker::Once {
                                pos: Default::default(),
                            },
                            CheckedBlocker::OtherStep { session, step } => {
                                super::Blocker::OtherStep {
                                    step: name(*session, *step),
                                    pos: Default::default(),
                                }
                            }
                            CheckedBlocker::Notices {
                                session,
                                step,
                                count,
                            } => super::Blocker::Notices {
                                step: name(*session, *step),
                                count: *count,
                                pos: Default::default(),
                            },
                        })
                        .collect(),
                })
                .collect(),
        };
        p.to_string()
    }
}

/// A spec that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedSpec {
    pub spec: TestSpec,
    /// Explicit permutations, resolved; empty when the spec has none.
    pub permutations: Vec<Vec<CheckedStep>>,
    /// isolationtester's warnings (`unused step name: X`), in its order.
    pub warnings: Vec<String>,
}

/// Semantic errors of one spec.  `messages()` gives isolationtester's texts.
#[derive(Debug, Clone, thiserror::Error)]
pub struct CheckError {
    pub file: String,
    /// (position, isolationtester's message), in isolationtester's order.
    pub errors: Vec<(Pos, String)>,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (pos, msg)) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: error: {}", self.file, pos, msg)?;
        }
        Ok(())
    }
}

/// Checks a parsed spec and resolves its permutations.
pub fn check(file: &str, spec: TestSpec) -> Result<CheckedSpec, CheckError> {
    let mut errors = Vec::new();
    // name -> (session, step); BTreeMap iterates in strcmp order like
    // isolationtester's sorted step table.
    let mut by_name: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (si, session) in spec.sessions.iter().enumerate() {
        for (ti, step) in session.steps.iter().enumerate() {
            if let Some(&(s0, t0)) = by_name.get(step.name.as_str()) {
                let first = &spec.sessions[s0].steps[t0];
                let _ = first;
                errors.push((step.pos, format!("duplicate step name: {}", step.name)));
            } else {
                by_name.insert(&step.name, (si, ti));
            }
        }
    }
    errors.sort_by(|a, b| a.1.cmp(&b.1));
    for (name, pos) in &spec.options.commutes {
        if !by_name.contains_key(name.as_str()) {
            errors.push((
                *pos,
                format!("undefined step \"{name}\" in isospec: commutes"),
            ));
        }
    }
    for (name, pos) in &spec.options.volatile {
        if !by_name.contains_key(name.as_str()) {
            errors.push((
                *pos,
                format!("undefined step \"{name}\" in isospec: volatile"),
            ));
        }
    }

    let mut used = vec![vec![false; 0]; spec.sessions.len()];
    for (si, s) in spec.sessions.iter().enumerate() {
        used[si] = vec![false; s.steps.len()];
    }
    let mut permutations = Vec::new();
    for p in &spec.permutations {
        let mut resolved = Vec::new();
        for ps in &p.steps {
            match by_name.get(ps.name.as_str()) {
                Some(&(si, ti)) => {
                    used[si][ti] = true;
                    resolved.push(CheckedStep {
                        session: si,
                        step: ti,
                        blockers: Vec::new(),
                    });
                }
                None => errors.push((
                    ps.pos,
                    format!("undefined step \"{}\" specified in permutation", ps.name),
                )),
            }
        }
        if resolved.len() != p.steps.len() {
            continue;
        }
        for (j, ps) in p.steps.iter().enumerate() {
            for b in &ps.blockers {
                let (name, pos) = match b {
                    Blocker::Once { .. } => {
                        resolved[j].blockers.push(CheckedBlocker::Once);
                        continue;
                    }
                    Blocker::OtherStep { step, pos } | Blocker::Notices { step, pos, .. } => {
                        (step, *pos)
                    }
                };
                // Only steps of this permutation can be concurrent with it.
                let target = p
                    .steps
                    .iter()
                    .position(|o| &o.name == name)
                    .map(|k| (resolved[k].session, resolved[k].step));
                let Some((bs, bt)) = target else {
                    errors.push((
                        pos,
                        format!(
                            "undefined blocking step \"{}\" referenced in permutation step \"{}\"",
                            name, ps.name
                        ),
                    ));
                    continue;
                };
                if bs == resolved[j].session {
                    errors.push((
                        pos,
                        format!(
                            "permutation step \"{}\" cannot block on its own session",
                            ps.name
                        ),
                    ));
                    continue;
                }
                resolved[j].blockers.push(match b {
                    Blocker::Notices { count, .. } => CheckedBlocker::Notices {
                        session: bs,
                        step: bt,
                        count: *count,
                    },
                    _ => CheckedBlocker::OtherStep {
                        session: bs,
                        step: bt,
                    },
                });
            }
        }
        permutations.push(resolved);
    }
    if !errors.is_empty() {
        return Err(CheckError {
            file: file.to_string(),
            errors,
        });
    }
    let mut warnings = Vec::new();
    if !spec.permutations.is_empty() {
        for (name, &(si, ti)) in &by_name {
            if !used[si][ti] {
                warnings.push(format!("unused step name: {name}"));
            }
        }
    }
    Ok(CheckedSpec {
        spec,
        permutations,
        warnings,
    })
}

impl CheckedSpec {
    /// Number of permutations that will run (explicit ones, or every
    /// interleaving).  Saturates at `u128::MAX` for absurd specs.
    pub fn permutation_count(&self) -> u128 {
        if !self.permutations.is_empty() {
            return self.permutations.len() as u128;
        }
        // Multinomial coefficient: (sum n_i)! / prod(n_i!)
        let mut total: u128 = 1;
        let mut k: u128 = 0;
        for s in &self.spec.sessions {
            for i in 1..=s.steps.len() as u128 {
                k += 1;
                total = match total.checked_mul(k) {
                    Some(v) => v / i,
                    None => return u128::MAX,
                };
            }
        }
        total
    }

    /// Iterates the permutations to run, in isolationtester's order.
    pub fn iter_permutations(&self) -> Box<dyn Iterator<Item = Vec<CheckedStep>> + Send + '_> {
        if !self.permutations.is_empty() {
            return Box::new(self.permutations.iter().cloned());
        }
        let counts: Vec<usize> = self.spec.sessions.iter().map(|s| s.steps.len()).collect();
        Box::new(AllPermutations::new(&counts))
    }
}

/// Every interleaving of the sessions' steps, in the order isolationtester's
/// recursive pile-picking produces them: that order is exactly the
/// lexicographic order of session-index sequences, so it is generated with a
/// multiset next-permutation step and needs no recursion.
pub struct AllPermutations {
    seq: Option<Vec<usize>>,
    nsessions: usize,
}

impl AllPermutations {
    pub fn new(counts: &[usize]) -> Self {
        let mut seq = Vec::new();
        for (i, &n) in counts.iter().enumerate() {
            seq.extend(std::iter::repeat_n(i, n));
        }
        AllPermutations {
            seq: Some(seq),
            nsessions: counts.len(),
        }
    }
}

impl Iterator for AllPermutations {
    type Item = Vec<CheckedStep>;

    fn next(&mut self) -> Option<Vec<CheckedStep>> {
        let seq = self.seq.as_mut()?;
        let mut next_idx = vec![0usize; self.nsessions];
        let out = seq
            .iter()
            .map(|&s| {
                let step = next_idx[s];
                next_idx[s] += 1;
                CheckedStep {
                    session: s,
                    step,
                    blockers: Vec::new(),
                }
            })
            .collect();
        // Advance to the next lexicographic arrangement.
        let n = seq.len();
        let mut i = n.wrapping_sub(1);
        let mut found = false;
        while i > 0 && i < n {
            if seq[i - 1] < seq[i] {
                found = true;
                break;
            }
            i -= 1;
        }
        if !found {
            self.seq = None;
        } else {
            let pivot = i - 1;
            let mut j = n - 1;
            while seq[j] <= seq[pivot] {
                j -= 1;
            }
            seq.swap(pivot, j);
            seq[i..].reverse();
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    fn checked(src: &str) -> Result<CheckedSpec, CheckError> {
        check("t.spec", parse("t.spec", src.as_bytes()).unwrap())
    }

    fn names(c: &CheckedSpec, p: &[CheckedStep]) -> String {
        p.iter()
            .map(|s| c.spec.sessions[s.session].steps[s.step].name.clone())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn all_permutations_in_isolationtester_order() {
        let c = checked(
            "session a step a1 {x} step a2 {x}\nsession b step b1 {x}\nsession c step c1 {x}",
        )
        .unwrap();
        let all: Vec<String> = c.iter_permutations().map(|p| names(&c, &p)).collect();
        // Reference: the recursive pile algorithm of isolationtester.
        fn rec(
            piles: &mut Vec<usize>,
            counts: &[usize],
            cur: &mut Vec<usize>,
            out: &mut Vec<Vec<usize>>,
        ) {
            let mut found = false;
            for i in 0..counts.len() {
                if piles[i] < counts[i] {
                    cur.push(i);
                    piles[i] += 1;
                    rec(piles, counts, cur, out);
                    piles[i] -= 1;
                    cur.pop();
                    found = true;
                }
            }
            if !found {
                out.push(cur.clone());
            }
        }
        let mut reference = Vec::new();
        rec(&mut vec![0; 3], &[2, 1, 1], &mut Vec::new(), &mut reference);
        assert_eq!(all.len(), reference.len());
        assert_eq!(all.len() as u128, c.permutation_count());
        assert_eq!(all.len(), 12);
        assert_eq!(all[0], "a1 a2 b1 c1");
        assert_eq!(all[1], "a1 a2 c1 b1");
        assert_eq!(all[2], "a1 b1 a2 c1");
        assert_eq!(all.last().unwrap(), "c1 b1 a1 a2");
        let ref_names: Vec<String> = reference
            .iter()
            .map(|seq| {
                let mut idx = [0usize; 3];
                seq.iter()
                    .map(|&s| {
                        let st = idx[s];
                        idx[s] += 1;
                        c.spec.sessions[s].steps[st].name.clone()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(all, ref_names);
    }

    #[test]
    fn single_session_single_permutation() {
        let c = checked("session a step a1 {x}").unwrap();
        assert_eq!(c.iter_permutations().count(), 1);
    }

    #[test]
    fn unused_warnings_sorted() {
        let c = checked("session a step zz {x} step a2 {x}\nsession b step b1 {x}\npermutation b1")
            .unwrap();
        assert_eq!(
            c.warnings,
            vec!["unused step name: a2", "unused step name: zz"]
        );
        let c = checked("session a step zz {x} step a2 {x}").unwrap();
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn errors_with_isolationtester_messages() {
        let e = checked("session a step x {1} step y {1}\nsession b step x {2}").unwrap_err();
        assert_eq!(e.to_string(), "t.spec:2:16: error: duplicate step name: x");
        let e = checked("session a step x {1}\nsession b step y {2}\npermutation x z").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.spec:3:15: error: undefined step \"z\" specified in permutation"
        );
        let e =
            checked("session a step x {1}\nsession b step y {2}\npermutation x(q) y").unwrap_err();
        assert_eq!(e.to_string(), "t.spec:3:15: error: undefined blocking step \"q\" referenced in permutation step \"x\"");
        let e =
            checked("session a step x {1} step w {1}\nsession b step y {2}\npermutation x(w) w y")
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.spec:3:15: error: permutation step \"x\" cannot block on its own session"
        );
    }

    #[test]
    fn blockers_resolved() {
        let c = checked(
            "session a step x {1}\nsession b step y {2}\npermutation x(*, y, y notices 2) y",
        )
        .unwrap();
        assert_eq!(
            c.permutations[0][0].blockers,
            vec![
                CheckedBlocker::Once,
                CheckedBlocker::OtherStep {
                    session: 1,
                    step: 0
                },
                CheckedBlocker::Notices {
                    session: 1,
                    step: 0,
                    count: 2
                }
            ]
        );
    }
}
