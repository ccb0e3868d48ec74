//! Runs a spec's interleavings and groups them by outcome: the engine of
//! `isospec explore`.  Interleavings run as permutations through the
//! executor (fresh setup and teardown each, isolationtester's semantics),
//! in batches over one set of connections; the executor's events are
//! folded into one `Outcome` per interleaving.  Printing is the caller's.

use super::classes::{Classes, Failure, Outcome};
use super::space::{Interleaving, Space};
use crate::executor::{run_spec, Event, ExecOptions};
use crate::pgwire::ConnParams;
use crate::spec::{CheckedSpec, PStep};
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
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
    pub unrealizable: u64,
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
    pub fn explored(&self) -> u64 {
        self.classes.explored() + self.unrealizable + self.errors.len() as u64
    }
}

/// The order in which interleavings are tried: the whole space in its
/// stable order when it fits in `limit`, else distinct indices drawn
/// uniformly from a ChaCha8 stream seeded with `seed` (the same seed draws
/// the same indices on every machine).  `shuffled` draws the whole space
/// in random order (a budget without --max: whatever the budget allows is
/// a uniform sample, and all of it if the budget suffices).
pub struct Order {
    space: Space,
    size: Option<u128>,
    limit: u128,
    shuffled: bool,
    next: u128,
    rng: rand_chacha::ChaCha8Rng,
    seen: HashSet<u128>,
}

impl Order {
    pub fn new(space: Space, limit: u128, seed: u64) -> Order {
        let size = space.size();
        Order {
            space,
            size,
            limit,
            shuffled: false,
            next: 0,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            seen: HashSet::new(),
        }
    }

    /// The whole space, in a random order drawn from `seed`.
    pub fn shuffled(space: Space, seed: u64) -> Order {
        let limit = space.size().unwrap_or(u128::MAX);
        Order {
            shuffled: true,
            ..Order::new(space, limit, seed)
        }
    }

    /// Whether the walk, if not cut short, covers the whole space.
    pub fn exhaustive(&self) -> bool {
        self.size.is_some_and(|s| s <= self.limit)
    }

    /// The next interleaving's index, None when the walk is done.
    pub fn next_index(&mut self) -> Option<u128> {
        if self.next >= self.limit {
            return None;
        }
        let index = if self.exhaustive() && !self.shuffled {
            if self.next >= self.size? {
                return None;
            }
            self.next
        } else {
            // Beyond u128 the sample is drawn from the first 2^128 - 1.
            let size = self.size.unwrap_or(u128::MAX);
            loop {
                let i = self.rng.gen_range(0..size);
                if self.seen.insert(i) {
                    break i;
                }
            }
        };
        self.next += 1;
        Some(index)
    }

    pub fn interleaving(&self, index: u128) -> Interleaving {
        self.space.nth(index).expect("indices come from the space")
    }
}

/// The permutation (resolved steps) of an interleaving.
fn psteps(interleaving: &[usize], sessions: usize) -> Vec<PStep> {
    let mut next = vec![0usize; sessions];
    interleaving
        .iter()
        .map(|&s| {
            next[s] += 1;
            PStep {
                session: s,
                step: next[s] - 1,
                blockers: Vec::new(),
            }
        })
        .collect()
}

/// Folds one batch's events into outcomes, one per permutation started.
#[derive(Default)]
struct Fold {
    outcomes: Vec<(Outcome, bool)>,
    after: usize,
    setup_failed: Option<String>,
}

