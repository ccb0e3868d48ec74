//! What the executor reports, as data: every line isolationtester writes
//! has a variant here, and `transcript` alone turns them into text.

use crate::pgwire::Tuples;

/// What happened, in transcript order.  `message` fields hold libpq's
/// error text as isolationtester prints it, ending with its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A warning about the spec itself (an unused step), from the checker.
    SpecWarning(String),
    Parsed {
        sessions: usize,
    },
    /// Connection `index` (0 is the control connection) could not be made.
    ConnectFailed {
        index: usize,
        message: String,
    },
    AppNameFailed {
        message: String,
    },
    PrepareWaitFailed {
        message: String,
    },
    PermutationStart {
        index: usize,
        steps: Vec<String>,
    },
    /// The spec's setup (`session` None) or a session's setup failed.
    SetupFailed {
        session: Option<String>,
        message: String,
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
    /// The rows of one of `ExecOptions::after_steps`'s queries, in order,
    /// after a permutation's steps (or the error it gave).
    AfterSteps {
        rows: Result<Vec<Vec<Option<String>>>, String>,
    },
    /// The permutation cannot go on (with `ExecOptions::end_stalled`):
    /// `step` was due while its session's step `waiting` is blocked by
    /// sessions with no running step, which only a later step could move.
    Unrealizable {
        step: String,
        waiting: String,
    },
    StepError {
        step: String,
        text: String,
        /// The server's SQLSTATE (None for an error made by the client).
        sqlstate: Option<String>,
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
    CancelFailed {
        message: String,
    },
    SendFailed {
        step: String,
        message: String,
    },
    WaitQueryFailed {
        message: String,
    },
    /// A step still running at twice the timeout: the spec is abandoned.
    /// `active` lists the running steps when a new step was due.
    StepTimedOut {
        step: String,
        secs: u64,
        active: Option<Vec<String>>,
    },
    MutuallyBlocking,
    /// A teardown block ran into the step timeout and is being cancelled
    /// (`session` None: the spec's teardown).
    TeardownCanceling {
        session: Option<String>,
        secs: u64,
    },
    /// An interrupted run's teardown did not finish before the grace
    /// period's deadline; it is cancelled.
    TeardownGraceEnded {
        session: Option<String>,
    },
    /// An interrupted run: these sessions did not end their transaction
    /// (ROLLBACK) in time; their backends were terminated so that the
    /// teardown waits for none of their locks.
    SessionsTerminated {
        sessions: Vec<String>,
    },
    TeardownFailed {
        session: Option<String>,
        message: String,
    },
    /// The run was interrupted: with `teardown`, the running steps (of
    /// these sessions) are cancelled and the teardown runs.
    Interrupted {
        running: Vec<String>,
        teardown: bool,
    },
    /// Not part of the transcript: how long a step took from launch to completion.
    StepTimings {
        step: String,
        micros: u64,
    },
    /// What the server says the sessions are waiting for, when a step has
    /// run past half its timeout or is cancelled (in the transcript only
    /// when asked for).
    WaitGraph {
        graph: WaitGraph,
        in_transcript: bool,
    },
    /// Not part of the transcript: a prepared transaction the spec left
    /// behind was rolled back (`error` None) or could not be.
    PreparedRolledBack {
        gid: String,
        error: Option<String>,
    },
    /// Not part of the transcript: a session's connection broke during a
    /// step (its server, or a pooler in between, went away).
    ConnectionLost {
        session: String,
        step: String,
        server: String,
    },
    /// Not part of the transcript (`ExecOptions::blockers_on_wait`): the
    /// backends that blocked `step` when it was first seen waiting.
    BlockedBy {
        session: String,
        step: String,
        by: Vec<Who>,
    },
    /// Not part of the transcript: a step has been busy for a long time.
    SlowStep {
        session: String,
        step: String,
        secs: u64,
    },
}

/// A backend named in a wait graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Session {
        name: String,
        pid: String,
    },
    /// A backend that is not one of the spec's sessions.
    Pid(String),
    /// A lock held by a prepared transaction (no backend).
    PreparedTransaction,
}

/// One session in a wait graph: what pg_stat_activity says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitRow {
    pub who: Who,
    pub state: String,
    /// `type/event`, or `-`.
    pub wait_event: String,
    pub blocked_by: Vec<Who>,
    pub query: String,
}

/// One pg_locks row involved in a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    pub who: Who,
    pub granted: bool,
    pub mode: String,
    pub locktype: String,
    pub object: String,
}

/// What every session of a spec was doing when `step` of `session` had
/// been running for `secs` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitGraph {
    pub step: String,
    pub session: String,
    pub secs: u64,
    pub sessions: Vec<WaitRow>,
    pub locks: Vec<LockRow>,
}
