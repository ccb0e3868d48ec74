//! Runs a spec's interleavings and groups them by outcome: the engine of
//! `isospec explore`.  Interleavings run as permutations through the
//! executor (fresh setup and teardown each, isolationtester's semantics),
//! in batches over one set of connections; the executor's events are
//! folded into one `Outcome` per interleaving.  Printing is the caller's.

use super::bound;
use super::classes::{Classes, Failure, Outcome};
use super::observe::StepRows;
use super::order::Order;
pub use super::order::Search;
use super::space::Space;
use crate::executor::{run_spec, Event, ExecOptions};
use crate::pgwire::ConnParams;
use crate::spec::{CheckedSpec, CheckedStep};
use std::time::{Duration, Instant};

/// How many interleavings to run, and in which order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// At most this many interleavings (`--max`).
    pub max: Option<u64>,
    /// Stop starting batches after this long (`--budget`).
    pub budget: Option<Duration>,
    /// Seed of the sample when the space is not walked whole.
    pub seed: u64,
    /// Outcome queries, then invariants, run after each interleaving.
    pub outcomes: Vec<String>,
    pub invariants: Vec<String>,
    /// Which interleavings: the space (whole or sampled), a preemption
    /// bound, or one per trace of commuting steps.
    pub search: Search,
    /// Run only part K of N (1-based) of the interleavings drawn: every
    /// N-th, from the K-th on, so that N machines split one walk.
    pub partition: Option<(usize, usize)>,
    /// `--anomalies`: the spec's transactions; each outcome then keeps
    /// the rows its committed transactions' steps read.
    pub anomalies: Option<super::serial::Model>,
    /// With `anomalies`: the values blanked in every outcome (they differ
    /// between two runs of the same serial order).
    pub volatile: super::compare::Volatile,
}

/// Interleavings run when `--max` is not given.
pub const DEFAULT_MAX: u64 = 10_000;

/// What exploring one spec found.
#[derive(Debug, Default)]
pub struct Exploration {
    /// None: larger than u128.
    pub space: Option<u128>,
    /// Every interleaving of the space ran.
    pub exhaustive: bool,
    /// The interleavings were drawn at random from the seed (else taken
    /// in the stable order).
    pub sampled: bool,
    pub classes: Classes,
    /// Interleavings that could not run as written: a step was due while
    /// its session was blocked by sessions with nothing left to run first.
    pub unrealizable: u128,
    /// Interleavings that ran (with commuting steps, fewer than they
    /// stand for).
    pub runs: u64,
    /// With a preemption bound: the interleavings drawn with exactly K
    /// preemptions, for each K reached.
    pub per_k: Vec<u128>,
    /// The walk drew every interleaving its search has (none was left
    /// when it ended).
    pub complete: bool,
    /// The search, `--max` and partition it ran with.
    pub search: Search,
    pub max: Option<u64>,
    pub partition: Option<(usize, usize)>,
    /// `--shrink`: each class's shrunk representative, by the class's
    /// representative index.
    pub shrunk: std::collections::BTreeMap<u128, Vec<CheckedStep>>,
    /// `--anomalies`: each class's verdict against the serial orders, by
    /// the class's representative index.
    pub anomalies: std::collections::BTreeMap<u128, super::compare::Verdict>,
    /// A preemption search: the steps seen waiting, after which a switch
    /// was no preemption.
    pub waiting: Vec<String>,
    /// Interleavings the executor gave up on (timeouts, lost connections).
    pub errors: Vec<(u128, String)>,
    pub elapsed: Duration,
    /// The run was cut short by Ctrl-C or the budget.
    pub cut_short: bool,
    /// Ctrl-C cut an interleaving: what ran is no longer a prefix of the
    /// drawn order.
    pub interrupted: bool,
}

impl Exploration {
    /// The interleavings explored (the ones that ran, and those their
    /// traces stand for).
    pub fn explored(&self) -> u128 {
        self.classes.explored() + self.unrealizable + self.errors.len() as u128
    }
}

/// A step's (session, index), by name.
pub(super) fn step_of(spec: &CheckedSpec, name: &str) -> Option<(usize, usize)> {
    spec.spec
        .sessions
        .iter()
        .enumerate()
        .find_map(|(s, session)| {
            session
                .steps
                .iter()
                .position(|st| st.name == name)
                .map(|i| (s, i))
        })
}

/// The permutation (resolved steps) of an interleaving.
pub(super) fn psteps(interleaving: &[usize], sessions: usize) -> Vec<CheckedStep> {
    let mut next = vec![0usize; sessions];
    interleaving
        .iter()
        .map(|&s| {
            next[s] += 1;
            CheckedStep {
                session: s,
                step: next[s] - 1,
                blockers: Vec::new(),
            }
        })
        .collect()
}

