//! `isospec record`'s command line: its flags resolved into a
//! `RecordRequest` (server and wait flags are `run`'s own), the recording
//! run on a thread of its own, and its events printed to stderr (the
//! recorded command owns stdout).

use crate::environment::Environment;
use crate::exit::Exit;
use crate::record::{self, RecordEvent, RecordRequest, StepsMode};
use crate::report::console;
use crate::wait::Probe;
use clap::Args;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The spec to write.
    #[arg(short = 'o', long, value_name = "FILE.spec")]
    pub output: PathBuf,
    /// SQL run before the command (and written as the spec's setup block).
    #[arg(long, value_name = "FILE.sql")]
    pub setup: Option<PathBuf>,
    /// SQL run after the command (and written as the spec's teardown block).
    #[arg(long, value_name = "FILE.sql")]
    pub teardown: Option<PathBuf>,
    /// The database, prepared as `run` prepares it (dropped if isospec made it, created from template0).
    #[arg(long, value_name = "NAME", default_value = "isolation_regression")]
    pub dbname: String,
    /// Record in the existing database without dropping or creating it.
    #[arg(long)]
    pub use_existing: bool,
    /// Drop the database even if isospec did not create it.
    #[arg(long)]
    pub drop_existing: bool,
    /// Keep the database the recording made (by default it is dropped when
    /// the spec is written; with --use-existing nothing is dropped).
    #[arg(long)]
    pub keep_database: bool,
    /// Where the proxy listens (default: a free port on 127.0.0.1; another
    /// address only when you mean it: the proxy asks clients for no password).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// `statement`: each statement a step; `transaction`: each transaction one step.
    #[arg(long, value_enum, default_value = "statement")]
    pub steps: StepsMode,
    #[command(flatten)]
    pub server: super::ServerArgs,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    #[command(flatten)]
    pub wait: super::WaitArgs,
    /// The program to record and its arguments (after `--`); none: record
    /// until SIGINT and print the address to point a client at.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

fn read_sql(path: &Option<PathBuf>, what: &str) -> anyhow::Result<Option<(PathBuf, String)>> {
    match path {
        None => Ok(None),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("--{what} {}: {e}", p.display()))?;
            Ok(Some((p.clone(), text)))
        }
    }
}

/// `isospec record`: the command's exit status once the spec is written.
pub fn main(a: RecordArgs, env: &Environment) -> anyhow::Result<Exit> {
    let server = a
        .instance
        .choice(&a.server, env)
        .map_err(anyhow::Error::msg)?;
    let waiting = a.wait.resolve(env).map_err(anyhow::Error::msg)?;
    let probe = match (&waiting.wait_query, &waiting.wait_function) {
        (Some(q), _) => Probe::Query(q.clone()),
        (None, Some(f)) => Probe::Function(f.clone()),
        (None, None) => Probe::Builtin(waiting.detector),
    };
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            anyhow::bail!(
                "-o {}: the directory {} does not exist",
                a.output.display(),
                dir.display()
            );
        }
    }
    let req = RecordRequest {
        output: a.output.clone(),
        setup: read_sql(&a.setup, "setup")?,
        teardown: read_sql(&a.teardown, "teardown")?,
        dbname: a.dbname,
        use_existing: a.use_existing,
        drop_existing: a.drop_existing,
        keep_database: a.keep_database,
        server,
        probe,
        timeout_env: crate::timeouts::TimeoutEnv::of(env),
        listen: a.listen,
        steps: a.steps,
        command: a.command,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let work = std::thread::spawn(move || record::record(req, tx));
    for ev in rx {
        show(ev);
    }
    let r = work
        .join()
        .map_err(|_| anyhow::anyhow!("the recording's thread panicked"))?;
    Ok(r?)
}

fn show(ev: RecordEvent) {
    match ev {
        RecordEvent::Run(e) => match *e {
            crate::outcome::RunEvent::Phase(p) => {
                if let Some(t) = crate::report::phase_text(&p) {
                    console::note(format_args!("isospec record: {t}"));
                }
            }
            crate::outcome::RunEvent::Note(n) => console::note(format_args!("isospec record: {n}")),
            _ => {}
        },
        RecordEvent::Listening {
            addr,
            url,
            waiting_for_signal,
        } => {
            console::note(format_args!("isospec record: recording proxy on {addr}"));
            console::note(format_args!(
                "isospec record: PGHOST={} PGPORT={} DATABASE_URL={url}",
                addr.ip(),
                addr.port()
            ));
            if waiting_for_signal {
                console::note(format_args!(
                    "isospec record: recording until SIGINT (Ctrl-C)"
                ));
            }
        }
        RecordEvent::Warning(w) => console::note(format_args!("isospec record: warning: {w}")),
        RecordEvent::Wrote {
            path,
            sessions,
            steps,
        } => console::note(format_args!(
            "isospec record: wrote {} ({sessions} session{}, {steps} step{})",
            path.display(),
            if sessions == 1 { "" } else { "s" },
            if steps == 1 { "" } else { "s" }
        )),
    }
}
