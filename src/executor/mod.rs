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

mod event;
#[cfg(test)]
mod tests;

pub use event::{Event, LockRow, WaitGraph, WaitRow, Who};

use crate::pgwire::{Conn, ConnParams, Connection, PgResult, WireError};
use crate::spec::{CheckedSpec, PBlocker, PStep};
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
    /// Raised when the run is interrupted (SIGINT/SIGTERM), with the
    /// deadline of the cleanup: running steps are cancelled, the sessions'
    /// transactions ended and the teardown run before the spec ends.
    pub stop: Option<StopSignal>,
    /// Bind the spec's backends to this CPU, after checking they are
    /// children of this postmaster (see `affinity`): (postmaster pid, CPU).
    pub pin_backends: Option<(i32, usize)>,
    /// `--wait-function NAME`: asks NAME(pid, '{pids}') instead of
    /// pg_isolation_test_session_is_blocked (same signature).
    pub wait_function: Option<String>,
    /// `--wait-query SQL`: a query with the waiting pid as $1 and the
    /// sessions' pids as $2 (int[] text), answering true when blocked.
    pub wait_query: Option<String>,
    /// What the backends said of themselves when the spec connected (set
    /// by `run_spec`; `execute` callers may leave it empty).
    pub backends: Backends,
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
            stop: None,
            pin_backends: None,
            wait_function: None,
            wait_query: None,
            backends: Backends::default(),
            after_steps: Vec::new(),
            end_stalled: false,
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
    steps: &'p [PStep],
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

/// Runs a whole spec: connects, runs every permutation, disconnects.
pub async fn run_spec(
    spec: &CheckedSpec,
    params: &ConnParams,
    opts: ExecOptions,
    tx: UnboundedSender<Event>,
) -> Result<(), SpecError> {
    if opts.stop.as_ref().is_some_and(StopSignal::requested) {
        return Err(SpecError::NotStarted);
    }
    for w in &spec.warnings {
        let _ = tx.send(Event::SpecWarning(w.to_string()));
    }
    let _ = tx.send(Event::Parsed {
        sessions: spec.spec.sessions.len(),
    });
    let mut conns = Vec::new();
    let mut proxied = false;
    let mut app_names = Vec::new();
    let names: Vec<String> = std::iter::once("control connection".to_string())
        .chain(spec.spec.sessions.iter().map(|s| s.name.clone()))
        .collect();
    // All connections are opened, and then identified, at once: set-up
    // time would otherwise grow with the number of sessions.  Failures
    // are reported for the first connection in the spec's order.
    let opened = futures_util::future::join_all(names.iter().map(|_| Conn::connect(params))).await;
    for (i, (name, c)) in names.iter().zip(opened).enumerate() {
        match c {
            Ok(c) => conns.push(c),
            Err(e) => {
                let _ = tx.send(Event::ConnectFailed {
                    index: i,
                    message: format!("{e}\n"),
                });
                return Err(SpecError::Connect {
                    index: i,
                    session: name.clone(),
                    source: e,
                });
            }
        }
    }
    // Bounded: a pooler with no free server connection for a client
    // (pool exhausted, pooler stalled) answers nothing.
    let limit = opts.step_timeout;
    let answers =
        futures_util::future::join_all(conns.iter_mut().zip(&names).map(|(conn, name)| {
            let sql = identify_query(conn, params, name);
            async move { tokio::time::timeout(limit, conn.exec(&sql)).await }
        }))
        .await;
    for (i, answer) in answers.into_iter().enumerate() {
        let name = &names[i];
        let conn = &mut conns[i];
        let answer = match answer {
            Ok(a) => a,
            Err(_) => {
                let message = format!(
                    "no answer from {} within {} s (a pooler with no free server connection for this session, or a stalled server)",
                    params.describe(),
                    limit.as_secs()
                );
                let _ = tx.send(Event::AppNameFailed {
                    message: format!("{message}\n"),
                });
                return Err(SpecError::AppName {
                    session: name.clone(),
                    message,
                });
            }
        };
        match answer {
            Ok(Some(PgResult::Tuples(t))) => {
                let row = t.rows.first();
                let app = row.and_then(|r| r.first().cloned().flatten());
                let pid = row
                    .and_then(|r| r.get(1).cloned().flatten())
                    .and_then(|p| p.parse::<i32>().ok());
                if let Some(pid) = pid {
                    proxied |= pid != conn.backend_pid();
                    conn.set_backend_pid(pid);
                }
                if i > 0 {
                    app_names.push(app.unwrap_or_default());
                }
            }
            Ok(_) => {
                let message = conn.error_message().to_string();
                let _ = tx.send(Event::AppNameFailed {
                    message: message.clone(),
                });
                return Err(SpecError::AppName {
                    session: name.clone(),
                    message,
                });
            }
            Err(e) => {
                return Err(SpecError::AppName {
                    session: name.clone(),
                    message: e.to_string(),
                })
            }
        }
        // Drop notices from the control connection (isolationtester's
        // blackhole processor); session notices of this query are dropped too,
        // as none can occur.
        while conn.take_notice().is_some() {}
    }
    let control = conns.remove(0);
    let mut opts = opts;
    opts.backends = Backends { proxied, app_names };
    execute(spec, control, conns, opts, tx).await
}

