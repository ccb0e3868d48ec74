//! Resolving a connection the way libpq does: a conninfo string or URI
//! (conninfo_parse, conninfo_uri_parse), then the service file, then the
//! `PG*` environment, then the defaults (conninfo_add_defaults), with
//! isospec's own `--host`/`--port`/`--user` flags over all of them.  The
//! result is the one `ConnParams` every connection of a run is made from.

use super::files::{self, ServiceLookup, DEFAULT_SOCKET_DIR};
use super::settings::*;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the user said explicitly (isospec's flags), over the conninfo.
#[derive(Debug, Clone, Default)]
pub struct ConnRequest {
    pub conninfo: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
}

/// The resolved parameters, and warnings for the user (an insecure
/// password file) that libpq would print on stderr.
#[derive(Debug)]
pub struct Resolved {
    pub params: ConnParams,
    pub warnings: Vec<String>,
}

/// libpq's connection options and their environment variables.
const OPTIONS: &[(&str, Option<&str>)] = &[
    ("service", Some("PGSERVICE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("dbname", Some("PGDATABASE")),
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslcertmode", Some("PGSSLCERTMODE")),
    ("sslpassword", None),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("sslsni", Some("PGSSLSNI")),
    ("requirepeer", Some("PGREQUIREPEER")),
    ("require_auth", Some("PGREQUIREAUTH")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    ("gsslib", Some("PGGSSLIB")),
    ("gssdelegation", Some("PGGSSDELEGATION")),
    ("replication", None),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
];

fn is_option(key: &str) -> bool {
    OPTIONS.iter().any(|(k, _)| *k == key)
}

type Values = HashMap<String, String>;

/// Resolves with the process's environment and home directory.
pub fn resolve(req: &ConnRequest) -> Result<Resolved, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    resolve_with(req, &env, home_dir().as_deref())
}

/// The user's home directory (libpq's pqGetHomeDirectory: $HOME, else the
/// password database).
pub fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// `resolve` with the environment and home directory given (tests).
pub fn resolve_with(
    req: &ConnRequest,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Resolved, String> {
    let mut vals: Values = match &req.conninfo {
        Some(ci) => parse_conninfo(ci)?,
        None => HashMap::new(),
    };
    for (k, v) in [
        ("host", &req.host),
        ("port", &req.port),
        ("user", &req.user),
    ] {
        if let Some(v) = v {
            vals.insert(k.to_string(), v.clone());
        }
    }
    apply_service(&mut vals, env, home)?;
    for (key, var) in OPTIONS {
        if vals.contains_key(*key) {
            continue;
        }
        if let Some(v) = var.and_then(env) {
            vals.insert(key.to_string(), v);
        }
    }
    build(vals, home)
}

/// Fills options not yet set from the service named by `service` or
/// PGSERVICE: PGSERVICEFILE (else ~/.pg_service.conf) first, then
/// PGSYSCONFDIR/pg_service.conf.
fn apply_service(
    vals: &mut Values,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<(), String> {
    let Some(service) = vals.get("service").cloned().or_else(|| env("PGSERVICE")) else {
        return Ok(());
    };
    let user_file = env("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".pg_service.conf")));
    let sys_file =
        PathBuf::from(env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into()))
            .join("pg_service.conf");
    for file in user_file.into_iter().chain([sys_file]) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let ServiceLookup::Found(settings) =
            files::parse_service_file(&text, &file, &service, is_option)?
        {
            for (k, v) in settings {
                vals.entry(k).or_insert(v);
            }
            return Ok(());
        }
    }
    Err(format!("definition of service \"{service}\" not found"))
}

/// libpq's conninfo_parse, or conninfo_uri_parse for a URI.
pub fn parse_conninfo(s: &str) -> Result<Values, String> {
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        return parse_uri(s);
    }
    let mut vals = Values::new();
    let mut last_key = String::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut name = String::new();
        while i < b.len() && b[i] != '=' && !b[i].is_whitespace() {
            name.push(b[i]);
            i += 1;
        }
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != '=' {
            // A word after an unquoted password may be part of it.
            let shown = if last_key == "password" {
                "***"
            } else {
                name.as_str()
            };
            return Err(format!(
                "missing \"=\" after \"{shown}\" in connection info string"
            ));
        }
        i += 1;
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < b.len() && b[i] == '\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err("unterminated quoted string in connection info string".into());
                }
                match b[i] {
                    '\\' => {
                        i += 1;
                        if i < b.len() {
                            val.push(b[i]);
                            i += 1;
                        }
                    }
                    '\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        val.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_whitespace() {
                if b[i] == '\\' {
                    i += 1;
                    if i < b.len() {
                        val.push(b[i]);
                        i += 1;
                    }
                } else {
                    val.push(b[i]);
                    i += 1;
                }
            }
        }
        if last_key == "password" && !is_option(&name) && name != "requiressl" {
            return Err("invalid connection option \"***\" (after the password: quote a password with spaces)".into());
        }
        store(&mut vals, &name, val)?;
        last_key = name;
    }
    Ok(vals)
}

