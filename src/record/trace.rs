//! What a recorded connection did, read off its traffic: the proxy hands
//! every byte it forwards (in either direction) to a `Tracer`, which
//! frames the messages, follows the extended protocol's queue of pending
//! replies (a pipeline included: an error skips everything up to Sync),
//! and writes each statement that reached the server into the `Log`, with
//! when it was sent and when it completed.  Nothing here does I/O.

use bytes::{Buf, BytesMut};
use std::collections::{HashMap, VecDeque};

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
    /// The COPY data it moved (COPY FROM STDIN's rows, or that it was a
    /// COPY TO STDOUT).
    pub copy: Option<Box<super::copy::CopyData>>,
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
    pub fn canceled(&mut self, pid: i32) {
        let Some(k) = self.sessions.iter().position(|s| s.pid == pid) else {
            return;
        };
        for &i in &self.open {
            if self.stmts[i].session == k {
                self.stmts[i].canceled = true;
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Prepared {
    sql: String,
    oids: Vec<u32>,
}

#[derive(Debug, Clone)]
struct Portal {
    statement: Prepared,
    params: Vec<Param>,
    /// The statement an earlier Execute of this portal recorded: a later
    /// Execute fetches more of its rows.
    executed: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Parse,
    Bind,
    DescribeStatement(String),
    DescribePortal,
    Execute(usize),
    /// An Execute that fetches more rows of a suspended portal.
    Continue(usize),
    Close,
    Sync,
    Query(usize),
    FunctionCall(usize),
    /// The client ended a COPY FROM STDIN (CopyDone or CopyFail) before
    /// the proxy saw the server start it: no reply of its own.
    CopyEnd,
}

/// Frames one direction's bytes into whole messages.
#[derive(Default)]
struct Framer {
    buf: BytesMut,
}

impl Framer {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message: its type and body.
    fn next(&mut self) -> Option<(u8, BytesMut)> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
        if len < 4 || self.buf.len() < len + 1 {
            return None;
        }
        let mut m = self.buf.split_to(len + 1);
        let tag = m[0];
        m.advance(5);
        Some((tag, m))
    }
}

/// One protocol message: its type, length and body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(b: &mut BytesMut) -> Option<String> {
    let end = b.iter().position(|&c| c == 0)?;
    let s = String::from_utf8_lossy(&b[..end]).into_owned();
    b.advance(end + 1);
    Some(s)
}

fn i16_at(b: &mut BytesMut) -> Option<i16> {
    (b.len() >= 2).then(|| b.get_i16())
}

fn i32_at(b: &mut BytesMut) -> Option<i32> {
    (b.len() >= 4).then(|| b.get_i32())
}

/// ErrorResponse's SQLSTATE and message fields.
/// ErrorResponse's SQLSTATE, message and (non-localized) severity.
fn error_fields(mut b: BytesMut) -> (String, String, String) {
    let (mut code, mut msg, mut severity) = (String::new(), String::new(), String::new());
    while let Some(&t) = b.first() {
        if t == 0 {
            break;
        }
        b.advance(1);
        let Some(v) = cstr(&mut b) else { break };
        match t {
            b'C' => code = v,
            b'M' => msg = v,
            b'V' => severity = v,
            b'S' if severity.is_empty() => severity = v,
            _ => {}
        }
    }
    (code, msg, severity)
}

/// One connection's protocol state.
pub struct Tracer {
    session: usize,
    client: Framer,
    server: Framer,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    pending: VecDeque<Pending>,
    /// After an extended-protocol error with no Sync sent yet: the server
    /// discards what comes until Sync.
    discarding: bool,
    /// The current batch (see `Stmt::batch`).
    batch: u64,
    /// Between CopyInResponse and the client's CopyDone or CopyFail: the
    /// server ignores Sync and Flush meanwhile.
    copy_in: bool,
    /// The statement whose COPY FROM STDIN data the client sends now.
    copy_stmt: Option<usize>,
}

impl Tracer {
    pub fn new(session: usize) -> Tracer {
        Tracer {
            session,
            client: Framer::default(),
            server: Framer::default(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            pending: VecDeque::new(),
            discarding: false,
            batch: 0,
            copy_in: false,
            copy_stmt: None,
        }
    }

    fn statement(
        &mut self,
        log: &mut Log,
        sql: String,
        params: Vec<Param>,
        oids: Vec<u32>,
        extended: bool,
    ) -> usize {
        // Stamped when the proxy forwards it (see `Log::forwarded`).
        let sent = 0;
        log.push(Stmt {
            session: self.session,
            sql,
            params,
            oids,
            extended,
            sent,
            finished: None,
            outcome: Outcome::Running,
            unrepresentable: None,
            skipped: false,
            waited: false,
            waiting: false,
            canceled: false,
            overtaken: false,
            txn_after: None,
            batch: self.batch,
            row_limit: None,
            suspended: false,
            copy: None,
        })
    }

    /// Bytes the client sent (after the startup packet), as forwarded.
    /// Returns whether the bytes complete a statement (Query or Execute).
    pub fn client_bytes(&mut self, data: &[u8], log: &mut Log) -> bool {
        self.client.push(data);
        let mut statement = false;
        while let Some((tag, body)) = self.client.next() {
            statement |= matches!(tag, b'Q' | b'E');
            self.client_message(tag, body, log);
        }
        statement
    }

    fn client_message(&mut self, tag: u8, b: BytesMut, log: &mut Log) {
        if self.discarding {
            if tag == b'S' {
                self.discarding = false;
                self.batch += 1;
                self.pending.push_back(Pending::Sync);
                return;
            }
            // The server discards it; a statement is still written down,
            // skipped, as part of its batch.
            let before = self.pending.len();
            self.client_message_now(tag, b, log);
            while self.pending.len() > before {
                if let Some(Pending::Execute(k) | Pending::Query(k)) = self.pending.pop_back() {
                    log.skip(k);
                }
            }
            return;
        }
        if self.copy_in {
            let copying = self
                .copy_stmt
                .and_then(|k| log.stmts[k].copy.as_deref_mut());
            match tag {
                // Ignored by the server during COPY FROM STDIN.
                b'S' | b'H' => return,
                b'd' => {
                    if let Some(c) = copying {
                        if c.data.len() + b.len() > super::copy::COPY_LIMIT {
                            c.over = true;
                            c.data = Vec::new();
                        } else if !c.over {
                            c.data.extend_from_slice(&b);
                        }
                    }
                    return;
                }
                b'c' | b'f' => {
                    if let (Some(c), b'f') = (copying, tag) {
                        c.failed = true;
                    }
                    self.copy_in = false;
                    self.copy_stmt = None;
                    return;
                }
                _ => {}
            }
        } else if matches!(tag, b'c' | b'f') {
            // The copy's end, before its start was seen.
            self.pending.push_back(Pending::CopyEnd);
            return;
        }
        self.client_message_now(tag, b, log);
    }

    fn client_message_now(&mut self, tag: u8, mut b: BytesMut, log: &mut Log) {
        match tag {
            b'Q' => {
                let sql = cstr(&mut b).unwrap_or_default();
                self.batch += 1;
                let k = self.statement(log, sql, Vec::new(), Vec::new(), false);
                self.batch += 1;
                self.pending.push_back(Pending::Query(k));
            }
            b'P' => {
                let name = cstr(&mut b).unwrap_or_default();
                let sql = cstr(&mut b).unwrap_or_default();
                let n = i16_at(&mut b).unwrap_or(0).max(0) as usize;
                let oids = (0..n).map(|_| i32_at(&mut b).unwrap_or(0) as u32).collect();
                self.statements.insert(name, Prepared { sql, oids });
                self.pending.push_back(Pending::Parse);
            }
            b'B' => {
                let portal = cstr(&mut b).unwrap_or_default();
                let name = cstr(&mut b).unwrap_or_default();
                let nf = i16_at(&mut b).unwrap_or(0).max(0) as usize;
                let formats: Vec<i16> = (0..nf).map(|_| i16_at(&mut b).unwrap_or(0)).collect();
                let np = i16_at(&mut b).unwrap_or(0).max(0) as usize;
                let mut params = Vec::with_capacity(np);
                for i in 0..np {
                    let len = i32_at(&mut b).unwrap_or(-1);
                    let value = if len < 0 || b.len() < len as usize {
                        None
                    } else {
                        Some(b.split_to(len as usize).to_vec())
                    };
                    let binary = match formats.len() {
                        0 => false,
                        1 => formats[0] == 1,
                        _ => formats.get(i) == Some(&1),
                    };
                    params.push(Param { value, binary });
                }
                let statement = self.statements.get(&name).cloned().unwrap_or_default();
                self.portals.insert(
                    portal,
                    Portal {
                        statement,
                        params,
                        executed: None,
                    },
                );
                self.pending.push_back(Pending::Bind);
            }
            b'D' => {
                let kind = b.first().copied().unwrap_or(b'S');
                b.advance(1.min(b.len()));
                let name = cstr(&mut b).unwrap_or_default();
                self.pending.push_back(if kind == b'S' {
                    Pending::DescribeStatement(name)
                } else {
                    Pending::DescribePortal
                });
            }
            b'E' => {
                let portal = cstr(&mut b).unwrap_or_default();
                let max_rows = i32_at(&mut b).unwrap_or(0);
                let p = self.portals.get(&portal).cloned().unwrap_or(Portal {
                    statement: Prepared::default(),
                    params: Vec::new(),
                    executed: None,
                });
                if let Some(k) = p.executed {
                    self.pending.push_back(Pending::Continue(k));
                    return;
                }
                let mut oids = p.statement.oids.clone();
                oids.resize(p.params.len(), 0);
                let k = self.statement(log, p.statement.sql, p.params, oids, true);
                if max_rows > 0 {
                    log.stmts[k].row_limit = Some(max_rows);
                }
                if let Some(p) = self.portals.get_mut(&portal) {
                    p.executed = Some(k);
                }
                self.pending.push_back(Pending::Execute(k));
            }
            b'C' => {
                let kind = b.first().copied().unwrap_or(b'S');
                b.advance(1.min(b.len()));
                let name = cstr(&mut b).unwrap_or_default();
                if kind == b'S' {
                    self.statements.remove(&name);
                } else {
                    self.portals.remove(&name);
                }
                self.pending.push_back(Pending::Close);
            }
            b'S' => {
                self.batch += 1;
                self.pending.push_back(Pending::Sync);
            }
            b'F' => {
                let k = self.statement(log, String::new(), Vec::new(), Vec::new(), false);
                log.stmts[k].unrepresentable = Some("a fast-path function call".into());
                self.pending.push_back(Pending::FunctionCall(k));
            }
            b'X' => {
                let t = log.tick();
                let s = &mut log.sessions[self.session];
                s.terminated = true;
                s.terminated_at = t;
            }
            // CopyData, CopyDone, CopyFail, Flush: no reply of their own.
            _ => {}
        }
    }

    /// The statement the server is answering now, if any.
    fn current(&self) -> Option<usize> {
        match self.pending.front() {
            Some(Pending::Execute(k) | Pending::Query(k)) => Some(*k),
            _ => None,
        }
    }

    fn finish(&self, log: &mut Log, k: usize, outcome: Outcome) {
        log.finish(k, outcome);
    }

    /// Bytes the server sent, as forwarded to the client.
    pub fn server_bytes(&mut self, data: &[u8], log: &mut Log) {
        self.server.push(data);
        while let Some((tag, body)) = self.server.next() {
            self.server_message(tag, body, log);
        }
    }

    fn server_message(&mut self, tag: u8, mut b: BytesMut, log: &mut Log) {
        match tag {
            // Asynchronous: notices, notifications, parameter changes.
            b'N' | b'A' | b'S' => {}
            b'1' | b'2' | b'3' | b'n' => {
                if matches!(
                    self.pending.front(),
                    Some(
                        Pending::Parse
                            | Pending::Bind
                            | Pending::Close
                            | Pending::DescribePortal
                            | Pending::DescribeStatement(_)
                    )
                ) {
                    self.pending.pop_front();
                }
            }
            b't' => {
                if let Some(Pending::DescribeStatement(name)) = self.pending.front().cloned() {
                    let n = i16_at(&mut b).unwrap_or(0).max(0) as usize;
                    let oids: Vec<u32> =
                        (0..n).map(|_| i32_at(&mut b).unwrap_or(0) as u32).collect();
                    if let Some(p) = self.statements.get_mut(&name) {
                        p.oids = oids;
                    }
                    // The RowDescription or NoData that follows ends it.
                    self.pending.pop_front();
                    self.pending.push_front(Pending::DescribePortal);
                }
            }
            b'T' => {
                if matches!(
                    self.pending.front(),
                    Some(Pending::DescribePortal | Pending::DescribeStatement(_))
                ) {
                    self.pending.pop_front();
                }
            }
            b'G' | b'H' | b'W' => {
                // The overall format: 0 text, 1 binary.
                let binary = b.first() == Some(&1);
                if let Some(k) = self.current() {
                    if tag == b'W' {
                        log.stmts[k].unrepresentable = Some("COPY BOTH (replication)".into());
                    } else {
                        log.stmts[k].copy = Some(Box::new(super::copy::CopyData {
                            out: tag == b'H',
                            binary,
                            ..Default::default()
                        }));
                    }
                }
                if tag == b'G' {
                    // Syncs and Flushes the client sent before its CopyDone
                    // are ignored by the server: they get no reply.
                    let mut rest: VecDeque<Pending> = self.pending.drain(1..).collect();
                    let end = rest.iter().position(|p| *p == Pending::CopyEnd);
                    match end {
                        Some(e) => {
                            rest = rest
                                .into_iter()
                                .enumerate()
                                .filter(|(i, p)| *i > e || !matches!(p, Pending::Sync))
                                .map(|(_, p)| p)
                                .collect();
                            rest.retain(|p| *p != Pending::CopyEnd);
                            // Its data went by before the server started
                            // the COPY: not read as rows.
                            if let Some(k) = self.current() {
                                log.stmts[k].unrepresentable = Some(
                                    "a COPY whose data the client sent before the server started it"
                                        .into(),
                                );
                            }
                        }
                        None => {
                            rest.retain(|p| !matches!(p, Pending::Sync));
                            self.copy_in = true;
                            self.copy_stmt = self.current();
                        }
                    }
                    self.pending.extend(rest);
                }
            }
            b'C' | b'I' | b's' => {
                let tag_text = if tag == b'C' {
                    cstr(&mut b).unwrap_or_default()
                } else {
                    String::new()
                };
                match self.pending.front() {
                    Some(Pending::Execute(k)) => {
                        let k = *k;
                        if tag_text == "LISTEN" {
                            log.stmts[k].unrepresentable = Some("LISTEN".into());
                        }
                        log.stmts[k].suspended = tag == b's';
                        self.finish(log, k, Outcome::Done(tag_text));
                        self.pending.pop_front();
                    }
                    Some(Pending::Continue(k)) => {
                        let k = *k;
                        log.stmts[k].suspended = tag == b's';
                        if tag == b'C' {
                            log.stmts[k].outcome = Outcome::Done(tag_text);
                        }
                        self.pending.pop_front();
                    }
                    Some(Pending::Query(k)) => {
                        let k = *k;
                        if tag_text == "LISTEN" {
                            log.stmts[k].unrepresentable = Some("LISTEN".into());
                        }
                        let s = &mut log.stmts[k];
                        if s.outcome == Outcome::Running {
                            s.outcome = Outcome::Done(tag_text);
                        } else if let Outcome::Done(t) = &mut s.outcome {
                            *t = tag_text;
                        }
                    }
                    _ => {}
                }
            }
            b'E' => {
                let (sqlstate, message, severity) = error_fields(b);
                if severity == "FATAL" || severity == "PANIC" {
                    // The session ends (an administrator's terminate, a
                    // shutdown): what was in flight did not fail by itself.
                    log.end(self.session, Ending::Fatal { severity, message });
                    return;
                }
                let failed = Outcome::Failed { sqlstate, message };
                match self.pending.front().cloned() {
                    Some(Pending::Query(k) | Pending::FunctionCall(k)) => {
                        self.finish(log, k, failed)
                    }
                    // A failure at Sync: the implicit transaction's commit
                    // (a deferred constraint, a serialization failure) is
                    // the batch's last statement's.
                    Some(Pending::Sync) => {
                        let session = self.session;
                        if let Some(s) =
                            log.stmts.iter_mut().rev().find(|s| {
                                s.session == session && s.extended && s.finished.is_some()
                            })
                        {
                            s.outcome = failed;
                        }
                    }
                    Some(_) => {
                        // The statement failed: the Execute at the head, or
                        // the one whose Parse, Bind or Describe failed (an
                        // unnamed statement is planned at Bind).
                        let failing = self.pending.iter().find_map(|p| match p {
                            Pending::Execute(k) => Some(Some(*k)),
                            Pending::Sync | Pending::Continue(_) => Some(None),
                            _ => None,
                        });
                        if let Some(Some(k)) = failing {
                            self.finish(log, k, failed);
                        }
                        // The server skips everything up to Sync.
                        while let Some(p) = self.pending.front() {
                            match p {
                                Pending::Sync => break,
                                Pending::Execute(k) => {
                                    let k = *k;
                                    if log.stmts[k].finished.is_none() {
                                        log.skip(k);
                                    }
                                }
                                _ => {}
                            }
                            self.pending.pop_front();
                        }
                        if self.pending.is_empty() {
                            self.discarding = true;
                        }
                    }
                    // An error with nothing pending (a fatal one): ends the session.
                    None => {}
                }
            }
            b'Z' => {
                let status = b.first().copied().unwrap_or(b'I');
                log.sessions[self.session].txn = Some(status);
                while let Some(p) = self.pending.pop_front() {
                    match p {
                        Pending::Sync => break,
                        Pending::Query(k) | Pending::FunctionCall(k) => {
                            self.finish(log, k, Outcome::Done(String::new()));
                            break;
                        }
                        Pending::Execute(k) if log.stmts[k].finished.is_none() => {
                            log.skip(k);
                        }
                        _ => {}
                    }
                }
                for s in log.stmts.iter_mut().rev() {
                    if s.session != self.session {
                        continue;
                    }
                    if s.txn_after.is_some() {
                        break;
                    }
                    if s.finished.is_some() && !s.skipped {
                        s.txn_after = Some(status);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
