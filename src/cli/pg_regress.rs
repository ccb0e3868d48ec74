//! `isospec pg_isolation_regress` (or the binary called through a link
//! named `pg_isolation_regress`): a drop-in for PostgreSQL's
//! pg_isolation_regress in extension builds.  PGXS and extension Makefiles
//! pass pg_regress's options; this module parses them exactly as
//! pg_regress's `getopt_long` does (`--opt=value` and `--opt value`,
//! unique-prefix abbreviations, last one wins, lists where pg_regress keeps
//! lists) for every option of pg_isolation_regress 12 to 18, and turns them
//! into a run with pg_regress's behaviour: its database handling (dropped
//! and recreated unconditionally), its temp instance, its output and its
//! result files.  Options that mean nothing to isospec are accepted and
//! said so once on stderr.

use crate::environment::Environment;
use crate::exit::Exit;
use crate::pgwire::ConnParams;
use crate::report::console;
use crate::report::{PgRegressStyle, ReporterOptions};
use crate::run::{DatabaseSetup, RunConfig, ServerChoice, TestCase};
use crate::server::{InitdbLocale, TempInstanceOptions};
use std::path::PathBuf;

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HasArg {
    No,
    Required,
}

/// One long option of pg_regress.
struct LongOpt {
    name: &'static str,
    arg: HasArg,
}

const fn opt(name: &'static str, arg: HasArg) -> LongOpt {
    LongOpt { name, arg }
}

/// Every long option of pg_regress 12 to 18 (the union: `load-language`
/// is 12's, `make-testtablespace-dir` 14's, `expecteddir` 16's and later).
const LONG_OPTIONS: &[LongOpt] = &[
    opt("help", HasArg::No),
    opt("version", HasArg::No),
    opt("dbname", HasArg::Required),
    opt("debug", HasArg::No),
    opt("inputdir", HasArg::Required),
    opt("load-language", HasArg::Required),
    opt("max-connections", HasArg::Required),
    opt("encoding", HasArg::Required),
    opt("outputdir", HasArg::Required),
    opt("schedule", HasArg::Required),
    opt("temp-instance", HasArg::Required),
    opt("no-locale", HasArg::No),
    opt("host", HasArg::Required),
    opt("port", HasArg::Required),
    opt("user", HasArg::Required),
    opt("bindir", HasArg::Required),
    opt("dlpath", HasArg::Required),
    opt("create-role", HasArg::Required),
    opt("temp-config", HasArg::Required),
    opt("use-existing", HasArg::No),
    opt("launcher", HasArg::Required),
    opt("load-extension", HasArg::Required),
    opt("config-auth", HasArg::Required),
    opt("max-concurrent-tests", HasArg::Required),
    opt("make-testtablespace-dir", HasArg::No),
    opt("expecteddir", HasArg::Required),
    // isospec's own: its notes and diagnostics on stderr, which pg_regress
    // does not print.
    opt("isospec-verbose", HasArg::No),
];

/// One element of the command line, after getopt_long.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// A long option (by its full name) with its value.
    Long(&'static str, Option<String>),
    /// `-h` or `-V`.
    Short(char),
    /// A test name.
    Operand(String),
}

/// GNU getopt_long over `args` with short options "hV": options and
/// operands may be mixed (operands are collected in order), `--` ends the
/// options.  Errors are glibc's words (without the program name).
fn getopt_long(args: &[String]) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            items.extend(args[i..].iter().cloned().map(Item::Operand));
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let o = find_long(name, a)?;
            let value = match (o.arg, value) {
                (HasArg::No, Some(_)) => {
                    return Err(format!("option '--{}' doesn't allow an argument", o.name))
                }
                (HasArg::No, None) => None,
                (HasArg::Required, Some(v)) => Some(v),
                (HasArg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return Err(format!("option '--{}' requires an argument", o.name)),
                },
            };
            items.push(Item::Long(o.name, value));
        } else if a.len() > 1 && a.starts_with('-') {
            for c in a[1..].chars() {
                match c {
                    'h' | 'V' => items.push(Item::Short(c)),
                    _ => return Err(format!("invalid option -- '{c}'")),
                }
            }
        } else {
            items.push(Item::Operand(a.clone()));
        }
    }
    Ok(items)
}

