//! The test-run driver, compatible with pg_isolation_regress.  `run` is
//! the one entry point: it prepares the server (a temp instance or the
//! user's) and the databases, runs the selected specs pass by pass and
//! group by group, and emits what happens as `outcome::RunEvent`s; it never
//! prints.  Its parts, each with one job:
//!
//! - `select`: which specs, in which groups (targets, schedules, partitions);
//! - `database`: the test databases and what the run asks the server;
//! - `one`: one spec, once: executor, results/NAME.out, comparison;
//! - `passes`: repeated passes;
//! - `sink`: what every finished spec goes through (regression.diffs,
//!   `--accept`, flakes, its `SpecFinished` event);
//! - `lanes`: one group, serially or on -j lanes;
//! - `flaky`: distinct transcripts over repeats;
//! - `accept`: copying transcripts into expected/.

mod accept;
pub(crate) mod database;
mod flaky;
mod lanes;
mod one;
mod passes;
mod select;
pub mod setup;
mod sink;

pub use accept::accept;
pub use select::{partition, resolve_tests, scheduled, TestCase};

use crate::executor::ExecOptions;
use crate::exit::Exit;
use crate::jobs::Timings;
use crate::outcome::{Phase, RunEvent, Status, TempServer, TestOutcome};
use crate::pgwire::ConnParams;
use crate::schedule;
use crate::server::{TempInstance, TempInstanceOptions};
use database::server_version_num;
use flaky::Variants;
use passes::run_passes;
use sink::ClassSoFar;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the server is.
#[derive(Debug, Clone)]
pub enum ServerChoice {
    Existing(Box<ConnParams>),
    Temp(Box<TempInstanceOptions>),
}

/// `# isospec: anomalies` under `isospec run`: the check of each
/// permutation against the serial orders of its committed transactions.
/// The front end hands it in (explore's), so that run does not depend on
/// explore.
pub trait SerialCheck: Send + Sync {
    /// The final-state queries, run after each permutation's steps
    /// (before the invariants).
    fn finals(&self, spec: &crate::spec::CheckedSpec) -> Vec<String>;
    /// From a spec run's events: each permutation (by index) whose outcome
    /// no serial order produces, with how it differs.
    fn anomalies<'a>(
        &'a self,
        spec: &'a crate::spec::CheckedSpec,
        params: &'a ConnParams,
        exec: &'a ExecOptions,
        stop: Option<&'a crate::stop::StopSignal>,
        events: Vec<crate::executor::Event>,
    ) -> Found<'a>;
}

/// What `SerialCheck::anomalies` finds, when it is done.
pub type Found<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Vec<(usize, String)>> + 'a>>;

/// A `SerialCheck` in a `RunConfig`.
#[derive(Clone)]
pub struct SerialChecker(pub std::sync::Arc<dyn SerialCheck>);

impl std::fmt::Debug for SerialChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SerialChecker")
    }
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub tests: Vec<TestCase>,
    /// Checks specs with `# isospec: anomalies` (None: such specs run
    /// without the check).
    pub serial_check: Option<SerialChecker>,
    /// Invariants checked after each permutation besides each spec's own
    /// (`--invariant`); None: none checked (`--no-invariants`,
    /// pg_isolation_regress).
    pub invariants: Option<Vec<String>>,
    /// Record each spec's timeline (step times, blockers, both
    /// transcripts) for a report that draws it (`--html`).
    pub trace: bool,
    pub outputdir: PathBuf,
    pub dbname: String,
    pub use_existing: bool,
    pub drop_existing: bool,
    /// Drop the test database when the run ends (`--drop-database`).
    pub drop_after: bool,
    pub load_extensions: Vec<String>,
    pub server: ServerChoice,
    /// Settings for the executor; its step timeout is chosen at run time
    /// (see `timeouts`) from `timeout` and `timeout_env`.
    pub exec: ExecOptions,
    /// `--timeout`: the step timeout whatever the server's version.
    pub timeout: Option<Duration>,
    pub timeout_env: crate::timeouts::TimeoutEnv,
    /// Specs run at once (each in its own database when > 1).
    pub jobs: usize,
    /// Run the selection this many times (flake hunting).
    pub repeat: usize,
    /// Stop repeating after the first pass with a failure.
    pub until_fail: bool,
    /// Copy differing or new transcripts into expected/.
    pub accept: bool,
    /// Test names to run alone under -j (like `# isospec: alone`).
    pub alone: Vec<String>,
    /// Under -j, bind each lane and its backends to a CPU (see `affinity`).
    pub pin: bool,
    /// pg_regress's database setup beyond the test database itself.
    pub setup: DatabaseSetup,
    /// Remove the temp instance's directory when every spec passed, as
    /// pg_regress does.
    pub remove_instance_on_success: bool,
    /// How long a run may take to stop after SIGINT/SIGTERM (`--grace`).
    pub grace: Duration,
}

