//! A libpq-compatible client: every connection isospec opens (sessions,
//! the control connection, database set-up, the wait probe, cancel
//! requests) is resolved and made here, with libpq's semantics and texts.
//!
//! - `settings`: the one resolved value (`ConnParams`) connections are made from;
//! - `resolve`: flags, conninfo or URI, service file, environment, defaults → `ConnParams`;
//! - `files`: the password file and the service file, read as libpq reads them;
//! - `tls`: certificates, verification and host name checks (rustls);
//! - `client_key`: the client's private key, decrypted with `sslpassword`;
//! - `transport`: the byte stream (TCP, Unix socket, TLS) and libpq's non-blocking reads;
//! - `connect`: host lists, sslmode's attempts, startup, target_session_attrs;
//! - `auth`: passwords, SCRAM-SHA-256 and channel binding;
//! - `protocol`: the backend messages, validated and parsed without I/O;
//! - `messages`: libpq's texts for server messages and its own;
//! - `conn`: the asynchronous query API the executor drives.

mod auth;
mod client_key;
mod conn;
mod connect;
pub(crate) mod files;
pub(crate) mod messages;
pub mod protocol;
pub(crate) mod resolve;
pub(crate) mod settings;
mod tls;
mod transport;

pub use conn::{parse_options, Conn, Connection};
pub(crate) use conn::{CancelKey, Relay};
pub use protocol::{PgResult, Tuples};
pub use resolve::{resolve, ConnRequest};
pub use settings::ConnParams;
pub(crate) use transport::{accept as accept_tls, Stream as RelayStream};

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Every host's attempt failed; libpq's lines, one per attempt.
    #[error("{message}")]
    Connect {
        message: String,
        /// A pooler refused the `options` startup parameter.
        options_refused: bool,
    },
    #[error("I/O error on the connection: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("server closed the connection unexpectedly")]
    Closed,
}