fn store(vals: &mut Values, key: &str, val: String) -> Result<(), String> {
    // libpq still accepts requiressl=1 as sslmode=require.
    if key == "requiressl" {
        if val.starts_with('1') {
            vals.insert("sslmode".into(), "require".into());
        }
        return Ok(());
    }
    if !is_option(key) {
        return Err(format!("invalid connection option \"{key}\""));
    }
    vals.insert(key.to_string(), val);
    Ok(())
}

/// The URI with its password replaced by `***`, for messages.
fn redact_uri(uri: &str) -> String {
    let Some(start) = uri.find("://").map(|i| i + 3) else {
        return uri.to_string();
    };
    let rest = &uri[start..];
    let slash = rest.find('/').unwrap_or(rest.len());
    match rest[..slash].find('@') {
        Some(at) => match rest[..at].find(':') {
            Some(c) => format!("{}{}:***{}", &uri[..start], &rest[..c], &rest[at..]),
            None => uri.to_string(),
        },
        None => uri.to_string(),
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) else {
                return Err(format!("invalid percent-encoded token: \"{s}\""));
            };
            let v = (h * 16 + l) as u8;
            if v == 0 {
                return Err(format!(
                    "forbidden value %00 in percent-encoded value: \"{s}\""
                ));
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("invalid percent-encoded token: \"{s}\""))
}

/// conninfo_uri_parse_options:
/// `postgresql://[user[:password]@][host][:port][,...][/dbname][?k=v&...]`.
fn parse_uri(full: &str) -> Result<Values, String> {
    let rest = full
        .strip_prefix("postgresql://")
        .or_else(|| full.strip_prefix("postgres://"))
        .unwrap_or(full);
    // Messages show the URI without its password.
    let uri = redact_uri(full);
    let uri = uri.as_str();
    let mut vals = Values::new();
    // Credentials: the first '@' before the first '/' (libpq), so that a
    // password may hold '?' or ':'.
    let slash = rest.find('/').unwrap_or(rest.len());
    let after_userinfo = match rest[..slash].find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let (user, pw) = match userinfo.find(':') {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            let secret = |_| {
                "invalid percent-encoded token in the user name or password of the URI".to_string()
            };
            if !user.is_empty() {
                vals.insert("user".into(), percent_decode(user).map_err(secret)?);
            }
            if let Some(pw) = pw.filter(|p| !p.is_empty()) {
                vals.insert("password".into(), percent_decode(pw).map_err(secret)?);
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    let netloc_end = after_userinfo
        .find(['/', '?'])
        .unwrap_or(after_userinfo.len());
    let netloc = &after_userinfo[..netloc_end];
    let tail = &after_userinfo[netloc_end..];
    let (path, query) = match tail.strip_prefix('/') {
        Some(p) => match p.find('?') {
            Some(q) => (Some(&p[..q]), Some(&p[q + 1..])),
            None => (Some(p), None),
        },
        None => (None, tail.strip_prefix('?')),
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let mut any_port = false;
    for part in netloc.split(',') {
        let (host, port) = if let Some(v6) = part.strip_prefix('[') {
            let Some(end) = v6.find(']') else {
                return Err(format!(
                    "end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{uri}\""
                ));
            };
            if end == 0 {
                return Err(format!(
                    "IPv6 host address may not be empty in URI: \"{uri}\""
                ));
            }
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => {
                    let c = after.chars().next().unwrap_or(' ');
                    return Err(format!(
                        "unexpected character \"{c}\" in URI (expected \":\" or \"/\"): \"{uri}\""
                    ));
                }
            };
            (percent_decode(&v6[..end])?, port)
        } else {
            match part.rfind(':') {
                Some(c) => (percent_decode(&part[..c])?, Some(&part[c + 1..])),
                None => (percent_decode(part)?, None),
            }
        };
        any_port |= port.is_some_and(|p| !p.is_empty());
        hosts.push(host);
        ports.push(port.unwrap_or("").to_string());
    }
    if hosts.iter().any(|h| !h.is_empty()) || hosts.len() > 1 {
        vals.insert("host".into(), hosts.join(","));
    }
    if any_port {
        vals.insert("port".into(), ports.join(","));
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        vals.insert("dbname".into(), percent_decode(db)?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!(
                    "missing key/value separator \"=\" in URI query parameter: \"{pair}\""
                ));
            };
            let k = percent_decode(k)?;
            let v = percent_decode(v).map_err(|e| {
                if k == "password" {
                    "invalid percent-encoded token in the password of the URI".to_string()
                } else {
                    e
                }
            })?;
            if k == "ssl" && v == "true" {
                vals.insert("sslmode".into(), "require".into());
                continue;
            }
            if !is_option(&k) && k != "requiressl" {
                return Err(format!("invalid URI query parameter: \"{k}\""));
            }
            store(&mut vals, &k, v)?;
        }
    }
    Ok(vals)
}

