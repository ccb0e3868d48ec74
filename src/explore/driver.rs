//! `isospec explore`'s driver, on `run`'s ground: the same server
//! resolution (a temporary instance when no server is named), the step
//! timeout of the server version's isolationtester, the same database
//! preparation and session settings, and the same stop on SIGINT/SIGTERM.
//! For each spec it walks the interleavings (`walk`), shrinks the
//! representatives and records their timelines when asked, and emits what
//! happens as `ExploreEvent`s; it never prints (the reporter is
//! `report::explore`).

use super::bound;
use super::classes::Outcome;
use super::space::Space;
use super::walk::{self, Exploration, Plan, Search};
use crate::executor::ExecOptions;
use crate::exit::Exit;
use crate::outcome::{RunEvent, SpecTrace};
use crate::run::{self, DatabasePlan, Events, PreparedServer, ServerChoice};
use crate::spec::{self, CheckedSpec};
use crate::wait::DetectorKind;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// `--preemptions`: a bound, or rising from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preemptions {
    AtMost(usize),
    Rising,
}

/// What one `isospec explore` asks for, resolved by the command line.
#[derive(Debug)]
pub struct ExploreRequest {
    pub specs: Vec<PathBuf>,
    pub server: ServerChoice,
    /// The database to explore in (lane K > 1 uses NAME_K, within 63 bytes).
    pub dbname: String,
    pub use_existing: bool,
    pub drop_existing: bool,
    /// Explore in this many databases at once.
    pub jobs: usize,
    pub detector: DetectorKind,
    pub wait_function: Option<String>,
    pub wait_query: Option<String>,
    /// `--timeout`; None: the server version's isolationtester's.
    pub timeout: Option<Duration>,
    pub timeout_env: crate::timeouts::TimeoutEnv,
    pub grace: Duration,
    pub preemptions: Option<Preemptions>,
    pub reduce: bool,
    pub max: Option<u64>,
    pub budget: Option<Duration>,
    pub seed: u64,
    pub partition: Option<(usize, usize)>,
    /// The command line's outcome queries and invariants (before each
    /// spec's own).
    pub outcomes: Vec<String>,
    pub invariants: Vec<String>,
    pub shrink: bool,
    /// `--anomalies`: check classes against serial orders.
    pub anomalies: bool,
    /// Record the representatives' timelines (for the HTML report).
    pub trace: bool,
}

/// One spec's exploration, whole.
#[derive(Debug)]
pub struct SpecExplored {
    /// The spec as named on the command line.
    pub name: String,
    pub path: PathBuf,
    pub spec: CheckedSpec,
    pub exploration: Exploration,
    pub seed: u64,
    /// The invariants checked (the command line's, then the spec's).
    pub invariants: Vec<String>,
    /// The outcome queries and invariants given on the command line and
    /// not written in the spec (what `--write` adds as `# isospec:` lines).
    pub given: Given,
    /// The representatives' timelines (with `trace`), or why they could
    /// not be recorded.
    pub trace: Option<Result<SpecTrace, String>>,
}

/// Queries given on the command line that the spec lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    pub outcomes: Vec<String>,
    pub invariants: Vec<String>,
    /// `--anomalies`, on a spec without `# isospec: anomalies`.
    pub anomalies: bool,
}

/// What an exploration reports, in order.
#[derive(Debug)]
pub enum ExploreEvent {
    /// The server's preparation: its phases, notes and diagnostics, as `run` emits them.
    Run(RunEvent),
    /// A spec is about to be explored with this search.
    SpecStarted {
        name: String,
        spec: Box<CheckedSpec>,
        search: Search,
        max: Option<u64>,
        /// `--budget` was given (without `--max`, a bounded search then
        /// goes on until it is spent).
        budget: bool,
    },
    /// Interleavings run so far, of how many (when known).
    Progress {
        done: u64,
        planned: Option<u128>,
    },
    SpecExplored(Box<SpecExplored>),
    /// A signal stopped the exploration: what was reported is what was
    /// found so far.
    Interrupted,
}

