//! The recording proxy: a loopback listener that speaks the server's side
//! of the startup to each client (no TLS, no password: the proxy connects
//! upstream with the recording's own credentials, as `run` connects),
//! then relays every byte unchanged in both directions while a `Tracer`
//! reads along.  Cancel requests are forwarded to the backend they name.

use super::trace::{message, Ending, Log, SessionInfo, Tracer};
use crate::pgwire::RelayStream;
use crate::pgwire::{CancelKey, Conn, ConnParams, Relay};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
const PROTOCOL_3_0: i32 = 196_608;
/// How long a statement is held back while another session's statement
/// runs without a wait the detector sees.
const GATE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What every connection of the proxy shares.
pub struct Shared {
    pub log: Mutex<Log>,
    /// How to reach the server (the recording's database and user).
    pub upstream: ConnParams,
    /// Cancel keys by backend pid.
    cancels: Mutex<HashMap<(i32, i32), CancelKey>>,
    /// The wait detector on its control connection.
    pub waits: tokio::sync::Mutex<Option<super::waits::Waits>>,
    /// Woken whenever the server answers something (a statement may have
    /// completed).
    progress: tokio::sync::Notify,
    /// The connections' tasks, stopped before the recording is taken.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// What clients asked for that the proxy refused, each kind once with
    /// its count (for the error when nothing was recorded).
    refused: Mutex<Vec<(String, usize)>>,
    /// The proxy's own certificate, for clients that ask for TLS.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Clients accepted whose startup is not over (no session yet, and
    /// not refused yet): the recording waits for them before it ends.
    starting: std::sync::atomic::AtomicUsize,
}

/// One accepted client in its startup phase, counted in
/// `Shared::starting` until dropped.
struct Starting(Arc<Shared>);

