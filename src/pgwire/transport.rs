//! The byte stream under a connection: TCP, a Unix socket, or TLS over
//! TCP.  Reads are libpq's: non-blocking and straight from the kernel
//! (PQconsumeInput must see data the async runtime has not noticed yet),
//! and the TLS engine (rustls, sans-I/O) is fed from those same reads.

use super::messages::CLOSED_MSG;
use super::protocol;
use super::settings::{SslMode, Target, TlsSettings};
use super::tls;
use bytes::BytesMut;
use postgres_protocol::message::frontend;
use rustls::{ClientConnection, Connection, ServerConnection};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream>),
}

pub(crate) struct TlsStream {
    tcp: TcpStream,
    /// Behind a lock only so that `&self` reads can feed it; never contended.
    state: Mutex<TlsState>,
    /// The server certificate's `tls-server-end-point` hash.
    pub end_point: Option<Vec<u8>>,
}

struct TlsState {
    conn: Connection,
    /// Decrypted bytes not yet handed to the reader.
    plain: Vec<u8>,
    /// The peer sent close_notify or closed the socket.
    eof: bool,
    /// Encrypted bytes `try_write` has not sent yet.
    out: Vec<u8>,
}

/// One non-blocking recv() on `fd`; after "would block", tokio's readiness
/// of `sock` is cleared so that `readable()` waits for new data.
fn recv_raw<S: ClearReadiness>(sock: &S, fd: RawFd, chunk: &mut [u8]) -> io::Result<usize> {
    match nix::sys::socket::recv(fd, chunk, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
        Ok(n) => Ok(n),
        Err(errno) => {
            let e = io::Error::from(errno);
            if e.kind() == io::ErrorKind::WouldBlock {
                sock.clear_readiness();
            }
            Err(e)
        }
    }
}

trait ClearReadiness {
    fn clear_readiness(&self);
}

impl ClearReadiness for TcpStream {
    fn clear_readiness(&self) {
        let _ = self.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
}

impl ClearReadiness for UnixStream {
    fn clear_readiness(&self) {
        let _ = self.try_io(tokio::io::Interest::READABLE, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
}

impl Stream {
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
            Stream::Tls(t) => {
                {
                    let st = t.state.lock().unwrap();
                    if !st.plain.is_empty() || st.eof {
                        return Ok(());
                    }
                }
                t.tcp.readable().await
            }
        }
    }