/// Why an exploration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("--jobs must be at least 1")]
    NoJobs,
    #[error(transparent)]
    Setup(#[from] run::setup::SetupError),
    #[error("{0}")]
    Run(#[from] run::RunError),
    #[error("{0}")]
    Spec(String),
    #[error("{name}: {message}")]
    Explore { name: String, message: String },
}

/// Explores every spec of `req`, sending what happens to `events`; the
/// exit the explorations call for.
pub fn explore(req: ExploreRequest, events: Sender<ExploreEvent>) -> Result<Exit, DriverError> {
    if req.jobs == 0 {
        return Err(DriverError::NoJobs);
    }
    let target = run::setup::Target {
        server: &req.server,
        dbname: &req.dbname,
        use_existing: req.use_existing,
        timeout: req.timeout,
        timeout_env: &req.timeout_env,
    };
    run::setup::with_server_and_signals(
        &target,
        req.grace,
        &events,
        ExploreEvent::Run,
        |f, stopper| {
            Context {
                req: &req,
                rt: f.rt,
                server: f.server,
                run_events: f.events,
                events: &events,
            }
            .explore_all(stopper)
        },
    )
}

/// What every spec of one exploration shares.
struct Context<'a> {
    req: &'a ExploreRequest,
    rt: &'a tokio::runtime::Runtime,
    server: &'a PreparedServer,
    run_events: &'a Events,
    events: &'a Sender<ExploreEvent>,
}

