//! Establishing a connection as libpq's PQconnectPoll does: each host of
//! the list and each of its addresses in turn, `sslmode`'s attempts and
//! fallbacks (SSLRequest or direct TLS), the startup packet,
//! authentication, and `target_session_attrs`; each failure is named with
//! libpq's "connection to server at … failed:" subject, and all of them
//! are reported when no host would do.  Every backend message read here is
//! checked (type and length) before it is read in full.

use super::auth::Authenticator;
use super::conn::{parse_options, Conn};
use super::files;
use super::protocol::parse_fields;
use super::settings::{ConnParams, Host, SslMode, Target, TargetSessionAttrs};
use super::transport::{open, os_error, Addr, Endpoint, Failure, Stream, Want};
use super::{PgResult, WireError};
use bytes::BytesMut;
use postgres_protocol::message::{backend, frontend};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::UnixStream;

/// libpq's subject for one address: `connection to server at "h" (ip),
/// port p failed: ` or `connection to server on socket "…" failed: `.
fn subject(t: &Target, addr: &Addr) -> String {
    match addr {
        Addr::Unix(p) => format!(
            "connection to server on socket \"{}\" failed: ",
            p.display()
        ),
        Addr::Tcp(sa) => {
            let shown = match t.hostaddr {
                Some(a) => a.to_string(),
                None => t.place(),
            };
            let ip = sa.ip().to_string();
            if t.hostaddr.is_none() && ip != shown {
                format!(
                    "connection to server at \"{shown}\" ({ip}), port {} failed: ",
                    t.port
                )
            } else {
                format!(
                    "connection to server at \"{shown}\", port {} failed: ",
                    t.port
                )
            }
        }
    }
}

async fn addresses(t: &Target) -> Result<Vec<Addr>, String> {
    // hostaddr wins, even over a socket directory (libpq).
    if let Some(a) = t.hostaddr {
        return Ok(vec![Addr::Tcp(SocketAddr::new(a, t.port))]);
    }
    match &t.host {
        Host::Unix(d) => Ok(vec![Addr::Unix(d.join(format!(".s.PGSQL.{}", t.port)))]),
        Host::Tcp(h) => {
            let found = tokio::net::lookup_host((h.as_str(), t.port))
                .await
                .map_err(|e| {
                    format!(
                        "could not translate host name \"{h}\" to address: {}",
                        os_error(&e)
                    )
                })?;
            Ok(found.map(Addr::Tcp).collect())
        }
    }
}

impl Conn {
    /// Connects and authenticates, as libpq would with these parameters
    /// (host list, TLS, channel binding, password file); `connect_timeout`
    /// bounds each host's attempt (a stalled server or pooler may accept
    /// the socket and then say nothing).
    /// A pooler that refuses the `options` startup parameter (PgBouncer:
    /// "unsupported startup parameter: options") gets a second attempt
    /// without it; its `-c name=value` settings are then in
    /// `deferred_settings`, for the caller to apply with set_config.
    pub async fn connect(params: &ConnParams) -> Result<Conn, WireError> {
        match connect_any(params).await {
            Err(WireError::Connect {
                options_refused: true,
                ..
            }) if params.options.is_some() => {
                let mut p = params.clone();
                let settings = parse_options(p.options.take().as_deref().unwrap_or(""));
                let mut conn = connect_any(&p).await?;
                conn.defer(params.options.clone(), settings);
                Ok(conn)
            }
            r => r,
        }
    }
}

