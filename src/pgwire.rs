//! A small libpq-compatible client for the connections a spec runs on.
//!
//! isolationtester's transcript depends on exactly when libpq parses what:
//! NOTICE and NOTIFY messages are processed the moment they are read, even
//! while a finished result waits to be collected, and other messages only
//! while a query is busy.  tokio-postgres delivers notices on a separate
//! channel from results, which loses that order, so the spec connections use
//! this client: the message codec and authentication of `postgres-protocol`
//! (the protocol crate under tokio-postgres) driven by libpq's parsing rules.
//! Nothing here reads the socket unless asked to, as with libpq.

use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend, frontend};
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

/// Where and how to connect (a resolved subset of libpq's parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnParams {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub dbname: String,
    pub application_name: Option<String>,
    pub options: Option<String>,
    /// Further startup parameters (libpq's PGDATESTYLE, PGTZ, …).
    pub extra: Vec<(String, String)>,
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    Unix(PathBuf),
}

impl ConnParams {
    /// "host=… port=…" style description for error messages.
    pub fn describe(&self) -> String {
        match &self.host {
            Host::Tcp(h) => format!(
                "server at {}:{} (database \"{}\", user \"{}\")",
                h, self.port, self.dbname, self.user
            ),
            Host::Unix(p) => format!(
                "server on socket \"{}/.s.PGSQL.{}\" (database \"{}\", user \"{}\")",
                p.display(),
                self.port,
                self.dbname,
                self.user
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("could not connect to {target}: {source}")]
    Connect { target: String, source: io::Error },
    #[error("connection to {target} was refused by the server: {message}")]
    Rejected { target: String, message: String },
    #[error("connection to {target} timed out: no complete answer within {secs} s (connect_timeout, PGCONNECT_TIMEOUT)")]
    ConnectTimeout { target: String, secs: u64 },
    #[error("{0}")]
    Unsupported(String),
    #[error("I/O error on the connection: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("server closed the connection unexpectedly")]
    Closed,
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerMessage {
    pub fields: Vec<(u8, String)>,
}

impl ServerMessage {
    pub fn field(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    /// Localized severity (`S`), as libpq shows it.
    pub fn severity(&self) -> Option<&str> {
        self.field(b'S')
    }

    pub fn primary(&self) -> Option<&str> {
        self.field(b'M')
    }

    pub fn sqlstate(&self) -> Option<&str> {
        self.field(b'C')
    }

    /// The text libpq builds for this message with default verbosity
    /// (pqBuildErrorMessage3): severity and primary message, the cursor
    /// display for a statement position, DETAIL, HINT, QUERY, and CONTEXT for
    /// errors only.  `query` is the statement that was running.
    pub fn format_libpq(&self, is_error: bool, query: Option<&str>) -> String {
        let mut msg = String::new();
        if let Some(sev) = self.severity() {
            msg.push_str(sev);
            msg.push_str(":  ");
        }
        if let Some(m) = self.primary() {
            msg.push_str(m);
        }
        let mut cursor: Option<(&str, i64)> = None;
        if let Some(pos) = self.field(b'P') {
            match query {
                Some(q) => cursor = Some((q, atoi(pos))),
                None => msg.push_str(&format!(" at character {pos}")),
            }
        } else if let Some(pos) = self.field(b'p') {
            match self.field(b'q') {
                Some(q) => cursor = Some((q, atoi(pos))),
                None => msg.push_str(&format!(" at character {pos}")),
            }
        }
        msg.push('\n');
        if let Some((q, pos)) = cursor {
            if pos > 0 {
                report_error_position(&mut msg, q, pos);
            }
        }
        if let Some(v) = self.field(b'D') {
            msg.push_str(&format!("DETAIL:  {v}\n"));
        }
        if let Some(v) = self.field(b'H') {
            msg.push_str(&format!("HINT:  {v}\n"));
        }
        if let Some(v) = self.field(b'q') {
            msg.push_str(&format!("QUERY:  {v}\n"));
        }
        if is_error {
            if let Some(v) = self.field(b'W') {
                msg.push_str(&format!("CONTEXT:  {v}\n"));
            }
        }
        msg
    }
}

fn atoi(s: &str) -> i64 {
    let digits: String = s
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(0)
}

fn display_width(c: char) -> usize {
    let u = c as u32;
    if u < 0x20 || u == 0x7f {
        return 1;
    }
    // East Asian wide ranges (as ucs_wcwidth treats them).
    let wide = (0x1100..=0x115f).contains(&u)
        || (0x2e80..=0xa4cf).contains(&u) && u != 0x303f
        || (0xac00..=0xd7a3).contains(&u)
        || (0xf900..=0xfaff).contains(&u)
        || (0xfe30..=0xfe6f).contains(&u)
        || (0xff00..=0xff5f).contains(&u)
        || (0xffe0..=0xffe6).contains(&u)
        || (0x20000..=0x2fffd).contains(&u)
        || (0x30000..=0x3fffd).contains(&u);
    if wide {
        2
    } else {
        1
    }
}

/// libpq's reportErrorPosition: the `LINE n:` and cursor lines.
fn report_error_position(msg: &mut String, query: &str, loc: i64) {
    const DISPLAY_SIZE: usize = 60;
    const MIN_RIGHT_CUT: usize = 10;
    let loc = loc - 1;
    if loc < 0 {
        return;
    }
    let loc = loc as usize;
    let chars: Vec<char> = query
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let orig: Vec<char> = query.chars().collect();
    let mut scr = Vec::with_capacity(chars.len() + 1);
    let mut scroffset = 0usize;
    let mut loc_line = 1;
    let mut ibeg = 0usize;
    let mut iend: Option<usize> = None;
    let mut cno = 0usize;
    while cno < chars.len() {
        let ch = orig[cno];
        scr.push(scroffset);
        if ch == '\r' || ch == '\n' {
            if cno < loc {
                if ch == '\r' || cno == 0 || orig[cno - 1] != '\r' {
                    loc_line += 1;
                }
                ibeg = cno + 1;
            } else {
                iend = Some(cno);
                break;
            }
        }
        scroffset += display_width(chars[cno]);
        cno += 1;
    }
    let mut iend = match iend {
        Some(e) => e,
        None => {
            scr.push(scroffset);
            cno
        }
    };
    if loc > cno {
        return;
    }
    let mut beg_trunc = false;
    let mut end_trunc = false;
    if scr[iend] - scr[ibeg] > DISPLAY_SIZE {
        if scr[ibeg] + DISPLAY_SIZE >= scr[loc] + MIN_RIGHT_CUT {
            while scr[iend] - scr[ibeg] > DISPLAY_SIZE {
                iend -= 1;
            }
            end_trunc = true;
        } else {
            while scr[loc] + MIN_RIGHT_CUT < scr[iend] {
                iend -= 1;
                end_trunc = true;
            }
            while scr[iend] - scr[ibeg] > DISPLAY_SIZE {
                ibeg += 1;
                beg_trunc = true;
            }
        }
    }
    let mut prefix = format!("LINE {loc_line}: ");
    if beg_trunc {
        prefix.push_str("...");
    }
    let prefix_width: usize = prefix.chars().map(display_width).sum();
    msg.push_str(&prefix);
    msg.extend(&chars[ibeg..iend]);
    if end_trunc {
        msg.push_str("...");
    }
    msg.push('\n');
    let pad = prefix_width + scr[loc] - scr[ibeg];
    msg.extend(std::iter::repeat_n(' ', pad));
    msg.push_str("^\n");
}

/// A result, as libpq's PGresult would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgResult {
    /// PGRES_COMMAND_OK, with the command tag.
    Command(String),
    /// PGRES_EMPTY_QUERY
    Empty,
    /// PGRES_TUPLES_OK
    Tuples(Tuples),
    /// PGRES_FATAL_ERROR from the server.
    Error(ServerMessage),
    /// PGRES_FATAL_ERROR made by the client (no fields), with libpq's text.
    ClientError(String),
    /// A COPY result, which spec steps cannot use.
    Copy(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tuples {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// An asynchronous notification (NOTIFY).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub pid: i32,
    pub channel: String,
    pub payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AsyncState {
    Idle,
    Busy,
    Ready,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
        }
    }

    /// A real non-blocking read, like libpq's PQconsumeInput: tokio's
    /// `try_read` answers "would block" without asking the kernel when its
    /// driver has not yet seen the socket's readiness, which happens when
    /// the runtime has not parked since the data arrived (a step's notices
    /// sent before it blocked could then be missed when the lock wait query
    /// says it is blocked).  After "would block", tokio's readiness is
    /// cleared so that `readable()` waits for new data.
    fn recv_now(&self, chunk: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        };
        match nix::sys::socket::recv(fd, chunk, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
            Ok(n) => Ok(n),
            Err(errno) => {
                let e = io::Error::from(errno);
                if e.kind() == io::ErrorKind::WouldBlock {
                    let would_block = || Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock));
                    let _ = match self {
                        Stream::Tcp(s) => s.try_io(tokio::io::Interest::READABLE, would_block),
                        Stream::Unix(s) => s.try_io(tokio::io::Interest::READABLE, would_block),
                    };
                }
                Err(e)
            }
        }
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buf),
            Stream::Unix(s) => s.try_read_buf(buf),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(data).await,
            Stream::Unix(s) => s.write_all(data).await,
        }
    }
}

