//! The test-run driver, compatible with pg_isolation_regress: resolves the
//! specs to run, prepares the database (and a temp instance), runs each spec
//! through the executor, writes `results/NAME.out`, compares with
//! `expected/`, and collects `regression.diffs`.

use crate::differ::{closest_variant, compare, Comparison};
use crate::executor::{run_spec, Event, ExecOptions, SpecError};
use crate::jobs::{self, Timings};
use crate::pgwire::{ConnParams, Host};
use crate::report::{Reporter, Status, TestOutcome};
use crate::schedule;
use crate::server::{TempInstance, TempInstanceOptions};
use crate::spec;
use crate::transcript;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One spec to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    pub spec_path: PathBuf,
    pub expected_dir: PathBuf,
    /// Tests of one group may run concurrently (a schedule line, or all
    /// named targets); groups run in order.
    pub group: usize,
}

/// Where the server is.
#[derive(Debug, Clone)]
pub enum ServerChoice {
    Existing(ConnParams),
    Temp(TempInstanceOptions),
}

/// Machine-readable reports to write at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct ReportFiles {
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// GITHUB_STEP_SUMMARY-style Markdown file to append to.
    pub markdown_summary: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub tests: Vec<TestCase>,
    pub outputdir: PathBuf,
    pub dbname: String,
    pub use_existing: bool,
    pub drop_existing: bool,
    pub load_extensions: Vec<String>,
    pub server: ServerChoice,
    /// Settings for the executor; its step timeout is chosen at run time
    /// (see `timeouts`) from `timeout` and `timeout_env`.
    pub exec: ExecOptions,
    /// `--timeout`: the step timeout whatever the server's version.
    pub timeout: Option<Duration>,
    pub timeout_env: crate::timeouts::TimeoutEnv,
    pub quiet: bool,
    /// Specs run at once (each in its own database when > 1).
    pub jobs: usize,
    /// Run the selection this many times (flake hunting).
    pub repeat: usize,
    /// Stop repeating after the first pass with a failure.
    pub until_fail: bool,
    /// Copy differing or new transcripts into expected/.
    pub accept: bool,
    pub reports: ReportFiles,
    pub tap: bool,
    pub color: bool,
    /// Test names to run alone under -j (like `# isospec: alone`).
    pub alone: Vec<String>,
    /// Under -j, bind each lane and its backends to a CPU (see `affinity`).
    pub pin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Schedule(#[from] schedule::ScheduleError),
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error("database setup on {server} failed: {message}")]
    Database { server: String, message: String },
    #[error("could not write {path}: {source}")]
    Output {
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
    /// 0 all passed, 1 some differed or failed at run time, 2 a spec could
    /// not be parsed.
    pub fn exit_code(&self) -> i32 {
        if self
            .outcomes
            .iter()
            .any(|o| matches!(o.status, Status::SpecError(_)))
        {
            2
        } else if self.flaky.is_empty() && self.outcomes.iter().all(|o| o.status.passed()) {
            0
        } else {
            1
        }
    }
}

/// Keeps the tests of partition `k` of `n` (1-based): a stable round-robin
/// split of the selection, so parallel CI machines share the work.
pub fn partition(tests: Vec<TestCase>, k: usize, n: usize) -> Vec<TestCase> {
    tests
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % n == k - 1)
        .map(|(_, t)| t)
        .collect()
}

/// The expected/ directory for a spec file: `--inputdir`/expected when
/// given, else the `expected` beside a `specs` directory holding the spec,
/// else ./expected.
fn expected_dir_for(spec_path: &Path, inputdir: Option<&Path>) -> PathBuf {
    if let Some(d) = inputdir {
        return d.join("expected");
    }
    if let Some(parent) = spec_path.parent() {
        if parent.file_name().is_some_and(|n| n == "specs") {
            return parent.parent().unwrap_or(Path::new(".")).join("expected");
        }
    }
    PathBuf::from("expected")
}

/// Resolves targets (spec files, directories, test names) and schedules to
/// test cases, in order: each schedule line is a group, and all named
/// targets form one more group.
pub fn resolve_tests(
    targets: &[String],
    schedules: &[PathBuf],
    inputdir: Option<&Path>,
) -> Result<Vec<TestCase>, RunError> {
    let base = inputdir.unwrap_or(Path::new("."));
    let by_name = |name: &str, group: usize| -> Result<TestCase, RunError> {
        let spec_path = base.join("specs").join(format!("{name}.spec"));
        if !spec_path.is_file() {
            return Err(RunError::Usage(format!(
                "no spec for test \"{name}\": {} does not exist",
                spec_path.display()
            )));
        }
        Ok(TestCase {
            name: name.to_string(),
            spec_path,
            expected_dir: base.join("expected"),
            group,
        })
    };
    let mut tests = Vec::new();
    let mut group = 0;
    for s in schedules {
        for g in schedule::read(s)? {
            for t in g.tests {
                tests.push(by_name(&t, group)?);
            }
            group += 1;
        }
    }
    for t in targets {
        let p = Path::new(t);
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "spec")
                })
                .map(|e| e.into_path())
                .collect();
            found.sort();
            for f in found {
                let name = f
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let expected_dir = expected_dir_for(&f, inputdir);
                tests.push(TestCase {
                    name,
                    spec_path: f,
                    expected_dir,
                    group,
                });
            }
        } else if p.is_file() {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            tests.push(TestCase {
                name,
                spec_path: p.to_path_buf(),
                expected_dir: expected_dir_for(p, inputdir),
                group,
            });
        } else if t.ends_with(".spec") || t.contains('/') {
            return Err(RunError::Usage(format!("spec file {t} does not exist")));
        } else {
            tests.push(by_name(t, group)?);
        }
    }
    Ok(tests)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

