//! The test-run driver, compatible with pg_isolation_regress: resolves the
//! specs to run, prepares the database (and a temp instance), runs each spec
//! through the executor, writes `results/NAME.out`, compares with
//! `expected/`, and collects `regression.diffs`.

use crate::differ::{compare, Comparison};
use crate::executor::{run_spec, Event, ExecOptions};
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
}

/// Where the server is.
#[derive(Debug, Clone)]
pub enum ServerChoice {
    Existing(ConnParams),
    Temp(TempInstanceOptions),
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
    pub exec: ExecOptions,
    pub quiet: bool,
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
        } else if self.outcomes.iter().all(|o| o.status == Status::Ok) {
            0
        } else {
            1
        }
    }
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
/// test cases, in order.
pub fn resolve_tests(
    targets: &[String],
    schedules: &[PathBuf],
    inputdir: Option<&Path>,
) -> Result<Vec<TestCase>, RunError> {
    let base = inputdir.unwrap_or(Path::new("."));
    let by_name = |name: &str| -> Result<TestCase, RunError> {
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
        })
    };
    let mut tests = Vec::new();
    for s in schedules {
        for g in schedule::read(s)? {
            for t in g.tests {
                tests.push(by_name(&t)?);
            }
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
            });
        } else if t.ends_with(".spec") || t.contains('/') {
            return Err(RunError::Usage(format!("spec file {t} does not exist")));
        } else {
            tests.push(by_name(t)?);
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
    rep: &mut Reporter,
) -> Result<(), RunError> {
    let server = params.describe();
    let dberr = |message: String| RunError::Database {
        server: server.clone(),
        message,
    };
    let admin = admin_client(params, "postgres").await.map_err(&dberr)?;
    let db = &cfg.dbname;
    if !cfg.use_existing {
        let row = admin
            .query_opt(
                "SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database WHERE datname = $1",
                &[db],
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

/// Runs one test case and returns its outcome; writes results/NAME.out and
/// appends to regression.diffs.
async fn run_one(
    cfg: &RunConfig,
    params: &ConnParams,
    t: &TestCase,
    diffs_path: &Path,
) -> Result<TestOutcome, RunError> {
    let start = Instant::now();
    let results_dir = cfg.outputdir.join("results");
    let result_path = results_dir.join(format!("{}.out", t.name));
    let file = t.spec_path.display().to_string();
    let parsed = match std::fs::read(&t.spec_path) {
        Ok(src) => spec::parse(&file, &src)
            .map_err(|e| e.to_string())
            .and_then(|s| spec::check(&file, s).map_err(|e| e.to_string())),
        Err(e) => Err(format!("{file}: could not read: {e}")),
    };
    let checked = match parsed {
        Ok(c) => c,
        Err(msg) => {
            let _ = std::fs::write(&result_path, format!("{msg}\n"));
            return Ok(TestOutcome {
                name: t.name.clone(),
                status: Status::SpecError(msg),
                duration: start.elapsed(),
                permutations: 0,
            });
        }
    };
    let permutations = checked.permutation_count();
    let sp = session_params(params, &cfg.dbname, &t.name);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let exec_opts = cfg.exec.clone();
    let name = t.name.clone();
    let collect = async {
        let mut text = String::new();
        while let Some(ev) = rx.recv().await {
            if let Event::SlowStep {
                session,
                step,
                secs,
            } = &ev
            {
                eprintln!("isospec: {name}: step {step} of session {session} has been running for {secs} s");
            }
            transcript::render(&ev, &mut text);
        }
        text
    };
    let (res, text) = tokio::join!(run_spec(&checked, &sp, exec_opts, tx), collect);
    std::fs::write(&result_path, &text).map_err(|source| RunError::Output {
        path: result_path.display().to_string(),
        source,
    })?;
    let comparison = compare(&t.expected_dir, &t.name, &text, &result_path);
    if let Ok(Comparison::Differs { diff, .. }) = &comparison {
        append(diffs_path, diff)?;
    }
    let status = match (comparison, res) {
        // isolationtester stops the same way, and the expected file says so.
        (Ok(Comparison::Match(_)), _) => Status::Ok,
        (_, Err(e)) => Status::RunError(format!("{}: {e}", t.name)),
        (Ok(Comparison::Differs { .. }), Ok(())) => Status::Failed,
        (Ok(Comparison::NoExpected), Ok(())) => Status::New,
        (Err(e), Ok(())) => Status::RunError(format!("could not read expected output: {e}")),
    };
    Ok(TestOutcome {
        name: t.name.clone(),
        status,
        duration: start.elapsed(),
        permutations,
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
    let mut rep = Reporter::new(Some(out_file), cfg.quiet);

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
            instance = Some(inst);
            p
        }
    };

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| RunError::Usage(format!("could not install signal handler: {e}")))?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| RunError::Usage(format!("could not install signal handler: {e}")))?;

    let work = async {
        prepare_database(&cfg, &params, &mut rep).await?;
        rep.banner("running regression test queries");
        let mut outcomes = Vec::new();
        for t in &cfg.tests {
            let o = run_one(&cfg, &params, t, &diffs_path).await?;
            rep.outcome(&o);
            outcomes.push(o);
        }
        Ok::<_, RunError>((outcomes, rep))
    };
    let result = tokio::select! {
        r = work => r,
        _ = sigint.recv() => Err(RunError::Interrupted(2)),
        _ = sigterm.recv() => Err(RunError::Interrupted(15)),
    };
    if let Some(mut inst) = instance.take() {
        let _ = tokio::task::spawn_blocking(move || inst.stop()).await;
    }
    let (outcomes, mut rep) = result?;
    let diffs = diffs_path
        .exists()
        .then(|| diffs_path.display().to_string());
    rep.summary(&outcomes, diffs.as_deref(), wall.elapsed());
    Ok(RunSummary { outcomes })
}

/// Timeout from the environment: PGISOLATIONTIMEOUT seconds (PostgreSQL
/// ≤ 16), else twice PG_TEST_TIMEOUT_DEFAULT (17+), else 300 s.
pub fn timeout_from_env(isolation: Option<&str>, test_default: Option<&str>) -> Duration {
    let atoi = |s: &str| -> u64 {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    };
    if let Some(v) = isolation {
        return Duration::from_secs(atoi(v));
    }
    if let Some(v) = test_default {
        return Duration::from_secs(2 * atoi(v));
    }
    Duration::from_secs(300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(timeout_from_env(None, None), Duration::from_secs(300));
        assert_eq!(
            timeout_from_env(Some("2"), Some("10")),
            Duration::from_secs(2)
        );
        assert_eq!(timeout_from_env(None, Some("10")), Duration::from_secs(20));
    }

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