/// What pg_regress's options add to the database setup (none of it is
/// done with `use_existing`).
#[derive(Debug, Clone, Default)]
pub struct DatabaseSetup {
    /// Databases created besides the test database (`--dbname=a,b,c`).
    pub more_databases: Vec<String>,
    /// Roles (re)created with LOGIN and granted every test database.
    pub roles: Vec<String>,
    /// Procedural languages created in each database (pg_regress 12).
    pub languages: Vec<String>,
    /// `CREATE DATABASE … ENCODING`.
    pub encoding: Option<String>,
    /// `CREATE DATABASE … LC_COLLATE='C' LC_CTYPE='C'` (`--no-locale`).
    pub c_locale: bool,
}

/// How the test databases are prepared: what `run` and `explore` share of
/// a run's configuration for it.
#[derive(Debug, Clone, Default)]
pub struct DatabasePlan {
    /// Run in the existing database as it is.
    pub use_existing: bool,
    /// Drop the database even if isospec did not create it.
    pub drop_existing: bool,
    /// The server is a temporary instance started for this run.
    pub fresh_server: bool,
    pub load_extensions: Vec<String>,
    pub setup: DatabaseSetup,
}

impl RunConfig {
    pub fn database_plan(&self) -> DatabasePlan {
        DatabasePlan {
            use_existing: self.use_existing,
            drop_existing: self.drop_existing,
            fresh_server: matches!(self.server, ServerChoice::Temp(_)),
            load_extensions: self.load_extensions.clone(),
            setup: self.setup.clone(),
        }
    }
}

/// What a run holds while it runs, apart from its configuration (which
/// stays as the user's options made it): the stop signal, and the step
/// timeout learned from the server's version.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    pub stop: crate::stop::StopSignal,
    pub step_timeout: Duration,
}

impl Runtime {
    /// SIGINT/SIGTERM came: nothing more starts.
    pub fn interrupted(&self) -> bool {
        self.stop.requested()
    }

    /// The executor's options for one spec (the run's, with the step
    /// timeout of the server's version) and its runtime (the stop signal,
    /// the lane's CPU binding).
    pub fn exec_for(
        &self,
        cfg: &RunConfig,
        pin: Option<(i32, usize)>,
    ) -> (crate::executor::ExecOptions, crate::executor::ExecRuntime) {
        let opts = crate::executor::ExecOptions {
            step_timeout: self.step_timeout,
            ..cfg.exec.clone()
        };
        let rt = crate::executor::ExecRuntime {
            stop: Some(self.stop.clone()),
            pin_backends: pin,
            ..Default::default()
        };
        (opts, rt)
    }
}

/// The server a run or an exploration works on, and what was learned of it
/// before any spec: the step timeout of its version's isolationtester.
pub struct PreparedServer {
    pub params: ConnParams,
    pub instance: Option<TempInstance>,
    pub step_timeout: Duration,
}

