//! The one setup layer under the commands: the only place an async
//! runtime is built, and the frame that `explore` and `record` run their
//! bodies in (the server started or taken and its version asked, the
//! signals caught from the start, the preparation's events passed on as
//! the command's own, a temporary instance stopped at the end).  Without
//! it each command built its own runtime and repeated the frame, and the
//! copies drifted apart.

use super::{prepare_server, Events, PreparedServer, RunError, ServerChoice};
use crate::outcome::RunEvent;
use crate::stop::Stopper;
use crate::timeouts::TimeoutEnv;
use std::sync::mpsc::Sender;
use std::time::Duration;
use tokio::runtime::Runtime;

/// The runtime of a command, or of one `-j` lane's thread: one thread,
/// timers and I/O.
pub fn runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The server a command works on, and how it is asked.
pub struct Target<'a> {
    pub server: &'a ServerChoice,
    /// The database the command's own connections use.
    pub dbname: &'a str,
    /// `--use-existing`: the server's version is asked in `dbname`, which
    /// must exist; else in `postgres`.
    pub use_existing: bool,
    /// `--timeout`, or the version's own step timeout when `None`.
    pub timeout: Option<Duration>,
    pub timeout_env: &'a TimeoutEnv,
}

/// Why a command could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("could not start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("could not install the SIGINT/SIGTERM handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What a command's body gets: the runtime, the prepared server, and the
/// events to report the run-like parts on.
pub struct Frame<'a> {
    pub rt: &'a Runtime,
    pub server: &'a PreparedServer,
    pub events: &'a Events,
}

/// Runs `body` in the frame, SIGINT/SIGTERM caught before anything starts
/// (the body's `Stopper`, with `grace` for its cleanup).  See `with_server`.
pub fn with_server_and_signals<E, T, Err>(
    target: &Target<'_>,
    grace: Duration,
    to: &Sender<E>,
    wrap: fn(RunEvent) -> E,
    body: impl FnOnce(Frame<'_>, &mut Stopper) -> Result<T, Err>,
) -> Result<T, Err>
where
    E: Send + 'static,
    Err: From<SetupError>,
{
    let rt = runtime().map_err(SetupError::Runtime)?;
    // Installed before any work: a signal that comes early is not lost.
    let mut stopper = {
        let _in_runtime = rt.enter();
        Stopper::install(grace).map_err(SetupError::Signals)?
    };
    in_frame(rt, target, to, wrap, |f| body(f, &mut stopper))
}

/// Runs `body` in the frame: a runtime; the server of `target` prepared,
/// its events (and the body's run events) sent to `to` through `wrap` as
/// they come; a temporary instance stopped after the body, outside the
/// runtime (stopping blocks).
pub fn with_server<E, T, Err>(
    target: &Target<'_>,
    to: &Sender<E>,
    wrap: fn(RunEvent) -> E,
    body: impl FnOnce(Frame<'_>) -> Result<T, Err>,
) -> Result<T, Err>
where
    E: Send + 'static,
    Err: From<SetupError>,
{
    let rt = runtime().map_err(SetupError::Runtime)?;
    in_frame(rt, target, to, wrap, body)
}

fn in_frame<E, T, Err>(
    rt: Runtime,
    target: &Target<'_>,
    to: &Sender<E>,
    wrap: fn(RunEvent) -> E,
    body: impl FnOnce(Frame<'_>) -> Result<T, Err>,
) -> Result<T, Err>
where
    E: Send + 'static,
    Err: From<SetupError>,
{
    let (events, forward) = Events::forwarding(&rt, to.clone(), wrap);
    let admin_db = if target.use_existing {
        target.dbname
    } else {
        "postgres"
    };
    let prepared = rt.block_on(prepare_server(
        target.server,
        admin_db,
        target.timeout,
        target.timeout_env,
        &events,
    ));
    let result = match prepared {
        Ok(server) => {
            let r = body(Frame {
                rt: &rt,
                server: &server,
                events: &events,
            });
            if let Some(mut inst) = server.instance {
                inst.stop();
            }
            r
        }
        Err(e) => Err(SetupError::Run(e).into()),
    };
    drop(events);
    let _ = rt.block_on(forward);
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}
