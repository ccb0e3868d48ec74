//! The order in which `-j` starts a group's specs.
//!
//! With specs running side by side, the wall time of a group is decided by
//! its longest specs: one that starts last finishes long after the others
//! (PostgreSQL's `prepared-transactions` alone runs 1,432 permutations).
//! So a group starts its specs longest first: by their duration in the last
//! run (kept in `results/.isospec-timings`), else by an estimate from the
//! spec's size.  Specs that must run alone start first, while nothing else
//! runs, so that no running spec has to be waited for.
//!
//! A spec that names the run's database (`GRANT … ON DATABASE
//! isolation_regression`) expects to run in it, and so runs alone in
//! `--dbname`, not in a worker database.

use std::collections::HashMap;
use std::path::Path;

use crate::outcome::{Status, TestOutcome};
use crate::spec::{CheckedSpec, TestSpec};

/// File in the results directory with each spec's last duration.
pub const TIMINGS_FILE: &str = ".isospec-timings";

/// Durations (ms) of the specs of earlier runs, by test name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Timings(HashMap<String, u64>);

impl Timings {
    /// Reads `dir/.isospec-timings` (`name<TAB>ms` lines); a missing or
    /// damaged file gives what could be read (it is only a hint).
    pub fn load(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join(TIMINGS_FILE)).unwrap_or_default();
        Timings(
            text.lines()
                .filter_map(|l| {
                    let (name, ms) = l.split_once('\t')?;
                    Some((name.to_string(), ms.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// Adds the durations of `outcomes` and writes the file back.
    pub fn save(mut self, dir: &Path, outcomes: &[TestOutcome]) -> std::io::Result<()> {
        // Only whole runs say how long a spec takes.
        for o in outcomes
            .iter()
            .filter(|o| !matches!(o.status, Status::NotRun(_) | Status::RunError(_)))
        {
            self.0.insert(o.name.clone(), o.duration.as_millis() as u64);
        }
        let mut lines: Vec<String> = self
            .0
            .iter()
            .map(|(name, ms)| format!("{name}\t{ms}\n"))
            .collect();
        lines.sort();
        std::fs::write(dir.join(TIMINGS_FILE), lines.concat())
    }

    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }
}

/// A rough duration (ms) of a spec that has not run before: every
/// permutation runs the setup, the sessions' setup and teardown, its steps
/// and the teardown, each a round trip of a millisecond or less, plus the
/// work its SQL visibly asks for (see `sql_work_ms`).
pub fn estimate_ms(c: &CheckedSpec) -> u64 {
    let perms = u64::try_from(c.permutation_count()).unwrap_or(u64::MAX);
    let work: u64 = sql_texts(&c.spec).iter().map(|t| sql_work_ms(t)).sum();
    round_trips_ms(c).saturating_add(perms.saturating_mul(work))
}

/// Time (ms) that one run of `sql` takes beyond its round trip, where the
/// text shows it: rows made by `generate_series` with literal bounds (about
/// a microsecond each: PostgreSQL's multiple-row-versions fills a table from
/// 1,000,000 of them in its setup and takes ~0.9 s, 50 times the estimate
/// from its size), and `pg_sleep` with a literal duration.
fn sql_work_ms(sql: &str) -> u64 {
    let lower = sql.to_lowercase();
    let args = |name: &str| -> Vec<Vec<f64>> {
        lower
            .match_indices(name)
            .filter_map(|(i, _)| {
                let rest = lower[i + name.len()..].trim_start().strip_prefix('(')?;
                let inner = &rest[..rest.find(')')?];
                Some(
                    inner
                        .split(',')
                        .filter_map(|a| a.trim().parse::<f64>().ok())
                        .collect(),
                )
            })
            .collect()
    };
    let rows: f64 = args("generate_series")
        .iter()
        .map(|a| match a.as_slice() {
            [from, to, ..] => (to - from).abs(),
            _ => 0.0,
        })
        .sum();
    let sleep_s: f64 = args("pg_sleep")
        .iter()
        .filter_map(|a| a.first().copied())
        .filter(|s| *s > 0.0)
        .sum();
    (rows / 1000.0 + sleep_s * 1000.0).min(u64::MAX as f64 / 2.0) as u64
}

/// The round-trip part of `estimate_ms`.
fn round_trips_ms(c: &CheckedSpec) -> u64 {
    let spec = &c.spec;
    let per_permutation_fixed = 1 + spec.setup.len() as u64 + spec.sessions.len() as u64;
    let steps: u64 = if c.permutations.is_empty() {
        spec.sessions.iter().map(|s| s.steps.len() as u64).sum()
    } else {
        // Explicit permutations: their average length.
        let total: usize = c.permutations.iter().map(Vec::len).sum();
        (total / c.permutations.len().max(1)) as u64
    };
    let perms = u64::try_from(c.permutation_count()).unwrap_or(u64::MAX);
    // Connecting the sessions costs a few ms once per spec.
    (2 * spec.sessions.len() as u64)
        .saturating_add(perms.saturating_mul(per_permutation_fixed + steps) / 2)
}

fn mentions_word(text: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let lower = text.to_lowercase();
    let word = word.to_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&word) {
        let start = from + i;
        let end = start + word.len();
        let before = lower[..start].chars().next_back();
        let after = lower[end..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        from = start + word.chars().next().map_or(1, char::len_utf8);
    }
    false
}

bitflags::bitflags! {
    /// Cluster-wide objects a spec uses.  Their names are shared by every
    /// database, so two specs using the same kind never run side by side.
    /// Prepared transactions are finer grained (see `Placement::gids`): the bit
    /// is set only for a spec whose transaction names are not all literals, or
    /// that reads `pg_prepared_xacts`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Shared: u8 {
        const PREPARED_TRANSACTIONS = 1;
        const ROLES = 2;
        const TABLESPACES = 4;
        const REPLICATION = 8;
        const DATABASES = 16;
    }
}

/// Phrases (lowercase, single spaces) that tell which cluster-wide objects
/// a spec's SQL uses.
const SHARED_PHRASES: &[(&str, Shared)] = &[
    ("create role", Shared::ROLES),
    ("create user", Shared::ROLES),
    ("create group", Shared::ROLES),
    ("alter role", Shared::ROLES),
    ("alter user", Shared::ROLES),
    ("alter group", Shared::ROLES),
    ("drop role", Shared::ROLES),
    ("drop user", Shared::ROLES),
    ("drop group", Shared::ROLES),
    ("drop owned", Shared::ROLES),
    ("reassign owned", Shared::ROLES),
    ("tablespace", Shared::TABLESPACES),
    // pg_create_logical_replication_slot() and friends (matched inside words)
    ("_replication_slot", Shared::REPLICATION),
    ("pg_replication_slot_advance", Shared::REPLICATION),
    ("subscription", Shared::REPLICATION),
    ("create database", Shared::DATABASES),
    ("alter database", Shared::DATABASES),
    ("drop database", Shared::DATABASES),
];

/// How a spec may run next to others under -j.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Runs with nothing alongside, in `--dbname`.
    pub alone: bool,
    /// Kinds of cluster-wide objects used.
    pub shared: Shared,
    /// Names of the prepared transactions the spec uses, all literals
    /// (lowercased: conservative).  Specs with different names may run side
    /// by side, within the server's max_prepared_transactions
    /// (PostgreSQL's prepared-transactions uses 's1'..'s3' and stats 'a';
    /// prepared-transactions-cic reuses 's1').
    pub gids: Vec<String>,
}

impl Placement {
    fn uses_prepared(&self) -> bool {
        self.shared.contains(Shared::PREPARED_TRANSACTIONS) || !self.gids.is_empty()
    }
}

/// The phrases that name a prepared transaction.
const GID_PHRASES: &[&str] = &[
    "prepare transaction",
    "commit prepared",
    "rollback prepared",
];

/// Adds the literal transaction names after `GID_PHRASES` in `norm`
/// (lowercase, single spaces) to `gids`; false when a name is not a
/// literal (built at run time, say) or `pg_prepared_xacts` is read.
fn literal_gids(norm: &str, gids: &mut Vec<String>) -> bool {
    if norm.contains("pg_prepared_xact") {
        return false;
    }
    for phrase in GID_PHRASES {
        for (i, _) in norm.match_indices(phrase) {
            // A whole phrase, not the end of a longer word (`my_prepare ...`).
            let word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
            if norm[..i].chars().next_back().is_some_and(word_char) {
                continue;
            }
            let rest = norm[i + phrase.len()..].trim_start();
            let Some(body) = rest.strip_prefix('\'') else {
                return false;
            };
            // The literal up to its closing quote ('' is a quote inside).
            let mut name = String::new();
            let mut chars = body.chars().peekable();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        name.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => name.push(c),
                    None => return false,
                }
            }
            if !gids.contains(&name) {
                gids.push(name);
            }
        }
    }
    true
}