/// Starts a temporary instance or takes the user's server, asks its
/// version (in `admin_db`) and chooses the step timeout.  Shared by `run`
/// and `explore`.
pub async fn prepare_server(
    server: &ServerChoice,
    admin_db: &str,
    timeout: Option<Duration>,
    timeout_env: &crate::timeouts::TimeoutEnv,
    events: &Events,
) -> Result<PreparedServer, RunError> {
    let (params, instance) = start_server(server, events).await?;
    let step_timeout = server_step_timeout(
        &params,
        admin_db,
        instance.as_ref(),
        timeout,
        timeout_env,
        events,
    )
    .await?;
    Ok(PreparedServer {
        params,
        instance,
        step_timeout,
    })
}

pub use database::{drop_when_unused, lane_database, prepare_database};
pub use one::session_params;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no spec for test \"{name}\": {path} does not exist")]
    NoSpec { name: String, path: String },
    #[error("spec file {0} does not exist")]
    NoSpecFile(String),
    #[error(transparent)]
    Schedule(#[from] schedule::ScheduleError),
    #[error("too many parallel tests (more than {max}) in schedule file \"{schedule}\" line {line}: test: {tests}")]
    TooManyParallel {
        max: usize,
        schedule: String,
        line: usize,
        tests: String,
    },
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error("database setup on {server} failed: {message}")]
    Database { server: String, message: String },
    #[error("could not write {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
    #[error("could not install a signal handler: {0}")]
    Signals(std::io::Error),
    #[error("a background task of the run failed: {0}")]
    Task(String),
    #[error("could not start a runner thread: {0}")]
    Thread(std::io::Error),
    #[error("could not start a runtime for lane {slot}: {source}")]
    LaneRuntime { slot: usize, source: std::io::Error },
    #[error("runner lane {0} stopped")]
    LaneStopped(usize),
    #[error("internal error: the run of {0} panicked")]
    Panicked(String),
    #[error(
        "nothing to accept: no previous run recorded in {0} (run isospec run first, or name tests)"
    )]
    NothingToAccept(String),
    #[error("no result to accept for \"{name}\": {path}: {source}")]
    NoResult {
        name: String,
        path: String,
        source: std::io::Error,
    },
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
}

#[derive(Debug)]
pub struct RunSummary {
    pub outcomes: Vec<TestOutcome>,
    /// Specs that gave more than one distinct transcript over repeats.
    pub flaky: Vec<String>,
}

impl RunSummary {
    /// Success when all passed, Failed when some differed or failed at
    /// run time, Error when a spec could not be parsed.
    pub fn exit(&self) -> Exit {
        if self
            .outcomes
            .iter()
            .any(|o| matches!(o.status, Status::BadSpec(_)))
        {
            Exit::Error
        } else if self.flaky.is_empty() && self.outcomes.iter().all(|o| o.status.passed()) {
            Exit::Success
        } else {
            Exit::Failed
        }
    }
}

/// Where the run's events go (cloned into every lane).
#[derive(Debug, Clone)]
pub struct Events(tokio::sync::mpsc::UnboundedSender<RunEvent>);

impl Events {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<RunEvent>) -> Self {
        Events(tx)
    }

    /// Events that another command (explore, record) passes on as its own,
    /// as they come, through `wrap`: a task on `rt` forwards them until
    /// the last `Events` is dropped (await the handle to see them all).
    pub fn forwarding<E: Send + 'static>(
        rt: &tokio::runtime::Runtime,
        to: std::sync::mpsc::Sender<E>,
        wrap: fn(RunEvent) -> E,
    ) -> (Events, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = rt.spawn(async move {
            while let Some(e) = rx.recv().await {
                let _ = to.send(wrap(e));
            }
        });
        (Events(tx), task)
    }

    pub fn emit(&self, e: RunEvent) {
        // The receiver is gone only when nobody listens any more.
        let _ = self.0.send(e);
    }

    pub fn note(&self, text: impl Into<String>) {
        self.emit(RunEvent::Note(text.into()));
    }

    fn diagnostic(&self, spec: &str, text: String) {
        self.emit(RunEvent::Diagnostic {
            spec: spec.to_string(),
            text,
        });
    }
}