/// The query that identifies a session: isolationtester's application
/// name, and the backend's own pid (a pooler's connection key names a pid
/// of its own).  A literal, not a bound parameter, so that proxies without
/// the extended protocol take it.  Settings a pooler refused as startup
/// options, and intervalstyle (which a pooler told to ignore `options`
/// drops silently), are set in the same round trip.
fn identify_query(conn: &Conn, params: &ConnParams, name: &str) -> String {
    let mut settings: Vec<(String, String)> = conn.deferred_settings().to_vec();
    if settings.is_empty() {
        settings = crate::pgwire::parse_options(params.options.as_deref().unwrap_or(""))
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("intervalstyle"))
            .collect();
    }
    let set: String = settings
        .iter()
        .map(|(k, v)| {
            format!(
                ", pg_catalog.set_config({}, {}, false)",
                quote_literal(k),
                quote_literal(v)
            )
        })
        .collect();
    format!(
        "SELECT pg_catalog.set_config('application_name',\n  pg_catalog.current_setting('application_name') || '/' || {},\n  false), pg_catalog.pg_backend_pid(){set}",
        quote_literal(name)
    )
}

/// A SQL string literal.
pub(crate) fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Runs a spec over connections made for it: `control` and one per
/// session, in the spec's order.
pub async fn execute<C: Connection>(
    spec: &CheckedSpec,
    control: C,
    conns: Vec<C>,
    opts: ExecOptions,
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
    if opts.backends.proxied && !spec.spec.options.pooled {
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
    if let Some((postmaster, cpu)) = opts.pin_backends {
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
        any_new_notice: false,
        in_permutation: false,
        started: false,
        blocked: None,
        deadline: None,
    };
    let mut result = ex.run_all().await;
    if matches!(result, Err(SpecError::Interrupted)) && !ex.started {
        result = Err(SpecError::NotStarted);
    }
    if matches!(result, Err(SpecError::Interrupted)) {
        let running: Vec<String> = ex
            .sessions
            .iter()
            .filter(|s| s.active.is_some())
            .map(|s| s.name.clone())
            .collect();
        ex.emit(Event::Interrupted {
            running,
            teardown: ex.in_permutation,
        });
    }
    if matches!(result, Err(SpecError::Interrupted)) && ex.in_permutation {
        if let Err(e) = ex.stop_permutation().await {
            result = Err(e);
        }
    }
    if matches!(
        result,
        Err(SpecError::StepTimeout { .. }) | Err(SpecError::TeardownTimeout { .. })
    ) {
        // The spec is abandoned: make sure its backends stop too, so the
        // next spec does not meet their locks -- only backends that reported
        // their own pid and still carry this spec's application_name.
        let known: Vec<String> = ex
            .sessions
            .iter()
            .zip(&ex.opts.backends.app_names)
            .map(|(s, app)| format!("({}, {})", s.conn.backend_pid(), quote_literal(app)))
            .collect();
        if !known.is_empty() {
            let sql = format!(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                 WHERE (pid, application_name) IN ({})",
                known.join(", ")
            );
            let limit = ex
                .stop_deadline()
                .map_or(Duration::from_secs(10), crate::stop::remaining);
            let _ = tokio::time::timeout(limit, ex.control.exec(&sql)).await;
        }
    }
    // Bounded like any control query: a stalled server or pooler must not
    // hang the run after the spec's own error.
    let limit = ex.opts.step_timeout;
    let _ = tokio::time::timeout(limit, ex.cleanup_prepared()).await;
    let _ = tokio::time::timeout(limit, ex.close()).await;
    result
}

impl<'a, C: Connection> Executor<'a, C> {
    fn emit(&self, e: Event) {
        let _ = self.tx.send(e);
    }

    /// Rolls back prepared transactions the spec left in its database, so
    /// that the next spec does not meet their locks (isolationtester leaves
    /// them).  Uses the control connection; the server quotes the GIDs.
    async fn cleanup_prepared(&mut self) {
        let found = self
            .control
            .exec(
                "SELECT gid, format('ROLLBACK PREPARED %L', gid) FROM pg_catalog.pg_prepared_xacts \
                 WHERE database = current_database() ORDER BY gid",
            )
            .await;
        let Ok(Some(PgResult::Tuples(t))) = found else {
            return;
        };
        for row in t.rows {
            let (Some(Some(gid)), Some(Some(sql))) = (row.first(), row.get(1)) else {
                continue;
            };
            let error = match self.control.exec(sql).await {
                Ok(Some(PgResult::Command(_))) => None,
                _ => Some(self.control.error_message().trim_end().to_string()),
            };
            self.emit(Event::PreparedRolledBack {
                gid: gid.clone(),
                error,
            });
        }
        while self.control.take_notice().is_some() {}
    }

    async fn close(self) {
        self.control.close().await;
        for s in self.sessions {
            s.conn.close().await;
        }
    }

    /// The deadline of an interrupted run's cleanup (without one, the
    /// step timeout bounds each part as for any teardown).
    fn stop_deadline(&self) -> Option<std::time::Instant> {
        self.opts.stop.as_ref().and_then(StopSignal::deadline)
    }

    /// Ends an interrupted permutation within the grace period: cancels
    /// the running steps, ends every session's transaction (so that the
    /// teardown waits for no lock a session holds; a session that does not
    /// answer has its backend terminated), then runs the teardowns, each
    /// bounded by the deadline.
    async fn stop_permutation(&mut self) -> Result<(), SpecError> {
        let deadline = self
            .stop_deadline()
            .unwrap_or_else(|| std::time::Instant::now() + self.opts.step_timeout);
        let left = || crate::stop::remaining(deadline);
        for si in 0..self.sessions.len() {
            if self.sessions[si].active.take().is_some() {
                let _ = tokio::time::timeout(left(), self.sessions[si].conn.cancel()).await;
                let conn = &mut self.sessions[si].conn;
                let _ = tokio::time::timeout(left().min(Duration::from_secs(5)), async {
                    while let Ok(Some(_)) = conn.get_result().await {}
                })
                .await;
                while self.sessions[si].conn.take_notice().is_some() {}
            }
        }
        // Ending the transactions: a share of what is left for each.
        let mut unanswered = Vec::new();
        for si in 0..self.sessions.len() {
            let share = left() / 4;
            let ended = tokio::time::timeout(share, self.sessions[si].conn.exec("ROLLBACK")).await;
            if !matches!(ended, Ok(Ok(_))) {
                unanswered.push(si);
            }
            while self.sessions[si].conn.take_notice().is_some() {}
        }
        if !unanswered.is_empty() {
            let pids: Vec<i32> = unanswered
                .iter()
                .map(|&si| self.sessions[si].conn.backend_pid())
                .collect();
            let names: Vec<String> = unanswered
                .iter()
                .map(|&si| self.sessions[si].name.clone())
                .collect();
            self.emit(Event::SessionsTerminated { sessions: names });
            self.terminate_backends(&pids, left()).await;
            for &si in &unanswered {
                self.sessions[si].dead = true;
            }
        }
        self.deadline = Some(deadline);
        let r = self.teardown().await;
        self.deadline = None;
        r
    }

    /// Terminates backends `pids` through the control connection (idle
    /// between steps), within `limit`.
    async fn terminate_backends(&mut self, pids: &[i32], limit: Duration) {
        if pids.is_empty() {
            return;
        }
        let list: Vec<String> = pids.iter().map(i32::to_string).collect();
        let sql = format!(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE pid IN ({})",
            list.join(", ")
        );
        let _ = tokio::time::timeout(limit, self.control.exec(&sql)).await;
        while self.control.take_notice().is_some() {}
    }

    fn interrupted(&self) -> bool {
        self.opts.stop.as_ref().is_some_and(StopSignal::requested)
    }

    async fn run_all(&mut self) -> Result<(), SpecError> {
        let spec = self.spec;
        for (i, perm) in spec.iter_permutations().enumerate() {
            if self.interrupted() {
                return Err(SpecError::Interrupted);
            }
            if let Some(only) = self.opts.only_permutation {
                if only != i + 1 {
                    continue;
                }
            }
            self.check_backends().await?;
            self.run_permutation(i, &perm).await?;
        }
        self.check_backends().await
    }

    /// Behind a pooler: whether every session is still on the backend it
    /// reported at connect (transaction pooling hands a client another
    /// server connection between transactions).  Direct connections are
    /// not asked: it would cost a round trip per session.
    async fn check_backends(&mut self) -> Result<(), SpecError> {
        if !self.opts.backends.proxied || self.spec.spec.options.pooled {
            return Ok(());
        }
        for si in 0..self.sessions.len() {
            let was = self.sessions[si].conn.backend_pid();
            let r = self.sessions[si]
                .conn
                .exec("SELECT pg_catalog.pg_backend_pid()")
                .await;
            while self.sessions[si].conn.take_notice().is_some() {}
            let now = match r {
                Ok(Some(PgResult::Tuples(t))) => t
                    .rows
                    .first()
                    .and_then(|r| r.first().cloned().flatten())
                    .and_then(|p| p.parse::<i32>().ok()),
                _ => None,
            };
            if let Some(now) = now.filter(|&n| n != was) {
                return Err(SpecError::BackendChanged(format!(
                    "session {} is no longer on backend pid {was} but on {now}: the pooler moved it to another server connection",
                    self.sessions[si].name
                )));
            }
        }
        Ok(())
    }

    fn step_name(&self, p: &PStep) -> &'a str {
        &self.spec.spec.sessions[p.session].steps[p.step].name
    }

    fn step_sql(&self, p: &PStep) -> &'a str {
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

    async fn run_permutation(&mut self, index: usize, steps: &[PStep]) -> Result<(), SpecError> {
        let spec = self.spec;
        let names: Vec<String> = steps
            .iter()
            .map(|p| self.step_name(p).to_string())
            .collect();
        self.emit(Event::PermutationStart {
            index,
            steps: names,
        });
        self.started = true;
        self.in_permutation = true;

        for sql in &spec.spec.setup {
            let r = self.control_exec(sql).await;
            if let Err(message) = self.block_result(Target::Control, r) {
                let error = SpecError::Setup(message.trim_end().to_string());
                self.emit(Event::SetupFailed {
                    session: None,
                    message,
                });
                return Err(error);
            }
        }
        for si in 0..spec.spec.sessions.len() {
            let Some(sql) = &spec.spec.sessions[si].setup else {
                continue;
            };
            let r = self.session_exec(si, sql).await;
            if let Err(message) = self.block_result(Target::Session(si), r) {
                let session = self.sessions[si].name.clone();
                let error = SpecError::SessionSetup {
                    session: session.clone(),
                    message: message.trim_end().to_string(),
                };
                self.emit(Event::SetupFailed {
                    session: Some(session),
                    message,
                });
                return Err(error);
            }
        }

        let mut st = PermState {
            steps,
            targets: steps.iter().map(|p| vec![0; p.blockers.len()]).collect(),
        };
        let mut waiting: Vec<usize> = Vec::new();
        for i in 0..steps.len() {
            if self.interrupted() {
                return Err(SpecError::Interrupted);
            }
            let pstep = &steps[i];
            let si = pstep.session;
            if self.sessions[si].active.is_some() {
                let start = Instant::now();
                while let Some(old) = self.sessions[si].active {
                    // Exploring, the step is only polled, so that a stall
                    // (below) is seen instead of waited out.
                    let attempt = if self.opts.end_stalled { POLL } else { FINISH };
                    if !self.try_complete_step(&mut st, old, attempt).await? {
                        match waiting.iter().position(|&w| w == old) {
                            Some(w) => {
                                waiting.remove(w);
                            }
                            None => unreachable!("completed step was not waiting"),
                        }
                    }
                    self.try_complete_steps(&mut st, &mut waiting, POLL).await?;
                    if self.opts.end_stalled
                        && self.sessions[si].active.is_some()
                        && self.stalled(si).await?
                    {
                        self.emit(Event::Unrealizable {
                            step: self.step_name(pstep).to_string(),
                            waiting: self.step_name(&steps[old]).to_string(),
                        });
                        return self.abandon_permutation().await;
                    }
                    if self.opts.end_stalled && self.sessions[si].active.is_some() {
                        // Not stalled: a deadlock the server will break, or
                        // a long step.  Wait a little for news from it.
                        let _ = self.sessions[si]
                            .conn
                            .wait_readable(self.opts.poll_max)
                            .await;
                    }
                    if let Some(active) = self.sessions[si].active {
                        let td = start.elapsed();
                        if td > 2 * self.opts.step_timeout {
                            let secs = td.as_secs();
                            let name = self.step_name(&steps[active]).to_string();
                            let active = self
                                .sessions
                                .iter()
                                .filter_map(|s| s.active)
                                .map(|a| self.step_name(&steps[a]).to_string())
                                .collect();
                            self.emit(Event::StepTimedOut {
                                step: name.clone(),
                                secs,
                                active: Some(active),
                            });
                            return Err(SpecError::StepTimeout {
                                session: self.sessions[si].name.clone(),
                                step: name,
                                secs,
                                server: self.sessions[si].conn.server_description(),
                            });
                        }
                    }
                }
            }

            let sql = self.step_sql(pstep);
            if let Err(e) = self.sessions[si].conn.send_query(sql).await {
                let step = self.step_name(pstep).to_string();
                self.emit(Event::SendFailed {
                    step: step.clone(),
                    message: format!("{e}\n"),
                });
                return Err(SpecError::Send {
                    session: self.sessions[si].name.clone(),
                    step,
                    source: e,
                });
            }
            self.sessions[si].active = Some(i);
            self.sessions[si].launched_at = Some(Instant::now());
            for (j, b) in pstep.blockers.iter().enumerate() {
                if let PBlocker::Notices { session, count, .. } = b {
                    st.targets[i][j] = count + self.sessions[*session].total_notices;
                }
            }
            let mustwait = self.try_complete_step(&mut st, i, LAUNCH).await?;
            self.try_complete_steps(&mut st, &mut waiting, POLL).await?;
            if mustwait {
                waiting.push(i);
            }
        }

        if self.opts.end_stalled {
            // Steps still blocked at the end by sessions that have nothing
            // left to run would wait out the timeout.
            loop {
                self.try_complete_steps(&mut st, &mut waiting, POLL).await?;
                let Some(&w) = waiting.first() else { break };
                if self.stalled(steps[w].session).await? {
                    self.emit(Event::Unrealizable {
                        step: String::new(),
                        waiting: self.step_name(&steps[w]).to_string(),
                    });
                    return self.abandon_permutation().await;
                }
                let si = steps[w].session;
                let _ = self.sessions[si]
                    .conn
                    .wait_readable(self.opts.poll_max)
                    .await;
            }
        }
        self.try_complete_steps(&mut st, &mut waiting, FINISH)
            .await?;
        if !waiting.is_empty() {
            self.emit(Event::MutuallyBlocking);
            return Err(SpecError::MutuallyBlocking);
        }

        self.after_steps().await?;
        self.teardown().await
    }

    /// Runs `ExecOptions::after_steps` on the control connection, each
    /// bounded by the step timeout, emitting their rows.
    async fn after_steps(&mut self) -> Result<(), SpecError> {
        for i in 0..self.opts.after_steps.len() {
            let sql = self.opts.after_steps[i].clone();
            let r = self.bounded(Target::Control, &sql).await?;
            let rows = match r {
                Ok(Some(PgResult::Tuples(t))) => Ok(t.rows),
                Ok(Some(PgResult::Error(m))) => Err(m.primary().unwrap_or("error").to_string()),
                Ok(_) => Ok(Vec::new()),
                Err(e) => Err(e.to_string()),
            };
            self.emit(Event::AfterSteps { rows });
        }
        Ok(())
    }

    /// Whether session `si`'s running step can only be released by a step
    /// not yet launched: it is blocked by a session with no running step,
    /// by a prepared transaction, or by a running step that is itself so
    /// blocked.  Blocks by processes outside the spec (autovacuum) and
    /// cycles among running steps (the deadlock detector ends those) are
    /// not stalls.
    async fn stalled(&mut self, si: usize) -> Result<bool, SpecError> {
        let pids: Vec<String> = self
            .sessions
            .iter()
            .filter(|s| s.active.is_some())
            .map(|s| s.conn.backend_pid().to_string())
            .collect();
        let sql = format!(
            "SELECT u.p, pg_catalog.array_to_string(pg_catalog.pg_blocking_pids(u.p) \
             || pg_catalog.pg_safe_snapshot_blocking_pids(u.p), ',') \
             FROM pg_catalog.unnest('{{{}}}'::int[]) AS u(p)",
            pids.join(",")
        );
        let r = self.bounded(Target::Control, &sql).await?;
        let Ok(Some(PgResult::Tuples(t))) = r else {
            return Ok(false);
        };
        let session_of = |pid: i32| {
            self.sessions
                .iter()
                .position(|s| s.conn.backend_pid() == pid)
        };
        // (running session, its blockers)
        let blocked: Vec<(usize, Vec<i32>)> = t
            .rows
            .iter()
            .filter_map(|r| {
                let pid = r.first()?.as_deref()?.parse::<i32>().ok()?;
                let by = r
                    .get(1)?
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|p| p.parse::<i32>().ok())
                    .collect();
                Some((session_of(pid)?, by))
            })
            .collect();
        let mut stuck = vec![false; self.sessions.len()];
        loop {
            let mut changed = false;
            for (s, by) in &blocked {
                if stuck[*s] {
                    continue;
                }
                let hopeless = by.iter().any(|&b| {
                    b == 0
                        || session_of(b)
                            .is_some_and(|o| self.sessions[o].active.is_none() || stuck[o])
                });
                if hopeless {
                    stuck[*s] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(stuck[si])
    }

    /// Ends a permutation that cannot go on: cancels the running steps,
    /// rolls back every session's transaction, and runs the teardown.
    async fn abandon_permutation(&mut self) -> Result<(), SpecError> {
        let limit = self.opts.step_timeout;
        for si in 0..self.sessions.len() {
            if self.sessions[si].active.take().is_some() {
                let _ = self.sessions[si].conn.cancel().await;
                let conn = &mut self.sessions[si].conn;
                let _ = tokio::time::timeout(limit, async {
                    while let Ok(Some(_)) = conn.get_result().await {}
                })
                .await;
            }
        }
        for si in 0..self.sessions.len() {
            let _ = tokio::time::timeout(limit, self.sessions[si].conn.exec("ROLLBACK")).await;
            while self.sessions[si].conn.take_notice().is_some() {}
        }
        self.blocked = None;
        self.teardown().await
    }

    /// Runs each session's teardown, then the spec's (isolationtester's order).
    async fn teardown(&mut self) -> Result<(), SpecError> {
        self.in_permutation = false;
        let spec = self.spec;
        for si in 0..spec.spec.sessions.len() {
            let Some(sql) = &spec.spec.sessions[si].teardown else {
                continue;
            };
            if self.sessions[si].dead {
                continue;
            }
            let session = self.sessions[si].name.clone();
            let r = self.bounded(Target::Session(si), sql).await?;
            if let Err(message) = self.block_result(Target::Session(si), r) {
                self.emit(Event::TeardownFailed {
                    session: Some(session),
                    message,
                });
            }
        }
        if let Some(sql) = &spec.spec.teardown {
            let r = self.bounded(Target::Control, sql).await?;
            if let Err(message) = self.block_result(Target::Control, r) {
                self.emit(Event::TeardownFailed {
                    session: None,
                    message,
                });
            }
        }
        Ok(())
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

    /// A setup or teardown block's result: its rows go to the transcript;
    /// a failure gives libpq's message as isolationtester prints it.
    fn block_result(
        &mut self,
        target: Target,
        r: Result<Option<PgResult>, WireError>,
    ) -> Result<(), String> {
        match r {
            Ok(Some(PgResult::Tuples(t))) => {
                self.emit(Event::Tuples(t));
                Ok(())
            }
            Ok(Some(PgResult::Error(_) | PgResult::ClientError(_) | PgResult::Copy(_))) => {
                Err(self.conn(target).error_message().to_string())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{e}\n")),
        }
    }

    /// Runs a teardown block with the step timeout as a bound: after it, the
    /// query is cancelled; if the cancel does not end it within the same
    /// time again, the spec is abandoned.  (isolationtester would hang.)
    async fn bounded(
        &mut self,
        target: Target,
        sql: &str,
    ) -> Result<Result<Option<PgResult>, WireError>, SpecError> {
        if let Some(deadline) = self.deadline {
            return self.bounded_by_grace(target, sql, deadline).await;
        }
        let limit = self.opts.step_timeout;
        let fut = async {
            match target {
                Target::Control => self.control_exec(sql).await,
                Target::Session(si) => self.session_exec(si, sql).await,
            }
        };
        // First bound: the step timeout.
        if let Ok(r) = tokio::time::timeout(limit, fut).await {
            return Ok(r);
        }
        // Timed out: cancel, then wait for the outcome up to the limit again.
        let _ = self.conn(target).cancel().await;
        let session = self.session_name(target);
        self.emit(Event::TeardownCanceling {
            session: session.clone(),
            secs: limit.as_secs(),
        });
        let conn = self.conn(target);
        let drained = tokio::time::timeout(limit, async {
            let mut last = None;
            while let Some(r) = conn.get_result().await? {
                last = Some(r);
            }
            Ok::<_, WireError>(last)
        })
        .await;
        drained.map_err(|_| SpecError::TeardownTimeout {
            what: session.map_or("the spec".to_string(), |s| format!("session {s}")),
            secs: 2 * limit.as_secs(),
        })
    }

    /// A teardown block of an interrupted run: bounded by the grace
    /// period's deadline; past it, cancelled, and given up a second later.
    async fn bounded_by_grace(
        &mut self,
        target: Target,
        sql: &str,
        deadline: std::time::Instant,
    ) -> Result<Result<Option<PgResult>, WireError>, SpecError> {
        let limit = crate::stop::remaining(deadline).min(self.opts.step_timeout);
        let fut = async {
            match target {
                Target::Control => self.control_exec(sql).await,
                Target::Session(si) => self.session_exec(si, sql).await,
            }
        };
        if let Ok(r) = tokio::time::timeout(limit, fut).await {
            return Ok(r);
        }
        // Past the deadline: cancel the block (so that it does not go on
        // in the server) and give up on it at once.
        let session = self.session_name(target);
        self.emit(Event::TeardownGraceEnded {
            session: session.clone(),
        });
        let _ = tokio::time::timeout(Duration::from_millis(300), self.conn(target).cancel()).await;
        Err(SpecError::GraceEnded {
            what: session.map_or("the spec".to_string(), |s| format!("session {s}")),
        })
    }

    /// Asks the server what every session is doing and waiting for: pid,
    /// state, wait event, blocking pids and query, then the lock rows
    /// involved in waits.  None if the control connection cannot answer.
    /// `wait_graph`, bounded by the step timeout (a stalled server or
    /// pooler must not hang the run in a diagnostic).
    async fn bounded_wait_graph(
        &mut self,
        step: &str,
        session: &str,
        secs: u64,
    ) -> Option<WaitGraph> {
        let limit = self.opts.step_timeout;
        tokio::time::timeout(limit, self.wait_graph(step, session, secs))
            .await
            .ok()
            .flatten()
    }

    async fn wait_graph(&mut self, step: &str, session: &str, secs: u64) -> Option<WaitGraph> {
        let pids: Vec<String> = self
            .sessions
            .iter()
            .map(|s| s.conn.backend_pid().to_string())
            .collect();
        let arr = format!("{{{}}}", pids.join(","));
        let who = |pid: &str| -> Who {
            if pid.is_empty() || pid == "0" {
                return Who::PreparedTransaction;
            }
            self.sessions
                .iter()
                .find(|s| s.conn.backend_pid().to_string() == pid)
                .map(|s| Who::Session {
                    name: s.name.clone(),
                    pid: pid.to_string(),
                })
                .unwrap_or_else(|| Who::Pid(pid.to_string()))
        };
        let activity = self
            .control
            .exec_params(
                "SELECT a.pid, a.state, coalesce(a.wait_event_type || '/' || a.wait_event, '-'), \
                 array_to_string(pg_catalog.pg_blocking_pids(a.pid), ','), \
                 regexp_replace(left(a.query, 120), '\\s+', ' ', 'g') \
                 FROM pg_catalog.pg_stat_activity a WHERE a.pid = ANY ($1::int[]) ORDER BY a.pid",
                &[&arr],
            )
            .await;
        while self.control.take_notice().is_some() {}
        let Ok(Some(PgResult::Tuples(rows))) = activity else {
            return None;
        };
        let field =
            |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let sessions = rows
            .rows
            .iter()
            .map(|r| WaitRow {
                who: who(&field(r, 0)),
                state: field(r, 1),
                wait_event: field(r, 2),
                blocked_by: field(r, 3)
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(&who)
                    .collect(),
                query: field(r, 4),
            })
            .collect();
        let locks = self
            .control
            .exec_params(
                "SELECT l.pid, l.locktype, l.mode, l.granted, \
                 coalesce(l.relation::regclass::text, l.transactionid::text, l.virtualxid, l.objid::text, '') \
                 FROM pg_catalog.pg_locks l \
                 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_locks w WHERE NOT w.granted AND w.pid = ANY ($1::int[]) \
                   AND w.locktype = l.locktype \
                   AND w.relation IS NOT DISTINCT FROM l.relation AND w.page IS NOT DISTINCT FROM l.page \
                   AND w.tuple IS NOT DISTINCT FROM l.tuple AND w.virtualxid IS NOT DISTINCT FROM l.virtualxid \
                   AND w.transactionid IS NOT DISTINCT FROM l.transactionid AND w.classid IS NOT DISTINCT FROM l.classid \
                   AND w.objid IS NOT DISTINCT FROM l.objid AND w.objsubid IS NOT DISTINCT FROM l.objsubid) \
                 ORDER BY l.granted DESC, l.pid",
                &[&arr],
            )
            .await;
        while self.control.take_notice().is_some() {}
        let locks = match locks {
            Ok(Some(PgResult::Tuples(rows))) => rows
                .rows
                .iter()
                .map(|r| LockRow {
                    who: who(&field(r, 0)),
                    locktype: field(r, 1),
                    mode: field(r, 2),
                    granted: field(r, 3) == "t",
                    object: field(r, 4),
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(WaitGraph {
            step: step.to_string(),
            session: session.to_string(),
            secs,
            sessions,
            locks,
        })
    }

    /// isolationtester's try_complete_steps.
    async fn try_complete_steps(
        &mut self,
        st: &mut PermState<'_>,
        waiting: &mut Vec<usize>,
        flags: Attempt,
    ) -> Result<(), SpecError> {
        loop {
            self.any_new_notice = false;
            let old_n = waiting.len();
            let mut have_blocker = false;
            let mut w = 0;
            // Polling several waiting steps: ask about all of them at once,
            // again after each completion, instead of once per step.
            let batch = flags.nonblock && flags.retry && waiting.len() > 1;
            while w < waiting.len() {
                if batch && self.blocked.is_none() {
                    self.ask_blocked(st, &waiting[w..]).await?;
                }
                let still_waiting = self.try_complete_step(st, waiting[w], flags).await;
                if !matches!(still_waiting, Ok(true)) {
                    self.blocked = None;
                }
                if still_waiting? {
                    if !st.steps[waiting[w]].blockers.is_empty() {
                        have_blocker = true;
                    }
                    w += 1;
                } else {
                    waiting.remove(w);
                }
            }
            self.blocked = None;
            if !(have_blocker && (waiting.len() < old_n || self.any_new_notice)) {
                return Ok(());
            }
        }
    }

    /// Asks the server, in one round trip, which of the backends of steps
    /// `idxs` are blocked; the answers stand until a step completes.
    async fn ask_blocked(&mut self, st: &PermState<'_>, idxs: &[usize]) -> Result<(), SpecError> {
        let pids: Vec<i32> = idxs
            .iter()
            .map(|&i| self.sessions[st.steps[i].session].conn.backend_pid())
            .collect();
        let limit = self.opts.step_timeout;
        let answers =
            tokio::time::timeout(limit, self.detector.are_blocked(&mut self.control, &pids))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "the control connection did not answer the wait query within {} s\n",
                        limit.as_secs()
                    ))
                });
        match answers {
            Ok(a) => {
                self.blocked = Some(pids.into_iter().zip(a).collect());
                Ok(())
            }
            Err(message) => {
                self.emit(Event::WaitQueryFailed {
                    message: message.clone(),
                });
                Err(SpecError::WaitQuery {
                    step: self.step_name(&st.steps[idxs[0]]).to_string(),
                    message,
                })
            }
        }
    }

    fn step_has_blocker(&self, st: &PermState<'_>, idx: usize) -> bool {
        let pstep = &st.steps[idx];
        for (j, b) in pstep.blockers.iter().enumerate() {
            match b {
                PBlocker::Once => {}
                PBlocker::OtherStep { session, step } => {
                    if let Some(a) = self.sessions[*session].active {
                        let ap = &st.steps[a];
                        if ap.session == *session && ap.step == *step {
                            return true;
                        }
                    }
                }
                PBlocker::Notices { session, .. } => {
                    if self.sessions[*session].total_notices < st.targets[idx][j] {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// isolationtester's try_complete_step.  Returns true when the step is
    /// not complete (waiting on a lock with `nonblock`, or held back by a
    /// marker), false when it completed and its results were reported.
    async fn try_complete_step(
        &mut self,
        st: &mut PermState<'_>,
        idx: usize,
        flags: Attempt,
    ) -> Result<bool, SpecError> {
        let pstep = &st.steps[idx];
        let si = pstep.session;
        let name = self.step_name(pstep).to_string();
        let sql = self.step_sql(pstep);
        let session = self.sessions[si].name.clone();

        // A `(*)` step is reported waiting at once; otherwise the step
        // waits while the server says it is blocked, or while a step named
        // in its markers is running.  Each is looked at only if the one
        // before did not hold the step back (isolationtester's order).
        let waiting = (!flags.retry && pstep.blockers.contains(&PBlocker::Once))
            || matches!(
                self.watch_step(si, &name, &session, flags).await?,
                Watch::Blocked
            )
            || self.step_has_blocker(st, idx);
        if waiting {
            if !flags.retry {
                self.emit(Event::StepWaiting {
                    session,
                    step: name,
                    sql: sql.to_string(),
                });
            }
            return Ok(true);
        }

        if flags.retry {
            self.emit(Event::StepCompleted {
                session: session.clone(),
                step: name.clone(),
            });
        } else {
            self.emit(Event::StepLaunched {
                session: session.clone(),
                step: name.clone(),
                sql: sql.to_string(),
            });
        }
        self.read_results(si, &name, &session).await?;
        Ok(false)
    }

    /// Waits for a running step as isolationtester's try_complete_step
    /// does: until its results are in (`Done`), or, with `nonblock`, until
    /// the server says it is blocked (`Blocked`); watching the timeout.
    async fn watch_step(
        &mut self,
        si: usize,
        name: &str,
        session: &str,
        flags: Attempt,
    ) -> Result<Watch, SpecError> {
        let start = Instant::now();
        let mut canceled = false;
        // A step polled again was blocked when last asked: asking the server
        // at once beats waiting first for a result that is unlikely to come
        // (a step just launched usually finishes within poll_min).
        let mut interval = if flags.nonblock && flags.retry {
            Duration::ZERO
        } else {
            self.opts.poll_min
        };
        let mut slow_reported = false;
        // Asked already in this round and blocked: if nothing has arrived
        // since, it still waits (nothing of the spec's has moved meanwhile).
        if flags.nonblock && flags.retry {
            let pid = self.sessions[si].conn.backend_pid();
            let known = self.blocked.as_ref().and_then(|b| b.get(&pid)).copied();
            if known == Some(true) {
                if !self.still_busy(si, true, session, name)? {
                    return Ok(Watch::Done);
                }
                return Ok(Watch::Blocked);
            }
        }
        // This step runs (or was not asked about): whatever it does may
        // change the others' state, so their answers are asked again.
        self.blocked = None;
        loop {
            if !self.still_busy(si, false, session, name)? {
                break;
            }
            let readable = self.sessions[si]
                .conn
                .wait_readable(interval)
                .await
                .map_err(|e| wire(session, name, e))?;
            if readable {
                self.sessions[si]
                    .conn
                    .consume_input()
                    .map_err(|e| wire(session, name, e))?;
                continue;
            }
            interval = (interval * 2).clamp(self.opts.poll_min, self.opts.poll_max);
            if self.interrupted() {
                return Err(SpecError::Interrupted);
            }
            if flags.nonblock {
                let pid = self.sessions[si].conn.backend_pid();
                // A stalled server or pooler must not hang the run: the
                // wait query gets the step timeout too.
                let limit = self.opts.step_timeout;
                let waiting =
                    tokio::time::timeout(limit, self.detector.is_blocked(&mut self.control, pid))
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!(
                        "the control connection did not answer the wait query within {} s\n",
                        limit.as_secs()
                    ))
                        })
                        .map_err(|message| {
                            self.emit(Event::WaitQueryFailed {
                                message: message.clone(),
                            });
                            SpecError::WaitQuery {
                                step: name.to_string(),
                                message,
                            }
                        })?;
                if waiting {
                    if !self.still_busy(si, true, session, name)? {
                        break;
                    }
                    return Ok(Watch::Blocked);
                }
            }
            self.check_long_step(
                si,
                name,
                session,
                start.elapsed(),
                &mut slow_reported,
                &mut canceled,
            )
            .await?;
        }
        Ok(Watch::Done)
    }

    /// Whether session `si`'s step is still busy (PQisBusy), after reading
    /// what has arrived when `read` (PQconsumeInput); its notices are
    /// reported either way.
    fn still_busy(
        &mut self,
        si: usize,
        read: bool,
        session: &str,
        name: &str,
    ) -> Result<bool, SpecError> {
        let conn = &mut self.sessions[si].conn;
        if read {
            conn.consume_input().map_err(|e| wire(session, name, e))?;
        }
        let busy = conn.is_busy().map_err(|e| wire(session, name, e))?;
        self.flush_notices(si);
        Ok(busy)
    }

    /// A step running long: at half the timeout a note and its wait graph;
    /// at the timeout a cancel (isolationtester's line); at twice the
    /// timeout the spec is abandoned.
    async fn check_long_step(
        &mut self,
        si: usize,
        name: &str,
        session: &str,
        td: Duration,
        slow_reported: &mut bool,
        canceled: &mut bool,
    ) -> Result<(), SpecError> {
        {
            if !*slow_reported && td > self.opts.step_timeout / 2 {
                *slow_reported = true;
                self.emit(Event::SlowStep {
                    session: session.to_string(),
                    step: name.to_string(),
                    secs: td.as_secs(),
                });
                if let Some(graph) = self.bounded_wait_graph(name, session, td.as_secs()).await {
                    self.emit(Event::WaitGraph {
                        graph,
                        in_transcript: false,
                    });
                }
            }
            if td > self.opts.step_timeout && !*canceled {
                if let Some(graph) = self.bounded_wait_graph(name, session, td.as_secs()).await {
                    let in_transcript = self.opts.wait_graph_in_transcript;
                    self.emit(Event::WaitGraph {
                        graph,
                        in_transcript,
                    });
                }
                match self.sessions[si].conn.cancel().await {
                    Ok(()) => {
                        self.emit(Event::Canceling {
                            step: name.to_string(),
                            secs: td.as_secs(),
                        });
                        *canceled = true;
                    }
                    Err(e) => self.emit(Event::CancelFailed {
                        message: format!("{e}\n"),
                    }),
                }
            }
            if td > 2 * self.opts.step_timeout {
                let secs = td.as_secs();
                self.emit(Event::StepTimedOut {
                    step: name.to_string(),
                    secs,
                    active: None,
                });
                return Err(SpecError::StepTimeout {
                    session: session.to_string(),
                    step: name.to_string(),
                    secs,
                    server: self.sessions[si].conn.server_description(),
                });
            }
        }
        Ok(())
    }

    /// Reads a completed step's results into the transcript, then the
    /// notifications that came with them.
    async fn read_results(
        &mut self,
        si: usize,
        name: &str,
        session: &str,
    ) -> Result<(), SpecError> {
        loop {
            let r = self.sessions[si].conn.get_result().await;
            self.flush_notices(si);
            let Some(res) = r.map_err(|e| wire(session, name, e))? else {
                break;
            };
            match res {
                PgResult::Command(_) | PgResult::Empty => {}
                PgResult::Tuples(t) => self.emit(Event::Tuples(t)),
                PgResult::Error(m) => {
                    let text = match (m.severity(), m.primary()) {
                        (Some(sev), Some(msg)) => format!("{sev}:  {msg}"),
                        _ => m.format_libpq(true, None),
                    };
                    self.emit(Event::StepError {
                        step: name.to_string(),
                        text,
                        sqlstate: m.sqlstate().map(str::to_string),
                    });
                }
                PgResult::ClientError(text) => {
                    self.emit(Event::StepError {
                        step: name.to_string(),
                        text,
                        sqlstate: None,
                    });
                    self.emit(Event::ConnectionLost {
                        session: session.to_string(),
                        step: name.to_string(),
                        server: self.sessions[si].conn.server_description(),
                    });
                }
                PgResult::Copy(status) => self.emit(Event::UnexpectedStatus(status.to_string())),
            }
        }

        // Report any available NOTIFY messages, too.
        let _ = self.sessions[si].conn.consume_input();
        self.flush_notices(si);
        while let Some(n) = self.sessions[si].conn.take_notify() {
            let sender = self
                .sessions
                .iter()
                .find(|s| s.conn.backend_pid() == n.pid)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| format!("PID {}", n.pid));
            self.emit(Event::Notify {
                session: session.to_string(),
                channel: n.channel,
                payload: n.payload,
                sender,
            });
            let _ = self.sessions[si].conn.consume_input();
            self.flush_notices(si);
        }

        if let Some(t0) = self.sessions[si].launched_at.take() {
            self.emit(Event::StepTimings {
                step: name.to_string(),
                micros: t0.elapsed().as_micros() as u64,
            });
        }
        self.sessions[si].active = None;
        Ok(())
    }
}

fn wire(session: &str, step: &str, e: WireError) -> SpecError {
    SpecError::Wire {
        session: session.to_string(),
        step: step.to_string(),
        source: e,
    }
}