impl Drop for Starting {
    fn drop(&mut self) {
        self.0
            .starting
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Shared {
    pub fn new(upstream: ConnParams, tls: Option<Arc<rustls::ServerConfig>>) -> Arc<Shared> {
        Arc::new(Shared {
            log: Mutex::new(Log::default()),
            upstream,
            cancels: Mutex::new(HashMap::new()),
            waits: tokio::sync::Mutex::new(None),
            progress: tokio::sync::Notify::new(),
            tasks: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
            tls,
            starting: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Whether a client is still in its startup phase.
    pub fn starting(&self) -> bool {
        self.starting.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    fn refuse(&self, what: &str) {
        let mut r = self.refused.lock().unwrap();
        match r.iter_mut().find(|(w, _)| w == what) {
            Some((_, n)) => *n += 1,
            None => r.push((what.to_string(), 1)),
        }
    }

    /// What was refused, each with how many times.
    pub fn refusals(&self) -> Vec<String> {
        self.refused
            .lock()
            .unwrap()
            .iter()
            .map(|(w, n)| {
                if *n == 1 {
                    w.clone()
                } else {
                    format!("{w} ({n} times)")
                }
            })
            .collect()
    }

    /// Stops relaying: every connection still open is closed.
    pub fn stop_relays(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Waits until no other session's statement runs without waiting for
    /// a lock (asking the detector meanwhile), or until GATE_LIMIT passes
    /// (a wait the detector cannot see: then the two overlap, and a
    /// warning says so).
    pub async fn gate(&self, session: usize) {
        let start = tokio::time::Instant::now();
        loop {
            if !self.log.lock().unwrap().running_elsewhere(session) {
                return;
            }
            self.check_waits(Some(session)).await;
            if !self.log.lock().unwrap().running_elsewhere(session) {
                return;
            }
            if start.elapsed() > GATE_LIMIT {
                self.log.lock().unwrap().overtake(session);
                self.warn(format!(
                    "a statement was let through after {} s while another session's statement still ran without a wait the detector sees: that step is marked (*) in the permutation",
                    GATE_LIMIT.as_secs()
                ));
                return;
            }
            tokio::select! {
                _ = self.progress.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
            }
        }
    }

    /// Asks the wait detector about the statements in flight in sessions
    /// other than `except`.
    pub async fn check_waits(&self, except: Option<usize>) {
        let busy = {
            let log = self.log.lock().unwrap();
            log.in_flight()
                .iter()
                .any(|&(i, _)| Some(log.stmts[i].session) != except)
        };
        if busy {
            if let Some(w) = self.waits.lock().await.as_mut() {
                w.check(&self.log).await;
            }
        }
    }

    fn warn(&self, text: String) {
        self.log.lock().unwrap().warnings.push(text);
    }
}

/// Accepts clients until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let _ = sock.set_nodelay(true);
                shared
                    .starting
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let starting = Starting(shared.clone());
                let task = tokio::spawn(client(sock, shared.clone(), starting));
                shared.tasks.lock().unwrap().push(task.abort_handle());
            }
            Err(e) => {
                shared.warn(format!("accepting a client failed: {e}"));
                return;
            }
        }
    }
}

/// Reads `n` bytes of the client's stream into `pending`.
async fn fill(sock: &RelayStream, pending: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    while pending.len() < n {
        sock.readable().await?;
        match sock.recv_now(&mut buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => pending.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One startup-phase packet (length, then body) from the client; what
/// came after it stays in `pending`.
async fn read_packet(sock: &RelayStream, pending: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    fill(sock, pending, 4).await?;
    let len = i32::from_be_bytes(pending[..4].try_into().unwrap());
    if !(8..=10_000).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("invalid startup packet length {len}"),
        ));
    }
    fill(sock, pending, len as usize).await?;
    let body = pending[4..len as usize].to_vec();
    pending.drain(..len as usize);
    Ok(body)
}

/// The proxy's TLS configuration: a certificate made at start, for
/// 127.0.0.1, ::1 and localhost, signed by itself (clients with
/// sslmode=require accept it; verify-ca and verify-full do not).
pub fn tls_config() -> Result<Arc<rustls::ServerConfig>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(|e| e.to_string())?;
    for ip in [
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ] {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "isospec record proxy");
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

fn fatal(sqlstate: &str, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (t, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', sqlstate),
        (b'M', text),
    ] {
        b.push(t);
        b.extend_from_slice(v.as_bytes());
        b.push(0);
    }
    b.push(0);
    message(b'E', &b)
}

/// The startup packet's parameters, in order.
fn startup_params(body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut parts = body
        .split(|&c| c == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.is_empty() {
            break;
        }
        out.push((k, v));
    }
    out
}

async fn client(sock: TcpStream, shared: Arc<Shared>, starting: Starting) {
    let mut sock = RelayStream::Tcp(sock);
    let mut pending = Vec::new();
    let params = loop {
        let body = match read_packet(&sock, &mut pending).await {
            Ok(b) => b,
            Err(_) => return,
        };
        let code = i32::from_be_bytes(body[..4].try_into().unwrap());
        match code {
            SSL_REQUEST if shared.tls.is_some() && !sock.is_tls() && pending.is_empty() => {
                let RelayStream::Tcp(mut tcp) = sock else {
                    return;
                };
                if tcp.write_all(b"S").await.is_err() {
                    return;
                }
                let config = shared.tls.clone().expect("checked above");
                match crate::pgwire::accept_tls(tcp, config).await {
                    Ok(t) => sock = RelayStream::Tls(Box::new(t)),
                    Err(e) => {
                        let what = "TLS with a client that did not accept the proxy's certificate (sslmode=verify-ca or verify-full checks it against a CA: the proxy makes its own certificate at start and cannot present the server's; record that client with sslmode=require or prefer)";
                        shared.refuse(what);
                        shared.warn(format!(
                            "a client's TLS handshake with the proxy failed ({e}): {what}"
                        ));
                        return;
                    }
                }
            }
            SSL_REQUEST | GSSENC_REQUEST => {
                if code == GSSENC_REQUEST {
                    shared.refuse("GSSAPI encryption (a client with gssencmode=require then gives up: use gssencmode=prefer or disable)");
                } else if sock.is_tls() {
                    shared.refuse("a second SSLRequest");
                } else {
                    shared.refuse("TLS (the proxy could not make its certificate: let the client connect with sslmode=prefer or disable)");
                }
                if sock.write_all(b"N").await.is_err() {
                    return;
                }
            }
            CANCEL_REQUEST if body.len() >= 12 => {
                let pid = i32::from_be_bytes(body[4..8].try_into().unwrap());
                let secret = i32::from_be_bytes(body[8..12].try_into().unwrap());
                let key = shared.cancels.lock().unwrap().get(&(pid, secret)).cloned();
                match key {
                    Some(k) => {
                        shared.log.lock().unwrap().canceled(pid, secret);
                        if let Err(e) = k.send().await {
                            shared.warn(format!("forwarding a cancel request for backend {pid} failed: {e}"));
                        }
                    }
                    None => shared.warn(format!("a cancel request named backend {pid}, which is not one of the recorded sessions: dropped")),
                }
                return;
            }
            c if c >> 16 == 3 => {
                let params = startup_params(&body[4..]);
                if c != PROTOCOL_3_0 {
                    // NegotiateProtocolVersion: 3.0, no protocol options.
                    let mut b = PROTOCOL_3_0.to_be_bytes().to_vec();
                    let opts: Vec<&(String, String)> = params
                        .iter()
                        .filter(|(k, _)| k.starts_with("_pq_."))
                        .collect();
                    b.extend((opts.len() as i32).to_be_bytes());
                    for (k, _) in opts {
                        b.extend(k.as_bytes());
                        b.push(0);
                    }
                    if sock.write_all(&message(b'v', &b)).await.is_err() {
                        return;
                    }
                }
                break params;
            }
            c => {
                let _ = sock
                    .write_all(&fatal(
                        "08P01",
                        &format!("unsupported frontend protocol {}.{}", c >> 16, c & 0xffff),
                    ))
                    .await;
                return;
            }
        }
    };
    let mut up = shared.upstream.clone();
    let mut info = SessionInfo::default();
    let mut extra = Vec::new();
    let mut replication = false;
    for (k, v) in &params {
        match k.as_str() {
            "user" => {
                if *v != up.user {
                    shared.warn(format!(
                        "a client asked for user \"{v}\": the proxy connects as \"{}\", the user the spec will run as",
                        up.user
                    ));
                }
            }
            "database" => {
                if *v != up.dbname {
                    shared.warn(format!(
                        "a client asked for database \"{v}\": the proxy connects to \"{}\", where the setup ran and the spec will run",
                        up.dbname
                    ));
                }
            }
            "application_name" => {
                up.application_name = Some(v.clone());
                info.application_name = Some(v.clone());
            }
            "options" => {
                up.options = Some(v.clone());
                info.settings.extend(crate::pgwire::parse_options(v));
            }
            "replication" => {
                replication = true;
                extra.push((k.clone(), v.clone()));
            }
            k if k.starts_with("_pq_.") => {}
            _ => {
                extra.push((k.clone(), v.clone()));
                info.settings.push((k.clone(), v.clone()));
            }
        }
    }
    up.extra = extra;
    let conn = match Conn::connect(&up).await {
        Ok(c) => c,
        Err(e) => {
            let text = format!(
                "isospec record: the proxy could not connect to {}: {e}",
                up.describe_server()
            );
            shared.warn(text.clone());
            let _ = sock.write_all(&fatal("08006", &text)).await;
            return;
        }
    };
    let Relay {
        stream,
        leftover,
        parameters,
        cancel,
    } = conn.into_relay();
    let mut hello = message(b'R', &0i32.to_be_bytes());
    for (k, v) in &parameters {
        let mut b = k.as_bytes().to_vec();
        b.push(0);
        b.extend(v.as_bytes());
        b.push(0);
        hello.extend(message(b'S', &b));
    }
    let mut key = cancel.pid.to_be_bytes().to_vec();
    key.extend(cancel.secret.to_be_bytes());
    hello.extend(message(b'K', &key));
    hello.extend(message(b'Z', b"I"));
    info.reported = parameters.clone();
    info.pid = cancel.pid;
    info.secret = cancel.secret;
    shared
        .cancels
        .lock()
        .unwrap()
        .insert((cancel.pid, cancel.secret), cancel);
    if replication {
        shared.refuse("a replication connection (forwarded, not recorded)");
    }
    let session = if replication {
        let text = format!(
            "a replication connection (application_name {}) went through the proxy: forwarded, not recorded",
            info.application_name.as_deref().unwrap_or("unset")
        );
        let mut log = shared.log.lock().unwrap();
        log.warnings.push(text.clone());
        log.notes.push(text);
        None
    } else {
        let mut log = shared.log.lock().unwrap();
        log.sessions.push(info);
        Some(log.sessions.len() - 1)
    };
    drop(starting);
    if sock.write_all(&hello).await.is_err() {
        if let Some(k) = session {
            let mut log = shared.log.lock().unwrap();
            log.end(k, Ending::ClientFailed);
            log.gone(k);
        }
        return;
    }
    relay(sock, pending, stream, leftover, session, &shared).await;
}

/// At most this much is read ahead of what the other side has taken.
const RELAY_BUFFER: usize = 1 << 20;

/// Copies both ways until one side closes; the tracer reads along.  Reads
/// and writes of both sides are polled together, so that a peer that
/// writes a lot before it reads (a large pipeline) never waits on a
/// proxy that waits on it.
async fn relay(
    sock: RelayStream,
    early: Vec<u8>,
    up: RelayStream,
    leftover: Vec<u8>,
    session: Option<usize>,
    shared: &Shared,
) {
    let mut tracer = session.map(Tracer::new);
    let from_server = |data: &[u8], tracer: &mut Option<Tracer>| {
        if let Some(t) = tracer {
            t.server_bytes(data, &mut shared.log.lock().unwrap());
            shared.progress.notify_waiters();
        }
    };
    from_server(&leftover, &mut tracer);
    let mut to_client = leftover;
    let mut to_server: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // What the client sent after its startup packet before it was
    // answered, as if read now.
    if !early.is_empty() {
        from_client(&early, &mut tracer, session, shared).await;
        to_server.extend_from_slice(&early);
    }
    let why = loop {
        let up_waits = !to_server.is_empty() || up.pending_out();
        tokio::select! {
            // Read no further ahead of a peer that has not taken what it
            // was sent (TLS holds what it encrypted: that counts too).
            r = sock.readable(), if to_server.len() + up.pending_len() < RELAY_BUFFER => {
                if r.is_err() {
                    break Ending::ClientFailed;
                }
                match sock.recv_now(&mut buf) {
                    Ok(0) => break Ending::ClientClosed,
                    Ok(n) => {
                        if n < buf.len() {
                            sock.drained();
                        }
                        from_client(&buf[..n], &mut tracer, session, shared).await;
                        to_server.extend_from_slice(&buf[..n]);
                        if !push(&up, &mut to_server) {
                            break Ending::ServerFailed;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break Ending::ClientFailed,
                }
            }
            r = up.readable(), if to_client.len() + sock.pending_len() < RELAY_BUFFER => {
                if r.is_err() {
                    break Ending::ServerFailed;
                }
                match up.recv_now(&mut buf) {
                    Ok(0) => break Ending::ServerClosed,
                    Ok(n) => {
                        if n < buf.len() {
                            up.drained();
                        }
                        from_server(&buf[..n], &mut tracer);
                        to_client.extend_from_slice(&buf[..n]);
                        if !push(&sock, &mut to_client) {
                            break Ending::ClientClosed;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break Ending::ServerFailed,
                }
            }
            r = up.writable(), if up_waits => {
                if r.is_err() || !push(&up, &mut to_server) {
                    break Ending::ServerFailed;
                }
            }
            r = sock.writable(), if !to_client.is_empty() || sock.pending_out() => {
                if r.is_err() || !push(&sock, &mut to_client) {
                    break Ending::ClientClosed;
                }
            }
        }
    };
    // What one side said last (a Terminate, the server's FATAL) still
    // reaches the other, then the connection is closed.  The session's
    // end is noted now; its backend is gone once the server has closed
    // its side (a backend closes its socket after it released its locks),
    // and until then the gate holds the other sessions' statements, as
    // the replay's ROLLBACK or Terminate would.
    if let Some(k) = session {
        let mut log = shared.log.lock().unwrap();
        if k < log.sessions.len() {
            log.end(k, why);
        }
    }
    shared.progress.notify_waiters();
    let mut up = up;
    let mut sock = sock;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        if !to_server.is_empty() {
            let _ = up.write_all(&to_server).await;
        }
        while up.pending_out() && up.writable().await.is_ok() && up.flush_now().is_ok() {}
        if !to_client.is_empty() {
            let _ = sock.write_all(&to_client).await;
        }
        while sock.pending_out() && sock.writable().await.is_ok() && sock.flush_now().is_ok() {}
        sock.shutdown_write();
        // The client is gone: tell the server (EOF), and read what it
        // still says until it closes.
        up.shutdown_write();
        loop {
            if up.readable().await.is_err() {
                break;
            }
            match up.recv_now(&mut buf) {
                Ok(0) => break,
                Ok(n) => from_server(&buf[..n], &mut tracer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    })
    .await;
    if let Some(k) = session {
        let mut log = shared.log.lock().unwrap();
        if k < log.sessions.len() {
            log.gone(k);
        }
    }
    shared.progress.notify_waiters();
}

/// Bytes the client sent: traced, and when they complete a statement,
/// held at the gate (one statement at a time, as run replays them: a
/// statement goes out once no other session's statement runs, or what
/// runs waits for a lock) and stamped as forwarded.
async fn from_client(
    data: &[u8],
    tracer: &mut Option<Tracer>,
    session: Option<usize>,
    shared: &Shared,
) {
    let statement = match tracer {
        Some(t) => t.client_bytes(data, &mut shared.log.lock().unwrap()),
        None => false,
    };
    if let (true, Some(k)) = (statement, session) {
        shared.gate(k).await;
        shared.log.lock().unwrap().forwarded(k);
    }
}

/// Sends what the peer takes now; false when the connection failed.
fn push(up: &RelayStream, pending: &mut Vec<u8>) -> bool {
    while !pending.is_empty() {
        match up.try_write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    up.flush_now().is_ok()
}
