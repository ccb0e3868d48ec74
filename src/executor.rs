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

use crate::pgwire::{Conn, ConnParams, PgResult, Tuples, WireError};
use crate::spec::{CheckedSpec, PBlocker, PStep};
use crate::wait::{Detector, DetectorKind};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// What happened, in transcript order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Text isolationtester writes to stderr (kept in the transcript, as
    /// pg_isolation_regress captures both streams).  Includes its newline.
    Stderr(String),
    Parsed {
        sessions: usize,
    },
    PermutationStart {
        index: usize,
        steps: Vec<String>,
    },
    StepLaunched {
        session: String,
        step: String,
        sql: String,
    },
    StepWaiting {
        session: String,
        step: String,
        sql: String,
    },
    StepCompleted {
        session: String,
        step: String,
    },
    Tuples(Tuples),
    /// An error result of a step, formatted as isolationtester prints it
    /// (without the final newline).
    StepError {
        step: String,
        text: String,
    },
    UnexpectedStatus(String),
    /// A NOTICE/WARNING from a session; `text` is libpq's message with newline.
    Notice {
        session: String,
        text: String,
    },
    Notify {
        session: String,
        channel: String,
        payload: String,
        sender: String,
    },
    Canceling {
        step: String,
        secs: u64,
    },
    /// Not part of the transcript: how long a step took from launch to completion.
    StepTimings {
        step: String,
        micros: u64,
    },
    /// What the server says the sessions are waiting for, when a step has
    /// run past half its timeout (stderr only) or is cancelled (then also in
    /// the transcript, unless disabled).
    WaitGraph {
        text: String,
        in_transcript: bool,
    },
    /// Not part of the transcript: something the user should know about the
    /// run of this spec (e.g. cleanup done after it).
    Diagnostic(String),
    /// Not part of the transcript: a step has been busy for a long time.
    SlowStep {
        session: String,
        step: String,
        secs: u64,
    },
}

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
    #[error("setting of application name failed on connection {session}: {message}")]
    AppName { session: String, message: String },
    #[error("preparing the lock wait query failed: {0}")]
    PrepareWait(String),
    #[error("lock wait query failed while checking step {step}: {message}")]
    WaitQuery { step: String, message: String },
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("setup of session {session} failed: {message}")]
    SessionSetup { session: String, message: String },
    #[error("step {step} of session {session} timed out after {secs} seconds")]
    StepTimeout {
        session: String,
        step: String,
        secs: u64,
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
    /// Interrupted before the first permutation's setup: nothing ran.
    #[error("interrupted before it started")]
    NotStarted,
    #[error("connection failed during {what}: {source}")]
    Admin { what: String, source: WireError },
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
    /// Becomes true when the run is interrupted (SIGINT/SIGTERM): running
    /// steps are cancelled and the teardown runs before the spec ends.
    pub interrupt: Option<tokio::sync::watch::Receiver<bool>>,
    /// Bind the spec's backends to this CPU, after checking they are
    /// children of this postmaster (see `affinity`): (postmaster pid, CPU).
    pub pin_backends: Option<(i32, usize)>,
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
            interrupt: None,
            pin_backends: None,
        }
    }
}

const STEP_NONBLOCK: u8 = 1;
const STEP_RETRY: u8 = 2;

struct SessionConn {
    conn: Conn,
    name: String,
    /// Index into the current permutation of the step running here.
    active: Option<usize>,
    total_notices: i64,
    launched_at: Option<Instant>,
}

/// Per-permutation step state.
struct PermState<'p> {
    steps: &'p [PStep],
    /// For `notices` markers: the target notice count, per step and marker.
    targets: Vec<Vec<i64>>,
}

pub struct Executor<'a> {
    spec: &'a CheckedSpec,
    control: Conn,
    sessions: Vec<SessionConn>,
    detector: Detector,
    tx: UnboundedSender<Event>,
    opts: ExecOptions,
    any_new_notice: bool,
    /// A permutation's setup has been sent and its teardown has not run
    /// yet: an interrupt must tear it down (and only then).
    in_permutation: bool,
    /// Some permutation has started.
    started: bool,
}