fn bool_option(vals: &Values, key: &str, default: bool) -> Result<bool, String> {
    match vals.get(key).map(String::as_str) {
        None | Some("") => Ok(default),
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) => Err(format!("invalid {key} value: \"{v}\"")),
    }
}

/// Turns the merged values into `ConnParams`, with libpq's defaults and
/// checks, and isospec's one-line refusals where it cannot do what libpq
/// does.
fn build(vals: Values, home: Option<&Path>) -> Result<Resolved, String> {
    let get = |k: &str| vals.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut warnings = Vec::new();
    refuse_unsupported(&vals)?;
    let targets = targets(&vals)?;
    let user = match get("user") {
        Some(u) => u.to_string(),
        None => nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or("could not determine the user name; give --user, PGUSER or user=")?,
    };
    let password = get("password").map(|p| Secret(p.as_bytes().to_vec()));
    let mut passfile = get("passfile")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".pgpass")));
    // The file's own checks, once per run instead of once per connection.
    if password.is_none() {
        if let Some(f) = &passfile {
            if let (_, Some(w)) = files::password_from_file(f, "", 5432, "-", "-") {
                warnings.push(w);
                passfile = None;
            }
        }
    }

    let connect_timeout = match get("connect_timeout") {
        None => Some(DEFAULT_CONNECT_TIMEOUT),
        Some(t) => {
            let secs: i64 = t.trim().parse().map_err(|_| {
                format!("invalid integer value \"{t}\" for connection option \"connect_timeout\"")
            })?;
            match secs {
                s if s <= 0 => None,
                1 => Some(Duration::from_secs(2)),
                s => Some(Duration::from_secs(s as u64)),
            }
        }
    };

    let tls = tls_settings(&vals, home)?;
    let target_session_attrs = match get("target_session_attrs") {
        None | Some("any") => TargetSessionAttrs::Any,
        Some("read-write") => TargetSessionAttrs::ReadWrite,
        Some("read-only") => TargetSessionAttrs::ReadOnly,
        Some("primary") => TargetSessionAttrs::Primary,
        Some("standby") => TargetSessionAttrs::Standby,
        Some("prefer-standby") => TargetSessionAttrs::PreferStandby,
        Some(v) => return Err(format!("invalid target_session_attrs value: \"{v}\"")),
    };
    let load_balance_random = match get("load_balance_hosts") {
        None | Some("disable") => false,
        Some("random") => true,
        Some(v) => return Err(format!("invalid load_balance_hosts value: \"{v}\"")),
    };
    let mut extra = Vec::new();
    if let Some(e) = get("client_encoding") {
        // "auto": the encoding of the client's locale, as libpq works it out.
        let e = if e == "auto" {
            locale_encoding()
        } else {
            e.to_string()
        };
        extra.push(("client_encoding".to_string(), e));
    }
    Ok(Resolved {
        params: ConnParams {
            targets,
            user,
            password,
            passfile,
            dbname: "postgres".into(),
            application_name: None,
            options: get("options").map(str::to_string),
            extra,
            connect_timeout,
            tls,
            target_session_attrs,
            load_balance_random,
            requirepeer: get("requirepeer").map(str::to_string),
        },
        warnings,
    })
}