impl Context<'_> {
    fn emit(&self, e: ExploreEvent) {
        let _ = self.events.send(e);
    }

    fn explore_all(&self, stopper: &mut crate::stop::Stopper) -> Result<Exit, DriverError> {
        let req = self.req;
        let params = &self.server.params;
        let plan = DatabasePlan {
            use_existing: req.use_existing,
            drop_existing: req.drop_existing,
            fresh_server: self.server.instance.is_some(),
            ..DatabasePlan::default()
        };
        let mut dbs = Vec::new();
        for k in 1..=req.jobs {
            let db = run::lane_database(&req.dbname, k - 1);
            self.rt.block_on(run::prepare_database(
                &plan,
                params,
                &db,
                Some(self.run_events),
            ))?;
            dbs.push(db);
        }
        let exec = ExecOptions {
            step_timeout: self.server.step_timeout,
            detector: req.detector,
            wait_function: req.wait_function.clone(),
            wait_query: req.wait_query.clone(),
            ..ExecOptions::default()
        };
        let mut exit = Exit::Success;
        for path in &req.specs {
            match self.explore_one(path, &dbs, &exec, stopper)? {
                Step::Explored(e) => exit = exit.worst(e),
                Step::Stopped { signal, shown } => {
                    if shown {
                        self.emit(ExploreEvent::Interrupted);
                    }
                    return Ok(exit.worst(Exit::Signal(signal)));
                }
            }
        }
        Ok(exit)
    }

    fn explore_one(
        &self,
        path: &std::path::Path,
        dbs: &[String],
        exec: &ExecOptions,
        stopper: &mut crate::stop::Stopper,
    ) -> Result<Step, DriverError> {
        let req = self.req;
        let name = path.display().to_string();
        let checked = spec::load(path).map_err(|e| DriverError::Spec(e.to_string()))?;
        // The session settings `isospec run` gives (pg_regress's).
        let test = path
            .file_stem()
            .map_or(name.clone(), |s| s.to_string_lossy().into_owned());
        let lanes: Vec<_> = dbs
            .iter()
            .map(|db| run::session_params(&self.server.params, db, &test))
            .collect();
        // The command line's queries first, then the spec's own.
        let mut outcomes = [&req.outcomes[..], &checked.spec.options.outcomes].concat();
        let anomalies = req.anomalies || checked.spec.options.anomalies;
        if anomalies && outcomes.is_empty() {
            // The final state: every row of the setup's tables.
            outcomes = super::serial::table_queries(&checked.spec);
        }
        let invariants = [&req.invariants[..], &checked.spec.options.invariants].concat();
        let search = match (req.preemptions, req.reduce) {
            (Some(Preemptions::AtMost(k)), _) => Search::Preemptions(k),
            (Some(Preemptions::Rising), _) => Search::RisingPreemptions,
            (None, true) => Search::Reduced(bound::commuting(&checked)),
            (None, false) => Search::Space,
        };
        self.emit(ExploreEvent::SpecStarted {
            name: name.clone(),
            spec: Box::new(checked.clone()),
            search: search.clone(),
            max: req.max,
            budget: req.budget.is_some(),
        });
        let mut plan = Plan {
            max: req.max,
            budget: req.budget,
            seed: req.seed,
            outcomes,
            invariants: invariants.clone(),
            search,
            partition: req.partition,
            anomalies: anomalies.then(|| super::serial::model(&checked.spec)),
            volatile: Default::default(),
        };
        let stop = stopper.signal();
        let mut checker = anomalies.then(|| {
            super::anomaly::Checker::new(&checked, &lanes[0], exec, Some(&stop), &plan.outcomes)
        });
        if let Some(checker) = checker.as_mut() {
            self.rt.block_on(checker.probe());
            plan.volatile = checker.base.clone();
        }
        let supervised = self.rt.block_on(async {
            let work = walk::explore(
                &checked,
                &lanes,
                exec,
                Some(&stop),
                &plan,
                |done, planned| self.emit(ExploreEvent::Progress { done, planned }),
            );
            stopper.supervise(work, |m| self.run_events.note(m)).await
        });
        let signal = supervised.signal.unwrap_or(2);
        let Some(exploration) = supervised.output else {
            // Stopped at once (a second signal, or the grace ran out):
            // this spec's classes are not shown.
            return Ok(Step::Stopped {
                signal,
                shown: false,
            });
        };
        let mut exploration = exploration.map_err(|e| DriverError::Explore {
            name: name.clone(),
            message: e.to_string(),
        })?;
        if let Some(checker) = checker.as_mut().filter(|_| !stop.requested()) {
            for c in exploration.classes.list() {
                if stop.requested() {
                    break;
                }
                let v = self.rt.block_on(checker.verdict(&c.outcome));
                exploration.anomalies.insert(c.first, v);
            }
        }
        if req.shrink && anomalies {
            // A rerun's outcome has no committed reads to compare: shrinking
            // would keep nothing.
            self.run_events
                .note("--shrink is not applied with --anomalies (not yet supported together)");
        } else if req.shrink && !stop.requested() {
            self.shrink(&checked, &lanes[0], exec, &stop, &plan, &mut exploration);
        }
        let trace = (req.trace && !stop.requested()).then(|| {
            let indices: Vec<u128> = exploration.classes.list().iter().map(|c| c.first).collect();
            self.rt.block_on(super::rerun::trace(
                &checked,
                &lanes[0],
                exec,
                Some(&stop),
                &plan,
                &indices,
            ))
        });
        let exit = outcome_exit(&exploration);
        let cut_short = exploration.cut_short;
        let checked_options = checked.spec.options.clone();
        self.emit(ExploreEvent::SpecExplored(Box::new(SpecExplored {
            name,
            path: path.to_path_buf(),
            spec: checked,
            exploration,
            seed: req.seed,
            invariants,
            given: Given {
                outcomes: lacking(&req.outcomes, &checked_options.outcomes),
                invariants: lacking(&req.invariants, &checked_options.invariants),
                anomalies: req.anomalies && !checked_options.anomalies,
            },
            trace,
        })));
        Ok(if cut_short && stop.requested() {
            Step::Stopped {
                signal,
                shown: true,
            }
        } else {
            Step::Explored(exit)
        })
    }

    /// `--shrink`: each eventful class's representative, shrunk against
    /// the uneventful class with the fewest preemptions.
    fn shrink(
        &self,
        checked: &CheckedSpec,
        params: &crate::pgwire::ConnParams,
        exec: &ExecOptions,
        stop: &crate::stop::StopSignal,
        plan: &Plan,
        exploration: &mut Exploration,
    ) {
        let space = Space::of(checked);
        let classes = exploration.classes.list();
        let baseline = classes
            .iter()
            .filter(|c| !eventful(&c.outcome))
            .min_by_key(|c| (c.preemptions, c.first))
            .and_then(|c| space.nth(c.first));
        for c in classes.iter().filter(|c| eventful(&c.outcome)) {
            let il = space.nth(c.first).expect("a class's index is in the space");
            let shrunk = self.rt.block_on(super::rerun::shrink(
                checked,
                params,
                exec,
                Some(stop),
                plan,
                super::rerun::ShrinkTarget {
                    interleaving: &il,
                    baseline: baseline.as_deref(),
                    outcome: &c.outcome,
                },
            ));
            exploration.shrunk.insert(c.first, shrunk);
        }
    }
}

