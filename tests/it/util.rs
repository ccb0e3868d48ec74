//! Shared helpers of the integration tests: the `isospec` command with a
//! clean environment, work directories the server's OS user can reach,
//! suites written on the fly, and waiting for *states* of a real server
//! (a row in `pg_stat_activity`, a process gone) rather than for durations.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `isospec` with no server-choosing or timeout variables inherited.
pub fn isospec() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_isospec"));
    // Every variable isospec reads that could name a server or change a
    // run (the table docs/environment.md is made from), and libpq's
    // database: the tests set what they mean.
    let vars = isospec::environment::VARIABLES
        .iter()
        .flat_map(|v| v.names.iter());
    for v in vars.chain(&["PGDATABASE"]) {
        if ["ISOSPEC_", "PG", "GITHUB_"]
            .iter()
            .any(|p| v.starts_with(p))
        {
            c.env_remove(v);
        }
    }
    c
}

/// Why tests that need PostgreSQL's server binaries cannot run here, if so.
pub fn no_server_reason() -> Option<String> {
    let missing: Vec<&str> = ["initdb", "postgres"]
        .into_iter()
        .filter(|b| isospec::server::find_binary(None, b, environment().path()).is_err())
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "{} not found through pg_config or PATH; install PostgreSQL's server binaries (Debian: postgresql-15) to run them",
            missing.join(" and ")
        ))
    }
}

/// Returns early from a test that needs a server when there is none,
/// saying why (see `skip`); under `ISOSPEC_TESTS_REQUIRE_ALL=1` (CI) it
/// fails instead.
#[macro_export]
macro_rules! require_server {
    () => {
        if let Some(why) = $crate::util::no_server_reason() {
            $crate::util::skip(&why);
            return;
        }
    };
}

/// A test that cannot run here: fails under `ISOSPEC_TESTS_REQUIRE_ALL=1`
/// (set by .ci/run, so that a CI machine that lost PostgreSQL, PgBouncer
/// or a binary is red, not green), else says why once per distinct reason
/// (on the real stderr, so that it shows in `cargo test`'s output).
pub fn skip(why: &str) {
    if std::env::var("ISOSPEC_TESTS_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("this test would be skipped, and ISOSPEC_TESTS_REQUIRE_ALL=1 forbids it: {why}");
    }
    say_skipped_once(why);
}

/// Says `why` on stderr, once per distinct reason in this test binary.
pub fn say_skipped_once(why: &str) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.iter().any(|w| w == why) {
        said.push(why.to_string());
        let _ = writeln!(std::io::stderr(), "isospec tests: skipping: {why}");
    }
}

/// A temporary directory the server's OS user can reach (when running as root).
pub fn workdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("isospec-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `isospec run` with its outputs and a temp instance in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    run_in_env(dir, &[], args)
}

/// `run_in` with environment variables set (PGISOLATIONTIMEOUT, …).
pub fn run_in_env(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let tmp = dir.join("tmp_check");
    isospec()
        .envs(env.iter().copied())
        .arg("run")
        .arg("--outputdir")
        .arg(dir)
        .arg("--temp-instance")
        .arg(&tmp)
        .args(args)
        .output()
        .unwrap()
}

/// Asserts the exit code (showing both outputs otherwise); returns stdout.
pub fn expect_exit(out: &Output, code: i32) -> String {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    stdout
}

/// Writes `suite/specs/NAME.spec` and `suite/expected/NAME.out` below `dir`;
/// returns the specs directory.
pub fn write_suite(dir: &Path, specs: &[(&str, &str, &str)]) -> PathBuf {
    let spec_dir = dir.join("suite/specs");
    let expected = dir.join("suite/expected");
    std::fs::create_dir_all(&spec_dir).unwrap();
    std::fs::create_dir_all(&expected).unwrap();
    for (name, spec, out) in specs {
        std::fs::write(spec_dir.join(format!("{name}.spec")), spec).unwrap();
        std::fs::write(expected.join(format!("{name}.out")), out).unwrap();
    }
    spec_dir
}