/// What isospec cannot do, each said in one line naming the setting.
fn refuse_unsupported(vals: &Values) -> Result<(), String> {
    let get = |k: &str| vals.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if let Some(m) = get("gssencmode") {
        match m {
            "disable" | "prefer" => {}
            "require" => {
                return Err(
                    "gssencmode value \"require\" invalid when GSSAPI support is not compiled in (isospec has no GSSAPI)"
                        .into(),
                )
            }
            v => return Err(format!("invalid gssencmode value: \"{v}\"")),
        }
    }
    if get("sslpassword").is_some() {
        return Err("sslpassword is not supported by isospec: decrypt the client key (sslkey) into a file of mode 0600 instead".into());
    }
    if get("require_auth").is_some() {
        return Err("require_auth is not supported by isospec".into());
    }
    if get("replication").is_some() {
        return Err("replication connections are not supported by isospec".into());
    }
    if let Some(m) = get("sslcertmode") {
        match m {
            "allow" | "disable" => {}
            "require" => return Err("sslcertmode=require is not supported by isospec".into()),
            v => return Err(format!("invalid sslcertmode value: \"{v}\"")),
        }
    }
    if let Some(v) = get("sslcompression") {
        if v != "0" && v != "1" {
            return Err(format!("invalid sslcompression value: \"{v}\""));
        }
    }

    Ok(())
}

/// Hosts, addresses and ports, paired as libpq pairs them.
fn targets(vals: &Values) -> Result<Vec<Target>, String> {
    let split = |k: &str| -> Vec<String> {
        match vals.get(k) {
            Some(v) if !v.is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let mut hosts = split("host");
    let addrs = split("hostaddr");
    let ports = split("port");
    if hosts.is_empty() {
        hosts = vec![String::new(); addrs.len().max(1)];
    }
    if !addrs.is_empty() && addrs.len() != hosts.len() {
        return Err(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        ));
    }
    if ports.len() > 1 && ports.len() != hosts.len() {
        return Err(format!(
            "could not match {} port numbers to {} hosts",
            ports.len(),
            hosts.len()
        ));
    }
    let mut targets = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let addr = addrs.get(i).filter(|a| !a.is_empty());
        let hostaddr = match addr {
            Some(a) => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| format!("could not parse network address \"{a}\""))?,
            ),
            None => None,
        };
        let port_s = if ports.len() == 1 {
            ports.first()
        } else {
            ports.get(i)
        };
        let port = match port_s.map(String::as_str).filter(|p| !p.is_empty()) {
            None => 5432,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port number: \"{p}\""))?,
        };
        let host = if h.is_empty() {
            match hostaddr {
                Some(a) => Host::Tcp(a.to_string()),
                None => Host::Unix(PathBuf::from(default_socket_dir())),
            }
        } else if h.starts_with('/') {
            Host::Unix(PathBuf::from(h))
        } else {
            Host::Tcp(h.clone())
        };
        targets.push(Target {
            host,
            hostaddr,
            port,
            host_given: !h.is_empty(),
        });
    }

    Ok(targets)
}