/// Folds one batch's events into outcomes, one per permutation started.
#[derive(Default)]
pub(super) struct Fold {
    pub(super) outcomes: Vec<(Outcome, bool)>,
    after: usize,
    pub(super) setup_failed: Option<String>,
    /// Keep each step's rows (`rows`), for shrinking's observers.
    pub(super) observe: bool,
    /// With `observe`: the rows of each permutation's steps.
    pub(super) rows: Vec<StepRows>,
    /// The step whose results come next (with `observe`).
    current: Option<String>,
}

impl Fold {
    /// A fold that keeps each step's rows.
    pub(super) fn observing() -> Fold {
        Fold {
            observe: true,
            ..Fold::default()
        }
    }

    pub(super) fn event(&mut self, ev: Event, n_outcomes: usize) {
        match ev {
            Event::PermutationStart { .. } => {
                self.outcomes.push((Outcome::default(), false));
                self.after = 0;
                self.current = None;
                if self.observe {
                    self.rows.push(StepRows::new());
                }
            }
            Event::SetupFailed { session, message } => {
                self.setup_failed = Some(match session {
                    None => format!("setup failed: {}", message.trim_end()),
                    Some(s) => format!("setup of session {s} failed: {}", message.trim_end()),
                })
            }
            ev => {
                let Some((o, unrealizable)) = self.outcomes.last_mut() else {
                    return;
                };
                match ev {
                    Event::StepLaunched { step, .. } | Event::StepCompleted { step, .. } => {
                        self.current = Some(step)
                    }
                    Event::Tuples(t) => {
                        if let (Some(step), Some(rows)) = (&self.current, self.rows.last_mut()) {
                            rows.entry(step.clone()).or_default().extend(t.rows);
                        }
                    }
                    Event::StepWaiting { step, .. } => o.waited.push(step),
                    Event::StepError {
                        step,
                        text,
                        sqlstate,
                    } => {
                        let message = text
                            .split_once(":  ")
                            .map_or(text.as_str(), |(_, m)| m)
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_string();
                        o.failures.push(Failure {
                            step,
                            sqlstate: sqlstate.unwrap_or_else(|| "-----".into()),
                            message,
                        });
                    }
                    Event::AfterSteps { rows } => {
                        self.current = None;
                        let k = self.after;
                        self.after += 1;
                        if k < n_outcomes {
                            o.results.push(
                                rows.unwrap_or_else(|e| vec![vec![Some(format!("ERROR: {e}"))]]),
                            );
                        } else {
                            let holds = matches!(&rows, Ok(r) if r.len() == 1 && r[0].len() == 1 && r[0][0].as_deref() == Some("t"));
                            if !holds {
                                o.violated.push(k - n_outcomes);
                            }
                        }
                    }
                    Event::Unrealizable { .. } => *unrealizable = true,
                    _ => {}
                }
            }
        }
    }
}

/// Errors that stop an exploration (as opposed to one interleaving).
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error("{0}")]
    Setup(String),
    #[error("could not connect: {0}")]
    Connect(String),
    /// Interleavings are numbered with 128 bits.
    #[error("the spec has more than 2^128 interleavings, more than isospec can number: explore fewer steps")]
    TooLarge,
}

