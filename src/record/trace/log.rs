//! What the tracer writes down: the statements each recorded session
//! sent, how each ended, the sessions themselves, and the questions the
//! proxy asks of them on every statement (what runs elsewhere, what waits),
//! answered from the set of open statements so that their cost does not
//! grow with the recording.

/// One parameter as bound: its bytes (None for NULL) and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub value: Option<Vec<u8>>,
    pub binary: bool,
}

/// How a statement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still in flight when the recording ended.
    Running,
    /// CommandComplete's tag (or "" for an empty query).
    Done(String),
    /// The server's SQLSTATE and message.
    Failed { sqlstate: String, message: String },
}

/// A statement a client sent, in the order the proxy forwarded them.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub session: usize,
    pub sql: String,
    /// Bound parameters (extended protocol only).
    pub params: Vec<Param>,
    /// The parameter types: those the client declared in Parse, completed
    /// by a ParameterDescription the client asked for; 0 is unknown.
    pub oids: Vec<u32>,
    /// Sent with the extended protocol (Parse/Bind/Execute): its
    /// parameters are inlined.
    pub extended: bool,
    /// The log's clock when the statement was forwarded and when its
    /// completion came back.
    pub sent: u64,
    pub finished: Option<u64>,
    pub outcome: Outcome,
    /// Why the statement cannot be a step (COPY, a row limit, ...).
    pub unrepresentable: Option<String>,
    /// The server skipped it (an earlier error in its pipeline).
    pub skipped: bool,
    /// The wait detector saw it waiting for another recorded session.
    pub waited: bool,
    /// It waits now: the detector's answer since the last statement that
    /// could have woken it completed (a completion makes every wait a
    /// question again, as isolationtester re-checks its waiting steps).
    pub waiting: bool,
    /// A cancel request for its session came while it ran.
    pub canceled: bool,
    /// It ran on, without a wait the detector sees, past the time the
    /// proxy holds other statements back: they went while it ran.
    pub overtaken: bool,
    /// The transaction status of the ReadyForQuery that followed it.
    pub txn_after: Option<u8>,
    /// The client's batch: the extended-protocol messages up to a Sync
    /// (one implicit transaction, skipped after an error as a whole), or
    /// one simple query.
    pub batch: u64,
    /// Execute's row limit, when the client set one.
    pub row_limit: Option<i32>,
    /// The portal was suspended (rows left) and never run to completion.
    pub suspended: bool,
    /// What its result looked like: column names, how many rows, the
    /// first row's text values (for values that flow back in later).
    pub rows: Option<Box<Rows>>,
    /// The COPY data it moved (COPY FROM STDIN's rows, or that it was a
    /// COPY TO STDOUT).
    pub copy: Option<Box<crate::record::copy::CopyData>>,
}

/// A statement's result, as far as the recording keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    /// The columns' names, from RowDescription.
    pub names: Vec<String>,
    /// The columns' formats (0 text, 1 binary), from RowDescription.
    pub formats: Vec<i16>,
    /// The columns' type oids, from RowDescription.
    pub types: Vec<u32>,
    /// DataRows seen (2 or more: the result cannot be a value's source).
    pub count: u64,
    /// The first row's values in text format (None: NULL, binary, long).
    pub first: Vec<Option<String>>,
}

/// A recorded client connection.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub application_name: Option<String>,
    /// Startup parameters that are settings (from `options` and the
    /// packet's other parameters), in the order given.
    pub settings: Vec<(String, String)>,
    /// The backend's pid and cancel key.
    pub pid: i32,
    pub secret: i32,
    /// The ParameterStatus values the server reported at startup.
    pub reported: Vec<(String, String)>,
    /// Why the session ended other than by Terminate, if it did, and the
    /// log's clock then.
    pub ended: Option<(Ending, u64)>,
    pub terminated: bool,
    /// The log's clock at the client's Terminate.
    pub terminated_at: u64,
    /// The relay has ended: the backend is gone, or never will be seen.
    pub gone: bool,
    /// The transaction status of the session's last ReadyForQuery.
    pub txn: Option<u8>,
}

impl SessionInfo {
    /// Whether the session's last ReadyForQuery said it was inside a
    /// transaction (open or failed).
    pub fn in_transaction(&self) -> bool {
        matches!(self.txn, Some(b'T' | b'E'))
    }
}

/// How a session ended without saying goodbye (Terminate).  The spec's
/// comment and the warning on stderr are both made from it, so each
/// ending written into the spec is also shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The server's FATAL or PANIC (an administrator's terminate, a
    /// shutdown, an idle-session timeout).
    Fatal { severity: String, message: String },
    /// The server closed the connection without a word.
    ServerClosed,
    /// Reading from or writing to the server failed.
    ServerFailed,
    /// The client closed its connection (a pool dropped it, the process
    /// was killed or exited).
    ClientClosed,
    /// Reading from or writing to the client failed.
    ClientFailed,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Fatal { severity, message } => {
                write!(f, "the server ended the session ({severity}: {message})")
            }
            Ending::ServerClosed => f.write_str("the server closed the connection"),
            Ending::ServerFailed => f.write_str("the server's connection failed"),
            Ending::ClientClosed => f.write_str("the client closed its connection"),
            Ending::ClientFailed => f.write_str("the client's connection failed"),
        }
    }
}

