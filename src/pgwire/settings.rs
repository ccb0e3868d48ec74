//! The one resolved value every connection isospec opens is made from:
//! where to connect (a host list), as whom, with which password source, and
//! how TLS and channel binding are negotiated.  `resolve.rs` builds it from
//! flags, conninfo, environment and files; nothing else writes a default.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// isospec's bound on establishing one connection when neither
/// `connect_timeout` nor `PGCONNECT_TIMEOUT` says otherwise (libpq waits for
/// ever; a stalled server or pooler must not hang a CI job).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A password: never printed, not even by `{:?}`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    Unix(PathBuf),
}

/// One entry of the host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name (or socket directory): what TLS checks and the
    /// password file matches.
    pub host: Host,
    /// `hostaddr`: the address connected to instead of resolving `host`
    /// (also when `host` is a socket directory).
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    /// `host` was given (not defaulted): what TLS checks and the password
    /// file matches is then that name.
    pub host_given: bool,
}

impl Target {
    /// The host as given: what verify-full checks and SNI names (empty
    /// when no host was given).
    pub fn host_name(&self) -> String {
        if !self.host_given {
            return String::new();
        }
        self.place()
    }

    /// The host, or the default socket directory, as shown in messages.
    pub fn place(&self) -> String {
        match &self.host {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        }
    }

    /// The host name the password file is searched with: the host, else
    /// `hostaddr`, else empty (which matches `localhost`).
    pub fn password_host(&self) -> String {
        match (self.host_given, self.hostaddr) {
            (true, _) => self.place(),
            (false, Some(a)) => a.to_string(),
            (false, None) => String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelBinding {
    Disable,
    Prefer,
    Require,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Everything that decides whether and how TLS is used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `sslnegotiation=direct` (PostgreSQL 17+): TLS from the first byte.
    pub direct: bool,
    /// `sslrootcert`: a file, or `system` for the system's trust store.
    pub rootcert: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `sslpassword`: the passphrase of an encrypted `key`.
    pub key_password: Option<Secret>,
    /// `sslcertmode=disable`: never send a client certificate.
    pub no_client_cert: bool,
    pub crl: Option<PathBuf>,
    pub crldir: Option<PathBuf>,
    pub sni: bool,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub channel_binding: ChannelBinding,
    /// The user's home directory, for `~/.postgresql/…` defaults.
    pub home: Option<PathBuf>,
}

impl TlsSettings {
    /// No TLS at all (a temporary instance over its Unix socket).
    pub fn disabled() -> TlsSettings {
        TlsSettings {
            mode: SslMode::Disable,
            direct: false,
            rootcert: None,
            cert: None,
            key: None,
            key_password: None,
            no_client_cert: false,
            crl: None,
            crldir: None,
            sni: true,
            min_version: Some(TlsVersion::Tls12),
            max_version: None,
            channel_binding: ChannelBinding::Prefer,
            home: None,
        }
    }
}

/// Where and how to connect: the resolved form of libpq's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnParams {
    /// Tried in order (shuffled with `load_balance_hosts=random`).
    pub targets: Vec<Target>,
    pub user: String,
    /// From the options, the conninfo or PGPASSWORD.
    pub password: Option<Secret>,
    /// The password file to consult when `password` is unset.
    pub passfile: Option<PathBuf>,
    pub dbname: String,
    pub application_name: Option<String>,
    pub options: Option<String>,
    /// Further startup parameters (libpq's PGDATESTYLE, PGTZ, …).
    pub extra: Vec<(String, String)>,
    /// Bounds each host's attempt (libpq's per-host connect_timeout).
    pub connect_timeout: Option<Duration>,
    pub tls: TlsSettings,
    pub target_session_attrs: TargetSessionAttrs,
    pub load_balance_random: bool,
    /// `requirepeer`: the OS user the server must run as (Unix sockets).
    pub requirepeer: Option<String>,
}

impl ConnParams {
    /// A server on a Unix socket with no password and no TLS: the
    /// temporary instance isospec starts itself.
    pub fn local(socket_dir: PathBuf, port: u16, user: &str, dbname: &str) -> ConnParams {
        ConnParams {
            targets: vec![Target {
                host: Host::Unix(socket_dir),
                hostaddr: None,
                port,
                host_given: true,
            }],
            user: user.to_string(),
            password: None,
            passfile: None,
            dbname: dbname.to_string(),
            application_name: None,
            options: None,
            extra: Vec::new(),
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            tls: TlsSettings::disabled(),
            target_session_attrs: TargetSessionAttrs::Any,
            load_balance_random: false,
            requirepeer: None,
        }
    }

    /// The first target: the one named in messages before any connection
    /// was made.
    pub fn first_target(&self) -> &Target {
        &self.targets[0]
    }

    /// The socket directory and port when the only target is a Unix socket.
    pub fn unix_socket(&self) -> Option<(&PathBuf, u16)> {
        match self.targets.as_slice() {
            [Target {
                host: Host::Unix(d),
                port,
                ..
            }] => Some((d, *port)),
            _ => None,
        }
    }

    /// "server at … (user …)": the server of a run, whose messages name
    /// the database of each connection themselves.
    pub fn describe_server(&self) -> String {
        let t = self.first_target();
        let d = describe_target(t, self.targets.len(), "", "");
        let place = d.split(" (database").next().unwrap_or(&d);
        format!("{place} (user \"{}\")", self.user)
    }

    /// "server at … (database …, user …)" for error messages: the first
    /// host, and how many others the list holds.
    pub fn describe(&self) -> String {
        describe_target(
            self.first_target(),
            self.targets.len(),
            &self.dbname,
            &self.user,
        )
    }
}

/// The message subject for `target` of a list of `of` hosts.
pub fn describe_target(target: &Target, of: usize, dbname: &str, user: &str) -> String {
    let place = match &target.host {
        Host::Tcp(h) => match target.hostaddr {
            Some(a) if *h != a.to_string() => format!("server at {h} ({a}):{}", target.port),
            _ => format!("server at {h}:{}", target.port),
        },
        Host::Unix(p) => format!(
            "server on socket \"{}/.s.PGSQL.{}\"",
            p.display(),
            target.port
        ),
    };
    let others = match of {
        0 | 1 => String::new(),
        2 => " (or the other host of its list)".to_string(),
        n => format!(" (or the {} other hosts of its list)", n - 1),
    };
    format!("{place}{others} (database \"{dbname}\", user \"{user}\")")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let mut p = ConnParams::local("/tmp".into(), 5432, "u", "d");
        p.password = Some(Secret(b"hunter2".to_vec()));
        let shown = format!("{p:?} {}", p.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn describes_like_before() {
        let p = ConnParams::local("/tmp".into(), 5432, "u", "d");
        assert_eq!(
            p.describe(),
            "server on socket \"/tmp/.s.PGSQL.5432\" (database \"d\", user \"u\")"
        );
    }
}
