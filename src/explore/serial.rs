//! The transactions of a spec and their serial orders, for `isospec
//! explore --anomalies` and `# isospec: anomalies`: an outcome that no
//! serial order of the same committed transactions produces is an
//! isolation anomaly, found without an invariant.
//!
//! This module is the pure part: how steps group into transactions (from
//! `BEGIN`/`START TRANSACTION` to `COMMIT`/`ROLLBACK`/`END`, else each
//! step alone), which of them committed in a run, the orders that keep
//! each session's order, and how an interleaving's observations compare
//! with a serial run's is `compare`'s; `anomaly` runs the serial orders.

use super::observe::StepRows;
use crate::spec::sql::statements;
use crate::spec::{CheckedStep, TestSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub use super::compare::Rows;

/// Serial orders checked at most (every order of up to 6 transactions;
/// more when sessions fix their order); beyond, a class is "not checked".
pub const MAX_ORDERS: u128 = 720;

/// How a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    /// `COMMIT` or `END`.
    Commit,
    /// `ROLLBACK` or `ABORT`.
    Rollback,
    /// Still open after the session's last step (rolled back when the
    /// session ends: never committed when the outcome is read).
    Open,
    /// One step outside any transaction block (autocommit).
    Auto,
}

/// One transaction: a session's consecutive steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Txn {
    pub session: usize,
    /// The session's step indices, in order (empty when only its setup
    /// opened it).
    pub steps: Vec<usize>,
    /// Its `BEGIN` is in the session's setup block.
    pub begins_in_setup: bool,
    pub end: End,
    /// It rolls back to a savepoint (so a failed step need not abort it).
    pub savepoints: bool,
}

/// A spec's transactions, or why they cannot be checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub txns: Vec<Txn>,
    /// Why serial orders cannot stand for this spec (two-phase commit, a
    /// step that ends one transaction and begins another, …).
    pub unmodeled: Option<String>,
    /// (session, step) → its transaction.
    of_step: BTreeMap<(usize, usize), usize>,
    /// Step names → (session, step).
    names: BTreeMap<String, (usize, usize)>,
}

/// What one statement does to the transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Begin,
    End(End),
    Savepoint,
    RollbackTo,
    /// Two-phase commit, or `COMMIT AND CHAIN`: not modeled.
    Unmodeled(&'static str),
    Other,
}

fn control(words: &[String]) -> Control {
    let w = |i: usize| words.get(i).map_or("", String::as_str);
    let chained = words.windows(2).any(|p| p[0] == "and" && p[1] == "chain")
        && !words.windows(3).any(|p| p[0] == "and" && p[1] == "no");
    match w(0) {
        "begin" | "start" if w(0) == "begin" || w(1) == "transaction" => Control::Begin,
        "commit" | "end" if w(1) == "prepared" => Control::Unmodeled("two-phase commit"),
        "commit" | "end" | "rollback" | "abort" if chained => {
            Control::Unmodeled("a transaction chained to the next (AND CHAIN)")
        }
        "commit" | "end" => Control::End(End::Commit),
        "rollback" if w(1) == "prepared" => Control::Unmodeled("two-phase commit"),
        "rollback" if w(1) == "to" || w(2) == "to" => Control::RollbackTo,
        "rollback" | "abort" => Control::End(End::Rollback),
        "prepare" if w(1) == "transaction" => Control::Unmodeled("two-phase commit"),
        "savepoint" | "release" => Control::Savepoint,
        "" => Control::Other,
        _ => Control::Other,
    }
}

/// The transactions of `spec`'s sessions.
pub fn model(spec: &TestSpec) -> Model {
    let all: Vec<Vec<usize>> = spec
        .sessions
        .iter()
        .map(|s| (0..s.steps.len()).collect())
        .collect();
    model_of(spec, &all)
}