/// An exact long option name, else the one option it is a prefix of.
fn find_long(name: &str, given: &str) -> Result<&'static LongOpt, String> {
    if let Some(o) = LONG_OPTIONS.iter().find(|o| o.name == name) {
        return Ok(o);
    }
    let matches: Vec<&LongOpt> = LONG_OPTIONS
        .iter()
        .filter(|o| !name.is_empty() && o.name.starts_with(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("unrecognized option '{given}'")),
        many => {
            let names: Vec<String> = many.iter().map(|o| format!("'--{}'", o.name)).collect();
            Err(format!(
                "option '{given}' is ambiguous; possibilities: {}",
                names.join(" ")
            ))
        }
    }
}

/// pg_regress's settings after its options, as its variables hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegressArgs {
    pub dbnames: Vec<String>,
    pub debug: bool,
    pub inputdir: String,
    pub outputdir: String,
    pub expecteddir: Option<String>,
    pub load_languages: Vec<String>,
    pub max_connections: i64,
    pub encoding: Option<String>,
    pub schedules: Vec<String>,
    pub temp_instance: Option<String>,
    pub no_locale: bool,
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    /// `Some("")` is `--bindir=`: programs from PATH.
    pub bindir: Option<String>,
    pub dlpath: Option<String>,
    pub create_roles: Vec<String>,
    pub temp_configs: Vec<String>,
    pub use_existing: bool,
    pub launcher: Option<String>,
    pub load_extensions: Vec<String>,
    pub config_auth: Option<String>,
    pub max_concurrent_tests: i64,
    pub make_testtablespace_dir: bool,
    /// `--isospec-verbose`: isospec's notes and diagnostics on stderr.
    pub verbose: bool,
    pub tests: Vec<String>,
}