/// Where a spec may run: alone when it asks to (`# isospec: alone`), names
/// the run's database or changes the server's configuration (`ALTER
/// SYSTEM`); otherwise next to any spec that uses no cluster-wide objects
/// of the same kind.
pub fn placement(spec: &TestSpec, dbname: &str) -> Placement {
    let texts = sql_texts(spec);
    let mut shared = Shared::empty();
    let mut gids = Vec::new();
    let mut system = false;
    for t in &texts {
        let norm = t
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for (phrase, bit) in SHARED_PHRASES {
            let found = if phrase.starts_with('_') {
                norm.contains(phrase)
            } else {
                mentions_word(&norm, phrase)
            };
            if found {
                shared |= *bit;
            }
        }
        system |= mentions_word(&norm, "alter system");
        if !literal_gids(&norm, &mut gids) {
            shared |= Shared::PREPARED_TRANSACTIONS;
        }
    }
    if shared.contains(Shared::PREPARED_TRANSACTIONS) {
        gids.clear();
    }
    gids.sort();
    Placement {
        alone: spec.options.alone || system || texts.iter().any(|t| mentions_word(t, dbname)),
        shared,
        gids,
    }
}

fn sql_texts(spec: &TestSpec) -> Vec<&str> {
    let mut texts: Vec<&str> = spec.setup.iter().map(String::as_str).collect();
    texts.extend(spec.teardown.as_deref());
    for s in &spec.sessions {
        texts.extend(s.setup.as_deref());
        texts.extend(s.teardown.as_deref());
        texts.extend(s.steps.iter().map(|st| st.sql.as_str()));
    }
    texts
}

