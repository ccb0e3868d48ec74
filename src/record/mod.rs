//! `isospec record`: turns a test that drives PostgreSQL from a client
//! program (a pytest thread pool, a Rust or Go service test) into a spec.
//! The database is prepared as `run` prepares it, the setup runs, and a
//! recording proxy on a loopback port stands between the program and the
//! server; every statement the program sends becomes a step and the order
//! in which they reached the server becomes the spec's permutation, so
//! that `isospec run` replays the interleaving the scheduler happened to
//! pick and `isospec explore` tries the others.
//!
//! The parts: `proxy` (the listener and the byte relay), `trace` (the
//! protocol read along the relay), `literal` (bound parameters as SQL),
//! `types` (what the server says about parameter types) and `write` (the
//! spec text).  This module runs them and emits `RecordEvent`s; it never
//! prints.

mod braces;
pub mod copy;
mod flow;
mod lex;
pub mod literal;
mod proxy;
pub mod trace;
mod types;
mod waits;
pub mod write;

use crate::exit::Exit;
use crate::outcome::RunEvent;
use crate::pgwire::Conn;
use crate::run::{self, DatabasePlan, Events, RunError, ServerChoice};
use crate::wait::Probe;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;
pub use write::StepsMode;

/// Everything `isospec record` was asked, resolved.
#[derive(Debug, Clone)]
pub struct RecordRequest {
    pub output: PathBuf,
    /// The setup and teardown SQL, with the files they came from.
    pub setup: Option<(PathBuf, String)>,
    pub teardown: Option<(PathBuf, String)>,
    pub dbname: String,
    pub use_existing: bool,
    pub drop_existing: bool,
    /// Keep the database isospec made for the recording (else dropped at
    /// the end, as `run --drop-database` does).
    pub keep_database: bool,
    pub server: ServerChoice,
    pub probe: Probe,
    pub timeout_env: crate::timeouts::TimeoutEnv,
    /// Where the proxy listens (port 0: a free one).
    pub listen: SocketAddr,
    pub steps: StepsMode,
    /// The program and its arguments; empty: record until SIGINT.
    pub command: Vec<OsString>,
}

