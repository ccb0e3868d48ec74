//! Systematic searches that go beyond `--max`: preemption bounding and
//! commuting steps.
//!
//! - Preemption bounding (CHESS's iterative context bounding): most
//!   concurrency bugs need few preemptions, and the interleavings with at
//!   most K preemptions are few.  A preemption is a switch away from a
//!   session that still had a step to run, by choice: as in CHESS, moving
//!   on from a session whose step waits on a lock is forced, and free.
//!   Which steps wait is learnt while the walk runs (`Free`: a step seen
//!   waiting in any run makes the switch after it free from then on, and
//!   the walk starts again over the larger set, skipping what ran); the
//!   count printed first is the one with no step known to wait.  With
//!   `--partition` nothing is learnt, so that the parts split one set.
//! - Commuting steps (partial-order reduction): a step that takes no
//!   snapshot and touches no data (`BEGIN`, `SET`, …, or one the spec
//!   declares with `# isospec: commutes STEP…`) gives the same outcome
//!   wherever it runs among other sessions' steps, so interleavings that
//!   differ only by moving it are one class (a Mazurkiewicz trace).  Only
//!   the lexicographically least member of each trace runs (the
//!   lexicographic normal form, which is also its first member in the
//!   space's stable order), counted for the trace's every member.
//!
//! Both are depth-first walks in the space's stable order (the lowest
//! session first), so they yield interleavings in increasing index.

use super::space::Interleaving;
use std::collections::HashMap;

/// Which interleavings a walk keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// At most this many preemptions.
    Preemptions(usize),
    /// One per trace: `commutes[s][i]` says step `i` of session `s`
    /// commutes with every step of other sessions.
    Reduced(Vec<Vec<bool>>),
}

/// The steps after which a switch to another session is free (they were
/// seen waiting on a lock): `free[s][i]` for step `i` of session `s`.
/// Empty: no step.
pub type Free = Vec<Vec<bool>>;

fn is_free(free: &Free, s: usize, i: usize) -> bool {
    free.get(s).and_then(|f| f.get(i)).copied().unwrap_or(false)
}

/// The preemptions of an interleaving: switches away from a session that
/// still had a step to run, other than after a step in `free`.
pub fn preemptions(interleaving: &[usize], steps: &[usize], free: &Free) -> usize {
    let mut left = steps.to_vec();
    let mut n = 0;
    for w in interleaving.windows(2) {
        left[w[0]] -= 1;
        let ran = steps[w[0]] - left[w[0]] - 1;
        if w[0] != w[1] && left[w[0]] > 0 && !is_free(free, w[0], ran) {
            n += 1;
        }
    }
    n
}

/// A depth-first walk over the interleavings a rule keeps, in the space's
/// stable order.
pub struct Walk {
    rule: Rule,
    /// Switches after these steps are free (`Rule::Preemptions`).
    free: Free,
    steps: Vec<usize>,
    total: usize,
    prefix: Vec<usize>,
    left: Vec<usize>,
    /// The preemptions of the prefix, after each of its positions.
    costs: Vec<usize>,
    /// For each depth (prefix length + 1 entries), the next session to try.
    next: Vec<usize>,
    done: bool,
}

impl Walk {
    pub fn new(steps: &[usize], rule: Rule) -> Walk {
        Walk::with_free(steps, rule, Free::new())
    }

    /// A walk where switches after the steps of `free` are free.
    pub fn with_free(steps: &[usize], rule: Rule, free: Free) -> Walk {
        Walk {
            rule,
            free,
            steps: steps.to_vec(),
            total: steps.iter().sum(),
            prefix: Vec::new(),
            left: steps.to_vec(),
            costs: Vec::new(),
            next: vec![0],
            done: false,
        }
    }

