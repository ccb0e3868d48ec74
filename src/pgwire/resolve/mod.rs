//! Resolving a connection the way libpq does: a conninfo string or URI
//! (conninfo_parse, conninfo_uri_parse), then the service file, then the
//! `PG*` environment, then the defaults (conninfo_add_defaults), with
//! isospec's own `--host`/`--port`/`--user` flags over all of them.  The
//! result is the one `ConnParams` every connection of a run is made from.
//!
//! The environment comes in as a snapshot (`Environment`), never from the
//! process: resolution is a function of its inputs.  By what it resolves:
//! `conninfo` (strings and URIs), `hosts` (hosts, addresses and ports
//! paired), `tls` (sslmode and the rest of TLS); this module merges the
//! sources and builds the parameters.

mod conninfo;
mod hosts;
mod tls;

pub use conninfo::parse_conninfo;

use super::files::{self, ServiceLookup};
use super::settings::*;
use crate::environment::Environment;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a connection could not be resolved; each message is libpq's where
/// libpq has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The conninfo string or URI does not parse.
    #[error("{0}")]
    Syntax(String),
    /// The service named is not defined, or its file does not parse.
    #[error("{0}")]
    Service(String),
    /// A setting has a value libpq refuses, or settings that do not go
    /// together.
    #[error("{0}")]
    Invalid(String),
    /// A setting libpq supports and isospec does not.
    #[error("{0}")]
    Unsupported(String),
    #[error("could not determine the user name; give --user, PGUSER or user=")]
    NoUser,
}

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

pub(super) fn is_option(key: &str) -> bool {
    OPTIONS.iter().any(|(k, _)| *k == key)
}

pub(super) type Values = HashMap<String, String>;

/// Resolves `req` with the environment `env` (libpq's variables, and
/// `HOME` for the password and service files).
pub fn resolve(req: &ConnRequest, env: &Environment) -> Result<Resolved, ResolveError> {
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
    let home = env.home_dir();
    apply_service(&mut vals, env, home.as_deref())?;
    for (key, var) in OPTIONS {
        if vals.contains_key(*key) {
            continue;
        }
        if let Some(v) = var.and_then(|v| env.string(v)) {
            vals.insert(key.to_string(), v);
        }
    }
    build(vals, env, home.as_deref())
}

/// Fills options not yet set from the service named by `service` or
/// PGSERVICE: PGSERVICEFILE (else ~/.pg_service.conf) first, then
/// PGSYSCONFDIR/pg_service.conf.
fn apply_service(
    vals: &mut Values,
    env: &Environment,
    home: Option<&Path>,
) -> Result<(), ResolveError> {
    let Some(service) = vals
        .get("service")
        .cloned()
        .or_else(|| env.string("PGSERVICE"))
    else {
        return Ok(());
    };
    let user_file = env
        .get_os("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".pg_service.conf")));
    let sys_file = PathBuf::from(
        env.get_os("PGSYSCONFDIR")
            .unwrap_or(std::ffi::OsStr::new("/etc/postgresql-common")),
    )
    .join("pg_service.conf");
    for file in user_file.into_iter().chain([sys_file]) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let ServiceLookup::Found(settings) =
            files::parse_service_file(&text, &file, &service, is_option)
                .map_err(ResolveError::Service)?
        {
            for (k, v) in settings {
                vals.entry(k).or_insert(v);
            }
            return Ok(());
        }
    }
    Err(ResolveError::Service(format!(
        "definition of service \"{service}\" not found"
    )))
}