/// Writes `suite/specs/NAME.spec` below `dir` with no expected output yet
/// (new specs); returns the specs directory.
pub fn write_new_specs(dir: &Path, specs: &[(&str, &str)]) -> PathBuf {
    let spec_dir = dir.join("suite/specs");
    std::fs::create_dir_all(&spec_dir).unwrap();
    std::fs::create_dir_all(dir.join("suite/expected")).unwrap();
    for (name, spec) in specs {
        std::fs::write(spec_dir.join(format!("{name}.spec")), spec).unwrap();
    }
    spec_dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `ps` lines of postgres processes whose command line names `dir`.
pub fn postgres_processes_for(dir: &Path) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter(|l| l.contains("postgres") && l.contains(dir.to_str().unwrap()))
        .map(|l| l.to_string())
        .collect()
}

/// Starts `isospec run` on `specs` with a temp instance in `tmp`, in the
/// background, with its output captured.
pub fn spawn_run(dir: &Path, tmp: &Path, specs: &Path, jobs: &str) -> Child {
    isospec()
        .arg("run")
        .arg("--outputdir")
        .arg(dir)
        .arg("--temp-instance")
        .arg(tmp)
        .args(["-j", jobs])
        .arg(specs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A throwaway server started by the library (the tests' "existing"
/// server), in `dir`/srv; stopped when dropped.
pub fn start_instance(dir: &Path) -> isospec::server::TempInstance {
    isospec::server::TempInstance::start(&isospec::server::TempInstanceOptions::new(
        dir.join("srv"),
        environment(),
    ))
    .unwrap()
}

/// The tests' environment, as isospec's command line snapshots its own.
pub fn environment() -> isospec::environment::Environment {
    isospec::environment::Environment::from_pairs(std::env::vars_os())
}

/// `isospec run` against `inst` as its superuser, outputs in `dir`.
pub fn run_against(inst: &isospec::server::TempInstance, dir: &Path) -> Command {
    let mut c = isospec();
    c.arg("run")
        .arg("--outputdir")
        .arg(dir)
        .arg("--host")
        .arg(&inst.socket_dir)
        .args(["--port", &inst.port.to_string(), "--user", &Server::user()]);
    c
}

/// Hang guard for waits on states: far beyond what any state takes to
/// appear, even on a loaded machine; reaching it means the state never came.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// Polls `cond` until it holds; panics (naming `what`) if it never does.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG_GUARD, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server to ask questions, found through its data directory's
/// postmaster.pid once the postmaster says it is ready.
pub struct Server {
    pub pid: i32,
    pub port: u16,
    pub socket_dir: PathBuf,
}

impl Server {
    /// The server of data directory `data`, once it accepts connections.
    pub fn ready(data: &Path) -> Server {
        let pidfile = data.join("postmaster.pid");
        let mut found = None;
        wait_for(&format!("{} ready", pidfile.display()), || {
            let Ok(t) = std::fs::read_to_string(&pidfile) else {
                return false;
            };
            let l: Vec<&str> = t.lines().collect();
            if l.len() < 8 || l[7].trim() != "ready" {
                return false;
            }
            found = Some(Server {
                pid: l[0].trim().parse().unwrap(),
                port: l[3].trim().parse().unwrap(),
                socket_dir: PathBuf::from(l[4].trim()),
            });
            true
        });
        found.unwrap()
    }

    /// The instance's superuser: the OS user the server runs as.
    pub fn user() -> String {
        if is_root() {
            "postgres".into()
        } else {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .unwrap()
                .unwrap()
                .name
        }
    }

    /// Runs `sql` (simple protocol) in `db`; the first column of each row.
    pub fn query(&self, db: &str, sql: &str) -> Result<Vec<String>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::Config::new()
                .host_path(&self.socket_dir)
                .port(self.port)
                .user(Self::user())
                .dbname(db)
                .connect_timeout(Duration::from_secs(30))
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let task = tokio::spawn(conn);
            let rows = client.simple_query(sql).await.map_err(|e| e.to_string())?;
            drop(client);
            let _ = task.await;
            Ok(rows
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or("").to_string())
                    }
                    _ => None,
                })
                .collect())
        })
    }

    /// Waits until the session of every `application_name` in `apps` is
    /// running a query that contains `query` (the step under way).
    pub fn wait_running(&self, apps: &[String], query: &str) {
        let list: Vec<String> = apps.iter().map(|a| format!("'{a}'")).collect();
        let sql = format!(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity \
             WHERE state = 'active' AND application_name IN ({}) \
             AND strpos(query, '{}') > 0",
            list.join(","),
            query.replace('\'', "''")
        );
        wait_for(&format!("steps running in {apps:?}"), || {
            self.query("postgres", &sql)
                .is_ok_and(|r| r.first().map(String::as_str) == Some(&apps.len().to_string()))
        });
    }
}