    /// The prefix's preemptions if session `s` runs next and the rule
    /// keeps that, else None.
    fn allowed(&self, s: usize) -> Option<usize> {
        let cost = self.costs.last().copied().unwrap_or(0);
        match &self.rule {
            Rule::Preemptions(k) => {
                let switch = self.prefix.last().is_some_and(|&last| {
                    let ran = self.steps[last] - self.left[last] - 1;
                    last != s && self.left[last] > 0 && !is_free(&self.free, last, ran)
                });
                let c = cost + usize::from(switch);
                (c <= *k).then_some(c)
            }
            Rule::Reduced(commutes) => {
                // Not in normal form if the new step could move left past
                // a higher session's step through steps it commutes with.
                let index =
                    |s: usize, upto: usize| self.prefix[..upto].iter().filter(|&&x| x == s).count();
                let mine = index(s, self.prefix.len());
                let a_commutes = commutes[s][mine];
                for (pos, &b) in self.prefix.iter().enumerate().rev() {
                    if b == s {
                        break;
                    }
                    let b_commutes = commutes[b][index(b, pos)];
                    if !(a_commutes || b_commutes) {
                        break;
                    }
                    if b > s {
                        return None;
                    }
                }
                Some(cost)
            }
        }
    }
}

impl Iterator for Walk {
    type Item = Interleaving;

    fn next(&mut self) -> Option<Interleaving> {
        while !self.done {
            let depth = self.prefix.len();
            if depth == self.total {
                let out = self.prefix.clone();
                self.pop();
                return Some(out);
            }
            let mut pushed = false;
            while self.next[depth] < self.left.len() {
                let s = self.next[depth];
                self.next[depth] += 1;
                if self.left[s] == 0 {
                    continue;
                }
                if let Some(c) = self.allowed(s) {
                    self.prefix.push(s);
                    self.left[s] -= 1;
                    self.costs.push(c);
                    self.next.push(0);
                    pushed = true;
                    break;
                }
            }
            if !pushed {
                self.pop();
            }
        }
        None
    }
}

impl Walk {
    /// Back one position; the walk is done when it backs out of the root.
    fn pop(&mut self) {
        match self.prefix.pop() {
            Some(s) => {
                self.left[s] += 1;
                self.costs.pop();
                self.next.pop();
            }
            None => self.done = true,
        }
    }
}

/// Memo entries beyond which a count gives up (None) rather than use
/// unbounded memory; a walk can still enumerate.
const MEMO_CAP: usize = 4_000_000;

/// How many interleavings have at most `k` preemptions; None when too
/// large to count (or beyond u128).
pub fn count_bounded(steps: &[usize], k: usize) -> Option<u128> {
    fn go(
        left: &mut Vec<usize>,
        last: usize,
        budget: usize,
        memo: &mut HashMap<(Vec<usize>, usize, usize), u128>,
    ) -> Option<u128> {
        if left.iter().all(|&n| n == 0) {
            return Some(1);
        }
        let key = (left.clone(), last, budget);
        if let Some(&v) = memo.get(&key) {
            return Some(v);
        }
        if memo.len() > MEMO_CAP {
            return None;
        }
        let mut total: u128 = 0;
        for s in 0..left.len() {
            if left[s] == 0 {
                continue;
            }
            let switch = last != usize::MAX && last != s && left[last] > 0;
            if switch && budget == 0 {
                continue;
            }
            left[s] -= 1;
            let sub = go(left, s, budget - usize::from(switch), memo);
            left[s] += 1;
            total = total.checked_add(sub?)?;
        }
        memo.insert(key, total);
        Some(total)
    }
    go(&mut steps.to_vec(), usize::MAX, k, &mut HashMap::new())
}

/// For each step (session s, index i) of the trace of `interleaving`, how
/// many of each session t's steps must run before it: the steps of other
/// sessions before it in the interleaving that it does not commute with.
fn dependencies(interleaving: &[usize], commutes: &[Vec<bool>]) -> Vec<Vec<Vec<usize>>> {
    let sessions = commutes.len();
    let mut seen = vec![0usize; sessions];
    let pos: Vec<(usize, usize)> = interleaving
        .iter()
        .map(|&s| {
            seen[s] += 1;
            (s, seen[s] - 1)
        })
        .collect();
    let mut need: Vec<Vec<Vec<usize>>> = seen.iter().map(|&n| vec![vec![0; sessions]; n]).collect();
    for (j, &(s, i)) in pos.iter().enumerate() {
        for &(t, k) in &pos[..j] {
            if t != s && !(commutes[s][i] || commutes[t][k]) {
                need[s][i][t] = need[s][i][t].max(k + 1);
            }
        }
    }
    need
}

