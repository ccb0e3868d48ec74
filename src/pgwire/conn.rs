//! One connection, driven like libpq's asynchronous API (PQsendQuery,
//! PQconsumeInput, PQisBusy, PQgetResult, PQcancel).
//!
//! isolationtester's transcript depends on exactly when libpq parses what:
//! NOTICE and NOTIFY messages are processed the moment they are read, even
//! while a finished result waits to be collected, and other messages only
//! while a query is busy.  tokio-postgres delivers notices on a separate
//! channel from results, which loses that order, so the spec connections use
//! this client: the message codec of `postgres-protocol` driven by libpq's
//! parsing rules (`protocol.rs`).  Nothing here reads the socket unless
//! asked to, as with libpq.

use super::messages::{ServerMessage, CLOSED_MSG};
use super::protocol::{self, AsyncState, Inbox, Notification, PgResult};
use super::settings::{describe_target, ConnParams};
use super::transport::{self, Endpoint, Stream, Want};
use super::WireError;
use bytes::BytesMut;
use postgres_protocol::message::{backend, frontend};
use std::io;
use std::time::Duration;

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
    /// The host, address and encryption the connection got.
    pub(crate) endpoint: Endpoint,
    inbox: Inbox,
    /// The pid the backend reported for itself (pg_backend_pid()); until
    /// asked, the connection key's.  Behind a pooler the two differ.
    pid: i32,
    /// BackendKeyData: what a cancel request must name (a pooler's own).
    key_pid: i32,
    secret: i32,
    /// Settings of the `options` startup parameter a pooler refused.
    deferred: Vec<(String, String)>,
}

impl Conn {
    pub(crate) fn new(stream: Stream, params: ConnParams, endpoint: Endpoint) -> Conn {
        Conn {
            stream,
            params,
            endpoint,
            inbox: Inbox::new(),
            pid: 0,
            key_pid: 0,
            secret: 0,
            deferred: Vec::new(),
        }
    }

    /// Settings of `options` the server never saw (see `connect`).
    pub fn deferred_settings(&self) -> &[(String, String)] {
        &self.deferred
    }

    /// Records the settings of a refused `options` (see `connect`).
    pub(crate) fn defer(&mut self, options: Option<String>, settings: Vec<(String, String)>) {
        self.params.options = options;
        self.deferred = settings;
    }

    /// Where this connection went ("server at … (database …, user …)").
    pub fn server_description(&self) -> String {
        describe_target(
            &self.endpoint.target,
            1,
            &self.params.dbname,
            &self.params.user,
        )
    }

    pub(crate) fn set_key(&mut self, pid: i32, secret: i32) {
        self.pid = pid;
        self.key_pid = pid;
        self.secret = secret;
    }

    pub(crate) fn record_parameter(&mut self, name: String, value: String) {
        self.inbox.parameters.retain(|(n, _)| *n != name);
        self.inbox.parameters.push((name, value));
    }