/// Explores `spec` on the server of `lanes` (one database each, which
/// must exist): each lane takes the next batch of interleavings from one
/// shared order and runs it over its own connections, so `-j N` explores
/// in N databases at once; the classes are the same whatever N (the
/// representative of a class is its first member in the stable order).
/// An interrupt ends the walk after each lane's current interleaving;
/// `progress` is told (explored, planned) after each batch.
pub async fn explore(
    spec: &CheckedSpec,
    lanes: &[ConnParams],
    exec: &ExecOptions,
    stop: Option<&crate::stop::StopSignal>,
    plan: &Plan,
    progress: impl FnMut(u64, Option<u128>),
) -> Result<Exploration, ExploreError> {
    let start = Instant::now();
    let space = Space::of(spec);
    let size = space.size();
    if size.is_none() {
        return Err(ExploreError::TooLarge);
    }
    // The whole space when it has at most `max` interleavings (default
    // 10,000), else a seeded sample of `max`; the budget cuts either short.
    let limit = u128::from(plan.max.unwrap_or(DEFAULT_MAX));
    let order = match (&plan.search, plan.max, plan.budget) {
        // A budget alone: as much of the space as it allows, in random
        // order, so that a cut-short walk is a uniform sample.
        (Search::Space, None, Some(_)) => Order::shuffled(space, plan.seed),
        (Search::Space, _, _) => Order::new(space, limit, plan.seed),
        // A bounded or reduced search with a budget alone goes on until
        // it is spent (a rising bound rises meanwhile).
        (search, None, Some(_)) => Order::search(space, u128::MAX, search),
        (search, _, _) => Order::search(space, limit, search),
    }
    .partitioned(plan.partition);
    let sampled = order.shuffled || order.sampled();
    let planned = if order.exhaustive() {
        size
    } else if order.sampled() {
        Some(order.limit)
    } else {
        None
    };
    let opts = explore_options(exec, plan);
    let shared = Shared {
        spec,
        opts: &opts,
        stop,
        plan,
        start,
        planned,
        order: std::cell::RefCell::new(order),
        result: std::cell::RefCell::new(Exploration {
            space: size,
            sampled,
            search: plan.search.clone(),
            max: plan.max,
            partition: plan.partition,
            ..Exploration::default()
        }),
        failure: std::cell::RefCell::new(None),
        progress: std::cell::RefCell::new(progress),
    };
    futures_util::future::join_all(lanes.iter().map(|params| lane(params, &shared))).await;
    if let Some(e) = shared.failure.into_inner() {
        return Err(e);
    }
    let order = shared.order.into_inner();
    let mut result = shared.result.into_inner();
    if order.learning.is_some() {
        result.waiting = order
            .waiting_steps()
            .into_iter()
            .map(|(s, i)| spec.spec.sessions[s].steps[i].name.clone())
            .collect();
    }
    result.elapsed = start.elapsed();
    result.per_k = order.per_k();
    result.complete = order.exhausted && !result.cut_short;
    // Exhaustive: every interleaving of the space was run, or stood for
    // by a trace that ran.
    result.exhaustive = result.errors.is_empty() && size == Some(result.explored());
    Ok(result)
}

/// What the lanes share (one thread: the lanes are futures of one task):
/// the walk's inputs, and its order and result as it goes.
struct Shared<'a, P> {
    spec: &'a CheckedSpec,
    opts: &'a ExecOptions,
    stop: Option<&'a crate::stop::StopSignal>,
    plan: &'a Plan,
    start: Instant,
    /// How many interleavings the walk will run, when known.
    planned: Option<u128>,
    order: std::cell::RefCell<Order>,
    result: std::cell::RefCell<Exploration>,
    failure: std::cell::RefCell<Option<ExploreError>>,
    progress: std::cell::RefCell<P>,
}