/// Connects to the first host (and address) of the list that accepts and
/// suits `target_session_attrs`; otherwise every attempt's error.
pub(crate) async fn connect_any(params: &ConnParams) -> Result<Conn, WireError> {
    let mut order: Vec<&Target> = params.targets.iter().collect();
    if params.load_balance_random {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    let passes = if params.target_session_attrs == TargetSessionAttrs::PreferStandby {
        2
    } else {
        1
    };
    let mut errors = String::new();
    let mut options_refused = false;
    for pass in 0..passes {
        for t in &order {
            let addrs = match bounded(params, addresses(t)).await {
                Ok(a) => a,
                Err(e) => {
                    errors.push_str(&e);
                    errors.push('\n');
                    continue;
                }
            };
            for addr in addrs {
                match attempt(params, t, &addr, pass == 1).await {
                    Ok(c) => return Ok(c),
                    Err(f) => {
                        options_refused |=
                            f.text.contains("unsupported startup parameter: options");
                        errors.push_str(&subject(t, &addr));
                        errors.push_str(f.text.trim_end());
                        errors.push('\n');
                    }
                }
            }
        }
    }
    Err(WireError::Connect {
        message: errors.trim_end().to_string(),
        options_refused,
    })
}

/// Bounds a step of establishing by connect_timeout.
async fn bounded<T>(
    params: &ConnParams,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match params.connect_timeout {
        Some(d) => tokio::time::timeout(d, fut)
            .await
            .unwrap_or_else(|_| Err(timeout_text(d))),
        None => fut.await,
    }
}

fn timeout_text(d: Duration) -> String {
    format!(
        "timeout expired: no complete answer within {} s (connect_timeout, PGCONNECT_TIMEOUT)",
        d.as_secs()
    )
}

/// One address, with sslmode's attempts: allow tries without TLS first and
/// then with it after an authentication error; prefer tries TLS first and
/// then without it after a TLS failure or an authentication error over TLS.
async fn attempt(
    params: &ConnParams,
    t: &Target,
    addr: &Addr,
    pass2: bool,
) -> Result<Conn, Failure> {
    let mode = match addr {
        // libpq never negotiates TLS over a Unix socket.
        Addr::Unix(_) => SslMode::Disable,
        Addr::Tcp(_) => params.tls.mode,
    };
    let one = |want| establish(params, t, addr, want, pass2);
    // A second attempt's failure is reported after the first's, as libpq
    // accumulates them.
    let again = |first: Failure, second: Result<Conn, Failure>| {
        second.map_err(|f| Failure {
            text: format!("{}\n{}{}", first.text.trim_end(), subject(t, addr), f.text),
            ..f
        })
    };
    match mode {
        SslMode::Disable => one(Want::Plain).await,
        SslMode::Allow => match one(Want::Plain).await {
            Err(f) if f.sqlstate.is_some() && f.sqlstate.as_deref() != Some("57P03") => {
                again(f, one(Want::TryTls).await)
            }
            r => r,
        },
        SslMode::Prefer => match one(Want::TryTls).await {
            Err(f) if f.tls_failed || (f.was_tls && f.sqlstate.is_some()) => {
                again(f, one(Want::Plain).await)
            }
            r => r,
        },
        _ => one(Want::MustTls).await,
    }
}

async fn establish(
    params: &ConnParams,
    t: &Target,
    addr: &Addr,
    want: Want,
    pass2: bool,
) -> Result<Conn, Failure> {
    let fut = async {
        let stream = open(&params.tls, t, addr, want).await?;
        if let (Some(peer), Stream::Unix(s)) = (&params.requirepeer, &stream) {
            check_peer(s, peer).map_err(Failure::new)?;
        }
        let was_tls = stream.is_tls();
        let endpoint = Endpoint {
            target: t.clone(),
            addr: addr.clone(),
            tls: was_tls,
        };
        startup(params, stream, endpoint, pass2)
            .await
            .map_err(|mut f| {
                f.was_tls = was_tls;
                f
            })
    };
    match params.connect_timeout {
        Some(d) => tokio::time::timeout(d, fut)
            .await
            .unwrap_or_else(|_| Err(Failure::new(timeout_text(d)))),
        None => fut.await,
    }
}

fn check_peer(s: &UnixStream, want: &str) -> Result<(), String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let cred = getsockopt(s, PeerCredentials)
        .map_err(|e| format!("could not get peer credentials: {e}"))?;
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(cred.uid()))
        .ok()
        .flatten()
        .map(|u| u.name)
        .ok_or_else(|| format!("could not look up local user ID {}", cred.uid()))?;
    if name != want {
        return Err(format!(
            "requirepeer specifies \"{want}\", but actual peer user name is \"{name}\""
        ));
    }
    Ok(())
}