/// PgBouncer, if installed (Debian: pgbouncer).
pub fn pgbouncer_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file());
    found
}

/// Returns early from a test that needs PgBouncer when it is missing,
/// saying why once.
#[macro_export]
macro_rules! require_pgbouncer {
    () => {
        require_server!();
        if $crate::util::pgbouncer_binary().is_none() {
            $crate::util::skip(
                "pgbouncer not found; install it (Debian: pgbouncer) to run the pooler tests",
            );
            return;
        }
    };
}

/// A PgBouncer on 127.0.0.1 in front of `inst`, as the server's OS user;
/// stopped (and continued first, if stopped) when dropped.
pub struct Pooler {
    pub port: u16,
    child: Child,
}

impl Pooler {
    /// Starts PgBouncer with `settings` ("name = value" lines of its
    /// [pgbouncer] section, after session pooling defaults) in `dir`.
    pub fn start(inst: &isospec::server::TempInstance, dir: &Path, settings: &[&str]) -> Pooler {
        Self::start_for(inst, dir, "*", settings)
    }

    /// `start` with only database `db` reachable through the pooler
    /// (`*` for every one).
    pub fn start_for(
        inst: &isospec::server::TempInstance,
        dir: &Path,
        db: &str,
        settings: &[&str],
    ) -> Pooler {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let user = Server::user();
        let mut ini = format!(
            "[databases]\n{db} = host={} port={}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = trust\nauth_file = {}\nmax_client_conn = 100\n\
             default_pool_size = 20\npool_mode = session\nlogfile = {}\n",
            inst.socket_dir.display(),
            inst.port,
            dir.join("users.txt").display(),
            dir.join("pgbouncer.log").display(),
        );
        for s in settings {
            ini.push_str(s);
            ini.push('\n');
        }
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        let mut cmd = Command::new(pgbouncer_binary().unwrap());
        cmd.arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            let u = nix::unistd::User::from_name(&user).unwrap().unwrap();
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        let child = cmd.spawn().unwrap();
        wait_for("pgbouncer listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Pooler { port, child }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig);
    }

    /// `isospec run` through the pooler into the existing database
    /// isolation_regression, outputs in `dir`.
    pub fn run(&self, dir: &Path) -> Command {
        self.run_as(dir, &Server::user())
    }

    /// `run` as database user `user`.
    pub fn run_as(&self, dir: &Path, user: &str) -> Command {
        let mut c = isospec();
        c.arg("run")
            .arg("--outputdir")
            .arg(dir)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--user", user, "--use-existing"]);
        c
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A spec whose second session waits for the first's lock, and its
/// transcript (isolationtester 15's): the tests' common blocking case.
pub const BLOCKING: &str = "setup { CREATE TABLE t (i int); }\nteardown { DROP TABLE t; }\n\
session s1\nstep s1l { BEGIN; LOCK t; }\nstep s1c { COMMIT; }\n\
session s2\nstep s2r { SELECT count(*) AS n FROM t; }\n\
permutation s1l s2r s1c\n";

pub const BLOCKING_OUT: &str = "Parsed test spec with 2 sessions\n\n\
starting permutation: s1l s2r s1c\nstep s1l: BEGIN; LOCK t;\n\
step s2r: SELECT count(*) AS n FROM t; <waiting ...>\nstep s1c: COMMIT;\n\
step s2r: <... completed>\nn\n-\n0\n(1 row)\n\n";

/// A headless Chromium (Debian's `chromium`, or `$ISOSPEC_CHROMIUM`), for
/// tests of pages a person looks at: they assert on the DOM the browser
/// rendered (scripts run), not on the HTML text.
pub struct Browser {
    bin: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    /// The browser, or why there is none (see `require_browser!`).
    pub fn find() -> Result<Browser, String> {
        let candidates: Vec<PathBuf> = std::env::var_os("ISOSPEC_CHROMIUM")
            .map(PathBuf::from)
            .into_iter()
            .chain(
                ["chromium", "chromium-browser", "google-chrome"]
                    .iter()
                    .filter_map(|b| {
                        std::env::var_os("PATH").and_then(|p| {
                            std::env::split_paths(&p)
                                .map(|d| d.join(b))
                                .find(|f| f.is_file())
                        })
                    }),
            )
            .collect();
        let bin = candidates.into_iter().next().ok_or_else(|| {
            "no chromium on PATH (scripts/provision.sh chromium installs it), nor $ISOSPEC_CHROMIUM"
                .to_string()
        })?;
        Ok(Browser {
            bin,
            profile: tempfile::tempdir().unwrap(),
        })
    }

    /// Headless, with a fresh profile and none of its own network traffic
    /// (this machine's network is closed).
    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", self.profile.path().display()));
        c
    }

    fn url(page: &Path, fragment: &str) -> String {
        format!(
            "file://{}{fragment}",
            page.canonicalize().unwrap().display()
        )
    }

    /// Runs the browser on `page#fragment` with `args`; its stdout.
    fn open(&self, page: &Path, fragment: &str, args: &[String]) -> String {
        let out = self
            .command()
            .args(args)
            .arg(Self::url(page, fragment))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The DOM after the page's scripts ran, serialized.
    pub fn dump_dom(&self, page: &Path, fragment: &str) -> String {
        self.open(page, fragment, &["--dump-dom".to_string()])
    }

    /// A PNG of the page at this window size.
    pub fn screenshot(&self, page: &Path, fragment: &str, png: &Path, size: (u32, u32)) {
        self.open(
            page,
            fragment,
            &[
                format!("--screenshot={}", png.display()),
                format!("--window-size={},{}", size.0, size.1),
            ],
        );
    }
}

/// Returns early from a test that needs a browser when there is none
/// (fails under `ISOSPEC_TESTS_REQUIRE_ALL=1`, as in CI); else the browser.
#[macro_export]
macro_rules! require_browser {
    () => {
        match $crate::util::Browser::find() {
            Ok(b) => b,
            Err(why) => {
                $crate::util::skip(&why);
                return;
            }
        }
    };
}

/// Width and height of a PNG file, from its header.
pub fn png_size(png: &Path) -> (u32, u32) {
    let b = std::fs::read(png).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        png.display()
    );
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

/// An isospec JSON document (`run --json`, `explore --json`) read from
/// `path`, after checking it against its published schema.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
    validate_json(&v);
    v
}

/// Checks an isospec JSON document against the schema its `format` names
/// (docs/schemas/run.schema.json or explore.schema.json).
pub fn validate_json(v: &serde_json::Value) {
    let kind = match v["format"].as_str() {
        Some("isospec-run") => "run",
        Some("isospec-explore") => "explore",
        other => panic!("not an isospec document (format {other:?}): {v}"),
    };
    let path = manifest().join(format!("docs/schemas/{kind}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{}: not a valid schema: {e}", path.display()));
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{} (at {})", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the document does not follow {}:\n{}\n{v:#}",
        path.display(),
        errors.join("\n")
    );
}