/// sslmode and the rest of TLS, channel binding included, with libpq's
/// defaults and its checks of combinations.
fn tls_settings(vals: &Values, home: Option<&Path>) -> Result<TlsSettings, String> {
    let get = |k: &str| vals.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let rootcert = get("sslrootcert").map(str::to_string);
    let mode = match get("sslmode") {
        Some(m) => SslMode::parse(m).ok_or_else(|| format!("invalid sslmode value: \"{m}\""))?,
        None if rootcert.as_deref() == Some("system") => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if rootcert.as_deref() == Some("system") && mode != SslMode::VerifyFull {
        return Err(format!(
            "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
            mode.name()
        ));
    }
    let direct = match get("sslnegotiation") {
        None | Some("postgres") => false,
        Some("direct") => true,
        Some(v) => return Err(format!("invalid sslnegotiation value: \"{v}\"")),
    };
    if direct && mode < SslMode::Require {
        return Err(format!(
            "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")",
            mode.name()
        ));
    }
    let channel_binding = match get("channel_binding") {
        None | Some("prefer") => ChannelBinding::Prefer,
        Some("disable") => ChannelBinding::Disable,
        Some("require") => ChannelBinding::Require,
        Some(v) => return Err(format!("invalid channel_binding value: \"{v}\"")),
    };
    if channel_binding == ChannelBinding::Require && mode == SslMode::Disable {
        return Err(
            "channel_binding=require is incompatible with sslmode=disable (channel binding needs TLS)".into(),
        );
    }
    let version = |k: &str| -> Result<Option<TlsVersion>, String> {
        match get(k) {
            None => Ok(None),
            Some("TLSv1.2") => Ok(Some(TlsVersion::Tls12)),
            Some("TLSv1.3") => Ok(Some(TlsVersion::Tls13)),
            Some(v @ ("TLSv1" | "TLSv1.1")) => Err(format!(
                "{k} \"{v}\" is not supported by isospec (its TLS library speaks TLSv1.2 and TLSv1.3)"
            )),
            Some(v) => Err(format!("invalid {k} value: \"{v}\"")),
        }
    };
    let min_version = version("ssl_min_protocol_version")?.or(Some(TlsVersion::Tls12));
    let max_version = version("ssl_max_protocol_version")?;
    if let (Some(TlsVersion::Tls13), Some(TlsVersion::Tls12)) = (min_version, max_version) {
        return Err("invalid SSL protocol version range".into());
    }
    let tls = TlsSettings {
        mode,
        direct,
        rootcert,
        cert: get("sslcert").map(PathBuf::from),
        key: get("sslkey").map(PathBuf::from),
        no_client_cert: get("sslcertmode") == Some("disable"),
        crl: get("sslcrl").map(PathBuf::from),
        crldir: get("sslcrldir").map(PathBuf::from),
        sni: bool_option(vals, "sslsni", true)?,
        min_version,
        max_version,
        channel_binding,
        home: home.map(Path::to_path_buf),
    };
    Ok(tls)
}

/// The encoding of the locale (LC_ALL, LC_CTYPE, LANG) for
/// client_encoding=auto: UTF8 for a UTF-8 locale, else SQL_ASCII (C/POSIX).
fn locale_encoding() -> String {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    if locale.contains("utf-8") || locale.contains("utf8") {
        "UTF8".into()
    } else {
        "SQL_ASCII".into()
    }
}