impl Fold {
    fn event(&mut self, ev: Event, n_outcomes: usize) {
        match ev {
            Event::PermutationStart { .. } => {
                self.outcomes.push((Outcome::default(), false));
                self.after = 0;
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
    let counts: Vec<usize> = spec.spec.sessions.iter().map(|s| s.steps.len()).collect();
    let space = Space::new(counts);
    let size = space.size();
    // The whole space when it has at most `max` interleavings (default
    // 10,000), else a seeded sample of `max`; the budget cuts either short.
    let limit = u128::from(plan.max.unwrap_or(DEFAULT_MAX));
    let order = match (plan.max, plan.budget) {
        // A budget alone: as much of the space as it allows, in random
        // order, so that a cut-short walk is a uniform sample.
        (None, Some(_)) => Order::shuffled(space, plan.seed),
        _ => Order::new(space, limit, plan.seed),
    };
    let limit = order.limit;
    let sampled = order.shuffled || !order.exhaustive();
    let planned = if order.exhaustive() {
        size
    } else {
        Some(limit)
    };
    let shared = Shared {
        order: std::cell::RefCell::new(order),
        result: std::cell::RefCell::new(Exploration {
            space: size,
            sampled,
            ..Exploration::default()
        }),
        failure: std::cell::RefCell::new(None),
        progress: std::cell::RefCell::new(progress),
    };
    let mut opts = exec.clone();
    opts.after_steps = plan
        .outcomes
        .iter()
        .chain(&plan.invariants)
        .cloned()
        .collect();
    opts.end_stalled = true;
    opts.only_permutation = None;
    futures_util::future::join_all(
        lanes
            .iter()
            .map(|params| lane(spec, params, &opts, stop, plan, start, planned, &shared)),
    )
    .await;
    if let Some(e) = shared.failure.into_inner() {
        return Err(e);
    }
    let mut result = shared.result.into_inner();
    result.elapsed = start.elapsed();
    // Exhaustive: every interleaving of the space was run.
    result.exhaustive = size == Some(u128::from(result.explored()));
    Ok(result)
}

/// What the lanes share (one thread: the lanes are futures of one task).
struct Shared<P> {
    order: std::cell::RefCell<Order>,
    result: std::cell::RefCell<Exploration>,
    failure: std::cell::RefCell<Option<ExploreError>>,
    progress: std::cell::RefCell<P>,
}

/// One lane: batches of interleavings over its own connections until the
/// order is done, the budget spent, the run interrupted or a lane failed.
#[allow(clippy::too_many_arguments)]
async fn lane<P: FnMut(u64, Option<u128>)>(
    spec: &CheckedSpec,
    params: &ConnParams,
    opts: &ExecOptions,
    stop: Option<&crate::stop::StopSignal>,
    plan: &Plan,
    start: Instant,
    planned: Option<u128>,
    shared: &Shared<P>,
) {
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
        let batch_size = if shared.result.borrow().explored() < 20 {
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
        let mut batch_spec = spec.clone();
        {
            let order = shared.order.borrow();
            batch_spec.permutations = pending
                .iter()
                .map(|&i| psteps(&order.interleaving(i), sessions))
                .collect();
        }
        batch_spec.warnings.clear();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let n_outcomes = plan.outcomes.len();
        let collect = async {
            let mut fold = Fold::default();
            while let Some(ev) = rx.recv().await {
                fold.event(ev, n_outcomes);
            }
            fold
        };
        let (res, fold) = tokio::join!(
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
        );
        if let Some(msg) = fold.setup_failed {
            *shared.failure.borrow_mut() = Some(ExploreError::Setup(msg));
            return;
        }
        let started = fold.outcomes.len();
        let completed = match &res {
            Ok(()) => started,
            // The last permutation started is the one that failed.
            Err(_) => started.saturating_sub(1),
        };
        {
            let mut result = shared.result.borrow_mut();
            for (k, (outcome, unrealizable)) in
                fold.outcomes.into_iter().take(completed).enumerate()
            {
                if unrealizable {
                    result.unrealizable += 1;
                } else {
                    result.classes.add(pending[k], outcome);
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
                    shared
                        .result
                        .borrow_mut()
                        .errors
                        .push((pending[completed], e.to_string()));
                }
                pending.drain(..(completed + 1).min(pending.len()));
            }
        }
        let explored = shared.result.borrow().explored();
        (shared.progress.borrow_mut())(explored, planned);
    }
}

/// Runs the interleavings `indices` once more, as permutations in that
/// order, recording their timelines (with blockers) for a drawing: the
/// representatives of an exploration's classes (`--html`).
pub async fn trace(
    spec: &CheckedSpec,
    params: &ConnParams,
    exec: &ExecOptions,
    stop: Option<&crate::stop::StopSignal>,
    plan: &Plan,
    indices: &[u128],
) -> Result<crate::outcome::SpecTrace, String> {
    let sessions = spec.spec.sessions.len();
    let space = Space::new(spec.spec.sessions.iter().map(|s| s.steps.len()).collect());
    let mut batch_spec = spec.clone();
    batch_spec.permutations = indices
        .iter()
        .filter_map(|&i| space.nth(i))
        .map(|il| psteps(&il, sessions))
        .collect();
    batch_spec.warnings.clear();
    let mut opts = exec.clone();
    opts.after_steps = plan
        .outcomes
        .iter()
        .chain(&plan.invariants)
        .cloned()
        .collect();
    opts.end_stalled = true;
    opts.only_permutation = None;
    opts.blockers_on_wait = true;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut recorder = crate::timeline::Recorder::new(spec);
    let collect = async {
        let mut text = String::new();
        let mut piece = String::new();
        while let Some(ev) = rx.recv().await {
            piece.clear();
            crate::transcript::render(&ev, &mut piece);
            recorder.record(&ev, &piece);
            text.push_str(&piece);
        }
        text
    };
    let (res, text) = tokio::join!(
        run_spec(
            &batch_spec,
            params,
            opts,
            crate::executor::ExecRuntime {
                stop: stop.cloned(),
                ..Default::default()
            },
            tx,
        ),
        collect
    );
    res.map_err(|e| e.to_string())?;
    let mut trace = recorder.into_trace();
    trace.actual = text;
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_spaces_are_walked_whole_in_order() {
        let mut o = Order::new(Space::new(vec![2, 1]), 10, 7);
        assert!(o.exhaustive());
        let got: Vec<u128> = std::iter::from_fn(|| o.next_index()).collect();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn samples_are_distinct_and_reproducible() {
        let draw = |seed| {
            let mut o = Order::new(Space::new(vec![4, 4, 4]), 50, seed);
            assert!(!o.exhaustive());
            std::iter::from_fn(|| o.next_index()).collect::<Vec<u128>>()
        };
        let a = draw(42);
        assert_eq!(a.len(), 50);
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 50);
        assert!(a.iter().all(|&i| i < 34_650));
        assert_eq!(a, draw(42));
        assert_ne!(a, draw(43));
    }

    #[test]
    fn a_shuffled_walk_covers_the_space_once_in_random_order() {
        let mut o = Order::shuffled(Space::new(vec![2, 2, 1]), 5);
        let got: Vec<u128> = std::iter::from_fn(|| o.next_index()).collect();
        assert_eq!(got.len(), 30);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..30).collect::<Vec<u128>>());
        assert_ne!(got, sorted);
    }

    #[test]
    fn permutations_keep_each_sessions_order() {
        let p = psteps(&[1, 0, 1], 2);
        let got: Vec<(usize, usize)> = p.iter().map(|s| (s.session, s.step)).collect();
        assert_eq!(got, vec![(1, 0), (0, 0), (1, 1)]);
    }

    #[test]
    fn events_fold_into_outcomes() {
        let mut f = Fold::default();
        f.event(
            Event::PermutationStart {
                index: 0,
                steps: vec![],
            },
            1,
        );
        f.event(
            Event::StepWaiting {
                session: "s2".into(),
                step: "w2".into(),
                sql: String::new(),
            },
            1,
        );
        f.event(
            Event::StepError {
                step: "w2".into(),
                text: "ERROR:  could not serialize access due to concurrent update".into(),
                sqlstate: Some("40001".into()),
            },
            1,
        );
        f.event(
            Event::AfterSteps {
                rows: Ok(vec![vec![Some("110".into())]]),
            },
            1,
        );
        f.event(
            Event::AfterSteps {
                rows: Ok(vec![vec![Some("f".into())]]),
            },
            1,
        );
        let (o, unrealizable) = &f.outcomes[0];
        assert!(!unrealizable);
        assert_eq!(o.waited, vec!["w2".to_string()]);
        assert_eq!(o.failures[0].sqlstate, "40001");
        assert_eq!(
            o.failures[0].message,
            "could not serialize access due to concurrent update"
        );
        assert_eq!(o.results, vec![vec![vec![Some("110".to_string())]]]);
        assert_eq!(o.violated, vec![0]);
    }
}
