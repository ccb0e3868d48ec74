//! Command-line interface: argument definitions (clap) and the glue that
//! turns them into a run configuration.  Kept apart from main.rs so that
//! main stays a thin shell around `cli::main`.

use crate::environment::Environment;
use crate::exit::Exit;
use crate::pgwire::{ConnParams, ConnRequest};
use crate::report::console;
use crate::report::{Reporter, ReporterOptions};
use crate::run::{self, RunConfig};
use crate::settings::Settings;
use crate::spec;
use crate::words::counted;

pub(crate) mod env;
mod explore;
mod flags;
mod init;
mod instance;
mod pg_regress;
mod postgres;
mod record;
#[cfg(test)]
mod reference;
mod request;
use clap::{Args, Parser, Subcommand};
pub use flags::{InstanceArgs, ServerArgs, TempSetupArgs, WaitArgs};
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
        /// Also print how the steps group into transactions (what
        /// `explore --anomalies` orders serially), and the final-state
        /// queries it compares when the spec has no outcome queries.
        #[arg(long)]
        transactions: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Start a throwaway server as `run --temp-instance DIR` does, print its
    /// conninfo as one JSON line, and keep it until standard input closes
    /// or a signal comes (for tools that run several isospec commands
    /// against one server, such as the pytest plugin).
    TempInstance(instance::TempInstanceArgs),
    /// Print each project setting's effective value and where it comes
    /// from (environment, [tool.isospec] in pyproject.toml or isospec.toml,
    /// default); flags given to a command beat all of them.
    Config {
        /// As one JSON object (file, table, specs, settings: key, value,
        /// source, variable), for tools such as the pytest plugin.
        #[arg(long)]
        json: bool,
    },
    /// Start a project: specs/ with an example spec, expected/ with its
    /// reviewed transcript, .gitignore lines for what runs write, and a
    /// [tool.isospec] table (in pyproject.toml when there is one, else
    /// isospec.toml).
    Init(init::InitArgs),
    /// Record what a program does through a proxy and write it as a spec:
    /// each connection a session, each statement a step, the observed
    /// order as a permutation (`isospec record -o x.spec -- pytest -k t`).
    Record(Box<record::RecordArgs>),
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
    /// Where results/, regression.diffs and regression.out go (default: .,
    /// or the project's directory when the specs come from its settings).
    #[arg(long, value_name = "DIR")]
    pub outputdir: Option<PathBuf>,
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
    #[command(flatten)]
    pub wait: WaitArgs,
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
    /// Run up to N specs at once, each in its own database
    /// [env: ISOSPEC_JOBS=] [default: 1].
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Under -j, leave lanes and backends unbound (by default each lane runs
    /// on one CPU together with the backends of its spec, when the server is
    /// local: reached by Unix socket, and its processes may be bound)
    /// [env: ISOSPEC_NO_PIN=].
    #[arg(long)]
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
pub(crate) fn resolve_connection(
    req: &ConnRequest,
    env: &Environment,
) -> Result<ConnParams, String> {
    let r = crate::pgwire::resolve(req, env).map_err(|e| e.to_string())?;
    for w in &r.warnings {
        console::note(w);
    }
    Ok(r.params)
}

/// `isospec run`'s flags as a request (see `request`).
fn run_config(
    mut a: RunArgs,
    env: &Environment,
    settings: &Settings,
) -> Result<(RunConfig, ReporterOptions), String> {
    let mut configured: Option<PathBuf> = None;
    if a.targets.is_empty() && a.schedule.is_empty() {
        // No spec named: the project's (its settings' `specs`, else specs/).
        let (dirs, project) = match (&settings.specs, &settings.file) {
            (Some(dirs), Some((file, _))) => (dirs.clone(), file.parent().map(Path::to_path_buf)),
            _ => match &settings.file {
                Some((file, _)) => {
                    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
                    (vec![dir.join("specs")], Some(dir))
                }
                None => (vec![PathBuf::from("specs")], None),
            },
        };
        if let Some(missing) = dirs.iter().find(|d| !d.is_dir()) {
            return Err(match &settings.file {
                Some((file, table)) => format!(
                    "nothing to run: {} does not exist ({table} of {} names it, or its default specs/); give spec files or directories",
                    missing.display(),
                    file.display()
                ),
                None => "nothing to run: give spec files or directories (`isospec run specs/`), or start a project with `isospec init`, or name the spec directories with `specs = [...]` in [tool.isospec] of pyproject.toml".into(),
            });
        }
        a.targets = dirs.iter().map(|d| d.display().to_string()).collect();
        if let Some(project) = &project {
            a.outputdir.get_or_insert(project.clone());
        }
        configured = project.filter(|_| a.inputdir.is_none());
    }
    let mut tests = run::resolve_tests(&a.targets, &a.schedule, a.inputdir.as_deref())
        .map_err(|e| e.to_string())?;
    if let Some(project) = configured {
        // A spec directory named specs/ has its expected/ beside it (the
        // usual rule); any other configured directory (checks/) compares
        // with the project's expected/, wherever isospec runs from.
        for t in &mut tests {
            if t.spec_path
                .parent()
                .and_then(Path::file_name)
                .is_none_or(|n| n != "specs")
            {
                t.expected_dir = project.join("expected");
            }
        }
    }
    let server = a.instance.choice(&a.server, env)?;
    request::RunRequest {
        tests,
        allow_empty: false,
        partition: a.partition,
        outputdir: a.outputdir.unwrap_or_else(|| PathBuf::from(".")),
        dbname: a.dbname,
        use_existing: a.use_existing,
        drop_existing: a.drop_existing,
        drop_after: a.drop_database,
        load_extensions: a.load_extension,
        server,
        wait: a.wait.resolve(env)?,
        only_permutation: a.permutation,
        prepared_waits: a.prepared_waits,
        wait_graph_in_transcript: a.wait_graph_in_transcript && !a.no_wait_graph,
        keep_prepared: false,
        jobs: a.jobs,
        repeat: a.repeat,
        until_fail: a.until_fail,
        accept: a.accept,
        invariants: (!a.no_invariants).then_some(a.invariant),
        alone: a.alone,
        pin: !(a.no_pin || env::boolish(env, "ISOSPEC_NO_PIN")?),
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
    .resolve(env)
}

fn list_files(files: &[PathBuf], permutations: bool, transactions: bool) -> Exit {
    let mut code = Exit::Success;
    for f in files {
        let name = f.display().to_string();
        let c = match spec::load(f) {
            Ok(c) => c,
            Err(e) => {
                console::note(e);
                code = Exit::Error;
                continue;
            }
        };
        console::outln(format_args!(
            "{name}: {}, {}",
            counted(c.spec.sessions.len() as u128, "session", "sessions"),
            counted(c.permutation_count(), "permutation", "permutations")
        ));
        for s in &c.spec.sessions {
            let steps: Vec<String> = s.steps.iter().map(|t| spec::quote_name(&t.name)).collect();
            console::outln(format_args!(
                "  session {}: {}",
                spec::quote_name(&s.name),
                steps.join(" ")
            ));
        }
        if transactions {
            let model = crate::explore::serial::model(&c.spec);
            console::out(format_args!("{}", model.describe(&c.spec)));
            if c.spec.options.outcomes.is_empty() {
                for q in crate::explore::serial::table_queries(&c.spec) {
                    console::outln(format_args!("final state: {q}"));
                }
            }
        }
        if permutations {
            for p in c.iter_permutations() {
                console::outln(format_args!("{}", c.permutation_text(&p)));
            }
        }
    }
    code
}

fn check_files(files: &[PathBuf]) -> Exit {
    let mut code = Exit::Success;
    for f in files {
        let name = f.display().to_string();
        match spec::load(f) {
            Ok(c) => {
                for w in &c.warnings {
                    console::note(format_args!("{name}: warning: {w}"));
                }
                let steps: usize = c.spec.sessions.iter().map(|s| s.steps.len()).sum();
                console::outln(format_args!(
                    "{name}: ok ({}, {}, {})",
                    counted(c.spec.sessions.len() as u128, "session", "sessions"),
                    counted(steps as u128, "step", "steps"),
                    counted(c.permutation_count(), "permutation", "permutations")
                ));
            }
            Err(e) => {
                console::note(e);
                code = Exit::Error;
            }
        }
    }
    code
}

/// `isospec run`: the exit code of the run, or an error for usage,
/// connection and setup problems (exit code 2).  The run emits events; the
/// reporter, running alongside on the same thread, prints them.
fn run_command(a: RunArgs, env: &Environment, settings: &Settings) -> anyhow::Result<Exit> {
    let (cfg, report) = run_config(a, env, settings).map_err(anyhow::Error::msg)?;
    run_with(cfg, report)
}

/// Runs `cfg`, reporting with `report`: the exit code, or an error for
/// connection and setup problems.
fn run_with(cfg: RunConfig, report: ReporterOptions) -> anyhow::Result<Exit> {
    use anyhow::Context;
    let rt = run::setup::runtime().context("could not start the async runtime")?;
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
            Ok(summary.exit())
        }
        Err(run::RunError::Interrupted(sig)) => {
            console::note(format_args!("isospec: interrupted by signal {sig}"));
            Ok(Exit::Signal(sig))
        }
        Err(e) => Err(e.into()),
    }
}