impl Default for RegressArgs {
    fn default() -> Self {
        RegressArgs {
            // isolation_main.c's default database.
            dbnames: vec!["isolation_regression".into()],
            debug: false,
            inputdir: ".".into(),
            outputdir: ".".into(),
            expecteddir: None,
            load_languages: Vec::new(),
            max_connections: 0,
            encoding: None,
            schedules: Vec::new(),
            temp_instance: None,
            no_locale: false,
            host: None,
            port: None,
            user: None,
            bindir: None,
            dlpath: None,
            create_roles: Vec::new(),
            temp_configs: Vec::new(),
            use_existing: false,
            launcher: None,
            load_extensions: Vec::new(),
            config_auth: None,
            max_concurrent_tests: 0,
            make_testtablespace_dir: false,
            verbose: false,
            tests: Vec::new(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Help,
    Version,
    Run(Box<RegressArgs>),
}

/// Parses pg_regress's command line (without the program name) in order,
/// as pg_regress's option loop does: `-h`/`-V` answer at once.
pub fn parse(args: &[String]) -> Result<Request, String> {
    let mut r = RegressArgs::default();
    for item in getopt_long(args)? {
        let (name, v) = match item {
            Item::Short('h') => return Ok(Request::Help),
            Item::Short(_) => return Ok(Request::Version),
            Item::Operand(t) => {
                r.tests.push(t);
                continue;
            }
            Item::Long(name, v) => (name, v.unwrap_or_default()),
        };
        match name {
            "help" => return Ok(Request::Help),
            "version" => return Ok(Request::Version),
            // The last --dbname wins; its value is a comma-separated list.
            "dbname" => r.dbnames = v.split(',').map(str::to_string).collect(),
            "debug" => r.debug = true,
            "isospec-verbose" => r.verbose = true,
            "inputdir" => r.inputdir = v,
            "load-language" => r.load_languages.push(v),
            "max-connections" => r.max_connections = crate::c_atoi::atoi(&v),
            "encoding" => r.encoding = Some(v),
            "outputdir" => r.outputdir = v,
            "schedule" => r.schedules.push(v),
            "temp-instance" => r.temp_instance = Some(v),
            "no-locale" => r.no_locale = true,
            "host" => r.host = Some(v),
            "port" => r.port = Some(v),
            "user" => r.user = Some(v),
            "bindir" => r.bindir = Some(v),
            "dlpath" => r.dlpath = Some(v),
            "create-role" => r.create_roles.extend(v.split(',').map(str::to_string)),
            "temp-config" => r.temp_configs.push(v),
            "use-existing" => r.use_existing = true,
            "launcher" => r.launcher = Some(v),
            "load-extension" => r.load_extensions.push(v),
            "config-auth" => r.config_auth = Some(v),
            "max-concurrent-tests" => r.max_concurrent_tests = crate::c_atoi::atoi(&v),
            "make-testtablespace-dir" => r.make_testtablespace_dir = true,
            "expecteddir" => r.expecteddir = Some(v),
            other => unreachable!("option table and match disagree on --{other}"),
        }
    }
    if r.dbnames.first().is_none_or(|d| d.is_empty()) {
        return Err("no database name was specified".into());
    }
    Ok(Request::Run(Box::new(r)))
}

/// pg_regress's help, with what isospec does differently.
pub fn help(prog: &str) -> String {
    format!(
        "isospec's drop-in for PostgreSQL's pg_isolation_regress (pg_regress options, 12 to 18)

Usage:
  {prog} [OPTION]... [EXTRA-TEST]...

Options:
      --bindir=BINPATH          use initdb and postgres from BINPATH (temp instance);
                                if empty, from PATH
      --config-auth=DATADIR     (Windows SSPI only; exits at once elsewhere)
      --create-role=ROLE        create the specified role(s) before testing
      --dbname=DB[,DB...]       create these databases, run in the first
                                (default \"isolation_regression\")
      --debug                   run initdb with --debug and postgres with -d 5
      --dlpath=DIR              accepted (no meaning for isolation specs)
      --encoding=ENCODING       create the databases with ENCODING
      --expecteddir=DIR         take expected files from DIR (default: inputdir)
  -h, --help                    show this help, then exit
      --inputdir=DIR            take specs/ and expected/ from DIR (default \".\")
      --isospec-verbose         print isospec's own notes and diagnostics on
                                stderr (pg_regress prints none)
      --launcher=CMD            accepted (isospec runs the specs itself)
      --load-extension=EXT      CREATE EXTENSION before running; can repeat
      --load-language=LANG      CREATE OR REPLACE LANGUAGE (pg_regress 12)
      --make-testtablespace-dir create OUTPUTDIR/testtablespace (pg_regress 14)
      --max-concurrent-tests=N  refuse schedule lines with more than N tests
      --max-connections=N       accepted (tests run one after another)
      --outputdir=DIR           place output files in DIR (default \".\")
      --schedule=FILE           use test ordering schedule from FILE; can repeat
      --temp-instance=DIR       create a temporary instance in DIR
      --use-existing            use the existing database(s), no DROP/CREATE
  -V, --version                 output version information, then exit

Options for \"temp-instance\" mode:
      --no-locale               use C locale
      --port=PORT               start postmaster on PORT
      --temp-config=FILE        append contents of FILE to temporary config; can repeat

Options for using an existing installation:
      --host=HOST               use postmaster running on HOST
      --port=PORT               use postmaster running at PORT
      --user=USER               connect as USER

Unlike `isospec run`, this mode drops and recreates the test databases
unconditionally, as pg_regress does.  The exit status is 0 if all tests
passed, 1 if some tests failed, and 2 if the tests could not be run.
"
    )
}

/// What to say once on stderr for options isospec accepts without effect.
fn ignored_notes(r: &RegressArgs) -> Vec<String> {
    let mut notes = Vec::new();
    if r.dlpath.is_some() {
        notes.push("--dlpath is accepted and has no effect: isolation specs load no test libraries by path".into());
    }
    if r.launcher.is_some() {
        notes.push("--launcher is accepted and has no effect: isospec runs the specs itself, not through an isolationtester process".into());
    }
    if r.max_connections > 0 {
        notes.push("--max-connections is accepted and has no effect: isospec runs the tests of a parallel group one after another".into());
    }
    if r.encoding.is_some() {
        notes.push("--encoding sets the databases' encoding; the sessions' client_encoding stays UTF8 (transcripts are UTF-8)".into());
    }
    notes
}

/// pg_regress's words for a server it did not start: "(using postmaster on
/// …)".
fn existing_server_words(host: Option<&str>, port: Option<&str>) -> String {
    match (host, port) {
        (Some(h), Some(p)) => format!("{h}, port {p}"),
        (Some(h), None) => format!("{h}, default port"),
        (None, Some(p)) => format!("Unix socket, port {p}"),
        (None, None) => "Unix socket, default port".into(),
    }
}

fn absolute(p: &str) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p))
}

/// The tests to run, found as isolation_main.c finds them: the spec in
/// OUTPUTDIR/specs, else INPUTDIR/specs; the expected file in
/// OUTPUTDIR/expected, else EXPECTEDDIR/expected.  Schedules first, each
/// line a group, then the extra tests one by one.
fn test_cases(r: &RegressArgs) -> Result<Vec<TestCase>, String> {
    let input = absolute(&r.inputdir);
    let output = absolute(&r.outputdir);
    let expected = r
        .expecteddir
        .as_deref()
        .map(absolute)
        .unwrap_or(input.clone());
    let case = |name: &str, group: usize| {
        let own_spec = output.join("specs").join(format!("{name}.spec"));
        let spec_path = if own_spec.is_file() {
            own_spec
        } else {
            input.join("specs").join(format!("{name}.spec"))
        };
        let own_expected = output.join("expected");
        let expected_dir = if own_expected.join(format!("{name}.out")).is_file() {
            own_expected
        } else {
            expected.join("expected")
        };
        TestCase {
            name: name.to_string(),
            spec_path,
            expected_dir,
            group,
        }
    };
    let schedules: Vec<PathBuf> = r.schedules.iter().map(PathBuf::from).collect();
    let max = usize::try_from(r.max_concurrent_tests)
        .ok()
        .filter(|m| *m > 0);
    let mut tests =
        crate::run::scheduled(&schedules, max, |t, g| Ok(case(t, g))).map_err(|e| e.to_string())?;
    // The extra tests one by one, each a group of its own.
    let first = tests.last().map_or(0, |t| t.group + 1);
    for (group, t) in (first..).zip(&r.tests) {
        tests.push(case(t, group));
    }
    Ok(tests)
}

/// The environment pg_regress gives a temp instance's postmaster (and so
/// its backends' own libpq connections).
fn postmaster_env(r: &RegressArgs, environment: &Environment) -> Vec<(String, String)> {
    let old = environment.get("PGOPTIONS").unwrap_or_default();
    let mut env = vec![
        ("PGAPPNAME".to_string(), "pg_regress".to_string()),
        ("PGTZ".into(), "America/Los_Angeles".into()),
        ("PGDATESTYLE".into(), "Postgres, MDY".into()),
        (
            "PGOPTIONS".into(),
            format!("{old} -c intervalstyle=postgres_verbose"),
        ),
        ("LC_MESSAGES".into(), "C".into()),
    ];
    if let Some(e) = &r.encoding {
        env.push(("PGCLIENTENCODING".into(), e.clone()));
    }
    env
}

/// A run of pg_regress's settings: the run's configuration, the reporter's,
/// and the notes to print once.
pub struct Prepared {
    pub config: RunConfig,
    pub report: ReporterOptions,
    pub notes: Vec<String>,
}

/// Turns pg_regress's settings into a run.
pub fn prepare(r: &RegressArgs, env: &Environment) -> Result<Prepared, String> {
    let outputdir = absolute(&r.outputdir);
    let tests = test_cases(r)?;
    let port = match &r.port {
        Some(p) => {
            let n = crate::c_atoi::atoi(p);
            Some(u16::try_from(n).map_err(|_| format!("invalid port number \"{p}\""))?)
        }
        None => None,
    };
    let (server, existing_server) = match &r.temp_instance {
        Some(dir) => {
            let opts = TempInstanceOptions {
                bindir: r.bindir.as_ref().map(PathBuf::from),
                os_user: super::flags::temp_instance_user(None, env),
                temp_config: r.temp_configs.iter().map(PathBuf::from).collect(),
                locale: if r.no_locale {
                    InitdbLocale::NoLocale
                } else {
                    InitdbLocale::Environment
                },
                debug: r.debug,
                port,
                postmaster_env: postmaster_env(r, env),
                log_dir: Some(outputdir.join("log")),
                ..TempInstanceOptions::new(absolute(dir), env.clone())
            };
            (ServerChoice::Temp(Box::new(opts)), None)
        }
        None => {
            let params: ConnParams = super::resolve_connection(
                &crate::pgwire::ConnRequest {
                    conninfo: None,
                    host: r.host.clone(),
                    port: port.map(|p| p.to_string()),
                    user: r.user.clone(),
                },
                env,
            )?;
            let host = r.host.clone().or_else(|| env.string("PGHOST"));
            let port = r.port.clone().or_else(|| env.string("PGPORT"));
            (
                ServerChoice::Existing(Box::new(params)),
                Some(existing_server_words(host.as_deref(), port.as_deref())),
            )
        }
    };
    let (config, report) = super::request::RunRequest {
        tests,
        allow_empty: true,
        partition: None,
        outputdir: outputdir.clone(),
        dbname: r.dbnames[0].clone(),
        use_existing: r.use_existing,
        // pg_regress drops and recreates its databases unconditionally.
        drop_existing: true,
        drop_after: false,
        // …and with --use-existing loads no extensions.
        load_extensions: if r.use_existing {
            Vec::new()
        } else {
            r.load_extensions.clone()
        },
        server,
        wait: super::flags::waiting(None, None, None, None, None, env)?,
        only_permutation: None,
        prepared_waits: false,
        wait_graph_in_transcript: false,
        // pg_isolation_regress leaves them for the next spec to meet.
        keep_prepared: true,
        jobs: Some(1),
        repeat: 1,
        until_fail: false,
        accept: false,
        invariants: None,
        alone: Vec::new(),
        pin: false,
        setup: DatabaseSetup {
            more_databases: r.dbnames[1..].to_vec(),
            roles: r.create_roles.clone(),
            languages: if r.use_existing {
                Vec::new()
            } else {
                r.load_languages.clone()
            },
            encoding: r.encoding.clone(),
            c_locale: r.no_locale,
        },
        remove_instance_on_success: true,
        report: super::request::ReportRequest {
            quiet: false,
            tap: false,
            color: super::ColorChoice::Never,
            junit: None,
            json: None,
            html: None,
            // A drop-in prints what pg_regress prints, under Actions too.
            annotations: Some(super::AnnotationsChoice::None),
            step_summary: false,
            pg_regress: Some(PgRegressStyle {
                existing_server,
                verbose: r.verbose,
            }),
        },
    }
    .resolve(env)?;
    Ok(Prepared {
        config,
        report,
        notes: ignored_notes(r),
    })
}

/// Entry point of `isospec pg_isolation_regress ARGS` and of the binary
/// called as `pg_isolation_regress`; returns the exit code.
pub fn main(prog: &str, args: &[String], env: &Environment) -> Exit {
    let r = match parse(args) {
        Ok(Request::Help) => {
            console::out(help(prog));
            return Exit::Success;
        }
        Ok(Request::Version) => {
            console::outln(concat!(
                "pg_isolation_regress (isospec) ",
                env!("CARGO_PKG_VERSION")
            ));
            return Exit::Success;
        }
        Ok(Request::Run(r)) => r,
        Err(e) => {
            console::note(format_args!("{prog}: {e}"));
            console::note(format_args!("Try \"{prog} --help\" for more information."));
            return Exit::Error;
        }
    };
    if r.config_auth.is_some() {
        // pg_regress configures SSPI authentication on Windows only, and
        // exits at once.
        console::note(format_args!(
            "{prog}: --config-auth: nothing to do outside Windows"
        ));
        return Exit::Success;
    }
    if r.make_testtablespace_dir {
        let dir = absolute(&r.outputdir).join("testtablespace");
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            console::note(format_args!(
                "{prog}: could not create directory \"{}\": {e}",
                dir.display()
            ));
            return Exit::Error;
        }
    }
    let p = match prepare(&r, env) {
        Ok(p) => p,
        Err(e) => {
            console::note(format_args!("{prog}: {e}"));
            return Exit::Error;
        }
    };
    // pg_regress prints none of isospec's notes: only when asked.
    if r.verbose {
        for n in &p.notes {
            console::note(format_args!("{prog}: {n}"));
        }
    }
    if let Err(e) = std::fs::create_dir_all(&p.config.outputdir) {
        console::note(format_args!(
            "{prog}: could not create directory \"{}\": {e}",
            p.config.outputdir.display()
        ));
        return Exit::Error;
    }
    match super::run_with(p.config, p.report) {
        // pg_regress: 1 when a test failed, whatever the reason.
        Ok(Exit::Error) => Exit::Failed,
        Ok(code) => code,
        Err(e) => {
            console::note(format_args!("{prog}: {e:#}"));
            Exit::Error
        }
    }
}

#[cfg(test)]
#[path = "pg_regress_tests.rs"]
mod tests;