/// libpq's DEFAULT_PGSOCKET_DIR where it exists, else /tmp (PostgreSQL's
/// own default, for servers built from source).
fn default_socket_dir() -> String {
    for d in [DEFAULT_SOCKET_DIR, "/tmp"] {
        if Path::new(d).is_dir() {
            return d.to_string();
        }
    }
    "/tmp".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    fn resolve_env(req: &ConnRequest, pairs: &[(&str, &str)]) -> Result<ConnParams, String> {
        let env = env_of(pairs);
        resolve_with(req, &env, Some(Path::new("/nonexistent-home"))).map(|r| r.params)
    }

    fn tcp(p: &ConnParams) -> Vec<(String, u16)> {
        p.targets.iter().map(|t| (t.host_name(), t.port)).collect()
    }

    #[test]
    fn keyword_value_strings_like_libpq() {
        let v = parse_conninfo("host=localhost port = 5433 password='it''s \\'q\\'' user=a\\ b")
            .unwrap_err();
        // '' is not an escape in conninfo: the quoted value ends there.
        assert!(v.contains("missing \"=\""), "{v}");
        let v = parse_conninfo("host=h  user = 'a b'  password='x\\'y' options='-c a=b'").unwrap();
        assert_eq!(v["host"], "h");
        assert_eq!(v["user"], "a b");
        assert_eq!(v["password"], "x'y");
        assert_eq!(v["options"], "-c a=b");
        assert_eq!(
            parse_conninfo("host").unwrap_err(),
            "missing \"=\" after \"host\" in connection info string"
        );
        assert_eq!(
            parse_conninfo("host='x").unwrap_err(),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(
            parse_conninfo("hots=x").unwrap_err(),
            "invalid connection option \"hots\""
        );
        assert_eq!(
            parse_conninfo("requiressl=1").unwrap()["sslmode"],
            "require"
        );
    }

    #[test]
    fn uris_like_libpq() {
        // The examples of libpq's documentation.
        let v = parse_uri("postgresql://").unwrap();
        assert!(v.is_empty());
        let v = parse_uri("postgresql://localhost:5433").unwrap();
        assert_eq!(
            (v["host"].as_str(), v["port"].as_str()),
            ("localhost", "5433")
        );
        let v = parse_uri(
            "postgresql://user:secret@localhost/otherdb?connect_timeout=10&application_name=myapp",
        )
        .unwrap();
        assert_eq!(v["user"], "user");
        assert_eq!(v["password"], "secret");
        assert_eq!(v["dbname"], "otherdb");
        assert_eq!(v["connect_timeout"], "10");
        let v = parse_uri("postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp").unwrap();
        assert_eq!(v["host"], "host1,host2");
        assert_eq!(v["port"], "123,456");
        let v = parse_uri("postgresql://[2001:db8::1234]/database").unwrap();
        assert_eq!(v["host"], "2001:db8::1234");
        let v = parse_uri("postgresql://%2Fvar%2Flib%2Fpostgresql/dbname").unwrap();
        assert_eq!(v["host"], "/var/lib/postgresql");
        let v = parse_uri("postgresql:///dbname?host=/var/lib/postgresql").unwrap();
        assert_eq!(v["host"], "/var/lib/postgresql");
        let v = parse_uri("postgresql://localhost/db?ssl=true&sslrootcert=/ca.crt").unwrap();
        assert_eq!(v["sslmode"], "require");
        assert_eq!(v["sslrootcert"], "/ca.crt");
        assert_eq!(
            parse_uri("postgresql://h/db?bogus=1").unwrap_err(),
            "invalid URI query parameter: \"bogus\""
        );
        assert!(parse_uri("postgresql://h/d%zz")
            .unwrap_err()
            .contains("invalid percent-encoded token"));
        assert!(parse_uri("postgresql://h/d%00")
            .unwrap_err()
            .contains("forbidden value %00"));
        let v = parse_uri("postgres://u%40x:p%3Aw@h").unwrap();
        assert_eq!((v["user"].as_str(), v["password"].as_str()), ("u@x", "p:w"));
    }

    #[test]
    fn uri_edge_cases_like_libpq() {
        // A password may hold '?' and ':' (credentials end at the first '@'
        // before the first '/').
        let v = parse_uri("postgresql://u:pa?s:s@h/db?sslmode=require").unwrap();
        assert_eq!(v["password"], "pa?s:s");
        assert_eq!(v["host"], "h");
        assert_eq!(v["dbname"], "db");
        assert_eq!(v["sslmode"], "require");
        // IPv6 with a port, a zone, and a list.
        let v = parse_uri("postgresql://[::1]:5433,[fe80::1%25eth0]/db").unwrap();
        assert_eq!(v["host"], "::1,fe80::1%eth0");
        assert_eq!(v["port"], "5433,");
        assert!(parse_uri("postgresql://[]/db")
            .unwrap_err()
            .contains("IPv6 host address may not be empty"));
        // No panic on a multi-byte character after ']'.
        let e = parse_uri("postgresql://[::1]é/db").unwrap_err();
        assert!(e.contains("unexpected character \"é\""), "{e}");
        // A query without a path.
        let v = parse_uri("postgresql://h?port=7").unwrap();
        assert_eq!((v["host"].as_str(), v["port"].as_str()), ("h", "7"));
    }

    #[test]
    fn errors_never_show_a_password() {
        let e = parse_conninfo("password=my secret host=h").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = parse_conninfo("password=my secret=x").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = parse_uri("postgresql://u:p%zzword@h/db").unwrap_err();
        assert!(!e.contains("zzword"), "{e}");
        let e = parse_uri("postgresql://u:hunter2@[::1/db").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("u:***@"), "{e}");
        let e = parse_uri("postgresql://h/db?password=a%zz").unwrap_err();
        assert!(!e.contains("a%zz"), "{e}");
    }

    #[test]
    fn the_password_file_sees_the_host_as_given() {
        let req = |ci: &str| ConnRequest {
            conninfo: Some(ci.into()),
            user: Some("u".into()),
            ..Default::default()
        };
        // No host: empty, which matches localhost, whatever the socket dir.
        let p = resolve_env(&req("port=1"), &[]).unwrap();
        assert_eq!(p.targets[0].password_host(), "");
        assert_eq!(p.targets[0].host_name(), "");
        // Only hostaddr: the address; verify-full has no name to check.
        let p = resolve_env(&req("hostaddr=127.0.0.1"), &[]).unwrap();
        assert_eq!(p.targets[0].password_host(), "127.0.0.1");
        assert_eq!(p.targets[0].host_name(), "");
        let p = resolve_env(&req("host=db hostaddr=127.0.0.1"), &[]).unwrap();
        assert_eq!(p.targets[0].password_host(), "db");
        assert_eq!(p.targets[0].host_name(), "db");
    }

    #[test]
    fn precedence_flags_conninfo_service_environment_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let svc = dir.path().join("services.conf");
        std::fs::write(
            &svc,
            "[ci]\nhost=svc-host\nport=6000\nuser=svc-user\nsslmode=require\n",
        )
        .unwrap();
        let svc_env = svc.to_str().unwrap();
        // Defaults only.
        let p = resolve_env(&ConnRequest::default(), &[("PGUSER", "u")]).unwrap();
        assert_eq!(p.targets[0].port, 5432);
        assert_eq!(p.tls.mode, SslMode::Prefer);
        assert_eq!(p.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
        // The environment over the defaults.
        let p = resolve_env(
            &ConnRequest::default(),
            &[("PGHOST", "eh"), ("PGPORT", "7000"), ("PGUSER", "eu")],
        )
        .unwrap();
        assert_eq!(tcp(&p), vec![("eh".into(), 7000)]);
        // The service file over the environment (conninfo_add_defaults reads
        // the service first and the environment only for what is still unset).
        let env = [
            ("PGSERVICE", "ci"),
            ("PGSERVICEFILE", svc_env),
            ("PGHOST", "eh"),
            ("PGSSLMODE", "disable"),
        ];
        let p = resolve_env(&ConnRequest::default(), &env).unwrap();
        assert_eq!(tcp(&p), vec![("svc-host".into(), 6000)]);
        assert_eq!(p.user, "svc-user");
        assert_eq!(p.tls.mode, SslMode::Require);
        // The conninfo over the service; `service=` in it names the service.
        let req = ConnRequest {
            conninfo: Some("service=ci port=6001".into()),
            ..Default::default()
        };
        let p = resolve_env(&req, &[("PGSERVICEFILE", svc_env)]).unwrap();
        assert_eq!(tcp(&p), vec![("svc-host".into(), 6001)]);
        // Flags over everything.
        let req = ConnRequest {
            conninfo: Some("host=ci-host port=6001 user=ci-user".into()),
            host: Some("flag-host".into()),
            port: None,
            user: Some("flag-user".into()),
        };
        let p = resolve_env(&req, &env).unwrap();
        assert_eq!(tcp(&p), vec![("flag-host".into(), 6001)]);
        assert_eq!(p.user, "flag-user");
        // A missing service is libpq's error.
        let err = resolve_env(
            &ConnRequest::default(),
            &[
                ("PGSERVICE", "nope"),
                ("PGSERVICEFILE", svc_env),
                ("PGSYSCONFDIR", "/nonexistent"),
            ],
        )
        .unwrap_err();
        assert_eq!(err, "definition of service \"nope\" not found");
    }

    #[test]
    fn sysconfdir_service_file_after_the_users() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pg_service.conf"), "[sys]\nhost=sys-host\n").unwrap();
        std::fs::write(dir.path().join("user.conf"), "[other]\nhost=x\n").unwrap();
        let env = [
            ("PGSERVICE", "sys"),
            (
                "PGSERVICEFILE",
                dir.path()
                    .join("user.conf")
                    .to_str()
                    .unwrap()
                    .to_string()
                    .leak() as &str,
            ),
            (
                "PGSYSCONFDIR",
                dir.path().to_str().unwrap().to_string().leak() as &str,
            ),
            ("PGUSER", "u"),
        ];
        let p = resolve_env(&ConnRequest::default(), &env).unwrap();
        assert_eq!(tcp(&p), vec![("sys-host".into(), 5432)]);
    }

    #[test]
    fn host_lists_pair_with_ports() {
        let req = |ci: &str| ConnRequest {
            conninfo: Some(ci.into()),
            user: Some("u".into()),
            ..Default::default()
        };
        let p = resolve_env(&req("host=a,b port=5432,5433"), &[]).unwrap();
        assert_eq!(tcp(&p), vec![("a".into(), 5432), ("b".into(), 5433)]);
        let p = resolve_env(&req("host=a,b,/tmp port=6000"), &[]).unwrap();
        assert_eq!(
            tcp(&p),
            vec![
                ("a".into(), 6000),
                ("b".into(), 6000),
                ("/tmp".into(), 6000)
            ]
        );
        assert_eq!(
            resolve_env(&req("host=a,b,c port=1,2"), &[]).unwrap_err(),
            "could not match 2 port numbers to 3 hosts"
        );
        let p = resolve_env(&req("postgresql://a:1,b:2/db"), &[]).unwrap();
        assert_eq!(tcp(&p), vec![("a".into(), 1), ("b".into(), 2)]);
        let p = resolve_env(&req("host=name hostaddr=127.0.0.1"), &[]).unwrap();
        assert_eq!(p.targets[0].hostaddr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p.targets[0].host_name(), "name");
    }

    #[test]
    fn tls_settings_and_refusals() {
        let req = |ci: &str| ConnRequest {
            conninfo: Some(ci.into()),
            user: Some("u".into()),
            ..Default::default()
        };
        let p = resolve_env(&req("sslrootcert=system"), &[]).unwrap();
        assert_eq!(p.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            resolve_env(&req("sslrootcert=system sslmode=require"), &[]).unwrap_err(),
            "weak sslmode \"require\" may not be used with sslrootcert=system (use \"verify-full\")"
        );
        assert!(resolve_env(&req("sslnegotiation=direct"), &[])
            .unwrap_err()
            .contains("weak sslmode \"prefer\""));
        assert!(
            resolve_env(&req("sslnegotiation=direct sslmode=require"), &[])
                .unwrap()
                .tls
                .direct
        );
        assert!(resolve_env(&req("gssencmode=require"), &[])
            .unwrap_err()
            .contains("gssencmode"));
        assert_eq!(
            resolve_env(&req("sslmode=bogus"), &[]).unwrap_err(),
            "invalid sslmode value: \"bogus\""
        );
        let p = resolve_env(
            &req("channel_binding=require"),
            &[("PGSSLMODE", "verify-ca")],
        )
        .unwrap();
        assert_eq!(p.tls.channel_binding, ChannelBinding::Require);
        assert_eq!(p.tls.mode, SslMode::VerifyCa);
        assert_eq!(
            resolve_env(&req("connect_timeout=0"), &[])
                .unwrap()
                .connect_timeout,
            None
        );
        assert_eq!(
            resolve_env(&req("connect_timeout=1"), &[])
                .unwrap()
                .connect_timeout,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn an_insecure_password_file_is_refused_with_libpqs_warning() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, "*:*:*:*:pw\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let env = env_of(&[("PGPASSFILE", f.to_str().unwrap()), ("PGUSER", "u")]);
        let r = resolve_with(&ConnRequest::default(), &env, None).unwrap();
        assert_eq!(r.params.passfile, None);
        assert!(
            r.warnings[0].contains("has group or world access"),
            "{:?}",
            r.warnings
        );
    }
}