/// What happens during a recording, in order.
#[derive(Debug, Clone)]
pub enum RecordEvent {
    /// Preparing the server and database, as `run` reports it.
    Run(Box<RunEvent>),
    /// The proxy listens; the variables the command gets.
    Listening {
        addr: SocketAddr,
        url: String,
        waiting_for_signal: bool,
    },
    /// Something the recording could not represent, or a fault.
    Warning(String),
    /// The spec is written.
    Wrote {
        path: PathBuf,
        sessions: usize,
        steps: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{file}: {why}")]
    Script { file: String, why: String },
    #[error("the setup ({file}) failed on {server}:\n{message}")]
    Setup {
        file: String,
        server: String,
        message: String,
    },
    #[error("the teardown ({file}) failed on {server}:\n{message}")]
    Teardown {
        file: String,
        server: String,
        message: String,
    },
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("could not start {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("the wait detector's connection to {server} failed: {message}")]
    Control { server: String, message: String },
    #[error("nothing to write to {path}: {why}")]
    Empty { path: String, why: String },
    #[error("could not write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the recorded spec does not parse back (a bug in isospec record, please report it):\n{0}"
    )]
    Unparsable(String),
    #[error(transparent)]
    Start(#[from] run::setup::SetupError),
}

/// The command line as one shell-like string, for the spec's header.
fn shown(command: &[OsString]) -> String {
    command
        .iter()
        .map(|a| {
            let a = a.to_string_lossy();
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A setup or teardown file's SQL must fit in a spec block.
fn check_block(file: &std::path::Path, sql: &str) -> Result<(), RecordError> {
    if let Some(line) = sql.lines().position(|l| l.contains('}')) {
        return Err(RecordError::Script {
            file: format!("{}:{}", file.display(), line + 1),
            why: "contains '}', which ends a block in the spec language (write the SQL without it, e.g. ARRAY[...] for an array literal)".into(),
        });
    }
    Ok(())
}

/// Records; the exit is the command's (or Success after SIGINT without one).
pub fn record(req: RecordRequest, events: Sender<RecordEvent>) -> Result<Exit, RecordError> {
    for (f, sql) in req.setup.iter().chain(req.teardown.iter()) {
        check_block(f, sql)?;
    }
    let target = run::setup::Target {
        server: &req.server,
        dbname: &req.dbname,
        use_existing: req.use_existing,
        timeout: None,
        timeout_env: &req.timeout_env,
    };
    run::setup::with_server(
        &target,
        &events,
        |e| RecordEvent::Run(Box::new(e)),
        |f| f.rt.block_on(recording(&req, f.server, f.events, &events)),
    )
}

async fn exec_script(params: &crate::pgwire::ConnParams, sql: &str) -> Result<(), String> {
    let mut c = Conn::connect(params).await.map_err(|e| e.to_string())?;
    let r = c.exec(sql).await;
    let out = match r {
        Ok(Some(crate::pgwire::PgResult::Error(_) | crate::pgwire::PgResult::ClientError(_))) => {
            Err(c.error_message().trim_end().to_string())
        }
        Ok(_) => {
            // The rest of a multi-statement script's results.
            loop {
                match c.get_result().await {
                    Ok(None) => break Ok(()),
                    Ok(Some(
                        crate::pgwire::PgResult::Error(_) | crate::pgwire::PgResult::ClientError(_),
                    )) => break Err(c.error_message().trim_end().to_string()),
                    Ok(Some(_)) => {}
                    Err(e) => break Err(e.to_string()),
                }
            }
        }
        Err(e) => Err(e.to_string()),
    };
    // The recorded program starts once the script's backend has gone.
    c.close_and_wait(Duration::from_secs(10)).await;
    out
}

async fn recording(
    req: &RecordRequest,
    server: &run::PreparedServer,
    run_events: &Events,
    events: &Sender<RecordEvent>,
) -> Result<Exit, RecordError> {
    let plan = DatabasePlan {
        use_existing: req.use_existing,
        drop_existing: req.drop_existing,
        fresh_server: server.instance.is_some(),
        ..DatabasePlan::default()
    };
    run::prepare_database(&plan, &server.params, &req.dbname, Some(run_events)).await?;
    let result = record_in(req, server, events).await;
    if !req.use_existing && !req.keep_database {
        if let Err(e) =
            run::drop_when_unused(&server.params, &req.dbname, Duration::from_secs(10)).await
        {
            let _ = events.send(RecordEvent::Warning(format!(
                "{e} (on {}): drop it by hand, or pass --keep-database",
                server.params.describe_server()
            )));
        }
    }
    result
}

/// The recording proper, in the database `recording` prepared.
async fn record_in(
    req: &RecordRequest,
    server: &run::PreparedServer,
    events: &Sender<RecordEvent>,
) -> Result<Exit, RecordError> {
    let mut params = server.params.clone();
    params.dbname = req.dbname.clone();
    let describe = params.describe_server();
    let mut admin = params.clone();
    admin.application_name = Some("isospec".into());
    if let Some((file, sql)) = &req.setup {
        exec_script(&admin, sql)
            .await
            .map_err(|message| RecordError::Setup {
                file: file.display().to_string(),
                server: describe.clone(),
                message,
            })?;
    }
    let listener = tokio::net::TcpListener::bind(req.listen)
        .await
        .map_err(|source| RecordError::Listen {
            addr: req.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| RecordError::Listen {
            addr: req.listen,
            source,
        })?;
    let tls = match proxy::tls_config() {
        Ok(c) => Some(c),
        Err(e) => {
            let _ = events.send(RecordEvent::Warning(format!(
                "the proxy could not make a TLS certificate ({e}): clients that require TLS cannot connect"
            )));
            None
        }
    };
    let shared = proxy::Shared::new(params.clone(), tls);
    let serving = tokio::spawn(proxy::serve(listener, shared.clone()));
    let control = Conn::connect(&admin)
        .await
        .map_err(|e| RecordError::Control {
            server: describe.clone(),
            message: e.to_string(),
        })?;
    *shared.waits.lock().await = Some(waits::Waits::new(control, req.probe.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch(shared.clone(), stop_rx));
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let url = format!(
        "postgresql://{}@{host}:{}/{}",
        percent(&params.user),
        addr.port(),
        percent(&req.dbname)
    );
    let _ = events.send(RecordEvent::Listening {
        addr,
        url: url.clone(),
        waiting_for_signal: req.command.is_empty(),
    });
    let exit = if req.command.is_empty() {
        wait_for_signal().await;
        Exit::Success
    } else {
        run_command(req, addr, &params.user, &url).await?
    };
    // Let the relays see the command's connections close.
    settle(&shared).await;
    let _ = stop_tx.send(true);
    serving.abort();
    shared.stop_relays();
    let _ = watcher.await;
    let Some(mut control) = shared
        .waits
        .lock()
        .await
        .take()
        .map(waits::Waits::into_control)
    else {
        unreachable!("the wait detector is put back after each check")
    };
    let log = std::mem::take(&mut *shared.log.lock().unwrap());
    for w in &log.warnings {
        let _ = events.send(RecordEvent::Warning(w.clone()));
    }
    let (log, types) = types::resolve(log, &mut control).await;
    control.close_and_wait(Duration::from_secs(10)).await;
    let command = if req.command.is_empty() {
        "(a client, until SIGINT)".to_string()
    } else {
        shown(&req.command)
    };
    let frame = write::Frame {
        command: &command,
        setup: req.setup.as_ref().map(|(_, s)| s.as_str()),
        teardown: req.teardown.as_ref().map(|(_, s)| s.as_str()),
        steps: req.steps,
    };
    let written = write::write(&log, &types, &frame);
    if let Some((file, sql)) = &req.teardown {
        exec_script(&admin, sql)
            .await
            .map_err(|message| RecordError::Teardown {
                file: file.display().to_string(),
                server: describe.clone(),
                message,
            })?;
    }
    for w in &written.warnings {
        let _ = events.send(RecordEvent::Warning(w.clone()));
    }
    if written.steps == 0 {
        return Err(RecordError::Empty {
            path: req.output.display().to_string(),
            why: nothing_recorded(&log, &shared.refusals()),
        });
    }
    crate::spec::parse(&req.output.display().to_string(), written.text.as_bytes())
        .map_err(|e| RecordError::Unparsable(e.to_string()))?;
    std::fs::write(&req.output, &written.text).map_err(|source| RecordError::Write {
        path: req.output.display().to_string(),
        source,
    })?;
    let _ = events.send(RecordEvent::Wrote {
        path: req.output.clone(),
        sessions: written.sessions,
        steps: written.steps,
    });
    Ok(exit)
}

/// Why a recording has no step: no client came, what the clients that came
/// asked for was refused, or every statement was left out.
fn nothing_recorded(log: &trace::Log, refused: &[String]) -> String {
    let refusals = if refused.is_empty() {
        String::new()
    } else {
        format!(" The proxy refused: {}.", refused.join("; "))
    };
    if log.sessions.is_empty() {
        if refused.is_empty() {
            "no client connected to the proxy: did the command connect through it (PGHOST, PGPORT, DATABASE_URL)?".into()
        } else {
            format!("no client connection was recorded.{refusals}")
        }
    } else if log.stmts.is_empty() {
        format!(
            "{} client connection{} went through the proxy but sent no statement.{refusals}",
            log.sessions.len(),
            if log.sessions.len() == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{} client connection{} sent {} statement{}, and every one was left out (the warnings above say why).{refusals}",
            log.sessions.len(),
            if log.sessions.len() == 1 { "" } else { "s" },
            log.stmts.len(),
            if log.stmts.len() == 1 { "" } else { "s" }
        )
    }
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Runs the command with libpq's variables and DATABASE_URL naming the
/// proxy; its exit status (128 + the signal that killed it).
async fn run_command(
    req: &RecordRequest,
    addr: SocketAddr,
    user: &str,
    url: &str,
) -> Result<Exit, RecordError> {
    let mut cmd = tokio::process::Command::new(&req.command[0]);
    cmd.args(&req.command[1..])
        .env("PGHOST", addr.ip().to_string())
        .env("PGPORT", addr.port().to_string())
        .env("PGDATABASE", &req.dbname)
        .env("PGUSER", user)
        .env("DATABASE_URL", url)
        .env("PGSSLMODE", "disable")
        .env_remove("PGHOSTADDR")
        .env_remove("PGSERVICE");
    let mut child = cmd.spawn().map_err(|source| RecordError::Spawn {
        command: shown(&req.command),
        source,
    })?;
    // SIGINT reaches the command too (the terminal's process group); the
    // recording outlives it and writes what was recorded.
    let status = loop {
        tokio::select! {
            s = child.wait() => break s,
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let status = status.map_err(|source| RecordError::Spawn {
        command: shown(&req.command),
        source,
    })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(0), _) => Exit::Success,
        (Some(c), _) => Exit::Command(c),
        (None, Some(sig)) => Exit::Command(128 + sig),
        (None, None) => Exit::Error,
    })
}

/// Waits until every recorded session has ended and its relay has read
/// the backend's last words (a client that vanished while its statement
/// waited for a lock: the server still completes the statement once the
/// lock is released, and the relay records that before the backend
/// closes), and no client is still in its startup (a refused TLS
/// handshake must be counted before the recording is judged), at most a
/// few seconds: a connection the command left open (a pool's idle one, a
/// detached child's) is recorded as it is.
async fn settle(shared: &proxy::Shared) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        {
            let log = shared.log.lock().unwrap();
            if log
                .sessions
                .iter()
                .all(|s| (s.terminated || s.ended.is_some()) && s.gone)
                && !shared.starting()
            {
                return;
            }
        }
        if tokio::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asks about waits every 10 ms (isolationtester's own poll) until told
/// to stop.
async fn watch(
    shared: std::sync::Arc<proxy::Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        shared.check_waits(None).await;
    }
}