/// Runs every test of `cfg`.  A temp instance, when used, is stopped before
/// this returns, also on error and on SIGINT/SIGTERM.
pub async fn run(cfg: RunConfig, events: Events) -> Result<RunSummary, RunError> {
    let wall = Instant::now();
    let (results_dir, diffs_path) = prepare_outputs(&cfg)?;
    let timings = Timings::load(&results_dir);
    // Installed before a temp instance starts: a signal that arrives while
    // it starts is seen as soon as the run begins, and no spec starts.
    let mut stopper = crate::stop::Stopper::install(cfg.grace).map_err(RunError::Signals)?;
    let admin_db = if cfg.use_existing {
        cfg.dbname.clone()
    } else {
        "postgres".to_string()
    };
    let PreparedServer {
        params,
        instance,
        step_timeout,
    } = prepare_server(
        &cfg.server,
        &admin_db,
        cfg.timeout,
        &cfg.timeout_env,
        &events,
    )
    .await?;

    let mut tally = ClassSoFar {
        outcomes: Vec::new(),
        variants: cfg.tests.iter().map(|_| Variants::default()).collect(),
        finished: vec![false; cfg.tests.len()],
    };
    // On SIGINT/SIGTERM no spec starts any more; the running specs cancel
    // their steps, end their sessions' transactions and run their
    // teardown within the grace period, then the run stops.
    let rt = Runtime {
        stop: stopper.signal(),
        step_timeout,
    };
    let work = run_passes(
        &cfg,
        &rt,
        &params,
        &timings,
        &events,
        &diffs_path,
        &mut tally,
    );
    let supervised = stopper.supervise(work, |m| events.note(m)).await;
    let signal = supervised.signal;
    let result = match (supervised.output, signal) {
        (Some(r), None) => r,
        (_, Some(sig)) => Err(RunError::Interrupted(sig)),
        (None, None) => unreachable!("work ends by itself or by a signal"),
    };
    if let Some(mut inst) = instance {
        events.emit(RunEvent::Phase(Phase::StoppingServer));
        // After a signal, the shutdown gets what is left of the grace.
        let until = supervised.hard_deadline;
        let _ = tokio::task::spawn_blocking(move || inst.stop_by(until)).await;
        if let ServerChoice::Temp(o) = &cfg.server {
            if signal.is_some() {
                events.note(format!("temporary instance in {} stopped", o.dir.display()));
            } else if cfg.remove_instance_on_success
                && result.is_ok()
                && tally.outcomes.iter().all(|o| o.status.passed())
            {
                events.emit(RunEvent::Phase(Phase::RemovingInstance(o.dir.clone())));
                if let Err(e) = std::fs::remove_dir_all(&o.dir) {
                    events.note(format!(
                        "could not remove temp instance \"{}\": {e}",
                        o.dir.display()
                    ));
                }
            }
        }
    }
    // A run that stopped before any spec ran (setup failed) reports nothing
    // but its error: there is no result to summarise.
    let result = match result {
        Err(e) if tally.outcomes.is_empty() && signal.is_none() => return Err(e),
        r => r,
    };
    let why = result.is_err().then_some(if signal.is_some() {
        "interrupted"
    } else {
        "the run stopped early"
    });
    let summary = finish(&cfg, tally, why, timings, &results_dir, &events);
    events.emit(RunEvent::Finished {
        outcomes: summary.outcomes.clone(),
        wall: wall.elapsed(),
        diffs_file: diffs_path.exists().then_some(diffs_path),
    });
    result.map(|()| summary)
}