    /// A ParameterStatus value the server reported.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.inbox.parameter(name)
    }

    pub(crate) async fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data).await
    }

    /// Reads one whole message during startup, checked before it is read
    /// in full: while `authenticating`, only an authentication request or
    /// an error; afterwards, pqParseInput3's length rule.
    pub(crate) async fn read_startup_message(
        &mut self,
        authenticating: bool,
    ) -> Result<backend::Message, String> {
        loop {
            if let Some((tag, len)) = protocol::header(&self.inbox.inbuf) {
                if authenticating {
                    protocol::check_auth_header(tag, len).map_err(|v| v.to_string())?;
                } else {
                    protocol::check_header(tag, len).map_err(|v| v.to_string())?;
                }
                if self.inbox.inbuf.len() > len as usize {
                    let mut one = self.inbox.inbuf.split_to(len as usize + 1);
                    return match backend::Message::parse(&mut one) {
                        Ok(Some(m)) => Ok(m),
                        _ if tag == b'E' => Err("received invalid error message".into()),
                        _ => Err(format!(
                            "message contents do not agree with length in message type \"{}\"",
                            protocol::shown_type(tag)
                        )),
                    };
                }
            }
            match self.read_more().await {
                Ok(()) if !self.inbox.broken => {}
                _ => return Err(CLOSED_MSG.trim_end().to_string()),
            }
        }
    }

    pub fn backend_pid(&self) -> i32 {
        self.pid
    }

    /// Records the pid the backend reported for itself.
    pub fn set_backend_pid(&mut self, pid: i32) {
        self.pid = pid;
    }

    pub fn server_version(&self) -> &str {
        self.inbox.parameter("server_version").unwrap_or("")
    }

    /// PQerrorMessage: the formatted errors of the current query.
    pub fn error_message(&self) -> &str {
        &self.inbox.error_message
    }

    /// Sends a simple query (PQsendQuery).
    pub async fn send_query(&mut self, sql: &str) -> Result<(), WireError> {
        if self.inbox.broken {
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
        self.inbox.begin_query(sql);
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), WireError> {
        if let Err(e) = self.stream.write_all(data).await {
            self.inbox.broken = true;
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
                    self.inbox.feed(&chunk[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.on_eof();
                    if self.inbox.state == AsyncState::Idle {
                        return Err(e.into());
                    }
                    break;
                }
            }
        }
        self.inbox.parse_input();
        Ok(())
    }

    /// Reads at least some bytes, waiting for them.
    async fn read_more(&mut self) -> Result<(), WireError> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Err(e) = self.stream.readable().await {
                self.on_eof();
                return Err(e.into());
            }
            match self.stream.recv_now(&mut chunk) {
                Ok(0) => {
                    let was_idle = self.inbox.state == AsyncState::Idle;
                    self.on_eof();
                    if was_idle {
                        return Err(WireError::Closed);
                    }
                    return Ok(());
                }
                Ok(n) => {
                    self.inbox.feed(&chunk[..n]);
                    return Ok(());
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    continue
                }
                Err(e) => {
                    let was_idle = self.inbox.state == AsyncState::Idle;
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
        if self.inbox.broken {
            return;
        }
        self.inbox.parse_input();
        self.inbox.broken = true;
    }

    /// PQisBusy (parses what has been read first).
    pub fn is_busy(&mut self) -> Result<bool, WireError> {
        self.inbox.parse_input();
        // A lost connection has a (client-made) result waiting.
        Ok(self.inbox.state == AsyncState::Busy && !self.inbox.broken)
    }

    /// PQgetResult: waits for the next result; None when the query is done.
    pub async fn get_result(&mut self) -> Result<Option<PgResult>, WireError> {
        loop {
            self.inbox.parse_input();
            match self.inbox.state {
                AsyncState::Ready => return Ok(self.inbox.take_ready()),
                AsyncState::Idle => return Ok(None),
                AsyncState::Busy => {
                    if self.inbox.broken {
                        return Ok(Some(self.inbox.closed_result(CLOSED_MSG)));
                    }
                    self.read_more().await?;
                }
            }
        }
    }

    pub fn take_notice(&mut self) -> Option<ServerMessage> {
        self.inbox.take_notice()
    }

    pub fn take_notify(&mut self) -> Option<Notification> {
        self.inbox.take_notify()
    }

    /// The text of the query most recently sent.
    pub fn last_query(&self) -> &str {
        &self.inbox.query
    }

    /// Sends a cancel request for whatever this connection is running, to
    /// the address the connection went to and encrypted when it was (as
    /// libpq 17's PQcancelCreate does).
    pub async fn cancel(&self) -> Result<(), WireError> {
        self.cancel_key().send().await
    }

    /// What a cancel request for this connection needs, apart from it.
    pub(crate) fn cancel_key(&self) -> CancelKey {
        CancelKey {
            params: self.params.clone(),
            endpoint: self.endpoint.clone(),
            pid: self.key_pid,
            secret: self.secret,
        }
    }

    /// The connection as a byte pipe, for a proxy that relays a client's
    /// messages after this connection's startup: the stream, what was
    /// read past the last startup message, the ParameterStatus values
    /// reported, and the cancel key.
    pub(crate) fn into_relay(self) -> Relay {
        Relay {
            leftover: self.inbox.inbuf.to_vec(),
            parameters: self.inbox.parameters.clone(),
            cancel: CancelKey {
                params: self.params,
                endpoint: self.endpoint,
                pid: self.key_pid,
                secret: self.secret,
            },
            stream: self.stream,
        }
    }

    /// Sends Terminate; the connection is unusable afterwards.
    pub async fn close(mut self) {
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        let _ = self.stream.write_all(&out).await;
    }

    /// Sends Terminate and waits, at most `limit`, for the server to close
    /// the connection: a backend closes its socket only after its exit
    /// work (releasing shared memory, flushing statistics), so what runs
    /// next does not share the CPUs with a backend still exiting.
    pub async fn close_and_wait(mut self, limit: Duration) {
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        let stream = &mut self.stream;
        let gone = async {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            let mut chunk = [0u8; 1024];
            loop {
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.recv_now(&mut chunk) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(limit, gone).await;
    }
}

/// A connection taken apart for relaying (see `Conn::into_relay`).
pub(crate) struct Relay {
    pub stream: Stream,
    pub leftover: Vec<u8>,
    pub parameters: Vec<(String, String)>,
    pub cancel: CancelKey,
}

/// Where and with which key to send a cancel request for one backend.
#[derive(Clone)]
pub(crate) struct CancelKey {
    params: ConnParams,
    endpoint: Endpoint,
    pub pid: i32,
    pub secret: i32,
}

impl CancelKey {
    /// Sends the cancel request and waits for the server to close the
    /// cancel connection, as PQcancel does.
    pub async fn send(&self) -> Result<(), WireError> {
        let want = if self.endpoint.tls {
            Want::MustTls
        } else {
            Want::Plain
        };
        let limit = self
            .params
            .connect_timeout
            .unwrap_or(super::settings::DEFAULT_CONNECT_TIMEOUT);
        let open = transport::open(
            &self.params.tls,
            &self.endpoint.target,
            &self.endpoint.addr,
            want,
        );
        let mut s = match tokio::time::timeout(limit, open).await {
            Ok(Ok(s)) => s,
            Ok(Err(f)) => {
                return Err(WireError::Connect {
                    message: format!("could not send cancel request: {}", f.text),
                    options_refused: false,
                })
            }
            Err(_) => {
                return Err(WireError::Connect {
                    message: "could not send cancel request: timeout expired".into(),
                    options_refused: false,
                })
            }
        };
        let mut out = BytesMut::new();
        frontend::cancel_request(self.pid, self.secret, &mut out);
        s.write_all(&out).await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 64];
            loop {
                if s.readable().await.is_err() {
                    break;
                }
                match s.recv_now(&mut buf) {
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

/// What the executor and the wait detector need of a connection: libpq's
/// calls, as `Conn` implements them.  A trait so that the executor's
/// ordering rules can be unit-tested against a scripted connection.
#[allow(async_fn_in_trait)]
pub trait Connection {
    /// The backend's pid: what it reported (pg_backend_pid()) once
    /// `set_backend_pid` recorded it, else the connection key's.
    fn backend_pid(&self) -> i32;
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
    /// PQfinish, then (a real connection) until the server has closed
    /// it: see `Conn::close_and_wait`.
    async fn close(self)
    where
        Self: Sized;
}

impl Connection for Conn {
    fn backend_pid(&self) -> i32 {
        Conn::backend_pid(self)
    }
    fn server_description(&self) -> String {
        Conn::server_description(self)
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
        Conn::close_and_wait(self, Duration::from_secs(10)).await
    }
}