/// The transactions when each session runs the steps `seqs[s]` (their
/// indices, in order): a permutation may leave steps out, and which
/// steps end a transaction depends on which of them run.
pub fn model_of(spec: &TestSpec, seqs: &[Vec<usize>]) -> Model {
    let mut m = Model::default();
    for (si, session) in spec.sessions.iter().enumerate() {
        for (i, step) in session.steps.iter().enumerate() {
            m.names.insert(step.name.clone(), (si, i));
        }
        let mut open: Option<Txn> = None;
        for words in statements(session.setup.as_deref().unwrap_or("")) {
            if words.is_empty() {
                continue;
            }
            match control(&words) {
                Control::Other if open.is_some() && words[0] != "set" => {
                    m.unmodeled.get_or_insert(format!(
                        "the setup of session {} runs a statement inside the transaction it begins (serial orders would share its snapshot)",
                        session.name
                    ));
                }
                Control::Begin => {
                    open = Some(Txn {
                        session: si,
                        steps: Vec::new(),
                        begins_in_setup: true,
                        end: End::Open,
                        savepoints: false,
                    })
                }
                Control::End(_) => open = None,
                Control::Unmodeled(why) => {
                    m.unmodeled
                        .get_or_insert(format!("{why} in the setup of session {}", session.name));
                }
                _ => {}
            }
        }
        let seq = seqs.get(si).map_or(&[][..], Vec::as_slice);
        for (n, &i) in seq.iter().enumerate() {
            let step = &session.steps[i];
            if seq[..n].contains(&i) {
                m.unmodeled
                    .get_or_insert(format!("step {} runs more than once", step.name));
            }
            if step.sql.to_lowercase().contains("atomic") {
                let words = statements(&step.sql);
                if words
                    .iter()
                    .any(|w| w.windows(2).any(|p| p[0] == "begin" && p[1] == "atomic"))
                {
                    m.unmodeled.get_or_insert(format!(
                        "step {} defines a BEGIN ATOMIC function body",
                        step.name
                    ));
                }
            }
            let mut in_step: Option<Txn> = open.take();
            let mut ended: Option<Txn> = None;
            for words in statements(&step.sql) {
                if words.is_empty() {
                    continue;
                }
                match control(&words) {
                    Control::Begin if in_step.is_none() => {
                        if ended.is_some() {
                            m.unmodeled.get_or_insert(format!(
                                "step {} ends one transaction and begins another",
                                step.name
                            ));
                        }
                        in_step = Some(Txn {
                            session: si,
                            steps: Vec::new(),
                            begins_in_setup: false,
                            end: End::Open,
                            savepoints: false,
                        });
                    }
                    // COMMIT outside a transaction block: a warning only.
                    Control::End(end) => {
                        if let Some(mut t) = in_step.take() {
                            t.end = end;
                            if ended.is_some() {
                                m.unmodeled.get_or_insert(format!(
                                    "step {} holds more than one transaction",
                                    step.name
                                ));
                            }
                            ended = Some(t);
                        }
                    }
                    Control::RollbackTo => {
                        if let Some(t) = in_step.as_mut() {
                            t.savepoints = true;
                        }
                    }
                    Control::Unmodeled(why) => {
                        m.unmodeled
                            .get_or_insert(format!("{why} in step {}", step.name));
                    }
                    Control::Savepoint | Control::Begin => {}
                    Control::Other => {
                        if in_step.is_none() && ended.is_some() {
                            m.unmodeled.get_or_insert(format!(
                                "step {} runs statements after its transaction ends",
                                step.name
                            ));
                        }
                    }
                }
            }
            match (ended, in_step) {
                (Some(mut t), None) => {
                    t.steps.push(i);
                    m.txns.push(t);
                }
                (None, Some(mut t)) => {
                    t.steps.push(i);
                    open = Some(t);
                }
                (None, None) => m.txns.push(Txn {
                    session: si,
                    steps: vec![i],
                    begins_in_setup: false,
                    end: End::Auto,
                    savepoints: false,
                }),
                (Some(mut t), Some(_)) => {
                    t.steps.push(i);
                    m.txns.push(t);
                }
            }
        }
        if let Some(t) = open {
            m.txns.push(t);
        }
    }
    for (k, t) in m.txns.iter().enumerate() {
        for &i in &t.steps {
            m.of_step.insert((t.session, i), k);
        }
    }
    m
}

/// Every step's rows in `rows` (steps in the spec's order, rows sorted):
/// what a serial run read, where every step that ran is a committed
/// transaction's.
pub fn all_reads(spec: &TestSpec, rows: &StepRows) -> Vec<(String, Rows)> {
    spec.sessions
        .iter()
        .flat_map(|s| &s.steps)
        .filter_map(|st| {
            rows.get(&st.name).map(|r| {
                let mut r = r.clone();
                r.sort();
                (st.name.clone(), r)
            })
        })
        .collect()
}

