//! Runs one checked spec over real connections with isolationtester's
//! semantics, and emits what happens as events.  It never prints: the
//! transcript module turns events into text and the runner decides where
//! they go.
//!
//! The control flow is a port of isolationtester's run_permutation,
//! try_complete_steps and try_complete_step, so that the order of every
//! line matches.  One deliberate difference: instead of sleeping 10 ms
//! between lock checks, it waits on the socket and asks the server after
//! short, growing intervals, so blocked steps are noticed sooner.

mod cleanup;
mod diagnostics;
mod event;
mod flow;
mod session;
mod stall;
#[cfg(test)]
mod tests;

pub use event::{Event, LockRow, WaitGraph, WaitRow, Who};

use crate::pgwire::{Conn, ConnParams, Connection, PgResult, WireError};
use crate::spec::{CheckedBlocker, CheckedSpec, CheckedStep};
use crate::stop::StopSignal;
use crate::wait::{Detector, DetectorKind, Probe};
use std::time::Duration;
// tokio's clock: the same as std's in a run, and pausable in unit tests.
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// Why a spec could not run to its end.  The transcript already holds
/// isolationtester's message for the same situation.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("connection {index} ({session}) failed: {source}")]
    Connect {
        index: usize,
        session: String,
        source: WireError,
    },
    #[error("setting up connection {session} (application name, backend pid) failed: {message}")]
    AppName { session: String, message: String },
    #[error("preparing the lock wait query failed: {0}")]
    PrepareWait(String),
    #[error("lock wait query failed while checking step {step}: {message}")]
    WaitQuery { step: String, message: String },
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("setup of session {session} failed: {message}")]
    SessionSetup { session: String, message: String },
    #[error("step {step} of session {session} timed out after {secs} seconds ({server})")]
    StepTimeout {
        session: String,
        step: String,
        secs: u64,
        server: String,
    },
    #[error("failed to complete permutation due to mutually-blocking steps")]
    MutuallyBlocking,
    #[error("failed to send query for step {step} of session {session}: {source}")]
    Send {
        session: String,
        step: String,
        source: WireError,
    },
    #[error("connection of session {session} failed during step {step}: {source}")]
    Wire {
        session: String,
        step: String,
        source: WireError,
    },
    #[error("teardown of {what} did not finish within {secs} seconds and was cancelled")]
    TeardownTimeout { what: String, secs: u64 },
    #[error("interrupted")]
    Interrupted,
    /// Interrupted, and the cleanup did not finish within the grace period.
    #[error("interrupted: the teardown of {what} did not finish within the grace period")]
    GraceEnded { what: String },
    /// Interrupted before the first permutation's setup: nothing ran.
    #[error("interrupted before it started")]
    NotStarted,
    /// Behind a pooler, a session is not on the backend it started on (or
    /// shares one with another session).
    #[error("{0}; isolation specs need one server connection per session for the whole spec: use session pooling (PgBouncer: pool_mode = session)")]
    BackendChanged(String),
}

/// How the executor behaves.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// isolationtester's max_step_wait: cancel after this, give up after twice this.
    pub step_timeout: Duration,
    pub detector: DetectorKind,
    /// Wait intervals between lock checks, growing from `poll_min` to `poll_max`.
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// Run only this permutation (1-based), if set.
    pub only_permutation: Option<usize>,
    /// Count waits on prepared transactions as blocked, for every spec.
    pub prepared_waits: bool,
    /// Put the wait graph into the transcript when a step is cancelled.
    pub wait_graph_in_transcript: bool,
    /// `--wait-function NAME`: asks NAME(pid, '{pids}') instead of
    /// pg_isolation_test_session_is_blocked (same signature).
    pub wait_function: Option<String>,
    /// `--wait-query SQL`: a query with the waiting pid as $1 and the
    /// sessions' pids as $2 (int[] text), answering true when blocked.
    pub wait_query: Option<String>,
    /// Queries run on the control connection after each permutation's
    /// steps, before the teardowns (`isospec explore`'s outcome queries
    /// and invariants); their rows come as `Event::AfterSteps`.
    pub after_steps: Vec<String>,
    /// A permutation whose next step belongs to a session whose running
    /// step is blocked, directly or through other blocked steps, by a
    /// session with no running step (only a later step could release it)
    /// ends at once with `Event::Unrealizable`, where isolationtester
    /// would wait twice the step timeout (`isospec explore`).
    pub end_stalled: bool,
    /// When a step is first seen waiting, ask the server which backends
    /// block it (`pg_blocking_pids`) and report them as `Event::BlockedBy`
    /// (for reports that draw the waits: `--html`).  Off by default: it
    /// is one more query on the control connection per wait.
    pub blockers_on_wait: bool,
    /// Leave the prepared transactions a spec left behind, as
    /// isolationtester does (the pg_isolation_regress drop-in); else they
    /// are rolled back so that the next spec does not meet their locks.
    pub keep_prepared: bool,
}

