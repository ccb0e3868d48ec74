//! The serial runs behind `--anomalies`: for the transactions that
//! committed in an outcome, every order of them that keeps each session's
//! order runs one after another from the same setup (each transaction on
//! its own session's connection, as in the interleaving), and the outcome
//! is serializable when one of them reads and leaves the same.  Serial
//! runs are made once per set of committed transactions and kept.

use super::classes::Outcome;
use super::compare::{self as serial, Observed, Verdict, Volatile};
use super::serial::{Model, Txn, MAX_ORDERS};
use super::walk::run_batch;
use crate::executor::ExecOptions;
use crate::pgwire::ConnParams;
use crate::spec::CheckedSpec;
use std::collections::HashMap;

/// The transactions at `positions` of `committed`.
fn at(committed: &[usize], positions: &[usize]) -> Vec<usize> {
    positions.iter().map(|&p| committed[p]).collect()
}

fn spec_of(spec: &CheckedSpec) -> &crate::spec::TestSpec {
    &spec.spec
}

/// The serial runs of one set of committed transactions.
struct Serial {
    /// Each order, as positions in the committed transactions.
    orders: Vec<Vec<usize>>,
    /// Each order's observation; None when a step failed or waited for good.
    observed: Vec<Option<Observed>>,
    /// The first failure of an order that failed, for the report.
    failure: Option<String>,
    volatile: Volatile,
}

/// Checks outcomes of one spec against its serial orders.
pub struct Checker<'a> {
    spec: &'a CheckedSpec,
    params: &'a ConnParams,
    opts: ExecOptions,
    stop: Option<&'a crate::stop::StopSignal>,
    pub model: Model,
    finals: usize,
    cache: HashMap<Vec<Txn>, Result<Serial, String>>,
    /// The values that differ between two runs of every transaction in
    /// the spec's order (`probe`), set aside everywhere.
    pub base: Volatile,
}

/// Run before a second run of the first order: every sequence moves on
/// by one, so that values drawn from sequences (which an aborted
/// transaction of the interleaving may have used up) show as volatile.
const BUMP_SEQUENCES: &str =
    "SELECT nextval(c.oid) FROM pg_class c WHERE c.relkind = 'S' AND c.relpersistence <> 't'";

impl<'a> Checker<'a> {
    /// `finals`: the queries whose rows are the final state (the
    /// outcome queries), run after each serial order.
    pub fn new(
        spec: &'a CheckedSpec,
        params: &'a ConnParams,
        exec: &ExecOptions,
        stop: Option<&'a crate::stop::StopSignal>,
        finals: &[String],
    ) -> Self {
        let mut opts = exec.clone();
        opts.after_steps = finals.to_vec();
        opts.end_stalled = true;
        opts.only_permutation = None;
        Checker {
            spec,
            params,
            opts,
            stop,
            model: super::serial::model(&spec.spec),
            finals: finals.len(),
            cache: HashMap::new(),
            base: Volatile::named(spec.spec.options.volatile.iter().map(|(n, _)| n.as_str())),
        }
    }

    /// Before the walk: every transaction that can commit, in the spec's
    /// order, run twice (the second time with the sequences moved on);
    /// the values that differ are volatile (`base`), blanked in every
    /// outcome so that they do not split classes.
    pub async fn probe(&mut self) {
        let all = match self.model.committed(std::iter::empty()) {
            Ok(all) if !all.is_empty() => all,
            _ => return,
        };
        let order = self.model.order_steps(&all);
        let Ok((first, _)) = self.run(self.spec, vec![order.clone()]).await else {
            return;
        };
        if let Some(Some(a)) = first.first() {
            if let Some(b) = self.bumped(order).await {
                self.base = self.base.union(&Volatile::between(a, &b));
            }
        }
    }

    /// One run of `order` after the sequences moved on (as it is, when a
    /// sequence cannot move).
    async fn bumped(&self, order: Vec<crate::spec::CheckedStep>) -> Option<Observed> {
        let mut bumped = self.spec.clone();
        bumped.spec.setup.push(BUMP_SEQUENCES.to_string());
        let again = match self.run(&bumped, vec![order.clone()]).await {
            Ok((o, _)) => o,
            Err(_) => self.run(self.spec, vec![order]).await.ok()?.0,
        };
        again.into_iter().next().flatten()
    }

    /// Whether some serial order produces `outcome` (whose `reads` and
    /// first `finals` results are what is compared).
    pub async fn verdict(&mut self, outcome: &Outcome) -> Verdict {
        let model = self.model.clone();
        self.verdict_in(&model, outcome).await
    }