const DB_MARKER: &str = "created by isospec";

async fn admin_client(params: &ConnParams, dbname: &str) -> Result<tokio_postgres::Client, String> {
    let mut cfg = tokio_postgres::Config::new();
    match &params.host {
        Host::Tcp(h) => cfg.host(h),
        Host::Unix(p) => cfg.host_path(p),
    };
    cfg.port(params.port)
        .user(&params.user)
        .dbname(dbname)
        .application_name("isospec");
    if let Some(pw) = &params.password {
        cfg.password(pw);
    }
    if let Some(t) = params.connect_timeout {
        cfg.connect_timeout(t);
    }
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| describe_pg_error(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}:  {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

/// Drops (if isospec made it) and creates the test database like pg_regress.
async fn prepare_database(
    cfg: &RunConfig,
    params: &ConnParams,
    db: &str,
    rep: &mut Reporter,
) -> Result<(), RunError> {
    let server = params.describe();
    let dberr = |message: String| RunError::Database {
        server: server.clone(),
        message,
    };
    let admin = admin_client(params, "postgres").await.map_err(&dberr)?;
    if !cfg.use_existing {
        let row = admin
            .query_opt(
                "SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database WHERE datname = $1",
                &[&db],
            )
            .await
            .map_err(|e| dberr(describe_pg_error(&e)))?;
        if let Some(row) = row {
            let comment: Option<String> = row.get(0);
            if comment.as_deref() != Some(DB_MARKER) && !cfg.drop_existing {
                return Err(dberr(format!(
                    "database \"{db}\" exists and was not created by isospec; refusing to drop it \
(pass --drop-existing to drop it anyway, --use-existing to run in it, or --dbname to choose another)"
                )));
            }
            rep.banner(&format!("dropping database \"{db}\""));
            admin
                .batch_execute(&format!("DROP DATABASE {}", quote_ident(db)))
                .await
                .map_err(|e| dberr(describe_pg_error(&e)))?;
        }
        rep.banner(&format!("creating database \"{db}\""));
        let q = quote_ident(db);
        admin
            .batch_execute(&format!("CREATE DATABASE {q} TEMPLATE=template0"))
            .await
            .map_err(|e| dberr(describe_pg_error(&e)))?;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {q} SET lc_messages TO 'C';\
ALTER DATABASE {q} SET lc_monetary TO 'C';\
ALTER DATABASE {q} SET lc_numeric TO 'C';\
ALTER DATABASE {q} SET lc_time TO 'C';\
ALTER DATABASE {q} SET bytea_output TO 'hex';\
ALTER DATABASE {q} SET timezone_abbreviations TO 'Default';\
COMMENT ON DATABASE {q} IS '{DB_MARKER}'"
            ))
            .await
            .map_err(|e| dberr(describe_pg_error(&e)))?;
    }
    if !cfg.load_extensions.is_empty() {
        let c = admin_client(params, db).await.map_err(&dberr)?;
        for ext in &cfg.load_extensions {
            rep.banner(&format!("installing {ext}"));
            c.batch_execute(&format!(
                "CREATE EXTENSION IF NOT EXISTS {}",
                quote_ident(ext)
            ))
            .await
            .map_err(|e| dberr(describe_pg_error(&e)))?;
        }
    }
    Ok(())
}

/// Session parameters that pg_regress sets through the environment.
fn session_params(base: &ConnParams, dbname: &str, test: &str) -> ConnParams {
    let mut p = base.clone();
    p.dbname = dbname.to_string();
    p.application_name = Some(format!("isolation/{test}"));
    let mut opts = p.options.clone().unwrap_or_default();
    if !opts.is_empty() {
        opts.push(' ');
    }
    opts.push_str("-c intervalstyle=postgres_verbose");
    p.options = Some(opts);
    p.extra.retain(|(k, _)| k != "datestyle" && k != "timezone");
    p.extra.push(("datestyle".into(), "Postgres, MDY".into()));
    p.extra
        .push(("timezone".into(), "America/Los_Angeles".into()));
    p
}

/// What one run of one spec produced.
struct SpecRun {
    outcome: TestOutcome,
    transcript: String,
    diff: Option<String>,
}

impl SpecRun {
    /// A spec that was not started (the run was interrupted first).
    fn not_run(t: &TestCase) -> SpecRun {
        SpecRun {
            outcome: TestOutcome::new(
                &t.name,
                Status::NotRun("interrupted".into()),
                Duration::ZERO,
                0,
            ),
            transcript: String::new(),
            diff: None,
        }
    }
}

/// Whether the run has been interrupted (SIGINT/SIGTERM): no spec starts
/// after that.
fn interrupted(cfg: &RunConfig) -> bool {
    cfg.exec.interrupt.as_ref().is_some_and(|r| *r.borrow())
}