/// The startup packet, authentication, the server's parameters and key,
/// and target_session_attrs.
async fn startup(
    params: &ConnParams,
    stream: Stream,
    endpoint: Endpoint,
    pass2: bool,
) -> Result<Conn, Failure> {
    let mut out = BytesMut::new();
    let mut startup: Vec<(&str, &str)> = vec![("user", &params.user), ("database", &params.dbname)];
    if let Some(a) = &params.application_name {
        startup.push(("application_name", a));
    }
    if let Some(o) = &params.options {
        startup.push(("options", o));
    }
    for (k, v) in &params.extra {
        startup.push((k, v));
    }
    frontend::startup_message(startup.iter().copied(), &mut out)
        .map_err(|e| Failure::new(e.to_string()))?;
    let end_point = stream.end_point().map(<[u8]>::to_vec);
    let tls = stream.is_tls();
    let mut conn = Conn::new(stream, params.clone(), endpoint);
    conn.write_raw(&out)
        .await
        .map_err(|e| Failure::new(format!("could not send startup packet: {e}")))?;
    // The password: given, else from the password file for this host.
    let mut from_file = None;
    let password = match &params.password {
        Some(p) => Some(p.0.clone()),
        None => params.passfile.as_ref().and_then(|f| {
            let t = &conn.endpoint.target;
            let (p, _) = files::password_from_file(
                f,
                &t.password_host(),
                t.port,
                &params.dbname,
                &params.user,
            );
            if p.is_some() {
                from_file = Some(f.clone());
            }
            p
        }),
    };
    let mut auth = Authenticator::new(
        &params.user,
        password,
        params.tls.channel_binding,
        tls,
        end_point,
    );
    // Authentication: only requests and errors.
    loop {
        let msg = conn
            .read_startup_message(true)
            .await
            .map_err(Failure::new)?;
        if let backend::Message::ErrorResponse(body) = &msg {
            return Err(rejected(body, from_file.as_ref()));
        }
        let (answer, done) = auth
            .respond(&msg)
            .map_err(|e| Failure::new(e.to_string()))?;
        if let Some(a) = answer {
            conn.write_raw(&a)
                .await
                .map_err(|e| Failure::new(e.to_string()))?;
        }
        if done {
            break;
        }
    }
    // Then the server's parameters and key, up to ReadyForQuery.
    loop {
        let msg = conn
            .read_startup_message(false)
            .await
            .map_err(Failure::new)?;
        match msg {
            backend::Message::BackendKeyData(body) => {
                conn.set_key(body.process_id(), body.secret_key())
            }
            backend::Message::ParameterStatus(body) => {
                let (k, v) = match (body.name(), body.value()) {
                    (Ok(k), Ok(v)) => (k.to_string(), v.to_string()),
                    _ => {
                        return Err(Failure::new(
                            "message contents do not agree with length in message type \"S\"",
                        ))
                    }
                };
                conn.record_parameter(k, v);
            }
            // Legal at any time: shown by nobody during startup, as libpq
            // (whose notice processor is not set yet) would.
            backend::Message::NoticeResponse(_) | backend::Message::NotificationResponse(_) => {}
            backend::Message::ReadyForQuery(_) => break,
            backend::Message::ErrorResponse(body) => {
                // After authentication: not a reason for sslmode's second
                // attempt (libpq retries only what authentication refused).
                let mut f = rejected(&body, from_file.as_ref());
                f.sqlstate = None;
                return Err(f);
            }
            _ => {
                return Err(Failure::new(
                    "unexpected message from server during startup",
                ))
            }
        }
    }
    if let Err(why) = check_session_attrs(&mut conn, params.target_session_attrs, pass2).await {
        conn.close().await;
        return Err(Failure::new(why));
    }
    Ok(conn)
}

fn rejected(body: &backend::ErrorResponseBody, passfile: Option<&PathBuf>) -> Failure {
    let m = match parse_fields(body.fields()) {
        Ok(m) => m,
        Err(_) => return Failure::new("received invalid error message"),
    };
    let mut text = m.format_libpq(true, None).trim_end().to_string();
    if m.sqlstate() == Some("28P01") {
        if let Some(f) = passfile {
            text.push_str(&format!(
                "\npassword retrieved from file \"{}\"",
                f.display()
            ));
        }
    }
    Failure {
        sqlstate: Some(m.sqlstate().unwrap_or("").to_string()),
        ..Failure::new(text)
    }
}

/// libpq's checks of target_session_attrs after the connection is made.
async fn check_session_attrs(
    conn: &mut Conn,
    want: TargetSessionAttrs,
    pass2: bool,
) -> Result<(), String> {
    use TargetSessionAttrs as T;
    match want {
        T::Any => Ok(()),
        T::ReadWrite | T::ReadOnly => {
            let reported = (
                conn.parameter("default_transaction_read_only"),
                conn.parameter("in_hot_standby"),
            );
            let read_only = match reported {
                (Some(d), Some(h)) => d == "on" || h == "on",
                _ => ask(conn, "SHOW transaction_read_only")
                    .await?
                    .starts_with("on"),
            };
            match (want, read_only) {
                (T::ReadWrite, true) => Err("session is read-only".into()),
                (T::ReadOnly, false) => Err("session is not read-only".into()),
                _ => Ok(()),
            }
        }
        T::Primary | T::Standby | T::PreferStandby => {
            let standby = match conn.parameter("in_hot_standby") {
                Some(h) => h == "on",
                None => ask(conn, "SELECT pg_catalog.pg_is_in_recovery()").await? == "t",
            };
            match (want, standby) {
                (T::Primary, true) => Err("server is in hot standby mode".into()),
                (T::Standby, false) => Err("server is not in hot standby mode".into()),
                (T::PreferStandby, false) if !pass2 => {
                    Err("server is not in hot standby mode".into())
                }
                _ => Ok(()),
            }
        }
    }
}

async fn ask(conn: &mut Conn, sql: &str) -> Result<String, String> {
    match conn.exec(sql).await {
        Ok(Some(PgResult::Tuples(t))) => Ok(t
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default()),
        _ => Err(format!("\"{sql}\" failed")),
    }
}