    /// `verdict` with the transactions of `model` (those of the steps one
    /// permutation ran).
    pub async fn verdict_in(&mut self, model: &Model, outcome: &Outcome) -> Verdict {
        let committed = match model.committed(outcome.failures.iter().map(|f| f.step.as_str())) {
            Ok(c) => c,
            Err(reason) => return Verdict::NotChecked { reason },
        };
        if let Some(reason) = Self::setup_txn_left_open(spec_of(self.spec), model, &committed) {
            return Verdict::NotChecked { reason };
        }
        let count = model.order_count(&committed);
        if count.is_none_or(|n| n > MAX_ORDERS) {
            return Verdict::NotChecked {
                reason: format!(
                    "{} committed: {} serial orders, more than the {MAX_ORDERS} checked",
                    crate::words::counted(committed.len() as u64, "transaction", "transactions"),
                    count.map_or("more than 2^128".into(), crate::words::thousands)
                ),
            };
        }
        // Kept by the transactions themselves: permutations of a run have
        // models of their own.
        let key: Vec<Txn> = committed.iter().map(|&k| model.txns[k].clone()).collect();
        if !self.cache.contains_key(&key) {
            let s = self.serial(model, &committed).await;
            self.cache.insert(key.clone(), s);
        }
        let serial = match &self.cache[&key] {
            Ok(s) => s,
            Err(reason) => {
                return Verdict::NotChecked {
                    reason: reason.clone(),
                }
            }
        };
        let got = serial.volatile.apply(&Observed {
            reads: outcome.reads.clone(),
            finals: outcome.results.iter().take(self.finals).cloned().collect(),
        });
        let volatile = serial.volatile.list();
        let masked: Vec<(usize, Observed)> = serial
            .observed
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|o| (i, serial.volatile.apply(o))))
            .collect();
        let spec = &self.spec.spec;
        if let Some((i, _)) = masked.iter().find(|(_, o)| *o == got) {
            return Verdict::Serializable {
                order: model.order_label(spec, &at(&committed, &serial.orders[*i])),
                volatile,
            };
        }
        let Some((ci, closest)) = masked
            .iter()
            .min_by_key(|(i, o)| (serial::distance(&got, o), *i))
        else {
            let Some(failure) = &serial.failure else {
                return Verdict::NotChecked {
                    reason: "every serial order waited for good (a lock held across transactions, such as by a session's setup)".into(),
                };
            };
            return Verdict::Anomaly {
                closest: None,
                distance: 0,
                difference: format!(
                    "no serial order of the committed transactions runs without an error ({failure})"
                ),
                orders: serial.orders.len(),
                volatile,
            };
        };
        let all: Vec<&Observed> = masked.iter().map(|(_, o)| o).collect();
        Verdict::Anomaly {
            closest: Some(model.order_label(spec, &at(&committed, &serial.orders[*ci]))),
            distance: serial::distance(&got, closest),
            difference: serial::first_difference(&got, &all, closest),
            orders: serial.orders.len(),
            volatile,
        }
    }

    /// A transaction begun in a session's setup that did not commit would
    /// wrap the session's later steps in a serial run (its end is left
    /// out): such a run cannot stand for the interleaving.
    fn setup_txn_left_open(
        spec: &crate::spec::TestSpec,
        model: &Model,
        committed: &[usize],
    ) -> Option<String> {
        model
            .txns
            .iter()
            .enumerate()
            .find(|(k, t)| {
                t.begins_in_setup
                    && !committed.contains(k)
                    && committed.iter().any(|&c| model.txns[c].session == t.session)
            })
            .map(|(k, _)| {
                format!(
                    "{} began in its session's setup and did not commit, and later steps of the session did",
                    model.label(spec, k)
                )
            })
    }

    /// Runs every serial order of `committed`, and the first once more
    /// after moving the sequences on, to find the volatile values.
    async fn serial(&self, model: &Model, committed: &[usize]) -> Result<Serial, String> {
        let orders = model.orders(committed);
        let perms = orders.iter().map(|o| model.order_steps(o)).collect();
        let (observed, failure) = self.run(self.spec, perms).await?;
        let first = orders.first().map(|o| model.order_steps(o));
        let mut volatile = self.base.clone();
        if let (Some(first), Some(Some(a))) = (first, observed.first()) {
            if let Some(b) = self.bumped(first).await {
                volatile = volatile.union(&Volatile::between(a, &b));
            }
        }
        // As positions in `committed` (the cache outlives the model).
        let orders = orders
            .iter()
            .map(|o| {
                o.iter()
                    .map(|k| committed.iter().position(|c| c == k).unwrap_or(0))
                    .collect()
            })
            .collect();
        Ok(Serial {
            orders,
            observed,
            failure,
            volatile,
        })
    }

    /// Runs `perms` of `spec`: each one's observation (None when a step
    /// failed or it could not run as written), and the first failure.
    async fn run(
        &self,
        spec: &CheckedSpec,
        perms: Vec<Vec<crate::spec::CheckedStep>>,
    ) -> Result<(Vec<Option<Observed>>, Option<String>), String> {
        let n = perms.len();
        let (res, fold) = run_batch(
            spec,
            self.params,
            &self.opts,
            self.stop,
            self.finals,
            perms,
            true,
        )
        .await;
        if let Some(msg) = fold.setup_failed {
            return Err(format!("a serial run's {msg}"));
        }
        if let Err(e) = res {
            return Err(format!("a serial order could not run: {e}"));
        }
        let mut failure = None;
        let mut out = Vec::with_capacity(n);
        for (k, (o, unrealizable)) in fold.outcomes.into_iter().enumerate() {
            if let Some(f) = o.failures.first() {
                failure.get_or_insert(format!("{} failed: {}", f.step, f.message));
                out.push(None);
            } else if unrealizable {
                out.push(None);
            } else {
                // Every step that ran is a committed transaction's.
                let rows = fold.rows.get(k).cloned().unwrap_or_default();
                out.push(Some(Observed {
                    reads: super::serial::all_reads(&self.spec.spec, &rows),
                    finals: o.results,
                }));
            }
        }
        Ok((out, failure))
    }
}