/// How one spec's exploration ended.
enum Step {
    Explored(Exit),
    /// A signal stopped it; `shown`: the classes found so far were reported.
    Stopped {
        signal: i32,
        shown: bool,
    },
}

/// Classes with something to show: a violation, a failure or a wait (an
/// uneventful outcome shrinks to nothing worth pinning).
fn eventful(o: &Outcome) -> bool {
    !(o.violated.is_empty() && o.failures.is_empty() && o.waited.is_empty())
}

/// The exit one spec's exploration calls for: Error when an interleaving
/// could not run, Failed when an invariant was violated or a class is no
/// serial order's.
pub fn outcome_exit(e: &Exploration) -> Exit {
    if !e.errors.is_empty() {
        Exit::Error
    } else if e
        .classes
        .list()
        .iter()
        .any(|c| !c.outcome.violated.is_empty())
        || e.anomalies.values().any(|v| v.is_anomaly())
    {
        Exit::Failed
    } else {
        Exit::Success
    }
}

/// `--merge`: the parts' `--json` documents combined into what one
/// exploration of the whole reports, each spec's as if it had just been
/// explored (no server needed; the specs must be those the parts explored).
pub fn merge(files: &[PathBuf], events: Sender<ExploreEvent>) -> Result<Exit, DriverError> {
    use super::document::{merge, ExploreDocument};
    let mut parts = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| DriverError::Spec(format!("{file}: {e}")))?;
        parts.push((
            file.clone(),
            ExploreDocument::parse(&file, &text).map_err(DriverError::Spec)?,
        ));
    }
    let mut exit = Exit::Success;
    for m in merge(&parts).map_err(DriverError::Spec)? {
        let path = PathBuf::from(&m.name);
        let checked = spec::load(&path).map_err(|e| DriverError::Spec(e.to_string()))?;
        let mut exploration = m.exploration;
        // The lines are the spec's: it must be the spec the parts explored.
        let space = Space::of(&checked);
        if space.size() != exploration.space {
            return Err(DriverError::Spec(format!(
                "{}: the spec has changed since its parts were explored ({} now)",
                m.name,
                space
                    .size()
                    .map_or("more than 2^128 interleavings".into(), |n| {
                        crate::words::counted(n, "interleaving", "interleavings")
                    })
            )));
        }
        if let Search::Reduced(_) = exploration.search {
            exploration.search = Search::Reduced(bound::commuting(&checked));
        }
        let _ = events.send(ExploreEvent::SpecStarted {
            name: m.name.clone(),
            spec: Box::new(checked.clone()),
            search: exploration.search.clone(),
            max: exploration.max,
            budget: false,
        });
        exit = exit.worst(outcome_exit(&exploration));
        let _ = events.send(ExploreEvent::SpecExplored(Box::new(SpecExplored {
            name: m.name,
            path,
            spec: checked,
            exploration,
            seed: m.seed,
            invariants: m.invariants,
            given: Given::default(),
            trace: None,
        })));
    }
    Ok(exit)
}

/// The queries of `given` that `have` lacks (compared without regard to
/// whitespace), in order.
fn lacking(given: &[String], have: &[String]) -> Vec<String> {
    let norm = |q: &str| q.split_whitespace().collect::<Vec<_>>().join(" ");
    let have: Vec<String> = have.iter().map(|q| norm(q)).collect();
    let mut out: Vec<String> = Vec::new();
    for q in given {
        if !have.contains(&norm(q)) && !out.iter().any(|o| norm(o) == norm(q)) {
            out.push(q.clone());
        }
    }
    out
}