/// Runs a whole spec: connects, runs every permutation, disconnects.
pub async fn run_spec(
    spec: &CheckedSpec,
    params: &ConnParams,
    opts: ExecOptions,
    tx: UnboundedSender<Event>,
) -> Result<(), SpecError> {
    if opts.interrupt.as_ref().is_some_and(|r| *r.borrow()) {
        return Err(SpecError::NotStarted);
    }
    for w in &spec.warnings {
        let _ = tx.send(Event::Stderr(format!("{w}\n")));
    }
    let _ = tx.send(Event::Parsed {
        sessions: spec.spec.sessions.len(),
    });
    let mut conns = Vec::new();
    let names: Vec<String> = std::iter::once("control connection".to_string())
        .chain(spec.spec.sessions.iter().map(|s| s.name.clone()))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let mut conn = match Conn::connect(params).await {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Event::Stderr(format!("Connection {i} failed: {e}\n")));
                return Err(SpecError::Connect {
                    index: i,
                    session: name.clone(),
                    source: e,
                });
            }
        };
        let r = conn
            .exec_params(
                "SELECT set_config('application_name',\n  current_setting('application_name') || '/' || $1,\n  false)",
                &[name],
            )
            .await;
        match r {
            Ok(Some(PgResult::Tuples(_))) => {}
            Ok(_) => {
                let message = conn.error_message().to_string();
                let _ = tx.send(Event::Stderr(format!(
                    "setting of application name failed: {message}"
                )));
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
        conns.push(conn);
    }
    let control = conns.remove(0);
    let sessions: Vec<SessionConn> = conns
        .into_iter()
        .zip(spec.spec.sessions.iter())
        .map(|(conn, s)| SessionConn {
            conn,
            name: s.name.clone(),
            active: None,
            total_notices: 0,
            launched_at: None,
        })
        .collect();
    let pids: Vec<i32> = sessions.iter().map(|s| s.conn.backend_pid()).collect();
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
    let detector = match Detector::prepare(
        &mut control,
        opts.detector,
        &pids,
        opts.prepared_waits || spec.spec.options.prepared_waits,
    )
    .await
    {
        Ok(d) => d,
        Err(message) => {
            let _ = tx.send(Event::Stderr(format!(
                "prepare of lock wait query failed: {message}"
            )));
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
    };
    let mut result = ex.run_all().await;
    if matches!(result, Err(SpecError::Interrupted)) && !ex.started {
        result = Err(SpecError::NotStarted);
    }
    if matches!(result, Err(SpecError::Interrupted)) && !ex.in_permutation {
        ex.emit(Event::Stderr(
            "isospec: interrupted between permutations\n".into(),
        ));
    }
    if matches!(result, Err(SpecError::Interrupted)) && ex.in_permutation {
        let running: Vec<&str> = ex
            .sessions
            .iter()
            .filter(|s| s.active.is_some())
            .map(|s| s.name.as_str())
            .collect();
        let what = if running.is_empty() {
            String::new()
        } else {
            format!(
                "canceling the running steps of session {}, ",
                running.join(", ")
            )
        };
        ex.emit(Event::Stderr(format!(
            "isospec: interrupted: {what}running the teardown\n"
        )));
        for si in 0..ex.sessions.len() {
            if ex.sessions[si].active.take().is_some() {
                let _ = ex.sessions[si].conn.cancel().await;
                let conn = &mut ex.sessions[si].conn;
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Ok(Some(_)) = conn.get_result().await {}
                })
                .await;
                while ex.sessions[si].conn.take_notice().is_some() {}
            }
        }
        // The teardown is bounded by the step timeout like any teardown; a
        // second interrupt stops the run at once.
        if let Err(e) = ex.teardown().await {
            result = Err(e);
        }
    }
    if matches!(
        result,
        Err(SpecError::StepTimeout { .. }) | Err(SpecError::TeardownTimeout { .. })
    ) {
        // The spec is abandoned: make sure its backends stop too, so the
        // next spec does not meet their locks.
        let pids: Vec<String> = ex
            .sessions
            .iter()
            .map(|s| s.conn.backend_pid().to_string())
            .collect();
        let arr = format!("{{{}}}", pids.join(","));
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            ex.control.exec_params(
                "SELECT pg_catalog.pg_terminate_backend(p) FROM unnest($1::int[]) p",
                &[&arr],
            ),
        )
        .await;
    }
    ex.cleanup_prepared().await;
    ex.close().await;
    result
}

