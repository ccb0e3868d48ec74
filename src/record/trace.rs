//! What a recorded connection did, read off its traffic: the proxy hands
//! every byte it forwards (in either direction) to a `Tracer`, which
//! frames the messages, follows the extended protocol's queue of pending
//! replies (a pipeline included: an error skips everything up to Sync),
//! and writes each statement that reached the server into the `Log`, with
//! when it was sent and when it completed.  Nothing here does I/O.

use bytes::{Buf, BytesMut};
use std::collections::{HashMap, VecDeque};

mod log;
pub use log::{Ending, Log, Outcome, Param, SessionInfo, Stmt};

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
            rows: None,
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
                // Whose rows these are: a simple query's, or the Execute's
                // that follows a portal's Describe.
                let target = match self.pending.front() {
                    Some(Pending::Query(k)) => Some(*k),
                    Some(Pending::DescribePortal) => self
                        .pending
                        .iter()
                        .skip(1)
                        .find_map(|p| match p {
                            Pending::Execute(k) => Some(Some(*k)),
                            Pending::Sync | Pending::Query(_) => Some(None),
                            _ => None,
                        })
                        .flatten(),
                    _ => None,
                };
                if let Some(k) = target {
                    let n = i16_at(&mut b).unwrap_or(0).max(0) as usize;
                    let (mut names, mut formats, mut types) = (
                        Vec::with_capacity(n),
                        Vec::with_capacity(n),
                        Vec::with_capacity(n),
                    );
                    for _ in 0..n {
                        names.push(cstr(&mut b).unwrap_or_default());
                        if b.len() < 18 {
                            break;
                        }
                        // table oid, attnum, type oid, typlen, typmod, format
                        b.advance(6);
                        types.push(b.get_u32());
                        b.advance(6);
                        formats.push(b.get_i16());
                    }
                    let rows = log.stmts[k].rows.get_or_insert_with(Default::default);
                    if !rows.names.is_empty() {
                        // A second result in one query: no single row,
                        // and the first result's values are not this one's.
                        rows.count = rows.count.max(2);
                        rows.first.clear();
                    }
                    rows.names = names;
                    rows.formats = formats;
                    rows.types = types;
                }
                if matches!(
                    self.pending.front(),
                    Some(Pending::DescribePortal | Pending::DescribeStatement(_))
                ) {
                    self.pending.pop_front();
                }
            }
            b'D' => {
                if let Some(k) = self.current() {
                    let rows = log.stmts[k].rows.get_or_insert_with(Default::default);
                    rows.count += 1;
                    if rows.count == 1 && !rows.names.is_empty() {
                        let n = i16_at(&mut b).unwrap_or(0).max(0) as usize;
                        for i in 0..n {
                            let len = i32_at(&mut b).unwrap_or(-1);
                            if len < 0 || b.len() < len as usize {
                                rows.first.push(None);
                                continue;
                            }
                            let v = b.split_to(len as usize);
                            let text = rows.formats.get(i) == Some(&0) && v.len() <= 256;
                            rows.first.push(
                                text.then(|| std::str::from_utf8(&v).ok().map(str::to_string))
                                    .flatten(),
                            );
                        }
                    }
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