    /// A real non-blocking read, like libpq's PQconsumeInput: tokio's
    /// `try_read` answers "would block" without asking the kernel when its
    /// driver has not yet seen the socket's readiness, which happens when
    /// the runtime has not parked since the data arrived (a step's notices
    /// sent before it blocked could then be missed when the lock wait query
    /// says it is blocked).  Ok(0) is end of stream.
    pub(crate) fn recv_now(&self, chunk: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => recv_raw(s, s.as_raw_fd(), chunk),
            Stream::Unix(s) => recv_raw(s, s.as_raw_fd(), chunk),
            Stream::Tls(t) => t.recv_now(chunk),
        }
    }

    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(data).await,
            Stream::Unix(s) => s.write_all(data).await,
            Stream::Tls(t) => {
                let out = {
                    let mut st = t.state.lock().unwrap();
                    st.conn.writer().write_all(data)?;
                    let mut out = Vec::new();
                    while st.conn.wants_write() {
                        st.conn.write_tls(&mut out)?;
                    }
                    out
                };
                t.tcp.write_all(&out).await
            }
        }
    }

    /// Writes without waiting, for a relay that must keep reading while
    /// the peer is slow: the bytes the kernel took (TCP, Unix), or all of
    /// `data` (TLS: encrypted into a buffer that `flush_now` and later
    /// calls send as the socket allows).
    pub(crate) fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(data),
            Stream::Unix(s) => s.try_write(data),
            Stream::Tls(t) => {
                {
                    let mut st = t.state.lock().unwrap();
                    st.conn.writer().write_all(data)?;
                    let TlsState { conn, out, .. } = &mut *st;
                    while conn.wants_write() {
                        conn.write_tls(out)?;
                    }
                }
                self.flush_now()?;
                Ok(data.len())
            }
        }
    }

    /// Sends what TLS has buffered, as far as the socket takes it now.
    pub(crate) fn flush_now(&self) -> io::Result<()> {
        let Stream::Tls(t) = self else { return Ok(()) };
        let mut st = t.state.lock().unwrap();
        while !st.out.is_empty() {
            match t.tcp.try_write(&st.out) {
                Ok(n) => {
                    st.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether TLS holds bytes not yet sent.
    pub(crate) fn pending_out(&self) -> bool {
        self.pending_len() > 0
    }

    /// How many encrypted bytes TLS holds not yet sent (0 for TCP and
    /// Unix sockets, whose writes the kernel takes or refuses).
    pub(crate) fn pending_len(&self) -> usize {
        match self {
            Stream::Tls(t) => t.state.lock().unwrap().out.len(),
            _ => 0,
        }
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.writable().await,
            Stream::Unix(s) => s.writable().await,
            Stream::Tls(t) => t.tcp.writable().await,
        }
    }

    pub(crate) fn end_point(&self) -> Option<&[u8]> {
        match self {
            Stream::Tls(t) => t.end_point.as_deref(),
            _ => None,
        }
    }

    /// After a read that took less than it could: the socket is drained,
    /// so its readiness is cleared without asking the kernel again (an
    /// arrival after the read is a new edge that epoll reports).  TLS may
    /// hold decrypted bytes: left as it is.
    pub(crate) fn drained(&self) {
        match self {
            Stream::Tcp(s) => s.clear_readiness(),
            Stream::Unix(s) => s.clear_readiness(),
            Stream::Tls(_) => {}
        }
    }

    /// Ends the sending side (the peer reads end of stream; TLS says
    /// close_notify first), keeping the receiving side open.
    pub(crate) fn shutdown_write(&mut self) {
        use nix::sys::socket::{shutdown, Shutdown};
        let fd = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tls(t) => {
                {
                    let mut st = t.state.lock().unwrap();
                    st.conn.send_close_notify();
                    let TlsState { conn, out, .. } = &mut *st;
                    while conn.wants_write() {
                        if conn.write_tls(out).is_err() {
                            break;
                        }
                    }
                }
                let _ = self.flush_now();
                let Stream::Tls(t) = self else { return };
                t.tcp.as_raw_fd()
            }
        };
        let _ = shutdown(fd, Shutdown::Write);
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl TlsStream {
    fn recv_now(&self, chunk: &mut [u8]) -> io::Result<usize> {
        let mut st = self.state.lock().unwrap();
        loop {
            if !st.plain.is_empty() {
                let n = chunk.len().min(st.plain.len());
                chunk[..n].copy_from_slice(&st.plain[..n]);
                st.plain.drain(..n);
                return Ok(n);
            }
            if st.eof {
                return Ok(0);
            }
            let mut raw = [0u8; 16 * 1024];
            let n = recv_raw(&self.tcp, self.tcp.as_raw_fd(), &mut raw)?;
            if n == 0 {
                st.eof = true;
                continue;
            }
            feed(&mut st, &raw[..n])?;
        }
    }
}

/// Hands raw bytes to rustls and collects what they decrypt to.
fn feed(st: &mut TlsState, mut raw: &[u8]) -> io::Result<()> {
    while !raw.is_empty() && !st.eof {
        // After close_notify rustls takes nothing more: what follows is
        // dropped, not fed again (that would spin).
        if st.conn.read_tls(&mut raw)? == 0 {
            st.eof = true;
            break;
        }
        let io_state = st
            .conn
            .process_new_packets()
            .map_err(|e| io::Error::other(tls::describe_tls_error(&e)))?;
        let pending = io_state.plaintext_bytes_to_read();
        if pending > 0 {
            let start = st.plain.len();
            st.plain.resize(start + pending, 0);
            let got = st.conn.reader().read(&mut st.plain[start..])?;
            st.plain.truncate(start + got);
        }
        if io_state.peer_has_closed() {
            st.eof = true;
        }
    }
    Ok(())
}

/// Runs the TLS handshake over `tcp` (after the server's 'S', or at once
/// for direct negotiation); libpq's texts for what goes wrong.
pub(crate) async fn handshake(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<TlsStream, String> {
    let mut conn = ClientConnection::new(config, tls::server_name(host))
        .map_err(|e| format!("SSL error: {e}"))?;
    // Queries of any size are written whole and flushed at once (rustls
    // would refuse more than 64 KiB of unsent data otherwise).
    conn.set_buffer_limit(None);
    drive(tcp, Connection::Client(conn)).await
}

/// The server's side of the handshake, for a client that asked the
/// recording proxy for TLS (after the proxy's 'S').
pub(crate) async fn accept(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Result<TlsStream, String> {
    let mut conn = ServerConnection::new(config).map_err(|e| format!("SSL error: {e}"))?;
    conn.set_buffer_limit(None);
    drive(tcp, Connection::Server(conn)).await
}

/// Exchanges handshake messages until the handshake is done.
async fn drive(mut tcp: TcpStream, mut conn: Connection) -> Result<TlsStream, String> {
    loop {
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out)
                .map_err(|e| format!("SSL SYSCALL error: {e}"))?;
        }
        if !out.is_empty() {
            tcp.write_all(&out)
                .await
                .map_err(|e| format!("SSL SYSCALL error: {e}"))?;
        }
        if !conn.is_handshaking() {
            break;
        }
        tcp.readable()
            .await
            .map_err(|e| format!("SSL SYSCALL error: {e}"))?;
        let mut raw = [0u8; 16 * 1024];
        let n = match tcp.try_read(&mut raw) {
            Ok(0) => return Err("SSL SYSCALL error: EOF detected".into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("SSL SYSCALL error: {e}")),
        };
        let mut slice = &raw[..n];
        while !slice.is_empty() {
            let took = conn
                .read_tls(&mut slice)
                .map_err(|e| format!("SSL SYSCALL error: {e}"))?;
            if took == 0 {
                // close_notify during the handshake.
                return Err("SSL SYSCALL error: EOF detected".into());
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the server why (the alert), then give libpq's text.
                let mut out = Vec::new();
                while conn.wants_write() {
                    if conn.write_tls(&mut out).is_err() {
                        break;
                    }
                }
                let _ = tcp.write_all(&out).await;
                return Err(tls::describe_tls_error(&e));
            }
        }
    }
    let end_point = match conn.peer_certificates().and_then(|c| c.first()) {
        Some(c) => Some(tls::end_point_hash(c.as_ref()).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut st = TlsState {
        conn,
        plain: Vec::new(),
        eof: false,
        out: Vec::new(),
    };
    // Application data that came with the handshake's last flight.
    let io_state = st
        .conn
        .process_new_packets()
        .map_err(|e| tls::describe_tls_error(&e))?;
    let pending = io_state.plaintext_bytes_to_read();
    if pending > 0 {
        st.plain.resize(pending, 0);
        let got = st.conn.reader().read(&mut st.plain).unwrap_or(0);
        st.plain.truncate(got);
    }
    Ok(TlsStream {
        tcp,
        state: Mutex::new(st),
        end_point,
    })
}

impl TlsStream {
    /// The server's certificate (DER), for verify-full's name check.
    pub(crate) fn peer_certificate(&self) -> Option<Vec<u8>> {
        let st = self.state.lock().unwrap();
        st.conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
    }

    /// The ALPN protocol the server chose.
    pub(crate) fn alpn(&self) -> Option<Vec<u8>> {
        let st = self.state.lock().unwrap();
        st.conn.alpn_protocol().map(<[u8]>::to_vec)
    }
}

/// One address a host name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Where a connection went: what its cancel request must reach, the same
/// way (encrypted when the connection was, as libpq 17's cancel API does).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub target: Target,
    pub addr: Addr,
    pub tls: bool,
}

/// Why one attempt failed.  `sqlstate` is set only for an error during
/// authentication: what sslmode allow/prefer try again after.
#[derive(Debug)]
pub(crate) struct Failure {
    pub text: String,
    /// The server refused the authentication with an ErrorResponse.
    pub sqlstate: Option<String>,
    /// TLS could not be set up (a reason for `prefer` to try without).
    pub tls_failed: bool,
    /// The attempt ran over TLS.
    pub was_tls: bool,
}

impl Failure {
    pub(crate) fn new(text: impl Into<String>) -> Failure {
        Failure {
            text: text.into(),
            sqlstate: None,
            tls_failed: false,
            was_tls: false,
        }
    }

    pub(crate) fn tls(text: impl Into<String>) -> Failure {
        Failure {
            tls_failed: true,
            ..Failure::new(text)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Plain,
    TryTls,
    MustTls,
}

pub(crate) fn os_error(e: &io::Error) -> String {
    let s = e.to_string();
    // "Connection refused (os error 111)" → libpq's strerror text.
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Opens the socket and negotiates TLS as `want` says.  Also what a
/// cancel request goes through.
pub(crate) async fn open(
    settings: &TlsSettings,
    t: &Target,
    addr: &Addr,
    want: Want,
) -> Result<Stream, Failure> {
    let sa = match addr {
        Addr::Unix(p) => {
            return UnixStream::connect(p).await.map(Stream::Unix).map_err(|e| {
                Failure::new(format!(
                    "{}\n\tIs the server running locally and accepting connections on that socket?",
                    os_error(&e)
                ))
            })
        }
        Addr::Tcp(sa) => sa,
    };
    let mut tcp = TcpStream::connect(sa).await.map_err(|e| {
        Failure::new(format!(
            "{}\n\tIs the server running on that host and accepting TCP/IP connections?",
            os_error(&e)
        ))
    })?;
    let _ = tcp.set_nodelay(true);
    if want == Want::Plain {
        return Ok(Stream::Tcp(tcp));
    }
    let config = tls::client_config(settings).map_err(|e| Failure::tls(e.to_string()))?;
    if !settings.direct {
        let mut req = BytesMut::new();
        frontend::ssl_request(&mut req);
        tcp.write_all(&req).await.map_err(|e| {
            Failure::new(format!(
                "could not send SSL negotiation packet: {}",
                os_error(&e)
            ))
        })?;
        let answer = read_byte(&tcp).await?;
        match answer {
            b'S' => {
                // Nothing may follow 'S' before the handshake (CVE-2021-23222).
                let mut peek = [0u8; 1];
                let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
                if let Ok(n) = nix::sys::socket::recv(
                    fd,
                    &mut peek,
                    nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_PEEK,
                ) {
                    if n > 0 {
                        return Err(Failure::new("received unencrypted data after SSL response"));
                    }
                }
            }
            b'N' if want == Want::MustTls => {
                return Err(Failure::new(
                    "server does not support SSL, but SSL was required",
                ))
            }
            b'N' => return Ok(Stream::Tcp(tcp)),
            b'E' => {
                return Err(Failure::new(
                    "server sent an error response during SSL exchange",
                ))
            }
            c => {
                return Err(Failure::new(format!(
                    "received invalid response to SSL negotiation: {}",
                    protocol::shown_type(c)
                )))
            }
        }
    }
    // The name TLS checks: the host as given (SNI and verify-full); without
    // one, the address (no SNI; verify-full then refuses, as libpq does).
    let host = t.host_name();
    let sni = if host.is_empty() {
        sa.ip().to_string()
    } else {
        host.clone()
    };
    let stream = handshake(tcp, config, &sni).await.map_err(Failure::tls)?;
    if settings.direct && stream.alpn().as_deref() != Some(b"postgresql".as_slice()) {
        return Err(Failure::new(
            "direct SSL connection was established without ALPN protocol negotiation extension",
        ));
    }
    if settings.mode == SslMode::VerifyFull {
        let cert = stream
            .peer_certificate()
            .ok_or_else(|| Failure::new("server certificate could not be obtained"))?;
        tls::check_host_name(&cert, &host).map_err(|e| Failure::new(e.to_string()))?;
    }
    Ok(Stream::Tls(Box::new(stream)))
}

async fn read_byte(tcp: &TcpStream) -> Result<u8, Failure> {
    loop {
        tcp.readable()
            .await
            .map_err(|e| Failure::new(os_error(&e)))?;
        let mut b = [0u8; 1];
        match tcp.try_read(&mut b) {
            Ok(0) => return Err(Failure::new(CLOSED_MSG.trim_end())),
            Ok(_) => return Ok(b[0]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(Failure::new(os_error(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Data the runtime has not yet noticed (it has not parked since the
    /// data arrived) is read all the same, as libpq's recv() would.
    #[tokio::test]
    async fn consume_reads_data_the_runtime_has_not_noticed() {
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
}