async fn open_stream(params: &ConnParams) -> Result<Stream, WireError> {
    let target = params.describe();
    let fut = async {
        match &params.host {
            Host::Tcp(h) => {
                let s = TcpStream::connect((h.as_str(), params.port)).await?;
                s.set_nodelay(true)?;
                Ok::<_, io::Error>(Stream::Tcp(s))
            }
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{}", params.port));
                Ok(Stream::Unix(UnixStream::connect(path).await?))
            }
        }
    };
    let res = match params.connect_timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .map_err(|_| WireError::ConnectTimeout {
                target: target.clone(),
                secs: t.as_secs(),
            })?,
        None => fut.await,
    };
    res.map_err(|source| WireError::Connect { target, source })
}

/// The `-c name=value` and `--name=value` settings of a libpq `options`
/// string (backslash escapes a space).
pub fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let setting = if w == "-c" {
            i += 1;
            words.get(i).cloned()
        } else if let Some(r) = w.strip_prefix("-c") {
            Some(r.to_string())
        } else {
            w.strip_prefix("--").map(str::to_string)
        };
        if let Some((k, v)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            out.push((k.replace('-', "_"), v.to_string()));
        }
        i += 1;
    }
    out
}

/// One connection, driven like libpq's asynchronous API.
pub struct Conn {
    stream: Stream,
    params: ConnParams,
    inbuf: BytesMut,
    state: AsyncState,
    building: Option<Tuples>,
    ready: Option<PgResult>,
    notices: VecDeque<ServerMessage>,
    notifies: VecDeque<Notification>,
    /// The pid the backend reported for itself (pg_backend_pid()); until
    /// asked, the connection key's.  Behind a pooler the two differ.
    pid: i32,
    /// BackendKeyData: what a cancel request must name (a pooler's own).
    key_pid: i32,
    secret: i32,
    server_version: String,
    broken: bool,
    query: String,
    /// Formatted errors since the last query was sent (PQerrorMessage).
    error_message: String,
    /// Settings of the `options` startup parameter a pooler refused.
    deferred: Vec<(String, String)>,
}