/// One lane: batches of interleavings over its own connections until the
/// order is done, the budget spent, the run interrupted or a lane failed.
async fn lane<P: FnMut(u64, Option<u128>)>(params: &ConnParams, shared: &Shared<'_, P>) {
    let Shared {
        spec,
        opts,
        stop,
        plan,
        start,
        planned,
        ..
    } = *shared;
    let sessions = spec.spec.sessions.len();
    let mut pending: Vec<u128> = Vec::new();
    loop {
        if shared.failure.borrow().is_some() {
            return;
        }
        // Checked before drawing, so that what ran is always a prefix of
        // the drawn order: `--seed S --max N` then reproduces a run that a
        // budget ended.
        if pending.is_empty()
            && (stop.is_some_and(crate::stop::StopSignal::requested)
                || plan.budget.is_some_and(|b| start.elapsed() >= b))
        {
            shared.result.borrow_mut().cut_short = true;
            return;
        }
        // A batch: small at first, so that every lane starts soon.
        let batch_size = if shared.result.borrow().runs < 20 {
            10
        } else {
            100
        };
        {
            let mut order = shared.order.borrow_mut();
            while pending.len() < batch_size {
                match order.next_index() {
                    Some(i) => pending.push(i),
                    None => break,
                }
            }
        }
        if pending.is_empty() {
            return;
        }
        let perms: Vec<Vec<CheckedStep>> = {
            let order = shared.order.borrow();
            pending
                .iter()
                .map(|&i| psteps(&order.interleaving(i), sessions))
                .collect()
        };
        let observe = plan.anomalies.is_some();
        let (res, mut fold) = run_batch(
            spec,
            params,
            opts,
            stop,
            plan.outcomes.len(),
            perms,
            observe,
        )
        .await;
        if let Some(model) = &plan.anomalies {
            for (k, (o, _)) in fold.outcomes.iter_mut().enumerate() {
                let failed = o.failures.iter().map(|f| f.step.as_str());
                if let (Ok(c), Some(rows)) = (model.committed(failed), fold.rows.get(k)) {
                    o.reads = model.reads(&spec.spec, &c, rows);
                }
                plan.volatile.blank(&mut o.reads, &mut o.results);
            }
        }
        if let Some(msg) = fold.setup_failed {
            *shared.failure.borrow_mut() = Some(ExploreError::Setup(msg));
            return;
        }
        // Steps seen waiting, also in runs that could not go on as
        // written: moving on from them is no preemption.
        let waited: Vec<(usize, usize)> = fold
            .outcomes
            .iter()
            .flat_map(|(o, _)| &o.waited)
            .filter_map(|name| step_of(spec, name))
            .collect();
        shared.order.borrow_mut().learn(&waited);
        let started = fold.outcomes.len();
        let completed = match &res {
            Ok(()) => started,
            // The last permutation started is the one that failed.
            Err(_) => started.saturating_sub(1),
        };
        {
            let order = shared.order.borrow();
            let steps = order.steps.clone();
            let mut result = shared.result.borrow_mut();
            for (k, (outcome, unrealizable)) in
                fold.outcomes.into_iter().take(completed).enumerate()
            {
                let il = order.interleaving(pending[k]);
                // With commuting steps, a run stands for its whole trace,
                // and the trace's member with the fewest preemptions
                // represents it.
                let (weight, member) = match &plan.search {
                    Search::Reduced(commutes) => (
                        bound::trace_size(&il, commutes).unwrap_or(1),
                        bound::fewest_preemptions(&il, commutes).unwrap_or_else(|| il.clone()),
                    ),
                    _ => (1, il.clone()),
                };
                result.runs += 1;
                if unrealizable {
                    result.unrealizable += weight;
                } else {
                    // Counted from the interleaving alone, so that a
                    // class's representative does not depend on when a
                    // wait was seen (-j).
                    let pre = bound::preemptions(&member, &steps, &bound::Free::new());
                    let index = order.space.rank(&member).unwrap_or(pending[k]);
                    result.classes.add(index, pre, weight, outcome);
                }
            }
        }
        match res {
            Ok(()) => pending.clear(),
            Err(crate::executor::SpecError::Connect { source, .. }) if started == 0 => {
                *shared.failure.borrow_mut() = Some(ExploreError::Connect(source.to_string()));
                return;
            }
            Err(crate::executor::SpecError::Interrupted)
            | Err(crate::executor::SpecError::GraceEnded { .. })
            | Err(crate::executor::SpecError::NotStarted) => {
                let mut result = shared.result.borrow_mut();
                result.cut_short = true;
                result.interrupted = true;
                return;
            }
            Err(e) => {
                if completed < pending.len() {
                    let mut result = shared.result.borrow_mut();
                    result.errors.push((pending[completed], e.to_string()));
                    result.runs += 1;
                }
                pending.drain(..(completed + 1).min(pending.len()));
            }
        }
        let runs = shared.result.borrow().runs;
        (shared.progress.borrow_mut())(runs, planned);
    }
}

/// Runs permutations as one spec run over one set of connections: the
/// executor's result and the events folded into one outcome per
/// permutation started.
pub(super) async fn run_batch(
    spec: &CheckedSpec,
    params: &ConnParams,
    opts: &ExecOptions,
    stop: Option<&crate::stop::StopSignal>,
    n_outcomes: usize,
    perms: Vec<Vec<CheckedStep>>,
    observe: bool,
) -> (Result<(), crate::executor::SpecError>, Fold) {
    let mut batch_spec = spec.clone();
    batch_spec.permutations = perms;
    batch_spec.warnings.clear();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let collect = async {
        let mut fold = Fold {
            observe,
            ..Fold::default()
        };
        while let Some(ev) = rx.recv().await {
            fold.event(ev, n_outcomes);
        }
        fold
    };
    tokio::join!(
        run_spec(
            &batch_spec,
            params,
            opts.clone(),
            crate::executor::ExecRuntime {
                stop: stop.cloned(),
                ..Default::default()
            },
            tx,
        ),
        collect
    )
}

/// The executor options of an exploration: the outcome queries and
/// invariants after each permutation, stalled permutations ended at once.
pub(super) fn explore_options(exec: &ExecOptions, plan: &Plan) -> ExecOptions {
    let mut opts = exec.clone();
    opts.after_steps = plan
        .outcomes
        .iter()
        .chain(&plan.invariants)
        .cloned()
        .collect();
    opts.end_stalled = true;
    opts.only_permutation = None;
    opts
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