/// Everything recorded, shared by the proxy's connections.
#[derive(Debug, Default)]
pub struct Log {
    clock: u64,
    pub stmts: Vec<Stmt>,
    /// The statements neither finished nor skipped (sent or not yet), in
    /// order: what the proxy's per-statement questions look at, so that
    /// their cost does not grow with the recording's length.
    open: std::collections::BTreeSet<usize>,
    /// Counts what may release locks (a completion, a session's end): a
    /// wait check that began in an older epoch is out of date.
    epoch: u64,
    pub sessions: Vec<SessionInfo>,
    /// Warnings for stderr, in order, not yet taken.
    pub warnings: Vec<String>,
    /// What the spec says in comments about traffic that has no session
    /// (a replication connection).
    pub notes: Vec<String>,
}

impl Log {
    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// A statement traced (not yet forwarded); its index.
    pub fn push(&mut self, s: Stmt) -> usize {
        self.stmts.push(s);
        let k = self.stmts.len() - 1;
        self.open.insert(k);
        k
    }

    /// The server answered statement `k` (its first answer is its end).
    pub fn finish(&mut self, k: usize, outcome: Outcome) {
        let t = self.tick();
        let s = &mut self.stmts[k];
        if s.finished.is_none() {
            s.finished = Some(t);
        }
        if s.outcome == Outcome::Running || matches!(outcome, Outcome::Failed { .. }) {
            s.outcome = outcome;
        }
        self.open.remove(&k);
        self.may_have_woken();
    }

    /// Something may have released locks: every wait is asked again
    /// before another statement goes.
    fn may_have_woken(&mut self) {
        self.epoch += 1;
        for &i in &self.open {
            self.stmts[i].waiting = false;
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The detector's answer, asked in `epoch`: statement `k` waits.
    pub fn waits(&mut self, k: usize, epoch: u64) {
        let s = &mut self.stmts[k];
        if s.finished.is_none() {
            s.waited = true;
            s.waiting = epoch == self.epoch;
        }
    }

    /// The server skipped statement `k` (an earlier error in its batch).
    pub fn skip(&mut self, k: usize) {
        self.stmts[k].skipped = true;
        self.open.remove(&k);
    }

    /// Statements sent but not completed, with their sessions' pids.
    pub fn in_flight(&self) -> Vec<(usize, i32)> {
        self.open
            .iter()
            .filter(|&&i| self.stmts[i].sent > 0)
            .map(|&i| (i, self.sessions[self.stmts[i].session].pid))
            .collect()
    }

    /// Marks `session` ended (first ending wins; a Terminate already seen
    /// is a goodbye, not an ending).
    pub fn end(&mut self, session: usize, why: Ending) {
        let t = self.tick();
        let s = &mut self.sessions[session];
        if !s.terminated && s.ended.is_none() {
            s.ended = Some((why, t));
        }
        self.may_have_woken();
    }

    /// Whether a session is still connected (not ended, no Terminate).
    pub fn live(&self, session: usize) -> bool {
        let s = &self.sessions[session];
        s.ended.is_none() && !s.terminated
    }

    /// The statement each session other than `session` runs on the server
    /// without waiting for a lock (the detector's last answer).  Only a
    /// session's first statement in flight counts: the ones behind it in
    /// its pipeline wait for it, not for a lock.
    fn running_others(&self, session: usize) -> Vec<usize> {
        let mut seen = std::collections::HashSet::new();
        self.open
            .iter()
            .copied()
            .filter(|&i| {
                let s = &self.stmts[i];
                s.session != session && s.sent > 0 && seen.insert(s.session) && !s.waiting
            })
            .collect()
    }

    /// Statements of sessions other than `session` that run on the server
    /// and do not wait for a lock, or a session that is closing (its
    /// backend still there, maybe still releasing its locks).
    pub fn running_elsewhere(&self, session: usize) -> bool {
        self.running_others(session)
            .iter()
            .any(|&i| self.live(self.stmts[i].session))
            || self
                .sessions
                .iter()
                .enumerate()
                .any(|(k, s)| k != session && !s.gone && !self.live(k) && !self.blocked(k))
    }

    /// Whether the statement `session` runs (its first open one) waits
    /// for a lock: a closing session blocked so releases nothing yet.
    fn blocked(&self, session: usize) -> bool {
        self.open
            .iter()
            .find(|&&i| self.stmts[i].session == session && self.stmts[i].sent > 0)
            .is_some_and(|&i| self.stmts[i].waiting)
    }

    /// The session's backend is gone (the server closed its side after
    /// the session ended): whatever it held is released.
    pub fn gone(&mut self, session: usize) {
        self.sessions[session].gone = true;
        self.may_have_woken();
    }

    /// Marks what `running_elsewhere` counts as overtaken: a statement of
    /// `session` goes while they run.
    pub fn overtake(&mut self, session: usize) {
        for k in self.running_others(session) {
            self.stmts[k].overtaken = true;
        }
    }

    /// Stamps the statements traced but not yet forwarded, in order: the
    /// proxy forwards them now.
    pub fn forwarded(&mut self, session: usize) {
        let unsent: Vec<usize> = self
            .open
            .iter()
            .copied()
            .filter(|&k| self.stmts[k].session == session && self.stmts[k].sent == 0)
            .collect();
        for k in unsent {
            self.clock += 1;
            self.stmts[k].sent = self.clock;
        }
    }

    /// Marks what is in flight in `session` as canceled (a cancel request came).
    /// The session is the one with this backend pid and cancel key (the
    /// newest: pids are reused).
    pub fn canceled(&mut self, pid: i32, secret: i32) {
        let Some(k) = self
            .sessions
            .iter()
            .rposition(|s| s.pid == pid && s.secret == secret)
        else {
            return;
        };
        for &i in &self.open {
            if self.stmts[i].session == k {
                self.stmts[i].canceled = true;
            }
        }
    }
}