const CLOSED_MSG: &str = "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.\n";

impl Conn {
    /// Connects and authenticates (trust, password, md5 or SCRAM-SHA-256).
    /// Connects and authenticates; `connect_timeout` bounds the whole of it
    /// (a stalled server or pooler may accept the socket and then say
    /// nothing).
    /// A pooler that refuses the `options` startup parameter (PgBouncer:
    /// "unsupported startup parameter: options") gets a second attempt
    /// without it; its `-c name=value` settings are then in
    /// `deferred_settings`, for the caller to apply with set_config.
    pub async fn connect(params: &ConnParams) -> Result<Conn, WireError> {
        match Self::connect_timed(params).await {
            Err(WireError::Rejected { message, .. })
                if params.options.is_some()
                    && message.contains("unsupported startup parameter: options") =>
            {
                let mut p = params.clone();
                let settings = parse_options(p.options.take().as_deref().unwrap_or(""));
                let mut conn = Self::connect_timed(&p).await?;
                conn.deferred = settings;
                Ok(conn)
            }
            r => r,
        }
    }

    /// Settings of `options` the server never saw (see `connect`).
    pub fn deferred_settings(&self) -> &[(String, String)] {
        &self.deferred
    }

    async fn connect_timed(params: &ConnParams) -> Result<Conn, WireError> {
        match params.connect_timeout {
            Some(t) => tokio::time::timeout(t, Self::connect_now(params))
                .await
                .map_err(|_| WireError::ConnectTimeout {
                    target: params.describe(),
                    secs: t.as_secs(),
                })?,
            None => Self::connect_now(params).await,
        }
    }