/// Reads, parses and checks a spec.
fn load_spec(t: &TestCase) -> Result<spec::CheckedSpec, String> {
    let file = t.spec_path.display().to_string();
    match std::fs::read(&t.spec_path) {
        Ok(src) => spec::parse(&file, &src)
            .map_err(|e| e.to_string())
            .and_then(|s| spec::check(&file, s).map_err(|e| e.to_string())),
        Err(e) => Err(format!("{file}: could not read: {e}")),
    }
}

/// Runs one test case in database `db`; writes results/NAME.out.
async fn run_one(
    cfg: &RunConfig,
    params: &ConnParams,
    t: &TestCase,
    db: &str,
) -> Result<SpecRun, RunError> {
    if interrupted(cfg) {
        return Ok(SpecRun::not_run(t));
    }
    let start = Instant::now();
    let result_path = cfg
        .outputdir
        .join("results")
        .join(format!("{}.out", t.name));
    let waits_path = result_path.with_extension("waits");
    let checked = match load_spec(t) {
        Ok(c) => c,
        Err(msg) => {
            let _ = std::fs::write(&result_path, format!("{msg}\n"));
            let outcome =
                TestOutcome::new(&t.name, Status::SpecError(msg.clone()), start.elapsed(), 0);
            return Ok(SpecRun {
                outcome,
                transcript: msg,
                diff: None,
            });
        }
    };
    let permutations = checked.permutation_count();
    let sp = session_params(params, db, &t.name);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let exec_opts = cfg.exec.clone();
    let name = t.name.clone();
    let collect = async {
        let mut text = String::new();
        let mut steps = Vec::new();
        let mut waits = String::new();
        while let Some(ev) = rx.recv().await {
            match &ev {
                Event::SlowStep {
                    session,
                    step,
                    secs,
                } => {
                    crate::report::diagnostic(
                        &name,
                        &format!("step {step} of session {session} has been running for {secs} s"),
                    );
                }
                Event::StepTimings { step, micros } => steps.push((step.clone(), *micros)),
                Event::Diagnostic(text) => crate::report::diagnostic(&name, text),
                Event::WaitGraph { text, .. } => {
                    crate::report::diagnostic(&name, text);
                    waits.push_str(text);
                }
                _ => {}
            }
            transcript::render(&ev, &mut text);
        }
        (text, steps, waits)
    };
    let (res, (text, steps, waits)) = tokio::join!(run_spec(&checked, &sp, exec_opts, tx), collect);
    if matches!(res, Err(SpecError::NotStarted)) {
        return Ok(SpecRun::not_run(t));
    }
    let output = |path: &Path| {
        let path = path.display().to_string();
        move |source| RunError::Output { path, source }
    };
    std::fs::write(&result_path, &text).map_err(output(&result_path))?;
    // The wait graphs of steps that ran long, beside the transcript (they
    // are not part of isolationtester's transcript).
    if waits.is_empty() {
        let _ = std::fs::remove_file(&waits_path);
    } else {
        std::fs::write(&waits_path, &waits).map_err(output(&waits_path))?;
    }
    let comparison = compare(&t.expected_dir, &t.name, &text, &result_path);
    let mut diff = None;
    let status = match (comparison, res) {
        // isolationtester stops the same way, and the expected file says so.
        (Ok(Comparison::Match(_)), _) => Status::Ok,
        (Ok(Comparison::Differs { diff: d, .. }), Err(e)) => {
            diff = Some(d);
            Status::RunError(format!("{}: {e}", t.name))
        }
        (_, Err(e)) => Status::RunError(format!("{}: {e}", t.name)),
        (Ok(Comparison::Differs { diff: d, .. }), Ok(())) => {
            diff = Some(d);
            Status::Failed
        }
        (Ok(Comparison::NoExpected), Ok(())) => Status::New,
        (Err(e), Ok(())) => Status::RunError(format!("could not read expected output: {e}")),
    };
    if let Some(d) = diff.as_mut().filter(|_| !waits.is_empty()) {
        d.push_str(&format!(
            "wait graphs of the steps of {} that ran long: {}\n",
            t.name,
            waits_path.display()
        ));
    }
    let mut outcome = TestOutcome::new(&t.name, status, start.elapsed(), permutations);
    outcome.steps = steps;
    Ok(SpecRun {
        outcome,
        transcript: text,
        diff,
    })
}

fn append(path: &Path, text: &str) -> Result<(), RunError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })?;
    f.write_all(text.as_bytes())
        .map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })
}

/// Copies `actual` over the expected file it is closest to (the main file
/// when there is none).  Returns the path written.
pub fn accept_transcript(
    expected_dir: &Path,
    name: &str,
    actual: &str,
) -> std::io::Result<PathBuf> {
    let target = closest_variant(expected_dir, name, actual)?
        .unwrap_or_else(|| expected_dir.join(format!("{name}.out")));
    std::fs::create_dir_all(expected_dir)?;
    std::fs::write(&target, actual)?;
    Ok(target)
}

const MANIFEST: &str = ".isospec-manifest";