/// Creates results/, removes an old regression.diffs and regression.out,
/// and records which expected directory each test is compared with (for
/// `isospec accept`).
/// Returns (results/, regression.diffs).
fn prepare_outputs(cfg: &RunConfig) -> Result<(PathBuf, PathBuf), RunError> {
    let results_dir = cfg.outputdir.join("results");
    let output = |source| RunError::Output {
        path: results_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&results_dir).map_err(output)?;
    let diffs_path = cfg.outputdir.join("regression.diffs");
    let _ = std::fs::remove_file(&diffs_path);
    // The reporter writes a new one from its first line on; an old one
    // must not pass for this run's.
    let _ = std::fs::remove_file(cfg.outputdir.join("regression.out"));
    let manifest: String = cfg
        .tests
        .iter()
        .map(|t| format!("{}\t{}\n", t.name, t.expected_dir.display()))
        .collect();
    std::fs::write(results_dir.join(accept::MANIFEST), manifest).map_err(output)?;
    Ok((results_dir, diffs_path))
}

/// The server to run against: the user's, or a temp instance started now
/// (stopped when the returned instance is stopped or dropped).
async fn start_server(
    server: &ServerChoice,
    events: &Events,
) -> Result<(ConnParams, Option<TempInstance>), RunError> {
    match server {
        ServerChoice::Existing(p) => Ok(((**p).clone(), None)),
        ServerChoice::Temp(opts) => {
            if opts.dir.join("data").exists() {
                events.emit(RunEvent::Phase(Phase::RemovingOldInstance(
                    opts.dir.clone(),
                )));
            }
            for p in [
                Phase::CreatingInstance(opts.dir.clone()),
                Phase::InitializingCluster,
                Phase::StartingServer,
            ] {
                events.emit(RunEvent::Phase(p));
            }
            let o = opts.clone();
            let inst = tokio::task::spawn_blocking(move || TempInstance::start(&o))
                .await
                .map_err(|e| RunError::Task(e.to_string()))??;
            if let Some((note, _, _)) = &inst.relocated {
                events.note(note.clone());
            }
            Ok((inst.params("postgres"), Some(inst)))
        }
    }
}

/// Says which server answered, and returns the step timeout of its
/// version's isolationtester.
async fn server_step_timeout(
    params: &ConnParams,
    admin_db: &str,
    instance: Option<&TempInstance>,
    timeout: Option<Duration>,
    timeout_env: &crate::timeouts::TimeoutEnv,
    events: &Events,
) -> Result<Duration, RunError> {
    let version_num = server_version_num(params, admin_db).await?;
    events.emit(RunEvent::Phase(Phase::ServerReady {
        version_num,
        temp: instance.map(|i| TempServer {
            port: i.port,
            pid: i.pid().unwrap_or(0),
        }),
    }));
    let major = version_num / 10000;
    let chosen = crate::timeouts::step_timeout(major, timeout, timeout_env);
    if let Some(note) = chosen.note {
        events.note(note);
    }
    Ok(chosen.timeout)
}

/// The end of a run: the tests of the last pass that did not run (`why`
/// says why) are reported as such, their earlier results untouched;
/// durations are kept for the next -j run; flakes are reported.
fn finish(
    cfg: &RunConfig,
    tally: ClassSoFar,
    why: Option<&str>,
    timings: Timings,
    results_dir: &Path,
    events: &Events,
) -> RunSummary {
    let ClassSoFar {
        mut outcomes,
        variants,
        finished,
    } = tally;
    if let Some(why) = why {
        for (t, _) in cfg.tests.iter().zip(&finished).filter(|(_, &f)| !f) {
            let o = TestOutcome::new(&t.name, Status::NotRun(why.into()), Duration::ZERO, 0);
            events.emit(RunEvent::SpecFinished {
                number: outcomes.len() + 1,
                outcome: Box::new(o.clone()),
                diff: None,
                new_transcript: None,
            });
            outcomes.push(o);
        }
    }
    // Losing the durations loses only speed.
    if let Err(e) = timings.save(results_dir, &outcomes) {
        events.note(format!(
            "could not save spec durations in {}: {e}",
            results_dir.display()
        ));
    }
    let mut flaky = Vec::new();
    for e in flaky::flaky_reports(cfg, &variants) {
        if let RunEvent::Flaky(f) = &e {
            flaky.push(f.name.clone());
        }
        events.emit(e);
    }
    RunSummary { outcomes, flaky }
}