    async fn connect_now(params: &ConnParams) -> Result<Conn, WireError> {
        let mut stream = open_stream(params).await?;
        let target = params.describe();
        let mut out = BytesMut::new();
        let mut startup: Vec<(&str, &str)> =
            vec![("user", &params.user), ("database", &params.dbname)];
        if let Some(a) = &params.application_name {
            startup.push(("application_name", a));
        }
        if let Some(o) = &params.options {
            startup.push(("options", o));
        }
        for (k, v) in &params.extra {
            startup.push((k, v));
        }
        frontend::startup_message(startup.iter().copied(), &mut out)?;
        stream.write_all(&out).await?;
        let mut conn = Conn {
            stream,
            params: params.clone(),
            inbuf: BytesMut::with_capacity(8192),
            state: AsyncState::Idle,
            building: None,
            ready: None,
            notices: VecDeque::new(),
            notifies: VecDeque::new(),
            pid: 0,
            key_pid: 0,
            secret: 0,
            server_version: String::new(),
            broken: false,
            query: String::new(),
            error_message: String::new(),
            deferred: Vec::new(),
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let msg = conn.read_message().await?;
            match msg {
                backend::Message::AuthenticationOk => {}
                backend::Message::AuthenticationCleartextPassword => {
                    let pw = conn.password(&target)?;
                    let mut out = BytesMut::new();
                    frontend::password_message(&pw, &mut out)?;
                    conn.stream.write_all(&out).await?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let pw = conn.password(&target)?;
                    let hash = md5_hash(params.user.as_bytes(), &pw, body.salt());
                    let mut out = BytesMut::new();
                    frontend::password_message(hash.as_bytes(), &mut out)?;
                    conn.stream.write_all(&out).await?;
                }
                backend::Message::AuthenticationSasl(body) => {
                    let mut mechs = body.mechanisms();
                    let mut ok = false;
                    while let Some(m) = mechs.next().map_err(|e| WireError::Protocol(e.to_string()))? {
                        ok |= m == sasl::SCRAM_SHA_256;
                    }
                    if !ok {
                        return Err(WireError::Unsupported(format!("{target}: no supported SASL mechanism offered")));
                    }
                    let pw = conn.password(&target)?;
                    let s = sasl::ScramSha256::new(&pw, sasl::ChannelBinding::unsupported());
                    let mut out = BytesMut::new();
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut out)?;
                    conn.stream.write_all(&out).await?;
                    scram = Some(s);
                }
                backend::Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| WireError::Protocol("unexpected SASL continue".into()))?;
                    s.update(body.data())?;
                    let mut out = BytesMut::new();
                    frontend::sasl_response(s.message(), &mut out)?;
                    conn.stream.write_all(&out).await?;
                }
                backend::Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| WireError::Protocol("unexpected SASL final".into()))?;
                    s.finish(body.data())?;
                }
                backend::Message::BackendKeyData(body) => {
                    conn.pid = body.process_id();
                    conn.key_pid = body.process_id();
                    conn.secret = body.secret_key();
                }
                backend::Message::ParameterStatus(body) => {
                    if body.name()? == "server_version" {
                        conn.server_version = body.value()?.to_string();
                    }
                }
                backend::Message::NoticeResponse(_) => {}
                backend::Message::ReadyForQuery(_) => break,
                backend::Message::ErrorResponse(body) => {
                    let m = parse_fields(body.fields())?;
                    return Err(WireError::Rejected { target, message: m.format_libpq(true, None).trim_end().to_string() });
                }
                _ => {
                    return Err(WireError::Unsupported(format!(
                        "{target}: unsupported authentication request (only trust, password, md5 and SCRAM-SHA-256 are supported)"
                    )))
                }
            }
        }
        Ok(conn)
    }

    fn password(&self, target: &str) -> Result<Vec<u8>, WireError> {
        self.params.password.clone().ok_or_else(|| WireError::Rejected {
            target: target.to_string(),
            message: "the server requested a password but none was given (use PGPASSWORD, a conninfo password, or trust authentication)".into(),
        })
    }

    /// Reads one whole message during startup.
    async fn read_message(&mut self) -> Result<backend::Message, WireError> {
        loop {
            if let Some(m) = backend::Message::parse(&mut self.inbuf)? {
                return Ok(m);
            }
            self.read_more().await?;
        }
    }

    pub fn backend_pid(&self) -> i32 {
        self.pid
    }

    /// The pid of the connection's cancel key (PQbackendPID).
    pub fn key_pid(&self) -> i32 {
        self.key_pid
    }

    /// Records the pid the backend reported for itself.
    pub fn set_backend_pid(&mut self, pid: i32) {
        self.pid = pid;
    }

    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// PQerrorMessage: the formatted errors of the current query.
    pub fn error_message(&self) -> &str {
        &self.error_message
    }

    /// Sends a simple query (PQsendQuery).
    pub async fn send_query(&mut self, sql: &str) -> Result<(), WireError> {
        if self.broken {
            return Err(WireError::Closed);
        }
        let mut out = BytesMut::with_capacity(sql.len() + 6);
        out.extend_from_slice(b"Q");
        out.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        out.extend_from_slice(sql.as_bytes());
        out.extend_from_slice(&[0]);
        self.begin_query(sql);
        self.write(&out).await
    }

    fn begin_query(&mut self, sql: &str) {
        self.query.clear();
        self.query.push_str(sql);
        self.error_message.clear();
        self.state = AsyncState::Busy;
        self.ready = None;
        self.building = None;
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), WireError> {
        if let Err(e) = self.stream.write_all(data).await {
            self.broken = true;
            return Err(e.into());
        }
        Ok(())
    }

    /// Prepares a named statement (PQprepare), waiting for the outcome.
    pub async fn prepare(&mut self, name: &str, sql: &str) -> Result<Option<PgResult>, WireError> {
        let mut out = BytesMut::new();
        frontend::parse(name, sql, std::iter::empty(), &mut out)?;
        frontend::sync(&mut out);
        self.begin_query(sql);
        self.write(&out).await?;
        self.finish_exec().await
    }

    /// Runs a prepared statement with text parameters (PQexecPrepared).
    pub async fn exec_prepared(
        &mut self,
        name: &str,
        params: &[&str],
    ) -> Result<Option<PgResult>, WireError> {
        let mut out = BytesMut::new();
        encode_bind_execute(name, params, &mut out)?;
        self.begin_query("");
        self.write(&out).await?;
        self.finish_exec().await
    }

    /// PQexecParams with text parameters: parse, bind and execute an
    /// unnamed statement; returns the last result.
    pub async fn exec_params(
        &mut self,
        sql: &str,
        params: &[&str],
    ) -> Result<Option<PgResult>, WireError> {
        let mut out = BytesMut::new();
        frontend::parse("", sql, std::iter::empty(), &mut out)?;
        encode_bind_execute("", params, &mut out)?;
        self.begin_query(sql);
        self.write(&out).await?;
        self.finish_exec().await
    }

    /// PQexec: sends `sql` and returns the last result.
    pub async fn exec(&mut self, sql: &str) -> Result<Option<PgResult>, WireError> {
        self.send_query(sql).await?;
        self.finish_exec().await
    }

    async fn finish_exec(&mut self) -> Result<Option<PgResult>, WireError> {
        let mut last = None;
        while let Some(r) = self.get_result().await? {
            last = Some(r);
        }
        Ok(last)
    }

    /// Waits until the socket is readable or `timeout` passes; returns
    /// whether it is readable.
    pub async fn wait_readable(&self, timeout: Duration) -> Result<bool, WireError> {
        match tokio::time::timeout(timeout, self.stream.readable()).await {
            Ok(r) => {
                r?;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// PQconsumeInput: reads whatever has arrived, without waiting, and parses it.
    pub fn consume_input(&mut self) -> Result<(), WireError> {
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.recv_now(&mut chunk) {
                Ok(0) => {
                    self.on_eof();
                    break;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&chunk[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.on_eof();
                    if self.state == AsyncState::Idle {
                        return Err(e.into());
                    }
                    break;
                }
            }
        }
        self.parse_input()
    }

    /// Reads at least some bytes, waiting for them.
    async fn read_more(&mut self) -> Result<(), WireError> {
        loop {
            if let Err(e) = self.stream.readable().await {
                self.on_eof();
                return Err(e.into());
            }
            self.inbuf.reserve(8192);
            match self.stream.try_read_buf(&mut self.inbuf) {
                Ok(0) => {
                    let was_idle = self.state == AsyncState::Idle;
                    self.on_eof();
                    if was_idle {
                        return Err(WireError::Closed);
                    }
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    continue
                }
                Err(e) => {
                    let was_idle = self.state == AsyncState::Idle;
                    self.on_eof();
                    if was_idle {
                        return Err(e.into());
                    }
                    return Ok(());
                }
            }
        }
    }

    /// The connection is gone.  Complete messages already read are still
    /// parsed; the query in progress ends with libpq's "server closed the
    /// connection unexpectedly" result when it is next collected, as with
    /// libpq, which notices end-of-file only on its next read.
    fn on_eof(&mut self) {
        if self.broken {
            return;
        }
        self.broken = true;
        let _ = self.parse_input();
    }

    /// libpq's pqParseInput3: NOTICE/NOTIFY are handled whenever read;
    /// everything else only while busy.
    fn parse_input(&mut self) -> Result<(), WireError> {
        loop {
            let Some(header) = backend::Header::parse(&self.inbuf)? else {
                return Ok(());
            };
            let total = header.len() as usize + 1;
            if self.inbuf.len() < total {
                return Ok(());
            }
            let tag = header.tag();
            let handle_now = matches!(tag, b'N' | b'A')
                || self.state == AsyncState::Busy
                || (self.state == AsyncState::Idle && tag == b'S');
            if !handle_now {
                if self.state == AsyncState::Idle {
                    // Unexpected message while idle: drop it, as libpq does
                    // after complaining.
                    self.inbuf.advance(total);
                    continue;
                }
                return Ok(());
            }
            let msg = backend::Message::parse(&mut self.inbuf)?
                .ok_or_else(|| WireError::Protocol("incomplete message".into()))?;
            match msg {
                backend::Message::NoticeResponse(body) => {
                    self.notices.push_back(parse_fields(body.fields())?);
                }
                backend::Message::NotificationResponse(body) => {
                    self.notifies.push_back(Notification {
                        pid: body.process_id(),
                        channel: body.channel()?.to_string(),
                        payload: body.message()?.to_string(),
                    })
                }
                backend::Message::ParameterStatus(_) => {}
                backend::Message::RowDescription(body) => {
                    let mut cols = Vec::new();
                    let mut it = body.fields();
                    while let Some(f) = it.next()? {
                        cols.push(f.name().to_string());
                    }
                    self.building = Some(Tuples {
                        columns: cols,
                        rows: Vec::new(),
                    });
                }
                backend::Message::DataRow(body) => {
                    let buf = body.buffer();
                    let mut row = Vec::new();
                    let mut it = body.ranges();
                    while let Some(r) = it.next()? {
                        row.push(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned()));
                    }
                    self.building
                        .get_or_insert_with(Tuples::default)
                        .rows
                        .push(row);
                }
                backend::Message::CommandComplete(body) => {
                    let tag = body.tag()?.to_string();
                    self.ready = Some(match self.building.take() {
                        Some(t) => PgResult::Tuples(t),
                        None => PgResult::Command(tag),
                    });
                    self.state = AsyncState::Ready;
                }
                backend::Message::EmptyQueryResponse => {
                    self.ready = Some(PgResult::Empty);
                    self.state = AsyncState::Ready;
                }
                backend::Message::ErrorResponse(body) => {
                    let m = parse_fields(body.fields())?;
                    let q = if self.query.is_empty() {
                        None
                    } else {
                        Some(self.query.as_str())
                    };
                    self.error_message.push_str(&m.format_libpq(true, q));
                    self.building = None;
                    self.ready = Some(PgResult::Error(m));
                    self.state = AsyncState::Ready;
                }
                backend::Message::ReadyForQuery(_) => {
                    self.state = AsyncState::Idle;
                }
                backend::Message::ParseComplete => {
                    self.ready = Some(PgResult::Command(String::new()));
                    self.state = AsyncState::Ready;
                }
                backend::Message::CopyInResponse(_) => {
                    self.ready = Some(PgResult::Copy("PGRES_COPY_IN"));
                    self.state = AsyncState::Ready;
                }
                backend::Message::CopyOutResponse(_) => {
                    self.ready = Some(PgResult::Copy("PGRES_COPY_OUT"));
                    self.state = AsyncState::Ready;
                }
                _ => {}
            }
        }
    }

    /// PQisBusy (parses what has been read first).
    pub fn is_busy(&mut self) -> Result<bool, WireError> {
        self.parse_input()?;
        // A lost connection has a (client-made) result waiting.
        Ok(self.state == AsyncState::Busy && !self.broken)
    }

    /// PQgetResult: waits for the next result; None when the query is done.
    pub async fn get_result(&mut self) -> Result<Option<PgResult>, WireError> {
        loop {
            self.parse_input()?;
            match self.state {
                AsyncState::Ready => {
                    self.state = AsyncState::Busy;
                    return Ok(self.ready.take());
                }
                AsyncState::Idle => return Ok(None),
                AsyncState::Busy => {
                    if self.broken {
                        self.error_message.push_str(CLOSED_MSG);
                        self.building = None;
                        self.state = AsyncState::Idle;
                        return Ok(Some(PgResult::ClientError(CLOSED_MSG.to_string())));
                    }
                    self.read_more().await?;
                }
            }
        }
    }

    pub fn take_notice(&mut self) -> Option<ServerMessage> {
        self.notices.pop_front()
    }

    pub fn take_notify(&mut self) -> Option<Notification> {
        self.notifies.pop_front()
    }

    /// The text of the query most recently sent.
    pub fn last_query(&self) -> &str {
        &self.query
    }

    /// Sends a cancel request for whatever this connection is running.
    pub async fn cancel(&self) -> Result<(), WireError> {
        let mut s = open_stream(&self.params).await?;
        let mut out = BytesMut::new();
        frontend::cancel_request(self.key_pid, self.secret, &mut out);
        s.write_all(&out).await?;
        // Wait for the server to close the cancel connection, as PQcancel does.
        let mut buf = BytesMut::with_capacity(16);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if s.readable().await.is_err() {
                    break;
                }
                match s.try_read_buf(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                }
            }
        })
        .await;
        Ok(())
    }

    /// Sends Terminate; the connection is unusable afterwards.
    pub async fn close(mut self) {
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        let _ = self.stream.write_all(&out).await;
    }
}