/// The member of `interleaving`'s trace with the fewest preemptions, the
/// first such in the stable order; None when too large to search.
pub fn fewest_preemptions(interleaving: &[usize], commutes: &[Vec<bool>]) -> Option<Interleaving> {
    let need = dependencies(interleaving, commutes);
    let sessions = commutes.len();
    let ready = |done: &[usize], s: usize| {
        done[s] < need[s].len() && need[s][done[s]].iter().zip(done).all(|(&n, &d)| d >= n)
    };
    // Fewest preemptions to finish from (done, last session).
    fn best(
        done: &mut Vec<usize>,
        last: usize,
        need: &[Vec<Vec<usize>>],
        ready: &dyn Fn(&[usize], usize) -> bool,
        memo: &mut HashMap<(Vec<usize>, usize), usize>,
    ) -> Option<usize> {
        if done.iter().zip(need).all(|(&d, n)| d == n.len()) {
            return Some(0);
        }
        if let Some(&v) = memo.get(&(done.clone(), last)) {
            return Some(v);
        }
        if memo.len() > MEMO_CAP {
            return None;
        }
        let mut min = usize::MAX;
        for s in 0..done.len() {
            if !ready(done, s) {
                continue;
            }
            let switch = last != usize::MAX && last != s && done[last] < need[last].len();
            done[s] += 1;
            let sub = best(done, s, need, ready, memo)?;
            done[s] -= 1;
            min = min.min(sub + usize::from(switch));
        }
        memo.insert((done.clone(), last), min);
        Some(min)
    }
    let mut memo = HashMap::new();
    let mut done = vec![0usize; sessions];
    let mut last = usize::MAX;
    let mut out = Vec::with_capacity(interleaving.len());
    while out.len() < interleaving.len() {
        let target = best(&mut done, last, &need, &ready, &mut memo)?;
        let next = (0..sessions).find(|&s| {
            if !ready(&done, s) {
                return false;
            }
            let switch = last != usize::MAX && last != s && done[last] < need[last].len();
            done[s] += 1;
            let sub = best(&mut done, s, &need, &ready, &mut memo);
            done[s] -= 1;
            sub.is_some_and(|v| v + usize::from(switch) == target)
        })?;
        done[next] += 1;
        out.push(next);
        last = next;
    }
    Some(out)
}

/// How many interleavings the trace of `interleaving` stands for: the
/// orders of its steps that keep each session's order and the order of
/// every two steps of different sessions that do not commute (the linear
/// extensions of its dependency order).  None when too large to count.
pub fn trace_size(interleaving: &[usize], commutes: &[Vec<bool>]) -> Option<u128> {
    let need = dependencies(interleaving, commutes);
    let sessions = commutes.len();
    fn go(
        done: &mut Vec<usize>,
        need: &[Vec<Vec<usize>>],
        memo: &mut HashMap<Vec<usize>, u128>,
    ) -> Option<u128> {
        if done.iter().zip(need).all(|(&d, n)| d == n.len()) {
            return Some(1);
        }
        if let Some(&v) = memo.get(done) {
            return Some(v);
        }
        if memo.len() > MEMO_CAP {
            return None;
        }
        let mut total: u128 = 0;
        for s in 0..done.len() {
            let i = done[s];
            if i == need[s].len() || need[s][i].iter().zip(done.iter()).any(|(&n, &d)| d < n) {
                continue;
            }
            done[s] += 1;
            let sub = go(done, need, memo);
            done[s] -= 1;
            total = total.checked_add(sub?)?;
        }
        memo.insert(done.clone(), total);
        Some(total)
    }
    go(&mut vec![0; sessions], &need, &mut HashMap::new())
}