/// What `isospec run` needs to check a spec with `# isospec: anomalies`:
/// the final-state queries to run after each permutation's steps (before
/// the invariants), and, from the run's events, each permutation's
/// outcome.
pub struct RunObserver {
    fold: super::walk::Fold,
    /// The final-state queries (`after_steps` first).
    pub finals: Vec<String>,
    /// Each permutation's index and steps, in the order they ran.
    indices: Vec<(usize, Vec<String>)>,
}

impl RunObserver {
    /// For `spec`: its outcome queries, else its setup's tables.
    pub fn new(spec: &CheckedSpec) -> Self {
        let finals = if spec.spec.options.outcomes.is_empty() {
            super::serial::table_queries(&spec.spec)
        } else {
            spec.spec.options.outcomes.clone()
        };
        RunObserver {
            fold: super::walk::Fold::observing(),
            finals,
            indices: Vec::new(),
        }
    }

    pub fn event(&mut self, ev: &crate::executor::Event) {
        if let crate::executor::Event::PermutationStart { index, steps } = ev {
            self.indices.push((*index, steps.clone()));
        }
        self.fold.event(ev.clone(), self.finals.len());
    }

    /// Each permutation that ran whole (by its index) and its verdict.
    pub async fn check(
        self,
        spec: &CheckedSpec,
        params: &ConnParams,
        exec: &ExecOptions,
        stop: Option<&crate::stop::StopSignal>,
    ) -> Vec<(usize, Verdict)> {
        let mut checker = Checker::new(spec, params, exec, stop, &self.finals);
        checker.probe().await;
        let mut out = Vec::new();
        for (k, (mut o, unrealizable)) in self.fold.outcomes.into_iter().enumerate() {
            // A permutation cut short has no final state to compare.
            if unrealizable || o.results.len() < self.finals.len() {
                continue;
            }
            let Some((index, steps)) = self.indices.get(k) else {
                continue;
            };
            // The transactions of the steps this permutation ran.
            let mut seqs = vec![Vec::new(); spec.spec.sessions.len()];
            for name in steps {
                if let Some((s, i)) = super::walk::step_of(spec, name) {
                    seqs[s].push(i);
                }
            }
            let model = super::serial::model_of(&spec.spec, &seqs);
            let failed = o.failures.iter().map(|f| f.step.as_str());
            if let (Ok(c), Some(rows)) = (model.committed(failed), self.fold.rows.get(k)) {
                o.reads = model.reads(&spec.spec, &c, rows);
            }
            o.results.truncate(self.finals.len());
            checker.base.blank(&mut o.reads, &mut o.results);
            let v = checker.verdict_in(&model, &o).await;
            out.push((*index, v));
        }
        out
    }
}

/// The check `isospec run` makes of a spec with `# isospec: anomalies`.
pub struct RunCheck;

impl crate::run::SerialCheck for RunCheck {
    fn finals(&self, spec: &CheckedSpec) -> Vec<String> {
        RunObserver::new(spec).finals
    }

    fn anomalies<'a>(
        &'a self,
        spec: &'a CheckedSpec,
        params: &'a ConnParams,
        exec: &'a ExecOptions,
        stop: Option<&'a crate::stop::StopSignal>,
        events: Vec<crate::executor::Event>,
    ) -> crate::run::Found<'a> {
        Box::pin(async move {
            let mut observer = RunObserver::new(spec);
            for ev in &events {
                observer.event(ev);
            }
            observer
                .check(spec, params, exec, stop)
                .await
                .into_iter()
                .filter(|(_, v)| v.is_anomaly())
                .map(|(index, v)| (index, v.describe()))
                .collect()
        })
    }
}