/// Entry point; returns the process exit code.
pub fn main() -> i32 {
    let exit = command();
    console::flush();
    exit.code()
}

/// A command's exit, or its error said on stderr (anyhow at the edge:
/// the typed error with its context chain) and Error.
fn edge(r: anyhow::Result<Exit>) -> Exit {
    r.unwrap_or_else(|e| {
        console::note(format_args!("isospec: error: {e:#}"));
        Exit::Error
    })
}

/// The command the arguments name, run.
fn command() -> Exit {
    let args: Vec<String> = std::env::args().collect();
    // Called through a link named pg_isolation_regress, or as
    // `isospec pg_isolation_regress …`: pg_regress's own command line.
    let called = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let env = env::snapshot();
    if called.as_deref() == Some("pg_isolation_regress") {
        return pg_regress::main("pg_isolation_regress", &args[1..], &env);
    }
    if args.get(1).map(String::as_str) == Some("pg_isolation_regress") {
        return pg_regress::main("isospec pg_isolation_regress", &args[2..], &env);
    }
    let cli = Cli::parse();
    // The project's settings stand in for variables the environment does
    // not set (flags > environment > file > defaults).
    let settings = match std::env::current_dir()
        .map_err(|e| e.to_string())
        .and_then(|d| crate::settings::find(&d).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            console::note(format_args!("isospec: error: {e}"));
            return Exit::Error;
        }
    };
    for f in &settings.ignored {
        console::note(format_args!(
            "isospec: ignoring the settings in {}: another user owns it (isospec reads only your own settings files, or root's)",
            f.display()
        ));
    }
    let before = env;
    let env = settings.apply(before.clone());
    match cli.command {
        Command::Config { json } => {
            init::print_config(&settings, &before, json);
            Exit::Success
        }
        Command::Init(a) => edge(init::main(a)),
        Command::Check { files } => check_files(&files),
        Command::Explore(a) => edge(explore::main(*a, &env)),
        Command::Record(a) => edge(record::main(*a, &env)),
        Command::TempInstance(a) => instance::main(a, &env),
        Command::Postgres(c) => postgres::main(c, &env),
        Command::PgIsolationRegress { .. } => unreachable!("dispatched before clap"),
        Command::List {
            permutations,
            transactions,
            files,
        } => list_files(&files, permutations, transactions),
        Command::Accept {
            names,
            inputdir,
            outputdir,
        } => match run::accept(&outputdir, inputdir.as_deref(), &names) {
            Ok(written) => {
                if written.is_empty() {
                    console::outln(format_args!(
                        "nothing to accept: every result already matches its expected output"
                    ));
                }
                for p in written {
                    console::outln(format_args!("accepted {}", p.display()));
                }
                Exit::Success
            }
            Err(e) => {
                console::note(format_args!("isospec: error: {e}"));
                Exit::Error
            }
        },
        Command::Run(a) => edge(run_command(*a, &env, &settings)),
    }
}