/// Whether a step's SQL commutes with every step of other sessions by its
/// text alone: it takes no snapshot and touches no data.  `BEGIN` /
/// `START TRANSACTION` (a transaction's snapshot is taken by its first
/// query, not by BEGIN), `SET`/`RESET` of settings (not `SET
/// CONSTRAINTS`, which checks deferred constraints), and `SHOW`.  A
/// `SELECT` of constants is not among them: under REPEATABLE READ it is
/// the query that takes the transaction's snapshot.
pub fn commutes_by_text(sql: &str) -> bool {
    let statements: Vec<String> = sql
        .split(';')
        .map(|s| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_lowercase()
        })
        .filter(|s| !s.is_empty())
        .collect();
    !statements.is_empty()
        && statements.iter().all(|s| {
            let first = s.split(' ').next().unwrap_or("");
            match first {
                "begin" => !s.contains("--") && !s.contains("/*"),
                "start" => s.starts_with("start transaction"),
                // Not SET CONSTRAINTS (checks deferred constraints), nor
                // what reads other sessions' state: roles and an exported
                // snapshot.
                "set" => ![
                    "set constraints",
                    "set role",
                    "set session authorization",
                    "set session characteristics",
                    "set local role",
                    "set local session authorization",
                    "set transaction snapshot",
                ]
                .iter()
                .any(|p| s.starts_with(p)),
                "reset" | "show" => true,
                _ => false,
            }
        })
}