/// What one spec's run holds besides its options: the stop signal, the
/// CPU its backends are bound to, and what the backends said of
/// themselves when they connected.
#[derive(Debug, Clone, Default)]
pub struct ExecRuntime {
    /// Raised when the run is interrupted (SIGINT/SIGTERM), with the
    /// deadline of the cleanup: running steps are cancelled, the sessions'
    /// transactions ended and the teardown run before the spec ends.
    pub stop: Option<StopSignal>,
    /// Bind the spec's backends to this CPU, after checking they are
    /// children of this postmaster (see `affinity`): (postmaster pid, CPU).
    pub pin_backends: Option<(i32, usize)>,
    /// Set by `run_spec` (`execute` callers may leave it empty).
    pub backends: Backends,
}

/// The spec's backends as they identified themselves.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    /// The connections' keys name other pids than the backends' own: a
    /// pooler or proxy sits in between.
    pub proxied: bool,
    /// Each session's application_name, in the spec's order.
    pub app_names: Vec<String>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            step_timeout: Duration::from_secs(300),
            detector: DetectorKind::Function,
            poll_min: Duration::from_micros(500),
            poll_max: Duration::from_millis(10),
            only_permutation: None,
            prepared_waits: false,
            wait_graph_in_transcript: false,
            wait_function: None,
            wait_query: None,
            after_steps: Vec::new(),
            end_stalled: false,
            blockers_on_wait: false,
            keep_prepared: false,
        }
    }
}

/// How isolationtester's try_complete_step is asked to look at a step
/// (its STEP_NONBLOCK and STEP_RETRY flags).
#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// Do not wait for the step: report it as waiting if it is blocked.
    nonblock: bool,
    /// The step was launched before (print `<... completed>`, not the step).
    retry: bool,
}

/// The first look at a step just sent.
const LAUNCH: Attempt = Attempt {
    nonblock: true,
    retry: false,
};
/// Another look at a waiting step, without waiting for it.
const POLL: Attempt = Attempt {
    nonblock: true,
    retry: true,
};
/// Waiting for a step to complete.
const FINISH: Attempt = Attempt {
    nonblock: false,
    retry: true,
};

/// What watching a running step found.
enum Watch {
    /// Its results are all in.
    Done,
    /// The server says it waits for a lock.
    Blocked,
}

/// Which connection runs a setup or teardown block.
#[derive(Debug, Clone, Copy)]
enum Target {
    Control,
    Session(usize),
}

struct SessionConn<C> {
    conn: C,
    name: String,
    /// Index into the current permutation of the step running here.
    active: Option<usize>,
    total_notices: i64,
    launched_at: Option<Instant>,
    /// Its backend was terminated (an interrupted run's cleanup): no
    /// teardown runs on it.
    dead: bool,
}

/// Per-permutation step state.
struct PermState<'p> {
    steps: &'p [CheckedStep],
    /// For `notices` markers: the target notice count, per step and marker.
    targets: Vec<Vec<i64>>,
}

pub struct Executor<'a, C: Connection> {
    spec: &'a CheckedSpec,
    control: C,
    sessions: Vec<SessionConn<C>>,
    detector: Detector,
    tx: UnboundedSender<Event>,
    opts: ExecOptions,
    rt: ExecRuntime,
    any_new_notice: bool,
    /// A permutation's setup has been sent and its teardown has not run
    /// yet: an interrupt must tear it down (and only then).
    in_permutation: bool,
    /// Some permutation has started.
    started: bool,
    /// While waiting steps are polled: the server's answers for their
    /// backends, asked in one round trip and valid until a step completes
    /// (a completion may release locks).
    blocked: Option<std::collections::HashMap<i32, bool>>,
    /// While an interrupted permutation is cleaned up: the grace period's
    /// deadline, which bounds the teardowns.
    deadline: Option<std::time::Instant>,
}

pub(crate) use session::quote_literal;
/// Runs a spec over connections made for it: `control` and one per
/// session, in the spec's order.
pub use session::run_spec;