pub(super) fn bool_option(vals: &Values, key: &str, default: bool) -> Result<bool, String> {
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
fn build(vals: Values, env: &Environment, home: Option<&Path>) -> Result<Resolved, ResolveError> {
    let get = |k: &str| vals.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut warnings = Vec::new();
    refuse_unsupported(&vals)?;
    let targets = hosts::targets(&vals).map_err(ResolveError::Invalid)?;
    let user = match get("user") {
        Some(u) => u.to_string(),
        None => nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or(ResolveError::NoUser)?,
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
                ResolveError::Invalid(format!(
                    "invalid integer value \"{t}\" for connection option \"connect_timeout\""
                ))
            })?;
            match secs {
                s if s <= 0 => None,
                1 => Some(Duration::from_secs(2)),
                s => Some(Duration::from_secs(s as u64)),
            }
        }
    };

    let tls = tls::tls_settings(&vals, home).map_err(ResolveError::Invalid)?;
    let target_session_attrs = match get("target_session_attrs") {
        None | Some("any") => TargetSessionAttrs::Any,
        Some("read-write") => TargetSessionAttrs::ReadWrite,
        Some("read-only") => TargetSessionAttrs::ReadOnly,
        Some("primary") => TargetSessionAttrs::Primary,
        Some("standby") => TargetSessionAttrs::Standby,
        Some("prefer-standby") => TargetSessionAttrs::PreferStandby,
        Some(v) => {
            return Err(ResolveError::Invalid(format!(
                "invalid target_session_attrs value: \"{v}\""
            )))
        }
    };
    let load_balance_random = match get("load_balance_hosts") {
        None | Some("disable") => false,
        Some("random") => true,
        Some(v) => {
            return Err(ResolveError::Invalid(format!(
                "invalid load_balance_hosts value: \"{v}\""
            )))
        }
    };
    let mut extra = Vec::new();
    if let Some(e) = get("client_encoding") {
        // "auto": the encoding of the client's locale, as libpq works it out.
        let e = if e == "auto" {
            locale_encoding(env)
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
fn refuse_unsupported(vals: &Values) -> Result<(), ResolveError> {
    let get = |k: &str| vals.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if let Some(m) = get("gssencmode") {
        match m {
            "disable" | "prefer" => {}
            "require" => {
                return Err(ResolveError::Unsupported(
                    "gssencmode value \"require\" invalid when GSSAPI support is not compiled in (isospec has no GSSAPI)"
                        .into(),
                ))
            }
            v => {
                return Err(ResolveError::Invalid(format!(
                    "invalid gssencmode value: \"{v}\""
                )))
            }
        }
    }
    if get("require_auth").is_some() {
        return Err(ResolveError::Unsupported(
            "require_auth is not supported by isospec".into(),
        ));
    }
    if get("replication").is_some() {
        return Err(ResolveError::Unsupported(
            "replication connections are not supported by isospec".into(),
        ));
    }
    if let Some(m) = get("sslcertmode") {
        match m {
            "allow" | "disable" => {}
            "require" => {
                return Err(ResolveError::Unsupported(
                    "sslcertmode=require is not supported by isospec".into(),
                ))
            }
            v => {
                return Err(ResolveError::Invalid(format!(
                    "invalid sslcertmode value: \"{v}\""
                )))
            }
        }
    }
    if let Some(v) = get("sslcompression") {
        if v != "0" && v != "1" {
            return Err(ResolveError::Invalid(format!(
                "invalid sslcompression value: \"{v}\""
            )));
        }
    }

    Ok(())
}

/// The encoding of the locale (LC_ALL, LC_CTYPE, LANG) for
/// client_encoding=auto: UTF8 for a UTF-8 locale, else SQL_ASCII (C/POSIX).
fn locale_encoding(env: &Environment) -> String {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| env.get(v))
        .unwrap_or_default()
        .to_ascii_lowercase();
    if locale.contains("utf-8") || locale.contains("utf8") {
        "UTF8".into()
    } else {
        "SQL_ASCII".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    fn resolve_env(req: &ConnRequest, pairs: &[(&str, &str)]) -> Result<ConnParams, String> {
        resolve_typed(req, pairs).map_err(|e| e.to_string())
    }

    fn resolve_typed(
        req: &ConnRequest,
        pairs: &[(&str, &str)],
    ) -> Result<ConnParams, ResolveError> {
        let env = env_of(pairs).with("HOME", "/nonexistent-home");
        resolve(req, &env).map(|r| r.params)
    }

    #[test]
    fn errors_say_what_kind_of_failure_they_are() {
        let kind = |ci: &str| {
            let req = ConnRequest {
                conninfo: Some(ci.to_string()),
                ..Default::default()
            };
            resolve_typed(&req, &[]).unwrap_err()
        };
        assert!(matches!(kind("host"), ResolveError::Syntax(_)));
        assert!(matches!(kind("service=nope"), ResolveError::Service(_)));
        assert!(matches!(kind("sslmode=bogus"), ResolveError::Invalid(_)));
        assert!(matches!(
            kind("replication=1"),
            ResolveError::Unsupported(_)
        ));
    }

    fn tcp(p: &ConnParams) -> Vec<(String, u16)> {
        p.targets.iter().map(|t| (t.host_name(), t.port)).collect()
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
        let r = resolve(&ConnRequest::default(), &env).unwrap();
        assert_eq!(r.params.passfile, None);
        assert!(
            r.warnings[0].contains("has group or world access"),
            "{:?}",
            r.warnings
        );
    }
}