/// Which steps commute with every step of other sessions, per session:
/// those that commute by their text (`commutes_by_text`) or that the spec
/// declares (`# isospec: commutes STEP…`), while every earlier step of
/// their session does too: a session that ran only such steps cannot be
/// waiting on a lock, so moving its step among other sessions' steps can
/// never make it due while its session waits (which would make an
/// interleaving of its class unrealizable and the others not).
pub fn commuting(spec: &crate::spec::CheckedSpec) -> Vec<Vec<bool>> {
    let declared: Vec<&str> = spec
        .spec
        .options
        .commutes
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    spec.spec
        .sessions
        .iter()
        .map(|session| {
            let mut quiet_so_far = true;
            session
                .steps
                .iter()
                .map(|step| {
                    quiet_so_far &=
                        commutes_by_text(&step.sql) || declared.contains(&step.name.as_str());
                    quiet_so_far
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::space::Space;

    fn all(steps: &[usize]) -> Vec<Interleaving> {
        let space = Space::new(steps.to_vec());
        (0..space.size().unwrap())
            .map(|i| space.nth(i).unwrap())
            .collect()
    }

    #[test]
    fn counts_preemptions() {
        let steps = [2, 2];
        let none = Free::new();
        assert_eq!(preemptions(&[0, 0, 1, 1], &steps, &none), 0);
        assert_eq!(preemptions(&[0, 1, 1, 0], &steps, &none), 1);
        assert_eq!(preemptions(&[0, 1, 0, 1], &steps, &none), 2);
        // Switching away from a finished session is free.
        assert_eq!(preemptions(&[1, 1, 0, 0], &steps, &none), 0);
        // So is moving on from a step that waits (step 0 of session 1).
        let waits = vec![vec![false, false], vec![true, false]];
        assert_eq!(preemptions(&[0, 1, 0, 1], &steps, &waits), 1);
    }

    /// With free switches the walk keeps exactly the space filtered by the
    /// free-aware count, and more than without: the lock-wait race `b1 u1
    /// b2 u2 c1 c2` (u2 waits for u1) takes one preemption, not two.
    #[test]
    fn switches_after_a_waiting_step_are_free() {
        let steps = vec![3, 3];
        let free = vec![vec![false, false, false], vec![false, true, false]];
        for k in 0..3 {
            let want: Vec<Interleaving> = all(&steps)
                .into_iter()
                .filter(|il| preemptions(il, &steps, &free) <= k)
                .collect();
            let got: Vec<Interleaving> =
                Walk::with_free(&steps, Rule::Preemptions(k), free.clone()).collect();
            assert_eq!(got, want, "k={k}");
            let strict = Walk::new(&steps, Rule::Preemptions(k)).count();
            assert!(got.len() > strict || k == 2 && got.len() >= strict, "k={k}");
        }
        let race = vec![0, 0, 1, 1, 0, 1];
        assert_eq!(preemptions(&race, &steps, &Free::new()), 2);
        assert_eq!(preemptions(&race, &steps, &free), 1);
        assert!(Walk::with_free(&steps, Rule::Preemptions(1), free).any(|il| il == race));
    }

    /// Closed form: with n sessions of one step... and for two sessions of
    /// a and b steps, interleavings with exactly c context switches are
    /// known; here the walk is checked against filtering the whole space.
    #[test]
    fn the_bounded_walk_is_exactly_the_filtered_space_in_order() {
        for steps in [
            vec![2, 2],
            vec![3, 2, 1],
            vec![2, 2, 2],
            vec![4, 3],
            vec![1, 1, 1, 1],
        ] {
            let space = Space::new(steps.clone());
            for k in 0..5 {
                let want: Vec<Interleaving> = all(&steps)
                    .into_iter()
                    .filter(|il| preemptions(il, &steps, &Free::new()) <= k)
                    .collect();
                let got: Vec<Interleaving> = Walk::new(&steps, Rule::Preemptions(k)).collect();
                assert_eq!(got, want, "{steps:?} k={k}");
                assert_eq!(count_bounded(&steps, k), Some(want.len() as u128));
                // Increasing indices: the space's stable order.
                let idx: Vec<u128> = got.iter().map(|il| space.rank(il).unwrap()).collect();
                assert!(idx.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn bounded_counts_in_closed_form() {
        // n sessions of one step: no switch is a preemption (each session
        // is done after its step): all n! orders at K = 0.
        assert_eq!(count_bounded(&[1, 1, 1, 1], 0), Some(24));
        // K = 0: each session runs whole, in any order of sessions: n!.
        assert_eq!(count_bounded(&[3, 3, 3], 0), Some(6));
        // Two sessions of a and b steps, K = 1: the non-preemptive 2, plus
        // one preemption: the first session runs i steps (1..a-1), the
        // other all of its steps, the first the rest: (a-1) + (b-1).
        assert_eq!(count_bounded(&[4, 3], 1), Some(2 + 3 + 2));
        // 4 sessions of 4 steps: the 63,063,000 whole space.
        assert_eq!(Space::new(vec![4; 4]).size(), Some(63_063_000));
        assert_eq!(count_bounded(&[4; 4], 100), Some(63_063_000));
        assert_eq!(count_bounded(&[4; 4], 0), Some(24));
    }

    /// Every class of the whole space (interleavings equal up to swapping
    /// adjacent commuting steps of different sessions) has exactly one
    /// member in the reduced walk, whose trace size is the class's size.
    #[test]
    fn the_reduced_walk_has_one_member_per_trace_weighted_by_its_size() {
        let cases: Vec<(Vec<usize>, Vec<Vec<bool>>)> = vec![
            (vec![2, 2], vec![vec![true, false], vec![true, false]]),
            (
                vec![3, 2, 2],
                vec![
                    vec![true, false, false],
                    vec![false, false],
                    vec![true, true],
                ],
            ),
            (
                vec![2, 2, 1],
                vec![vec![false, false], vec![false, true], vec![true]],
            ),
        ];
        for (steps, commutes) in cases {
            let everything = all(&steps);
            // Canonical form by bubbling: the least member of the class,
            // found by exhaustive closure under adjacent swaps.
            let class_of = |il: &Interleaving| -> Interleaving {
                let mut seen = std::collections::BTreeSet::new();
                let mut todo = vec![il.clone()];
                while let Some(x) = todo.pop() {
                    if !seen.insert(x.clone()) {
                        continue;
                    }
                    let mut idx = vec![0usize; steps.len()];
                    let pos: Vec<(usize, usize)> = x
                        .iter()
                        .map(|&s| {
                            idx[s] += 1;
                            (s, idx[s] - 1)
                        })
                        .collect();
                    for j in 0..x.len().saturating_sub(1) {
                        let ((a, i), (b, k)) = (pos[j], pos[j + 1]);
                        if a != b && (commutes[a][i] || commutes[b][k]) {
                            let mut y = x.clone();
                            y.swap(j, j + 1);
                            todo.push(y);
                        }
                    }
                }
                seen.into_iter().next().unwrap()
            };
            let mut sizes: std::collections::BTreeMap<Interleaving, u128> = Default::default();
            let mut easiest: std::collections::BTreeMap<Interleaving, (usize, Interleaving)> =
                Default::default();
            for il in &everything {
                let rep = class_of(il);
                *sizes.entry(rep.clone()).or_default() += 1;
                // Members come in the stable order: the first with the
                // fewest preemptions stays.
                let p = preemptions(il, &steps, &Free::new());
                let e = easiest.entry(rep).or_insert((p, il.clone()));
                if p < e.0 {
                    *e = (p, il.clone());
                }
            }
            for (rep, (_, member)) in &easiest {
                assert_eq!(
                    fewest_preemptions(rep, &commutes).as_ref(),
                    Some(member),
                    "{rep:?}"
                );
            }
            let got: Vec<Interleaving> =
                Walk::new(&steps, Rule::Reduced(commutes.clone())).collect();
            let want: Vec<Interleaving> = sizes.keys().cloned().collect();
            assert_eq!(got, want, "{steps:?}");
            for (rep, n) in &sizes {
                assert_eq!(trace_size(rep, &commutes), Some(*n), "{rep:?}");
            }
            assert_eq!(sizes.values().sum::<u128>(), everything.len() as u128);
        }
    }

    #[test]
    fn leading_quiet_steps_and_declared_ones_commute() {
        let text = "# isospec: commutes r2\n\
            session a\nstep b1 { BEGIN; }\nstep s1 { SET lock_timeout = '1s'; }\nstep w1 { UPDATE t SET a = 1; }\nstep q1 { SET work_mem = '1MB'; }\n\
            session b\nstep b2 { BEGIN ISOLATION LEVEL REPEATABLE READ; }\nstep r2 { SELECT * FROM t; }\nstep c2 { COMMIT; }\n";
        let spec = crate::spec::check(
            "t.spec",
            crate::spec::parse("t.spec", text.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            commuting(&spec),
            vec![vec![true, true, false, false], vec![true, true, false]]
        );
        // A declared step after one that may wait does not commute.
        let late = "# isospec: commutes q1\nsession a\nstep w1 { UPDATE t SET a = 1; }\nstep q1 { SELECT 1; }\n";
        let spec = crate::spec::check(
            "t.spec",
            crate::spec::parse("t.spec", late.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(commuting(&spec), vec![vec![false, false]]);
        let bad = "# isospec: commutes nosuch\nsession a\nstep b1 { BEGIN; }\n";
        let e = crate::spec::check(
            "t.spec",
            crate::spec::parse("t.spec", bad.as_bytes()).unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.spec:1:1: error: undefined step \"nosuch\" in isospec: commutes"
        );
    }

    #[test]
    fn commuting_by_text() {
        for yes in [
            "BEGIN;",
            "begin isolation level repeatable read;",
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET lock_timeout = '10ms';",
            "SET LOCAL enable_seqscan = off; SET work_mem = '1MB';",
            "RESET ALL",
            "SHOW work_mem",
        ] {
            assert!(commutes_by_text(yes), "{yes}");
        }
        for no in [
            "SELECT 1;",
            "BEGIN; SELECT 1;",
            "SET CONSTRAINTS ALL IMMEDIATE;",
            "UPDATE t SET a = 1;",
            "",
            "COMMIT;",
            "LOCK t;",
        ] {
            assert!(!commutes_by_text(no), "{no}");
        }
    }
}