fn encode_bind_execute(
    statement: &str,
    params: &[&str],
    out: &mut BytesMut,
) -> Result<(), WireError> {
    frontend::bind(
        "",
        statement,
        std::iter::empty::<i16>(),
        params.iter(),
        |p, buf| {
            buf.extend_from_slice(p.as_bytes());
            Ok::<_, Box<dyn std::error::Error + Sync + Send>>(postgres_protocol::IsNull::No)
        },
        Some(0),
        out,
    )
    .map_err(|_| WireError::Protocol("could not encode parameters".into()))?;
    frontend::execute("", 0, out)?;
    frontend::sync(out);
    Ok(())
}

fn parse_fields(mut fields: backend::ErrorFields<'_>) -> Result<ServerMessage, WireError> {
    let mut m = ServerMessage::default();
    while let Some(f) = fields.next()? {
        m.fields.push((
            f.type_(),
            String::from_utf8_lossy(f.value_bytes()).into_owned(),
        ));
    }
    Ok(m)
}

/// What the executor and the wait detector need of a connection: libpq's
/// calls, as `Conn` implements them.  A trait so that the executor's
/// ordering rules can be unit-tested against a scripted connection.
#[allow(async_fn_in_trait)]
pub trait Connection {
    /// The backend's pid: what it reported (pg_backend_pid()) once
    /// `set_backend_pid` recorded it, else the connection key's.
    fn backend_pid(&self) -> i32;
    fn set_backend_pid(&mut self, pid: i32);
    /// Where the connection goes, for messages ("server on socket …").
    fn server_description(&self) -> String;
    fn server_version(&self) -> &str;
    /// PQerrorMessage.
    fn error_message(&self) -> &str;
    fn last_query(&self) -> &str;
    fn take_notice(&mut self) -> Option<ServerMessage>;
    fn take_notify(&mut self) -> Option<Notification>;
    /// PQisBusy.
    fn is_busy(&mut self) -> Result<bool, WireError>;
    /// PQconsumeInput.
    fn consume_input(&mut self) -> Result<(), WireError>;
    /// PQsendQuery.
    async fn send_query(&mut self, sql: &str) -> Result<(), WireError>;
    /// PQexec.
    async fn exec(&mut self, sql: &str) -> Result<Option<PgResult>, WireError>;
    /// PQexecParams with text parameters.
    async fn exec_params(
        &mut self,
        sql: &str,
        params: &[&str],
    ) -> Result<Option<PgResult>, WireError>;
    /// PQprepare.
    async fn prepare(&mut self, name: &str, sql: &str) -> Result<Option<PgResult>, WireError>;
    /// PQexecPrepared with text parameters.
    async fn exec_prepared(
        &mut self,
        name: &str,
        params: &[&str],
    ) -> Result<Option<PgResult>, WireError>;
    /// Waits until input arrives or `timeout` passes; whether it arrived.
    async fn wait_readable(&self, timeout: Duration) -> Result<bool, WireError>;
    /// PQgetResult.
    async fn get_result(&mut self) -> Result<Option<PgResult>, WireError>;
    /// PQcancel.
    async fn cancel(&self) -> Result<(), WireError>;
    /// PQfinish.
    async fn close(self)
    where
        Self: Sized;
}