impl<'a> Executor<'a> {
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
            let text = match self.control.exec(sql).await {
                Ok(Some(PgResult::Command(_))) => {
                    format!("rolled back prepared transaction \"{gid}\" that the spec left behind")
                }
                _ => format!(
                    "could not roll back prepared transaction \"{gid}\": {}",
                    self.control.error_message().trim_end()
                ),
            };
            self.emit(Event::Diagnostic(text));
        }
        while self.control.take_notice().is_some() {}
    }

    async fn close(self) {
        self.control.close().await;
        for s in self.sessions {
            s.conn.close().await;
        }
    }

    fn interrupted(&self) -> bool {
        self.opts.interrupt.as_ref().is_some_and(|r| *r.borrow())
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
            self.run_permutation(i, &perm).await?;
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
            match self.control_exec(sql).await {
                Ok(Some(PgResult::Tuples(t))) => self.emit(Event::Tuples(t)),
                Ok(Some(PgResult::Error(_)))
                | Ok(Some(PgResult::ClientError(_)))
                | Ok(Some(PgResult::Copy(_))) => {
                    let msg = self.control.error_message().to_string();
                    self.emit(Event::Stderr(format!("setup failed: {msg}")));
                    return Err(SpecError::Setup(msg.trim_end().to_string()));
                }
                Ok(_) => {}
                Err(e) => {
                    self.emit(Event::Stderr(format!("setup failed: {e}\n")));
                    return Err(SpecError::Setup(e.to_string()));
                }
            }
        }
        for si in 0..spec.spec.sessions.len() {
            let Some(sql) = &spec.spec.sessions[si].setup else {
                continue;
            };
            match self.session_exec(si, sql).await {
                Ok(Some(PgResult::Tuples(t))) => self.emit(Event::Tuples(t)),
                Ok(Some(PgResult::Error(_)))
                | Ok(Some(PgResult::ClientError(_)))
                | Ok(Some(PgResult::Copy(_))) => {
                    let msg = self.sessions[si].conn.error_message().to_string();
                    let session = self.sessions[si].name.clone();
                    self.emit(Event::Stderr(format!(
                        "setup of session {session} failed: {msg}"
                    )));
                    return Err(SpecError::SessionSetup {
                        session,
                        message: msg.trim_end().to_string(),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    let session = self.sessions[si].name.clone();
                    self.emit(Event::Stderr(format!(
                        "setup of session {session} failed: {e}\n"
                    )));
                    return Err(SpecError::SessionSetup {
                        session,
                        message: e.to_string(),
                    });
                }
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
                    if !self.try_complete_step(&mut st, old, STEP_RETRY).await? {
                        match waiting.iter().position(|&w| w == old) {
                            Some(w) => {
                                waiting.remove(w);
                            }
                            None => unreachable!("completed step was not waiting"),
                        }
                    }
                    self.try_complete_steps(&mut st, &mut waiting, STEP_NONBLOCK | STEP_RETRY)
                        .await?;
                    if let Some(active) = self.sessions[si].active {
                        let td = start.elapsed();
                        if td > 2 * self.opts.step_timeout {
                            let secs = td.as_secs();
                            let name = self.step_name(&steps[active]).to_string();
                            let mut msg = format!(
                                "step {name} timed out after {secs} seconds\nactive steps are:"
                            );
                            for s in &self.sessions {
                                if let Some(a) = s.active {
                                    msg.push(' ');
                                    msg.push_str(self.step_name(&steps[a]));
                                }
                            }
                            msg.push('\n');
                            self.emit(Event::Stderr(msg));
                            return Err(SpecError::StepTimeout {
                                session: self.sessions[si].name.clone(),
                                step: name,
                                secs,
                            });
                        }
                    }
                }
            }

            let sql = self.step_sql(pstep);
            if let Err(e) = self.sessions[si].conn.send_query(sql).await {
                let step = self.step_name(pstep).to_string();
                self.emit(Event::Stderr(format!(
                    "failed to send query for step {step}: {e}\n"
                )));
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
            let mustwait = self.try_complete_step(&mut st, i, STEP_NONBLOCK).await?;
            self.try_complete_steps(&mut st, &mut waiting, STEP_NONBLOCK | STEP_RETRY)
                .await?;
            if mustwait {
                waiting.push(i);
            }
        }

        self.try_complete_steps(&mut st, &mut waiting, STEP_RETRY)
            .await?;
        if !waiting.is_empty() {
            self.emit(Event::Stderr(
                "failed to complete permutation due to mutually-blocking steps\n".into(),
            ));
            return Err(SpecError::MutuallyBlocking);
        }

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
            let session = self.sessions[si].name.clone();
            let r = self.bounded(si, sql, &format!("session {session}")).await?;
            match r {
                Ok(Some(PgResult::Tuples(t))) => self.emit(Event::Tuples(t)),
                Ok(Some(PgResult::Error(_)))
                | Ok(Some(PgResult::ClientError(_)))
                | Ok(Some(PgResult::Copy(_))) => {
                    let msg = self.sessions[si].conn.error_message().to_string();
                    self.emit(Event::Stderr(format!(
                        "teardown of session {session} failed: {msg}"
                    )));
                }
                Ok(_) => {}
                Err(e) => self.emit(Event::Stderr(format!(
                    "teardown of session {session} failed: {e}\n"
                ))),
            }
        }
        if let Some(sql) = &spec.spec.teardown {
            let r = self.bounded(usize::MAX, sql, "the spec").await?;
            match r {
                Ok(Some(PgResult::Tuples(t))) => self.emit(Event::Tuples(t)),
                Ok(Some(PgResult::Error(_)))
                | Ok(Some(PgResult::ClientError(_)))
                | Ok(Some(PgResult::Copy(_))) => {
                    let msg = self.control.error_message().to_string();
                    self.emit(Event::Stderr(format!("teardown failed: {msg}")));
                }
                Ok(_) => {}
                Err(e) => self.emit(Event::Stderr(format!("teardown failed: {e}\n"))),
            }
        }
        Ok(())
    }

    /// Runs a teardown block with the step timeout as a bound: after it, the
    /// query is cancelled; if the cancel does not end it within the same
    /// time again, the spec is abandoned.  (isolationtester would hang.)
    async fn bounded(
        &mut self,
        si: usize,
        sql: &str,
        what: &str,
    ) -> Result<Result<Option<PgResult>, WireError>, SpecError> {
        let limit = self.opts.step_timeout;
        let fut = async {
            if si == usize::MAX {
                self.control_exec(sql).await
            } else {
                self.session_exec(si, sql).await
            }
        };
        // First bound: the step timeout.
        let first = tokio::time::timeout(limit, fut).await;
        if let Ok(r) = first {
            return Ok(r);
        }
        // Timed out: cancel, then wait for the outcome up to the limit again.
        let conn = if si == usize::MAX {
            &mut self.control
        } else {
            &mut self.sessions[si].conn
        };
        let _ = conn.cancel().await;
        let msg = format!(
            "teardown of {what} did not finish within {} seconds; canceling it\n",
            limit.as_secs()
        );
        self.emit(Event::Stderr(msg));
        let conn = if si == usize::MAX {
            &mut self.control
        } else {
            &mut self.sessions[si].conn
        };
        let drained = tokio::time::timeout(limit, async {
            let mut last = None;
            while let Some(r) = conn.get_result().await? {
                last = Some(r);
            }
            Ok::<_, WireError>(last)
        })
        .await;
        match drained {
            Ok(r) => Ok(r),
            Err(_) => Err(SpecError::TeardownTimeout {
                what: what.to_string(),
                secs: 2 * limit.as_secs(),
            }),
        }
    }

    /// Asks the server what every session is doing and waiting for: pid,
    /// state, wait event, blocking pids (as session names) and query, then
    /// the lock rows involved in waits.  None if the control connection
    /// cannot answer.
    async fn wait_graph(&mut self, step: &str, session: &str, secs: u64) -> Option<String> {
        let pids: Vec<String> = self
            .sessions
            .iter()
            .map(|s| s.conn.backend_pid().to_string())
            .collect();
        let arr = format!("{{{}}}", pids.join(","));
        let name_of = |pid: &str| -> String {
            self.sessions
                .iter()
                .find(|s| s.conn.backend_pid().to_string() == pid)
                .map(|s| format!("{} (pid {pid})", s.name))
                .unwrap_or_else(|| format!("pid {pid}"))
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
        let mut text =
            format!("wait graph for step {step} of session {session} after {secs} seconds:\n");
        for r in &rows.rows {
            let v = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let blockers: Vec<String> = v(3)
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    if p == "0" {
                        "a prepared transaction".to_string()
                    } else {
                        name_of(p)
                    }
                })
                .collect();
            let blocked = if blockers.is_empty() {
                String::new()
            } else {
                format!(", blocked by {}", blockers.join(", "))
            };
            text.push_str(&format!(
                "  {}: {}, waiting on {}{}: {}\n",
                name_of(&v(0)),
                v(1),
                v(2),
                blocked,
                v(4)
            ));
        }
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
        if let Ok(Some(PgResult::Tuples(rows))) = locks {
            if !rows.rows.is_empty() {
                text.push_str("  locks involved:\n");
            }
            for r in &rows.rows {
                let v = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                let who = if v(0).is_empty() {
                    "a prepared transaction".to_string()
                } else {
                    name_of(&v(0))
                };
                let state = if v(3) == "t" { "holds" } else { "waits for" };
                text.push_str(&format!(
                    "    {who} {state} {} on {} {}\n",
                    v(2),
                    v(1),
                    v(4)
                ));
            }
        }
        Some(text)
    }

    /// isolationtester's try_complete_steps.
    async fn try_complete_steps(
        &mut self,
        st: &mut PermState<'_>,
        waiting: &mut Vec<usize>,
        flags: u8,
    ) -> Result<(), SpecError> {
        loop {
            self.any_new_notice = false;
            let old_n = waiting.len();
            let mut have_blocker = false;
            let mut w = 0;
            while w < waiting.len() {
                if self.try_complete_step(st, waiting[w], flags).await? {
                    if !st.steps[waiting[w]].blockers.is_empty() {
                        have_blocker = true;
                    }
                    w += 1;
                } else {
                    waiting.remove(w);
                }
            }
            if !(have_blocker && (waiting.len() < old_n || self.any_new_notice)) {
                return Ok(());
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
    /// not complete (waiting on a lock with STEP_NONBLOCK, or held back by a
    /// marker), false when it completed and its results were reported.
    async fn try_complete_step(
        &mut self,
        st: &mut PermState<'_>,
        idx: usize,
        flags: u8,
    ) -> Result<bool, SpecError> {
        let pstep = &st.steps[idx];
        let si = pstep.session;
        let name = self.step_name(pstep).to_string();
        let sql = self.step_sql(pstep);
        let session = self.sessions[si].name.clone();

        if flags & STEP_RETRY == 0 && pstep.blockers.contains(&PBlocker::Once) {
            self.emit(Event::StepWaiting {
                session,
                step: name,
                sql: sql.to_string(),
            });
            return Ok(true);
        }

        let start = Instant::now();
        let mut canceled = false;
        let mut interval = self.opts.poll_min;
        let mut slow_reported = false;
        loop {
            let busy = self.sessions[si]
                .conn
                .is_busy()
                .map_err(|e| wire(&session, &name, e))?;
            self.flush_notices(si);
            if !busy {
                break;
            }
            let readable = self.sessions[si]
                .conn
                .wait_readable(interval)
                .await
                .map_err(|e| wire(&session, &name, e))?;
            if readable {
                self.sessions[si]
                    .conn
                    .consume_input()
                    .map_err(|e| wire(&session, &name, e))?;
                continue;
            }
            interval = (interval * 2).min(self.opts.poll_max);
            if self.interrupted() {
                return Err(SpecError::Interrupted);
            }
            if flags & STEP_NONBLOCK != 0 {
                let pid = self.sessions[si].conn.backend_pid();
                let waiting = self
                    .detector
                    .is_blocked(&mut self.control, pid)
                    .await
                    .map_err(|message| {
                        self.emit(Event::Stderr(format!("lock wait query failed: {message}")));
                        SpecError::WaitQuery {
                            step: name.clone(),
                            message,
                        }
                    })?;
                if waiting {
                    self.sessions[si]
                        .conn
                        .consume_input()
                        .map_err(|e| wire(&session, &name, e))?;
                    let busy = self.sessions[si]
                        .conn
                        .is_busy()
                        .map_err(|e| wire(&session, &name, e))?;
                    self.flush_notices(si);
                    if !busy {
                        break;
                    }
                    if flags & STEP_RETRY == 0 {
                        self.emit(Event::StepWaiting {
                            session,
                            step: name,
                            sql: sql.to_string(),
                        });
                    }
                    return Ok(true);
                }
            }
            let td = start.elapsed();
            if !slow_reported && td > self.opts.step_timeout / 2 {
                slow_reported = true;
                self.emit(Event::SlowStep {
                    session: session.clone(),
                    step: name.clone(),
                    secs: td.as_secs(),
                });
                if let Some(text) = self.wait_graph(&name, &session, td.as_secs()).await {
                    self.emit(Event::WaitGraph {
                        text,
                        in_transcript: false,
                    });
                }
            }
            if td > self.opts.step_timeout && !canceled {
                if let Some(text) = self.wait_graph(&name, &session, td.as_secs()).await {
                    let in_transcript = self.opts.wait_graph_in_transcript;
                    self.emit(Event::WaitGraph {
                        text,
                        in_transcript,
                    });
                }
                match self.sessions[si].conn.cancel().await {
                    Ok(()) => {
                        self.emit(Event::Canceling {
                            step: name.clone(),
                            secs: td.as_secs(),
                        });
                        canceled = true;
                    }
                    Err(e) => self.emit(Event::Stderr(format!("PQcancel failed: {e}\n"))),
                }
            }
            if td > 2 * self.opts.step_timeout {
                let secs = td.as_secs();
                self.emit(Event::Stderr(format!(
                    "step {name} timed out after {secs} seconds\n"
                )));
                return Err(SpecError::StepTimeout {
                    session,
                    step: name,
                    secs,
                });
            }
        }

        if self.step_has_blocker(st, idx) {
            if flags & STEP_RETRY == 0 {
                self.emit(Event::StepWaiting {
                    session,
                    step: name,
                    sql: sql.to_string(),
                });
            }
            return Ok(true);
        }

        if flags & STEP_RETRY != 0 {
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
        loop {
            let r = self.sessions[si].conn.get_result().await;
            self.flush_notices(si);
            let Some(res) = r.map_err(|e| wire(&session, &name, e))? else {
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
                        step: name.clone(),
                        text,
                    });
                }
                PgResult::ClientError(text) => self.emit(Event::StepError {
                    step: name.clone(),
                    text,
                }),
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
                session: session.clone(),
                channel: n.channel,
                payload: n.payload,
                sender,
            });
            let _ = self.sessions[si].conn.consume_input();
            self.flush_notices(si);
        }

        if let Some(t0) = self.sessions[si].launched_at.take() {
            self.emit(Event::StepTimings {
                step: name,
                micros: t0.elapsed().as_micros() as u64,
            });
        }
        self.sessions[si].active = None;
        Ok(false)
    }
}

fn wire(session: &str, step: &str, e: WireError) -> SpecError {
    SpecError::Wire {
        session: session.to_string(),
        step: step.to_string(),
        source: e,
    }
}