pub async fn execute<C: Connection>(
    spec: &CheckedSpec,
    control: C,
    conns: Vec<C>,
    opts: ExecOptions,
    rt: ExecRuntime,
    tx: UnboundedSender<Event>,
) -> Result<(), SpecError> {
    let sessions: Vec<SessionConn<C>> = conns
        .into_iter()
        .zip(spec.spec.sessions.iter())
        .map(|(conn, s)| SessionConn {
            conn,
            name: s.name.clone(),
            active: None,
            total_notices: 0,
            launched_at: None,
            dead: false,
        })
        .collect();
    let pids: Vec<i32> = sessions.iter().map(|s| s.conn.backend_pid()).collect();
    if rt.backends.proxied && !spec.spec.options.pooled {
        let all: Vec<(String, i32)> =
            std::iter::once(("the control connection".to_string(), control.backend_pid()))
                .chain(
                    sessions
                        .iter()
                        .map(|s| (format!("session {}", s.name), s.conn.backend_pid())),
                )
                .collect();
        for (i, (a, pa)) in all.iter().enumerate() {
            if let Some((b, _)) = all[i + 1..].iter().find(|(_, pb)| pb == pa) {
                return Err(SpecError::BackendChanged(format!(
                    "{a} and {b} share backend pid {pa}: the pooler gives several clients one server connection"
                )));
            }
        }
    }
    if let Some((postmaster, cpu)) = rt.pin_backends {
        // Best effort: where binding is not allowed, the spec runs unbound.
        let all: Vec<i32> = pids
            .iter()
            .copied()
            .chain([control.backend_pid()])
            .collect();
        let _ = crate::affinity::pin_backends(postmaster, &all, cpu);
    }
    let mut control = control;
    let probe = match (&opts.wait_function, &opts.wait_query) {
        (_, Some(q)) => Probe::Query(q.clone()),
        (Some(f), None) => Probe::Function(f.clone()),
        (None, None) => Probe::Builtin(opts.detector),
    };
    let detector = match Detector::prepare(
        &mut control,
        &probe,
        &pids,
        opts.prepared_waits || spec.spec.options.prepared_waits,
    )
    .await
    {
        Ok(d) => d,
        Err(message) => {
            let _ = tx.send(Event::PrepareWaitFailed {
                message: message.clone(),
            });
            return Err(SpecError::PrepareWait(message));
        }
    };
    let mut ex = Executor {
        spec,
        control,
        sessions,
        detector,
        tx,
        opts,
        rt,
        any_new_notice: false,
        in_permutation: false,
        started: false,
        blocked: None,
        deadline: None,
    };
    let result = ex.run_all().await;
    ex.finish(result).await
}

impl<'a, C: Connection> Executor<'a, C> {
    fn emit(&self, e: Event) {
        let _ = self.tx.send(e);
    }

    fn interrupted(&self) -> bool {
        self.rt.stop.as_ref().is_some_and(StopSignal::requested)
    }

    fn step_name(&self, p: &CheckedStep) -> &'a str {
        &self.spec.spec.sessions[p.session].steps[p.step].name
    }

    fn step_sql(&self, p: &CheckedStep) -> &'a str {
        &self.spec.spec.sessions[p.session].steps[p.step].sql
    }

    /// Emits the notices parsed so far on session `si`'s connection.
    fn flush_notices(&mut self, si: usize) {
        while let Some(n) = self.sessions[si].conn.take_notice() {
            let text = n.format_libpq(false, Some(self.sessions[si].conn.last_query()));
            self.emit(Event::Notice {
                session: self.sessions[si].name.clone(),
                text,
            });
            self.sessions[si].total_notices += 1;
            self.any_new_notice = true;
        }
    }

    /// PQexec on a session connection for its setup/teardown; returns the
    /// last result.  Notices are reported like a step's.
    async fn session_exec(&mut self, si: usize, sql: &str) -> Result<Option<PgResult>, WireError> {
        let r = self.sessions[si].conn.exec(sql).await;
        self.flush_notices(si);
        r
    }

    async fn control_exec(&mut self, sql: &str) -> Result<Option<PgResult>, WireError> {
        let r = self.control.exec(sql).await;
        while self.control.take_notice().is_some() {}
        r
    }

    fn conn(&mut self, target: Target) -> &mut C {
        match target {
            Target::Control => &mut self.control,
            Target::Session(si) => &mut self.sessions[si].conn,
        }
    }

    /// The session a target is, by name (None: the control connection).
    fn session_name(&self, target: Target) -> Option<String> {
        match target {
            Target::Control => None,
            Target::Session(si) => Some(self.sessions[si].name.clone()),
        }
    }
}

/// Collects what a cancelled (or any) query still returns, PQgetResult
/// until done, within `limit`: its last result, or None when the limit
/// passed first.
async fn drain<C: Connection>(
    conn: &mut C,
    limit: Duration,
) -> Option<Result<Option<PgResult>, WireError>> {
    tokio::time::timeout(limit, async {
        let mut last = None;
        while let Some(r) = conn.get_result().await? {
            last = Some(r);
        }
        Ok(last)
    })
    .await
    .ok()
}

/// The wait question not answered in time (a stalled server or pooler),
/// naming where the control connection goes.
fn no_answer(server: &str, limit: Duration) -> String {
    format!(
        "the control connection to {server} timed out: no answer to the wait query within {} s\n",
        limit.as_secs()
    )
}

fn wire(session: &str, step: &str, e: WireError) -> SpecError {
    SpecError::Wire {
        session: session.to_string(),
        step: step.to_string(),
        source: e,
    }
}