impl Connection for Conn {
    fn backend_pid(&self) -> i32 {
        Conn::backend_pid(self)
    }
    fn set_backend_pid(&mut self, pid: i32) {
        Conn::set_backend_pid(self, pid)
    }
    fn server_description(&self) -> String {
        self.params.describe()
    }
    fn server_version(&self) -> &str {
        Conn::server_version(self)
    }
    fn error_message(&self) -> &str {
        Conn::error_message(self)
    }
    fn last_query(&self) -> &str {
        Conn::last_query(self)
    }
    fn take_notice(&mut self) -> Option<ServerMessage> {
        Conn::take_notice(self)
    }
    fn take_notify(&mut self) -> Option<Notification> {
        Conn::take_notify(self)
    }
    fn is_busy(&mut self) -> Result<bool, WireError> {
        Conn::is_busy(self)
    }
    fn consume_input(&mut self) -> Result<(), WireError> {
        Conn::consume_input(self)
    }
    async fn send_query(&mut self, sql: &str) -> Result<(), WireError> {
        Conn::send_query(self, sql).await
    }
    async fn exec(&mut self, sql: &str) -> Result<Option<PgResult>, WireError> {
        Conn::exec(self, sql).await
    }
    async fn exec_params(
        &mut self,
        sql: &str,
        params: &[&str],
    ) -> Result<Option<PgResult>, WireError> {
        Conn::exec_params(self, sql, params).await
    }
    async fn prepare(&mut self, name: &str, sql: &str) -> Result<Option<PgResult>, WireError> {
        Conn::prepare(self, name, sql).await
    }
    async fn exec_prepared(
        &mut self,
        name: &str,
        params: &[&str],
    ) -> Result<Option<PgResult>, WireError> {
        Conn::exec_prepared(self, name, params).await
    }
    async fn wait_readable(&self, timeout: Duration) -> Result<bool, WireError> {
        Conn::wait_readable(self, timeout).await
    }
    async fn get_result(&mut self) -> Result<Option<PgResult>, WireError> {
        Conn::get_result(self).await
    }
    async fn cancel(&self) -> Result<(), WireError> {
        Conn::cancel(self).await
    }
    async fn close(self) {
        Conn::close(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data the runtime has not yet noticed (it has not parked since the
    /// data arrived) is read all the same, as libpq's recv() would.
    #[tokio::test]
    async fn consume_reads_data_the_runtime_has_not_noticed() {
        use std::io::Write;
        let (ours, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let s = Stream::Unix(UnixStream::from_std(ours).unwrap());
        let mut chunk = [0u8; 64];
        let e = s.recv_now(&mut chunk).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // Sent without the runtime's help; nothing awaits in between.
        peer.write_all(b"notice").unwrap();
        assert_eq!(s.recv_now(&mut chunk).unwrap(), 6);
        assert_eq!(&chunk[..6], b"notice");
        // Nothing more: "would block", and readable() waits for new data.
        let e = s.recv_now(&mut chunk).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let waited = tokio::time::timeout(Duration::from_millis(50), s.readable()).await;
        assert!(
            waited.is_err(),
            "readable() must not report stale readiness"
        );
        peer.write_all(b"x").unwrap();
        s.readable().await.unwrap();
        assert_eq!(s.recv_now(&mut chunk).unwrap(), 1);
    }

    fn msg(fields: &[(u8, &str)]) -> ServerMessage {
        ServerMessage {
            fields: fields.iter().map(|(c, v)| (*c, v.to_string())).collect(),
        }
    }

    #[test]
    fn notice_format_like_libpq() {
        let m = msg(&[
            (b'S', "NOTICE"),
            (b'M', "hello"),
            (b'D', "some detail"),
            (b'H', "a hint"),
            (b'W', "PL/pgSQL function"),
        ]);
        assert_eq!(
            m.format_libpq(false, None),
            "NOTICE:  hello\nDETAIL:  some detail\nHINT:  a hint\n"
        );
        assert_eq!(
            m.format_libpq(true, None),
            "NOTICE:  hello\nDETAIL:  some detail\nHINT:  a hint\nCONTEXT:  PL/pgSQL function\n"
        );
    }

    #[test]
    fn error_cursor_like_libpq() {
        let m = msg(&[
            (b'S', "ERROR"),
            (b'M', "syntax error at or near \"SELEC\""),
            (b'P', "1"),
        ]);
        assert_eq!(
            m.format_libpq(true, Some("SELEC 1;")),
            "ERROR:  syntax error at or near \"SELEC\"\nLINE 1: SELEC 1;\n        ^\n"
        );
        let m = msg(&[
            (b'S', "ERROR"),
            (b'M', "column \"x\" does not exist"),
            (b'P', "19"),
        ]);
        assert_eq!(
            m.format_libpq(true, Some("SELECT 1;\n\tSELECT x;\nSELECT 2")),
            "ERROR:  column \"x\" does not exist\nLINE 2:  SELECT x;\n                ^\n"
        );
        // Without the query text, the position goes into the message.
        assert_eq!(
            m.format_libpq(true, None),
            "ERROR:  column \"x\" does not exist at character 19\n"
        );
    }

    #[test]
    fn error_cursor_truncates_long_lines() {
        let q = format!(
            "SELECT {} + nosuchcol + {}",
            "1 + ".repeat(30),
            "2 + ".repeat(30)
        );
        let pos = q.find("nosuchcol").unwrap() + 1;
        let m = msg(&[(b'S', "ERROR"), (b'M', "m"), (b'P', &pos.to_string())]);
        let out = m.format_libpq(true, Some(&q));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].starts_with("LINE 1: ..."), "{out}");
        assert!(lines[1].ends_with("..."), "{out}");
        let caret = lines[2].find('^').unwrap();
        assert_eq!(&lines[1][caret..caret + 9], "nosuchcol");
    }
}