/// The setup's tables: `CREATE [UNLOGGED] TABLE [IF NOT EXISTS] NAME`
/// (temporary tables belong to the setup's connection and are left out).
pub fn setup_tables(spec: &TestSpec) -> Vec<String> {
    let mut out = Vec::new();
    for block in &spec.setup {
        for text in split_statements(block) {
            if let Some(name) = created_table(&text) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// The final-state queries when a spec has no outcome queries: every row
/// of every table its setup created, in a stable order.
pub fn table_queries(spec: &TestSpec) -> Vec<String> {
    setup_tables(spec)
        .iter()
        .map(|t| format!("SELECT * FROM {t} AS isospec_row ORDER BY isospec_row::text"))
        .collect()
}

/// A block's statements as text, split at semicolons outside quotes and
/// comments (enough to find `CREATE TABLE`'s name).
fn split_statements(block: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = block.chars().peekable();
    while let Some(c) = chars.next() {
        let cur = out.last_mut().expect("one statement at least");
        match c {
            ';' => out.push(String::new()),
            '\'' | '"' => {
                cur.push(c);
                for d in chars.by_ref() {
                    cur.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                cur.push(' ');
            }
            _ => cur.push(c),
        }
    }
    out
}

/// The name a `CREATE TABLE` statement creates, as written (quotes and
/// schema kept).
fn created_table(text: &str) -> Option<String> {
    let mut tokens = tokens(text).into_iter();
    if !tokens.next()?.eq_ignore_ascii_case("create") {
        return None;
    }
    let mut t = tokens.next()?;
    loop {
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "temp" | "temporary" => return None,
            "unlogged" | "global" | "local" => t = tokens.next()?,
            "table" => break,
            _ => return None,
        }
    }
    let mut name = tokens.next()?;
    if name.eq_ignore_ascii_case("if") {
        tokens.next()?;
        tokens.next()?;
        name = tokens.next()?;
    }
    // A schema-qualified name: `s . t`.
    let mut rest = tokens.peekable();
    while rest.peek().map(String::as_str) == Some(".") {
        rest.next();
        name = format!("{name}.{}", rest.next()?);
    }
    Some(name)
}

/// Words, quoted identifiers and punctuation of a statement.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        } else if c == '"' {
            let mut t = String::from(c);
            for d in chars.by_ref() {
                t.push(d);
                if d == '"' {
                    break;
                }
            }
            out.push(t);
        } else if c.is_alphanumeric() || c == '_' {
            let mut t = String::from(c);
            while let Some(&d) = chars.peek() {
                if d.is_alphanumeric() || d == '_' || d == '$' {
                    t.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(t);
        } else {
            out.push(c.to_string());
        }
    }
    out
}

impl Model {
    /// The transaction of a step, by name.
    pub fn txn_of(&self, step: &str) -> Option<usize> {
        self.names
            .get(step)
            .and_then(|k| self.of_step.get(k))
            .copied()
    }

    /// A transaction as `s1[b1 r1 c1]` (`setup` when its BEGIN is there).
    pub fn label(&self, spec: &TestSpec, k: usize) -> String {
        let t = &self.txns[k];
        let session = &spec.sessions[t.session];
        let mut names: Vec<&str> = Vec::new();
        if t.begins_in_setup {
            names.push("setup");
        }
        names.extend(t.steps.iter().map(|&i| session.steps[i].name.as_str()));
        format!("{}[{}]", session.name, names.join(" "))
    }

    /// An order of transactions as `s1[…] s2[…]`.
    pub fn order_label(&self, spec: &TestSpec, order: &[usize]) -> String {
        order
            .iter()
            .map(|&k| self.label(spec, k))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The transactions that committed, given the steps that failed; or
    /// why this run cannot be checked.
    pub fn committed<'a>(
        &self,
        failed: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<usize>, String> {
        if let Some(why) = &self.unmodeled {
            return Err(why.clone());
        }
        let mut failed_txns = BTreeSet::new();
        for step in failed {
            let Some(k) = self.txn_of(step) else {
                continue;
            };
            if self.txns[k].savepoints {
                return Err(format!(
                    "step {step} failed inside a transaction that rolls back to a savepoint"
                ));
            }
            failed_txns.insert(k);
        }
        Ok((0..self.txns.len())
            .filter(|k| {
                matches!(self.txns[*k].end, End::Commit | End::Auto) && !failed_txns.contains(k)
            })
            .collect())
    }

    /// How many orders of `committed` keep each session's order (the
    /// multinomial coefficient); None beyond u128.
    pub fn order_count(&self, committed: &[usize]) -> Option<u128> {
        let mut per_session: BTreeMap<usize, u128> = BTreeMap::new();
        for &k in committed {
            *per_session.entry(self.txns[k].session).or_default() += 1;
        }
        // Built up one session at a time: C(n + k, k).
        let mut total: u128 = 1;
        let mut n: u128 = 0;
        for &k in per_session.values() {
            for i in 1..=k {
                total = total.checked_mul(n + i)? / i;
            }
            n += k;
        }
        Some(total)
    }

    /// Every order of `committed` that keeps each session's order, in a
    /// stable order (the spec's session order first).
    pub fn orders(&self, committed: &[usize]) -> Vec<Vec<usize>> {
        let mut queues: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &k in committed {
            queues.entry(self.txns[k].session).or_default().push(k);
        }
        let queues: Vec<Vec<usize>> = queues.into_values().collect();
        let mut out = Vec::new();
        let mut next = vec![0usize; queues.len()];
        let mut order = Vec::new();
        fn walk(
            queues: &[Vec<usize>],
            next: &mut [usize],
            order: &mut Vec<usize>,
            out: &mut Vec<Vec<usize>>,
        ) {
            let mut any = false;
            for q in 0..queues.len() {
                if next[q] < queues[q].len() {
                    any = true;
                    order.push(queues[q][next[q]]);
                    next[q] += 1;
                    walk(queues, next, order, out);
                    next[q] -= 1;
                    order.pop();
                }
            }
            if !any {
                out.push(order.clone());
            }
        }
        walk(&queues, &mut next, &mut order, &mut out);
        out
    }

    /// The permutation that runs `order`'s transactions one after another.
    pub fn order_steps(&self, order: &[usize]) -> Vec<CheckedStep> {
        order
            .iter()
            .flat_map(|&k| {
                let t = &self.txns[k];
                t.steps.iter().map(move |&i| CheckedStep {
                    session: t.session,
                    step: i,
                    blockers: Vec::new(),
                })
            })
            .collect()
    }

    /// The rows that `committed`'s steps read in `rows` (steps in the
    /// spec's order), which are part of the outcome compared.
    pub fn reads(
        &self,
        spec: &TestSpec,
        committed: &[usize],
        rows: &StepRows,
    ) -> Vec<(String, Rows)> {
        let mut steps: Vec<(usize, usize)> = committed
            .iter()
            .flat_map(|&k| {
                let t = &self.txns[k];
                t.steps.iter().map(move |&i| (t.session, i))
            })
            .collect();
        steps.sort_unstable();
        steps
            .into_iter()
            .filter_map(|(s, i)| {
                let name = &spec.sessions[s].steps[i].name;
                // As a multiset: the order of rows no ORDER BY fixes is
                // the tables' physical order, which no serial order keeps.
                rows.get(name).map(|r| {
                    let mut r = r.clone();
                    r.sort();
                    (name.clone(), r)
                })
            })
            .collect()
    }

    /// `isospec list --transactions`: one line per transaction.
    pub fn describe(&self, spec: &TestSpec) -> String {
        let mut out = String::new();
        for (k, t) in self.txns.iter().enumerate() {
            let end = match t.end {
                End::Commit => "commits",
                End::Rollback => "rolls back",
                End::Open => "left open (never committed before the outcome is read)",
                End::Auto => "autocommit",
            };
            let _ = writeln!(
                out,
                "T{}: {} {end}{}",
                k + 1,
                self.label(spec, k),
                if t.savepoints {
                    ", with savepoints"
                } else {
                    ""
                }
            );
        }
        if let Some(why) = &self.unmodeled {
            let _ = writeln!(out, "not checkable against serial orders: {why}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> TestSpec {
        crate::spec::parse("t.spec", text.as_bytes()).unwrap()
    }

    #[test]
    fn steps_group_into_transactions() {
        let s = spec(
            "setup { CREATE TABLE t (k int); CREATE UNLOGGED TABLE IF NOT EXISTS public.\"U\" (x int); CREATE TEMP TABLE tt (x int); }\n\
             session s1\nsetup { BEGIN ISOLATION LEVEL SERIALIZABLE; }\n\
             step r1 { SELECT * FROM t; }\nstep c1 { COMMIT; }\nstep a1 { INSERT INTO t VALUES (1); }\n\
             session s2\nstep b2 { START TRANSACTION; }\nstep w2 { SAVEPOINT a; UPDATE t SET k = 2; ROLLBACK TO a; }\n\
             step r2 { ROLLBACK; }\nstep x2 { BEGIN; INSERT INTO t VALUES (3); COMMIT; }\nstep o2 { BEGIN; }\n",
        );
        let m = model(&s);
        assert_eq!(m.unmodeled, None);
        assert_eq!(
            m.describe(&s),
            "T1: s1[setup r1 c1] commits\nT2: s1[a1] autocommit\n\
             T3: s2[b2 w2 r2] rolls back, with savepoints\nT4: s2[x2] commits\n\
             T5: s2[o2] left open (never committed before the outcome is read)\n"
        );
        assert_eq!(
            setup_tables(&s),
            vec!["t".to_string(), "public.\"U\"".into()]
        );
        assert_eq!(m.committed(["a1"]).unwrap(), vec![0, 3]);
        assert!(m.committed(["w2"]).unwrap_err().contains("savepoint"));
        assert_eq!(m.order_count(&[0, 1, 3]), Some(3));
        assert_eq!(
            m.orders(&[0, 1, 3]),
            vec![vec![0, 1, 3], vec![0, 3, 1], vec![3, 0, 1]]
        );
        let steps: Vec<(usize, usize)> = m
            .order_steps(&[3, 0])
            .iter()
            .map(|c| (c.session, c.step))
            .collect();
        assert_eq!(steps, vec![(1, 3), (0, 0), (0, 1)]);
        assert_eq!(m.order_label(&s, &[3, 0]), "s2[x2] s1[setup r1 c1]");
    }

    #[test]
    fn a_permutation_that_leaves_steps_out_has_transactions_of_its_own() {
        let s = spec(
            "session s1\nstep b1 { BEGIN; }\nstep w1 { UPDATE t SET v = 1; }\n\
             step c1 { COMMIT; }\nstep a1 { ROLLBACK; }\n",
        );
        // All steps: the ROLLBACK after COMMIT is a statement of its own.
        assert_eq!(
            model(&s).describe(&s),
            "T1: s1[b1 w1 c1] commits\nT2: s1[a1] autocommit\n"
        );
        let picked = model_of(&s, &[vec![0, 1, 3]]);
        assert_eq!(picked.describe(&s), "T1: s1[b1 w1 a1] rolls back\n");
        assert_eq!(picked.committed([]).unwrap(), Vec::<usize>::new());
        let twice = model_of(&s, &[vec![0, 1, 1, 2]]);
        assert!(twice.unmodeled.unwrap().contains("runs more than once"));
        // A setup that reads inside its transaction shares one snapshot.
        let s = spec(
            "session s1\nsetup { BEGIN; SET LOCAL x.y = 1; SELECT 1; }\nstep c1 { COMMIT; }\n",
        );
        assert!(model(&s)
            .unmodeled
            .unwrap()
            .contains("inside the transaction it begins"));
        let s = spec("session s1\nstep f { CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; }\n");
        assert!(model(&s).unmodeled.unwrap().contains("BEGIN ATOMIC"));
    }

    #[test]
    fn two_phase_commit_is_not_modeled() {
        let s = spec("session s1\nstep p { BEGIN; PREPARE TRANSACTION 'x'; }\nstep c { COMMIT PREPARED 'x'; }\n");
        let m = model(&s);
        assert!(m.unmodeled.as_deref().unwrap().contains("two-phase commit"));
        assert!(m.committed([]).is_err());
    }

    #[test]
    fn order_counts_are_multinomial() {
        let s = spec(
            "session a\nstep a1 { SELECT 1; }\nstep a2 { SELECT 1; }\nstep a3 { SELECT 1; }\n\
             session b\nstep b1 { SELECT 1; }\nstep b2 { SELECT 1; }\n\
             session c\nstep c1 { SELECT 1; }\n",
        );
        let m = model(&s);
        let all: Vec<usize> = (0..6).collect();
        // 6! / (3! 2! 1!) = 60
        assert_eq!(m.order_count(&all), Some(60));
        assert_eq!(m.orders(&all).len(), 60);
    }
}