/// `isospec accept`: copies results/NAME.out of the last run into the
/// expected directory the run compared it with, for the named tests or for
/// every test whose transcript differs or is new.  Returns what was written.
pub fn accept(
    outputdir: &Path,
    inputdir: Option<&Path>,
    names: &[String],
) -> Result<Vec<PathBuf>, RunError> {
    let results = outputdir.join("results");
    let manifest = std::fs::read_to_string(results.join(MANIFEST)).unwrap_or_default();
    let mut known: Vec<(String, PathBuf)> = manifest
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, d)| (n.to_string(), PathBuf::from(d)))
        .collect();
    known.dedup();
    let expected_of = |name: &str| -> PathBuf {
        if let Some(d) = inputdir {
            return d.join("expected");
        }
        known
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| PathBuf::from("expected"))
    };
    let selected: Vec<String> = if names.is_empty() {
        let mut v: Vec<String> = known.iter().map(|(n, _)| n.clone()).collect();
        v.sort();
        v.dedup();
        v
    } else {
        names.to_vec()
    };
    if selected.is_empty() {
        return Err(RunError::Usage(format!(
            "nothing to accept: no previous run recorded in {} (run isospec run first, or name tests)",
            results.display()
        )));
    }
    let mut written = Vec::new();
    for name in selected {
        let result = results.join(format!("{name}.out"));
        let actual = std::fs::read_to_string(&result).map_err(|e| {
            RunError::Usage(format!(
                "no result to accept for \"{name}\": {}: {e}",
                result.display()
            ))
        })?;
        let dir = expected_of(&name);
        if let Ok(Comparison::Match(_)) = compare(&dir, &name, &actual, &result) {
            continue;
        }
        let path = accept_transcript(&dir, &name, &actual).map_err(|source| RunError::Output {
            path: dir.display().to_string(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Distinct transcripts seen for one spec over repeated runs.
#[derive(Debug, Default)]
struct Variants {
    seen: Vec<(String, usize)>,
}

impl Variants {
    fn add(&mut self, text: &str) {
        match self.seen.iter_mut().find(|(t, _)| t == text) {
            Some((_, n)) => *n += 1,
            None => self.seen.push((text.to_string(), 1)),
        }
    }
}

/// What the specs of a run have given so far.
struct Tally {
    outcomes: Vec<TestOutcome>,
    /// Distinct transcripts per test (flake hunting).
    variants: Vec<Variants>,
    /// Which tests of the current pass have finished.
    finished: Vec<bool>,
}

/// The database of worker slot `index` under -j (slot 0 is --dbname).
fn spec_database(cfg: &RunConfig, index: usize) -> String {
    if index == 0 {
        return cfg.dbname.clone();
    }
    let suffix = format!("_{}", index + 1);
    let mut base = cfg.dbname.clone();
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    base + &suffix
}

/// Runs every test of `cfg`.  A temp instance, when used, is stopped before
/// this returns, also on error and on SIGINT/SIGTERM.
pub async fn run(cfg: RunConfig) -> Result<RunSummary, RunError> {
    let wall = Instant::now();
    let results_dir = cfg.outputdir.join("results");
    std::fs::create_dir_all(&results_dir).map_err(|source| RunError::Output {
        path: results_dir.display().to_string(),
        source,
    })?;
    let diffs_path = cfg.outputdir.join("regression.diffs");
    let out_path = cfg.outputdir.join("regression.out");
    let _ = std::fs::remove_file(&diffs_path);
    let out_file = std::fs::File::create(&out_path).map_err(|source| RunError::Output {
        path: out_path.display().to_string(),
        source,
    })?;
    let manifest: String = cfg
        .tests
        .iter()
        .map(|t| format!("{}\t{}\n", t.name, t.expected_dir.display()))
        .collect();
    std::fs::write(results_dir.join(MANIFEST), manifest).map_err(|source| RunError::Output {
        path: results_dir.display().to_string(),
        source,
    })?;
    let mut rep = Reporter::new(Some(out_file), cfg.quiet, cfg.tap);
    let timings = Timings::load(&results_dir);

    // Installed before a temp instance starts: a signal that arrives while
    // it starts is seen as soon as the run begins, and no spec starts.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| RunError::Usage(format!("could not install signal handler: {e}")))?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| RunError::Usage(format!("could not install signal handler: {e}")))?;

    let mut instance: Option<TempInstance> = None;
    let params = match &cfg.server {
        ServerChoice::Existing(p) => p.clone(),
        ServerChoice::Temp(opts) => {
            rep.banner(&format!(
                "creating temporary instance in {}",
                opts.dir.display()
            ));
            let o = opts.clone();
            let inst = tokio::task::spawn_blocking(move || TempInstance::start(&o))
                .await
                .map_err(|e| RunError::Usage(format!("temp instance task failed: {e}")))??;
            let p = inst.params("postgres");
            if let Some((note, _, _)) = &inst.relocated {
                rep.note(note);
            }
            instance = Some(inst);
            p
        }
    };

    // The step timeout of the server's isolationtester version.
    let mut cfg = cfg;
    let admin_db = if cfg.use_existing {
        cfg.dbname.as_str()
    } else {
        "postgres"
    };
    let major = server_version_num(&params, admin_db).await? / 10000;
    let chosen = crate::timeouts::step_timeout(major, cfg.timeout, &cfg.timeout_env);
    if let Some(note) = &chosen.note {
        rep.note(note);
    }
    cfg.exec.step_timeout = chosen.timeout;

    let mut tally = Tally {
        outcomes: Vec::new(),
        variants: cfg.tests.iter().map(|_| Variants::default()).collect(),
        finished: vec![false; cfg.tests.len()],
    };
    // On SIGINT/SIGTERM no spec starts any more; the running specs cancel
    // their steps and run their teardown (bounded), then the run stops.
    let (interrupt_tx, interrupt_rx) = tokio::sync::watch::channel(false);
    cfg.exec.interrupt = Some(interrupt_rx);
    let cfg = cfg;
    let mut signal = None;
    let result = {
        let work = run_passes(&cfg, &params, &timings, &mut rep, &diffs_path, &mut tally);
        tokio::pin!(work);
        let first = tokio::select! {
            r = &mut work => Err(r),
            _ = sigint.recv() => Ok(2),
            _ = sigterm.recv() => Ok(15),
        };
        match first {
            Err(r) => r,
            Ok(sig) => {
                signal = Some(sig);
                let _ = interrupt_tx.send(true);
                crate::report::notice(&format!(
                    "interrupted by signal {sig}: no more specs start; canceling the running steps and running their teardown (interrupt again to stop at once)"
                ));
                // The specs cancel and tear down (their teardowns are bounded
                // by the step timeout); a second signal stops at once,
                // dropping their connections.
                let again = tokio::select! {
                    _ = &mut work => false,
                    _ = sigint.recv() => true,
                    _ = sigterm.recv() => true,
                };
                if again {
                    crate::report::notice(
                        "interrupted again: stopping at once, without waiting for the running specs",
                    );
                }
                Err(RunError::Interrupted(sig))
            }
        }
    };
    if let Some(mut inst) = instance.take() {
        let _ = tokio::task::spawn_blocking(move || inst.stop()).await;
        if let (Some(_), ServerChoice::Temp(o)) = (signal, &cfg.server) {
            rep.note(&format!(
                "temporary instance in {} stopped",
                o.dir.display()
            ));
        }
    }
    // A run that stopped before any spec ran (setup failed) reports nothing
    // but its error: there is no result to summarise.
    let result = match result {
        Err(e) if tally.outcomes.is_empty() && signal.is_none() => return Err(e),
        r => r,
    };
    // The tests of this pass that did not run are reported as such; their
    // earlier results files are untouched.
    let Tally {
        mut outcomes,
        variants,
        finished,
    } = tally;
    if result.is_err() {
        let why = if signal.is_some() {
            "interrupted"
        } else {
            "the run stopped early"
        };
        for (t, _) in cfg.tests.iter().zip(&finished).filter(|(_, &f)| !f) {
            let o = TestOutcome::new(&t.name, Status::NotRun(why.into()), Duration::ZERO, 0);
            rep.outcome(outcomes.len() + 1, &o);
            outcomes.push(o);
        }
    }
    // Reports cover what finished, also when the run was cut short.
    // The durations order the next -j run; losing them loses only speed.
    if let Err(e) = timings.save(&results_dir, &outcomes) {
        rep.note(&format!(
            "could not save spec durations in {}: {e}",
            results_dir.display()
        ));
    }
    let flaky = flaky_report(&cfg, &variants, &mut rep);
    let diffs = diffs_path
        .exists()
        .then(|| diffs_path.display().to_string());
    rep.summary(&outcomes, diffs.as_deref(), wall.elapsed());
    rep.write_files(&cfg.reports, &outcomes, &diffs_path)?;
    if cfg.color || !cfg.quiet {
        rep.print_diffs(&diffs_path, cfg.color);
    }
    result?;
    Ok(RunSummary { outcomes, flaky })
}

fn flaky_report(cfg: &RunConfig, variants: &[Variants], rep: &mut Reporter) -> Vec<String> {
    let mut flaky = Vec::new();
    if cfg.repeat <= 1 && !cfg.until_fail {
        return flaky;
    }
    for (t, v) in cfg.tests.iter().zip(variants) {
        if v.seen.len() > 1 {
            flaky.push(t.name.clone());
            let counts: Vec<String> = v
                .seen
                .iter()
                .enumerate()
                .map(|(i, (_, n))| format!("#{} seen {}x", i + 1, n))
                .collect();
            rep.line(&format!(
                "FLAKY {}: {} distinct transcripts ({})",
                t.name,
                v.seen.len(),
                counts.join(", ")
            ));
            for (i, (text, _)) in v.seen.iter().enumerate().skip(1) {
                let d = crate::differ::unified_diff(
                    &v.seen[0].0,
                    text,
                    &format!("{} #1", t.name),
                    &format!("{} #{}", t.name, i + 1),
                );
                for l in d.lines() {
                    rep.line(l);
                }
            }
        } else if let Some((_, n)) = v.seen.first() {
            rep.line(&format!("stable {}: 1 transcript in {} runs", t.name, n));
        }
    }
    flaky
}

/// One pass over all groups, repeated as configured.
async fn run_passes(
    cfg: &RunConfig,
    params: &ConnParams,
    timings: &Timings,
    rep: &mut Reporter,
    diffs_path: &Path,
    tally: &mut Tally,
) -> Result<(), RunError> {
    // One database per worker slot under -j (the first is --dbname itself,
    // so specs that name the database work when run alone), dropped at the end.
    let slots: Vec<String> = (0..cfg.jobs.max(1))
        .map(|i| spec_database(cfg, i))
        .collect();
    prepare_database(cfg, params, &cfg.dbname, rep).await?;
    let mut sink = Sink {
        cfg,
        rep,
        diffs_path,
        tally,
        counter: 0,
        failed: false,
        pass: 0,
    };
    let result = run_passes_in(cfg, params, &slots, timings, &mut sink).await;
    futures_util::future::join_all(slots.iter().skip(1).map(|db| drop_database(params, db))).await;
    result
}

/// The worker databases of one pass (all slots but the first, which is
/// --dbname), created in the background while specs already run in
/// --dbname: a slot takes specs once its database exists.  Not created at
/// all when no group has two specs to run side by side.
struct WorkerDbs {
    ready: Vec<bool>,
    pending: futures_util::stream::FuturesUnordered<
        tokio::task::JoinHandle<(usize, Result<(), RunError>)>,
    >,
}

impl WorkerDbs {
    fn start(cfg: &RunConfig, params: &ConnParams, slots: &[String], needed: bool) -> Self {
        let mut ready = vec![false; slots.len()];
        ready[0] = true;
        let pending = slots
            .iter()
            .enumerate()
            .skip(1)
            .filter(|_| needed)
            .map(|(slot, db)| {
                let (cfg, params, db) = (cfg.clone(), params.clone(), db.clone());
                tokio::spawn(async move {
                    let mut quiet = Reporter::new(None, true, false);
                    (slot, prepare_database(&cfg, &params, &db, &mut quiet).await)
                })
            })
            .collect();
        WorkerDbs { ready, pending }
    }

    /// The slots whose database exists, highest first (`pop` gives the lowest).
    fn ready_slots(&self) -> Vec<usize> {
        (0..self.ready.len())
            .rev()
            .filter(|&s| self.ready[s])
            .collect()
    }

    /// Waits for the next database; its slot, or None when all exist.
    async fn next(&mut self) -> Result<Option<usize>, RunError> {
        use futures_util::StreamExt;
        match self.pending.next().await {
            Some(joined) => {
                let (slot, r) = joined.map_err(|e| {
                    RunError::Usage(format!("creating a worker database failed: {e}"))
                })?;
                r?;
                self.ready[slot] = true;
                Ok(Some(slot))
            }
            None => Ok(None),
        }
    }

    /// Waits until every database exists.
    async fn all(&mut self) -> Result<(), RunError> {
        while self.next().await?.is_some() {}
        Ok(())
    }
}

/// Takes each finished spec run as it completes: diff, accept, flake
/// bookkeeping, status line.
struct Sink<'x> {
    cfg: &'x RunConfig,
    rep: &'x mut Reporter,
    diffs_path: &'x Path,
    tally: &'x mut Tally,
    counter: usize,
    failed: bool,
    pass: usize,
}

impl Sink<'_> {
    fn done(&mut self, k: usize, mut r: SpecRun) -> Result<(), RunError> {
        if matches!(r.outcome.status, Status::NotRun(_)) {
            // Reported with the others that did not run, at the end.
            return Ok(());
        }
        self.tally.finished[k] = true;
        self.counter += 1;
        if let Some(d) = &r.diff {
            append(self.diffs_path, d)?;
        }
        let t = &self.cfg.tests[k];
        if self.cfg.accept && matches!(r.outcome.status, Status::Failed | Status::New) {
            match accept_transcript(&t.expected_dir, &t.name, &r.transcript) {
                Ok(p) => r.outcome.status = Status::Accepted(p.display().to_string()),
                Err(e) => r.outcome.status = Status::RunError(format!("could not accept: {e}")),
            }
        }
        self.failed |= !r.outcome.status.passed();
        // Transcripts are kept only to compare repeats (flake hunting).
        if self.cfg.repeat > 1 || self.cfg.until_fail {
            self.tally.variants[k].add(&r.transcript);
        }
        self.rep.outcome(self.counter, &r.outcome);
        if r.outcome.status == Status::New && self.pass == 0 {
            // A new spec: show what it produced, and how to keep it.
            self.rep.transcript(&t.name, &r.transcript);
        }
        self.tally.outcomes.push(r.outcome);
        Ok(())
    }
}

async fn run_passes_in(
    cfg: &RunConfig,
    params: &ConnParams,
    slots: &[String],
    timings: &Timings,
    sink: &mut Sink<'_>,
) -> Result<(), RunError> {
    sink.rep.banner("running regression test queries");
    if !cfg.until_fail {
        sink.rep
            .start_progress((cfg.tests.len() * cfg.repeat.max(1)) as u64);
    }
    // --until-fail repeats until a failure, at most --repeat passes when given.
    let passes = match (cfg.until_fail, cfg.repeat) {
        (true, r) if r <= 1 => usize::MAX,
        (_, r) => r.max(1),
    };
    for pass in 0..passes {
        if interrupted(cfg) {
            break;
        }
        sink.tally.finished.fill(false);
        if pass > 0 && !cfg.use_existing {
            // Every pass starts like the first, in fresh databases: objects a
            // spec leaves behind (PostgreSQL's partition-concurrent-attach
            // leaves a table) must not fail the next pass.
            let mut quiet = Reporter::new(None, true, false);
            prepare_database(cfg, params, &cfg.dbname, &mut quiet).await?;
        }
        let needed = slots.len() > 1 && cfg.tests.windows(2).any(|w| w[0].group == w[1].group);
        let mut env = PassEnv {
            slots,
            dbs: WorkerDbs::start(cfg, params, slots, needed),
            timings,
            max_prepared: if needed {
                max_prepared_transactions(params).await
            } else {
                None
            },
        };
        sink.pass = pass;
        sink.failed = false;
        let mut i = 0;
        while i < cfg.tests.len() && !interrupted(cfg) {
            let g = cfg.tests[i].group;
            let mut j = i;
            while j < cfg.tests.len() && cfg.tests[j].group == g {
                j += 1;
            }
            run_group(cfg, params, &cfg.tests[i..j], i, &mut env, sink).await?;
            i = j;
        }
        // None may still be being created when they are dropped or remade.
        env.dbs.all().await?;
        if cfg.until_fail && sink.failed {
            sink.rep
                .line(&format!("stopping after pass {}: a spec failed", pass + 1));
            break;
        }
    }
    Ok(())
}

/// What the groups of one pass share.
struct PassEnv<'x> {
    /// One database per worker slot.
    slots: &'x [String],
    dbs: WorkerDbs,
    timings: &'x Timings,
    /// The server's max_prepared_transactions (see `jobs::StartQueue`).
    max_prepared: Option<usize>,
}

/// The server's version number (e.g. 150018), asked in database `db`.
async fn server_version_num(params: &ConnParams, db: &str) -> Result<u32, RunError> {
    let err = |message: String| RunError::Database {
        server: params.describe(),
        message,
    };
    let c = admin_client(params, db).await.map_err(err)?;
    let row = c
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .map_err(|e| err(describe_pg_error(&e)))?;
    let v: String = row.get(0);
    v.parse()
        .map_err(|_| err(format!("unexpected server_version_num \"{v}\"")))
}

/// The server's max_prepared_transactions, if it can be read.
async fn max_prepared_transactions(params: &ConnParams) -> Option<usize> {
    let admin = admin_client(params, "postgres").await.ok()?;
    let row = admin
        .query_one("SELECT current_setting('max_prepared_transactions')", &[])
        .await
        .ok()?;
    row.get::<_, String>(0).parse().ok()
}

/// Runs one group: serially, or up to `jobs` at once, each running spec in
/// a database of its own (one per worker slot), longest first (see
/// `jobs`); `alone` specs run first, with nothing alongside.  Each run goes
/// to `sink` as soon as it completes.
async fn run_group(
    cfg: &RunConfig,
    params: &ConnParams,
    tests: &[TestCase],
    offset: usize,
    env: &mut PassEnv<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), RunError> {
    let PassEnv {
        slots,
        dbs,
        timings,
        max_prepared,
    } = env;
    let (slots, timings, max_prepared) = (*slots, *timings, *max_prepared);
    if slots.len() <= 1 || tests.len() == 1 {
        for (k, t) in tests.iter().enumerate() {
            if interrupted(cfg) {
                break;
            }
            let r = run_one(cfg, params, t, &cfg.dbname).await?;
            sink.done(offset + k, r)?;
        }
        return Ok(());
    }
    let (placement, cost): (Vec<jobs::Placement>, Vec<u64>) = tests
        .iter()
        .map(|t| {
            let checked = load_spec(t).ok();
            let mut placement = checked
                .as_ref()
                .map(|c| jobs::placement(&c.spec, &cfg.dbname))
                .unwrap_or_default();
            placement.alone |= cfg.alone.contains(&t.name);
            let cost = timings
                .get(&t.name)
                .or_else(|| checked.as_ref().map(jobs::estimate_ms))
                .unwrap_or(0);
            (placement, cost)
        })
        .unzip();
    // CPUs to bind lanes to: none unless binding pays (see `affinity`).
    let cpus = Some(crate::affinity::allowed_cpus())
        .filter(|c| cfg.pin && crate::affinity::worth_binding(&cost, c.len()))
        .unwrap_or_default();
    let mut queue = jobs::StartQueue::new(placement, &cost, max_prepared);
    let lanes = Lanes::start(cfg, params, slots, &cpus)?;
    let mut free: Vec<usize> = dbs.ready_slots();
    let mut running: Vec<usize> = Vec::new();
    let mut done = lanes.done;
    // A worker database that could not be made.
    let mut failed: Option<RunError> = None;
    while !queue.is_empty() || !running.is_empty() {
        // After a worker database failed, or an interrupt, nothing starts.
        let stop = failed.is_some() || interrupted(cfg);
        while !stop && !free.is_empty() {
            let Some(k) = queue.take_next(&running) else {
                break;
            };
            // A spec that runs alone runs in slot 0, the --dbname database
            // itself (all slots are free then), so specs naming it work.
            let slot = if queue.placement(k).alone {
                free.retain(|&f| f != 0);
                0
            } else {
                free.pop().expect("a free slot")
            };
            running.push(k);
            if lanes.jobs[slot].send((k, tests[k].clone())).is_err() {
                return Err(RunError::Usage(format!("runner lane {slot} stopped")));
            }
        }
        if stop && running.is_empty() {
            break;
        }
        let creating = !stop && !dbs.pending.is_empty() && !queue.is_empty();
        let (slot, k, r) = tokio::select! {
            got = done.recv() => match got {
                Some(d) => d,
                None => return Err(RunError::Usage("runner lanes stopped".into())),
            },
            made = dbs.next(), if creating => {
                match made {
                    // Usable at once, unless a spec running alone holds all.
                    Ok(Some(slot)) if !running.iter().any(|&r| queue.placement(r).alone) => {
                        free.insert(0, slot);
                    }
                    Ok(_) => {}
                    // Start nothing more; let the running specs finish and
                    // report them, then fail.
                    Err(e) => {
                        failed = Some(e);
                        free.clear();
                    }
                }
                continue;
            }
        };
        running.retain(|&x| x != k);
        if failed.is_some() {
            // Nothing more starts.
        } else if queue.placement(k).alone {
            free = dbs.ready_slots();
        } else {
            free.push(slot);
        }
        sink.done(offset + k, r?)?;
    }
    failed.map_or(Ok(()), Err)
}

/// What a lane sends back: its slot, the test's index, the run.
type LaneDone = (usize, usize, Result<SpecRun, RunError>);

/// The -j lanes: one runner thread per worker slot, each with a runtime of
/// its own, bound with its specs' backends to one CPU where `affinity`
/// allows (a local server, --no-pin not given).  Dropping `jobs` ends them.
struct Lanes {
    jobs: Vec<tokio::sync::mpsc::UnboundedSender<(usize, TestCase)>>,
    done: tokio::sync::mpsc::UnboundedReceiver<LaneDone>,
}

impl Lanes {
    /// Starts a lane per slot; with `cpus`, binds them as `affinity` says.
    fn start(
        cfg: &RunConfig,
        params: &ConnParams,
        slots: &[String],
        cpus: &[usize],
    ) -> Result<Lanes, RunError> {
        let postmaster = crate::affinity::local_postmaster(params).filter(|_| !cpus.is_empty());
        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        let mut jobs = Vec::new();
        for (slot, db) in slots.iter().enumerate() {
            let (job_tx, job_rx) = tokio::sync::mpsc::unbounded_channel();
            let cpu = crate::affinity::lane_cpu(slot, cpus).filter(|_| postmaster.is_some());
            let (cfg, params, db, done_tx) =
                (cfg.clone(), params.clone(), db.clone(), done_tx.clone());
            std::thread::Builder::new()
                .name(format!("isospec-lane-{slot}"))
                .spawn(move || lane(slot, cpu, postmaster, cfg, params, db, job_rx, done_tx))
                .map_err(|e| RunError::Usage(format!("could not start a runner thread: {e}")))?;
            jobs.push(job_tx);
        }
        Ok(Lanes { jobs, done })
    }
}

/// One lane's thread: runs the specs it is sent in database `db`.
#[allow(clippy::too_many_arguments)]
fn lane(
    slot: usize,
    cpu: Option<usize>,
    postmaster: Option<i32>,
    mut cfg: RunConfig,
    params: ConnParams,
    db: String,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<(usize, TestCase)>,
    done: tokio::sync::mpsc::UnboundedSender<LaneDone>,
) {
    use futures_util::FutureExt;
    let cpu = cpu.filter(|&c| crate::affinity::pin_current_thread(c).is_ok());
    cfg.exec.pin_backends = postmaster.zip(cpu);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            if let Some((k, _)) = jobs.blocking_recv() {
                let e = RunError::Usage(format!("could not start a runtime for lane {slot}: {e}"));
                let _ = done.send((slot, k, Err(e)));
            }
            return;
        }
    };
    rt.block_on(async {
        while let Some((k, t)) = jobs.recv().await {
            let r = std::panic::AssertUnwindSafe(run_one(&cfg, &params, &t, &db))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(RunError::Usage(format!(
                        "internal error: the run of {} panicked",
                        t.name
                    )))
                });
            if done.send((slot, k, r)).is_err() {
                break;
            }
        }
    });
}