/// The specs of a group still to start, in the order they should start.
#[derive(Debug)]
pub struct StartQueue {
    waiting: Vec<usize>,
    placement: Vec<Placement>,
    /// The server's max_prepared_transactions; None when not known, and
    /// then specs using prepared transactions never run side by side.
    max_prepared: Option<usize>,
}

impl StartQueue {
    /// Specs that run alone first (in schedule order), then the others by
    /// cost, highest first (ties keep the schedule order).
    pub fn new(placement: Vec<Placement>, cost: &[u64], max_prepared: Option<usize>) -> Self {
        let n = placement.len();
        let mut waiting: Vec<usize> = (0..n).filter(|&i| placement[i].alone).collect();
        let mut rest: Vec<usize> = (0..n).filter(|&i| !placement[i].alone).collect();
        rest.sort_by_key(|&i| std::cmp::Reverse(cost[i]));
        waiting.extend(rest);
        StartQueue {
            waiting,
            placement,
            max_prepared,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn placement(&self, k: usize) -> &Placement {
        &self.placement[k]
    }

    /// Takes the first spec that may start while `running` run: nothing
    /// starts next to a spec that runs alone, a spec that runs alone starts
    /// only when nothing runs, no two running specs share a kind of
    /// cluster-wide object, and specs using prepared transactions run side
    /// by side only with different literal names, as many as the server
    /// can hold prepared at once.
    pub fn take_next(&mut self, running: &[usize]) -> Option<usize> {
        if running.iter().any(|&r| self.placement[r].alone) {
            return None;
        }
        let busy = running
            .iter()
            .fold(Shared::empty(), |m, &r| m | self.placement[r].shared);
        let prepared: Vec<&Placement> = running
            .iter()
            .map(|&r| &self.placement[r])
            .filter(|p| p.uses_prepared())
            .collect();
        let pos = self.waiting.iter().position(|&k| {
            let p = &self.placement[k];
            if p.alone {
                return running.is_empty();
            }
            if p.shared.intersects(busy) {
                return false;
            }
            if !p.uses_prepared() || prepared.is_empty() {
                return true;
            }
            let Some(max) = self.max_prepared else {
                return false;
            };
            let held: usize = prepared.iter().map(|q| q.gids.len()).sum();
            !p.shared.contains(Shared::PREPARED_TRANSACTIONS)
                && held + p.gids.len() <= max
                && prepared
                    .iter()
                    .all(|q| !q.gids.is_empty() && q.gids.iter().all(|g| !p.gids.contains(g)))
        })?;
        Some(self.waiting.remove(pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Status;
    use std::time::Duration;

    fn checked(src: &str) -> CheckedSpec {
        let spec = crate::spec::parse("t.spec", src.as_bytes()).unwrap();
        crate::spec::check("t.spec", spec).unwrap()
    }

    fn place(alone: bool, shared: Shared) -> Placement {
        Placement {
            alone,
            shared,
            gids: Vec::new(),
        }
    }

    fn gids(names: &[&str]) -> Placement {
        Placement {
            gids: names.iter().map(|n| n.to_string()).collect(),
            ..Placement::default()
        }
    }

    #[test]
    fn queue_starts_alone_first_then_longest_first() {
        let p = vec![
            place(false, Shared::empty()),
            place(true, Shared::empty()),
            place(false, Shared::empty()),
            place(false, Shared::empty()),
            place(true, Shared::empty()),
        ];
        let mut q = StartQueue::new(p, &[10, 0, 500, 10, 99], None);
        assert_eq!(q.take_next(&[]), Some(1));
        assert_eq!(q.take_next(&[1]), None, "nothing next to an alone spec");
        assert_eq!(q.take_next(&[]), Some(4));
        assert_eq!(q.take_next(&[]), Some(2));
        assert_eq!(q.take_next(&[2]), Some(0));
        assert_eq!(q.take_next(&[2, 0]), Some(3));
        assert!(q.is_empty());
        assert_eq!(q.take_next(&[]), None);
    }

    #[test]
    fn queue_keeps_users_of_the_same_shared_objects_apart() {
        let p = vec![
            place(false, Shared::PREPARED_TRANSACTIONS),
            place(false, Shared::PREPARED_TRANSACTIONS | Shared::ROLES),
            place(false, Shared::empty()),
            place(true, Shared::empty()),
        ];
        let mut q = StartQueue::new(p, &[900, 800, 1, 5], Some(10));
        assert_eq!(q.take_next(&[]), Some(3));
        assert_eq!(q.take_next(&[]), Some(0));
        // 1 shares prepared transactions with 0: the next one that may run.
        assert_eq!(q.take_next(&[0]), Some(2));
        assert_eq!(q.take_next(&[0, 2]), None);
        assert_eq!(q.take_next(&[2]), Some(1));
    }

    #[test]
    fn prepared_transactions_side_by_side_only_with_other_names_and_room() {
        // As PostgreSQL's prepared-transactions, stats, prepared-transactions-cic.
        let p = vec![
            gids(&["s1", "s2", "s3"]),
            gids(&["a"]),
            gids(&["s1"]),
            place(false, Shared::empty()),
        ];
        let cost = [900, 50, 10, 1];
        let mut q = StartQueue::new(p.clone(), &cost, Some(10));
        assert_eq!(q.take_next(&[]), Some(0));
        assert_eq!(q.take_next(&[0]), Some(1), "other names may run alongside");
        assert_eq!(q.take_next(&[0, 1]), Some(3), "'s1' is in use");
        assert_eq!(q.take_next(&[1]), Some(2));
        // Room for only four prepared at once: 'a' waits.
        let mut q = StartQueue::new(p.clone(), &cost, Some(3));
        assert_eq!(q.take_next(&[]), Some(0));
        assert_eq!(q.take_next(&[0]), Some(3));
        // Limit unknown: never side by side.
        let mut q = StartQueue::new(p, &cost, None);
        assert_eq!(q.take_next(&[]), Some(0));
        assert_eq!(q.take_next(&[0]), Some(3));
        // Names not known: exclusive among prepared-transaction users.
        let p = vec![place(false, Shared::PREPARED_TRANSACTIONS), gids(&["x"])];
        let mut q = StartQueue::new(p, &[9, 1], Some(10));
        assert_eq!(q.take_next(&[]), Some(0));
        assert_eq!(q.take_next(&[0]), None);
        let p = vec![gids(&["x"]), place(false, Shared::PREPARED_TRANSACTIONS)];
        let mut q = StartQueue::new(p, &[9, 1], Some(10));
        assert_eq!(q.take_next(&[]), Some(0));
        assert_eq!(q.take_next(&[0]), None);
    }

    #[test]
    fn placement_from_the_sql() {
        let p = |src: &str| placement(&checked(src).spec, "isolation_regression");
        assert_eq!(
            p("session s1\nstep a { PREPARE\n   TRANSACTION 's1'; }\nstep b { commit prepared 'S''1'; }\n\
               step c { ROLLBACK PREPARED 's1'; }\n"),
            gids(&["s'1", "s1"])
        );
        assert_eq!(
            p("session s1\nstep a { SELECT my_prepare transaction; }\n"),
            place(false, Shared::empty())
        );
        assert_eq!(
            p("session s1\nstep a { PREPARE TRANSACTION 's1'; }\nstep b { SELECT gid FROM pg_prepared_xacts; }\n"),
            place(false, Shared::PREPARED_TRANSACTIONS)
        );
        assert_eq!(
            p("session s1\nstep a { DO $$ BEGIN EXECUTE format('PREPARE TRANSACTION %L', 'x'); END $$; }\n"),
            place(false, Shared::PREPARED_TRANSACTIONS)
        );
        assert_eq!(
            p("setup { CREATE ROLE r; CREATE TABLESPACE x LOCATION ''; }\nsession s\nstep a { SELECT 1; }\n"),
            place(false, Shared::ROLES | Shared::TABLESPACES)
        );
        assert_eq!(
            p("session s\nstep a { SELECT pg_create_logical_replication_slot('x', 'y'); }\n"),
            place(false, Shared::REPLICATION)
        );
        assert!(p("session s\nstep a { ALTER SYSTEM SET work_mem = '1MB'; }\n").alone);
        assert_eq!(
            p("session s\nstep a { GRANT TEMP ON DATABASE Isolation_Regression TO r; }\n"),
            place(true, Shared::empty())
        );
        assert_eq!(
            p("# isospec: alone\nsession s\nstep a { SELECT 1; }\n"),
            place(true, Shared::empty())
        );
        assert_eq!(
            p("session s\nstep a { SELECT 'prepared_transactions', rolename FROM userroles; }\n"),
            place(false, Shared::empty())
        );
    }

    #[test]
    fn estimate_counts_generated_rows_and_sleeps() {
        assert_eq!(sql_work_ms("SELECT 1"), 0);
        assert_eq!(
            sql_work_ms("INSERT INTO t SELECT x FROM generate_series(1, 1000000) x"),
            999
        );
        assert_eq!(sql_work_ms("SELECT * FROM GENERATE_SERIES (0,10000)"), 10);
        // Bounds that are not literals tell nothing.
        assert_eq!(sql_work_ms("SELECT generate_series(1, n) FROM t"), 0);
        assert_eq!(
            sql_work_ms("SELECT pg_sleep(0.5); SELECT pg_sleep(2)"),
            2500
        );
        assert_eq!(sql_work_ms("SELECT pg_sleep(10e-6)"), 0);
        assert_eq!(sql_work_ms("SELECT pg_sleep("), 0);
        let bulk = checked(
            "setup { CREATE TABLE t AS SELECT generate_series(1, 1000000) AS i; }\n\
             session s\nstep a { SELECT 1; }\n",
        );
        let plain = checked("setup { CREATE TABLE t (i int); }\nsession s\nstep a { SELECT 1; }\n");
        assert!(estimate_ms(&bulk) >= estimate_ms(&plain) + 999);
    }

    #[test]
    fn estimate_grows_with_permutations_and_steps() {
        let small = checked("session s1\nstep a { SELECT 1; }\nsession s2\nstep b { SELECT 2; }\n");
        let big = checked(
            "setup { CREATE TABLE t(); }\nsession s1\nstep a { SELECT 1; }\nstep c { SELECT 1; }\n\
             step d { SELECT 1; }\nsession s2\nstep b { SELECT 2; }\nstep e { SELECT 2; }\n\
             step f { SELECT 2; }\n",
        );
        let one = checked(
            "setup { CREATE TABLE t(); }\nsession s1\nstep a { SELECT 1; }\nstep c { SELECT 1; }\n\
             step d { SELECT 1; }\nsession s2\nstep b { SELECT 2; }\nstep e { SELECT 2; }\n\
             step f { SELECT 2; }\npermutation a b c e d f\n",
        );
        assert!(estimate_ms(&big) > estimate_ms(&small));
        assert!(estimate_ms(&big) > 10 * estimate_ms(&one) / 2);
        assert!(estimate_ms(&one) >= estimate_ms(&small));
    }

    #[test]
    fn words() {
        assert!(mentions_word(
            "x isolation_regression",
            "isolation_regression"
        ));
        assert!(mentions_word(
            "\"isolation_regression\"",
            "isolation_regression"
        ));
        assert!(!mentions_word(
            "isolation_regression_2",
            "isolation_regression"
        ));
        assert!(!mentions_word("isolation", "isolation_regression"));
        assert!(!mentions_word("é", "e"));
        assert!(!mentions_word("anything", ""));
    }

    #[test]
    fn timings_round_trip_and_merge() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Timings::load(dir.path()), Timings::default());
        let o = |name: &str, ms| TestOutcome::new(name, Status::Ok, Duration::from_millis(ms), 1);
        Timings::default()
            .save(dir.path(), &[o("a", 5), o("b", 7)])
            .unwrap();
        Timings::load(dir.path())
            .save(dir.path(), &[o("b", 70)])
            .unwrap();
        let t = Timings::load(dir.path());
        assert_eq!(
            (t.get("a"), t.get("b"), t.get("c")),
            (Some(5), Some(70), None)
        );
        std::fs::write(
            dir.path().join(TIMINGS_FILE),
            "x\tnot a number\ny\t3\nbroken\n",
        )
        .unwrap();
        assert_eq!(Timings::load(dir.path()).get("y"), Some(3));
    }
}