async fn drop_database(params: &ConnParams, db: &str) {
    if let Ok(admin) = admin_client(params, "postgres").await {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(db)))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_dir_rules() {
        assert_eq!(
            expected_dir_for(Path::new("specs/a.spec"), None),
            PathBuf::from("expected")
        );
        assert_eq!(
            expected_dir_for(Path::new("x/specs/a.spec"), None),
            PathBuf::from("x/expected")
        );
        assert_eq!(
            expected_dir_for(Path::new("x/a.spec"), None),
            PathBuf::from("expected")
        );
        assert_eq!(
            expected_dir_for(Path::new("x/specs/a.spec"), Some(Path::new("in"))),
            PathBuf::from("in/expected")
        );
    }

    #[test]
    fn session_params_like_pg_regress() {
        let base = ConnParams {
            host: Host::Tcp("h".into()),
            port: 1,
            user: "u".into(),
            password: None,
            dbname: "postgres".into(),
            application_name: None,
            options: Some("-c work_mem=1MB".into()),
            extra: vec![],
            connect_timeout: None,
        };
        let p = session_params(&base, "isolation_regression", "t1");
        assert_eq!(p.application_name.as_deref(), Some("isolation/t1"));
        assert_eq!(
            p.options.as_deref(),
            Some("-c work_mem=1MB -c intervalstyle=postgres_verbose")
        );
        assert!(p
            .extra
            .contains(&("timezone".into(), "America/Los_Angeles".into())));
    }
}
