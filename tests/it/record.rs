//! `isospec record` against a real server, with real clients as the
//! recorded programs: psql (simple protocol) and a Rust client
//! (tokio-postgres: prepared statements, binary parameters).  The Rust
//! client is this test binary itself, run by `isospec record` as its
//! COMMAND with `--ignored --exact record::client::<mode>`; it reads
//! libpq's variables (which name the proxy) and, for waiting on states,
//! `ISOSPEC_TEST_DIRECT` (the server itself, not recorded).
//!
//! Each recorded spec is checked, replayed twice with the same transcript,
//! and its transcript compared with what the program saw.

use crate::util::*;
use std::path::Path;
use std::process::Output;

/// `isospec record` against `inst`, writing `spec`, with `cmd` as the command.
fn record(
    inst: &isospec::server::TempInstance,
    dir: &Path,
    spec: &str,
    extra: &[&str],
    cmd: &[&str],
) -> Output {
    let direct = format!("{}:{}", inst.socket_dir.display(), inst.port);
    isospec()
        .current_dir(dir)
        .env("ISOSPEC_TEST_DIRECT", direct)
        .arg("record")
        .args(["-o", spec])
        .arg("--host")
        .arg(&inst.socket_dir)
        .args(["--port", &inst.port.to_string(), "--user", &Server::user()])
        .args(extra)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap()
}

/// This test binary as the recorded program, in `mode`.
fn client(mode: &str) -> Vec<String> {
    vec![
        std::env::current_exe().unwrap().display().to_string(),
        "--ignored".into(),
        "--exact".into(),
        format!("record::client::{mode}"),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ]
}

/// Replays `spec` twice against `inst`; both transcripts (they must match).
fn replay_twice(inst: &isospec::server::TempInstance, dir: &Path, spec: &str) -> String {
    let mut outs = Vec::new();
    for _ in 0..2 {
        let out = run_against(inst, dir).arg(dir.join(spec)).output().unwrap();
        // A new spec has no expected file: exit 1 ("new"), the transcript in results/.
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            text(&out.stderr)
        );
        let name = spec.trim_end_matches(".spec");
        outs.push(
            std::fs::read_to_string(dir.join("results").join(format!("{name}.out"))).unwrap(),
        );
    }
    assert_eq!(outs[0], outs[1], "two replays of {spec} differ");
    outs.remove(0)
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A recording of this binary's client `mode` against a fresh server,
/// after `setup` SQL: the directory, the server, the output and the spec.
struct Recorded {
    dir: tempfile::TempDir,
    inst: isospec::server::TempInstance,
    out: Output,
    spec: String,
}

fn record_client(mode: &str, spec: &str, setup: &str) -> Recorded {
    let dir = workdir();
    let inst = start_instance(dir.path());
    write(dir.path(), "setup.sql", setup);
    let cmd = client(mode);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = record(&inst, dir.path(), spec, &["--setup", "setup.sql"], &cmd);
    let text = std::fs::read_to_string(dir.path().join(spec)).unwrap_or_default();
    Recorded {
        dir,
        inst,
        out,
        spec: text,
    }
}

const COUNTER_ROW: &str =
    "CREATE TABLE t (id int PRIMARY KEY, n int);\nINSERT INTO t VALUES (1, 0);\n";

#[test]
fn psql_sessions_are_recorded_as_sent_and_replay() {
    require_server!();
    let dir = workdir();
    let d = dir.path();
    let inst = start_instance(d);
    write(
        d,
        "setup.sql",
        "CREATE TABLE acct (id int PRIMARY KEY, balance int);\nINSERT INTO acct VALUES (1, 100);\n",
    );
    write(d, "teardown.sql", "DROP TABLE acct;\n");
    let script =
        "psql -X -v ON_ERROR_STOP=1 -c 'UPDATE acct SET balance = balance - 30 WHERE id = 1' \
                  && PGAPPNAME=auditor psql -X -At -c 'SELECT balance FROM acct'";
    let out = record(
        &inst,
        d,
        "psql.spec",
        &[
            "--setup",
            "setup.sql",
            "--teardown",
            "teardown.sql",
            "--keep-database",
        ],
        &["sh", "-c", script],
    );
    let stdout = expect_exit(&out, 0);
    assert!(stdout.contains("70"), "{stdout}");
    // The teardown ran, in the database kept with --keep-database.
    let srv = Server::ready(&inst.data_dir);
    assert!(
        srv.query("isolation_regression", "SELECT to_regclass('acct') IS NULL")
            .unwrap()
            == ["t"]
    );
    let spec = std::fs::read_to_string(d.join("psql.spec")).unwrap();
    assert!(
        spec.contains("step psql_1 { UPDATE acct SET balance = balance - 30 WHERE id = 1 }"),
        "{spec}"
    );
    assert!(
        spec.contains("session auditor\nsetup { SET DateStyle TO 'ISO, MDY'; SET IntervalStyle TO 'postgres'; SET TimeZone TO ")
            && spec.contains("step auditor_1 { SELECT balance FROM acct }"),
        "{spec}"
    );
    assert!(spec.contains("setup\n{\nCREATE TABLE acct"), "{spec}");
    assert!(spec.contains("permutation psql_1 auditor_1"), "{spec}");
    let check = isospec()
        .arg("check")
        .arg(d.join("psql.spec"))
        .output()
        .unwrap();
    expect_exit(&check, 0);
    let t = replay_twice(&inst, d, "psql.spec");
    assert!(
        t.contains("step auditor_1: SELECT balance FROM acct\nbalance\n-------\n     70\n(1 row)"),
        "{t}"
    );
}

#[test]
fn a_rust_client_with_binary_parameters_replays_its_values() {
    require_server!();
    let r = record_client("binary_types", "types.spec", "CREATE TABLE vals (b bool, s smallint, i int, l bigint, r real, f float8, t text, v varchar, y bytea, a bigint[], n int);\n");
    let (d, inst, out, spec) = (r.dir.path(), &r.inst, &r.out, &r.spec);
    let seen = expect_exit(out, 0);
    assert!(!spec.contains("$1"), "{spec}");
    assert!(spec.contains("'-9223372036854775808'::bigint"), "{spec}");
    assert!(spec.contains("ARRAY['1', NULL, '-3']::bigint[]"), "{spec}");
    assert!(spec.contains("'\\x00ff7d'::bytea"), "{spec}");
    let t = replay_twice(inst, d, "types.spec");
    // The row the program read back through the proxy is the row the replay reads.
    let line = seen
        .lines()
        .find_map(|l| l.split_once("row: ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("the client printed no row:\n{seen}\n{}", text(&out.stderr)));
    // The transcript aligns columns (psql's format): compare without blanks.
    let squeeze = |s: &str| s.replace(' ', "");
    assert!(
        squeeze(&t).contains(&squeeze(line)),
        "replay:\n{t}\nprogram saw: {line}"
    );
}

#[test]
fn a_lock_wait_is_seen_and_replays_as_a_wait() {
    require_server!();
    let r = record_client("lock_wait", "wait.spec", COUNTER_ROW);
    let (d, inst, out, spec) = (r.dir.path(), &r.inst, &r.out, &r.spec);
    expect_exit(out, 0);
    assert!(
        spec.contains("# waiter_1 waited for a lock; holder_3 released it"),
        "{spec}"
    );
    assert!(
        spec.contains("permutation holder_1 holder_2 waiter_1 holder_3 waiter_2"),
        "{spec}"
    );
    let t = replay_twice(inst, d, "wait.spec");
    assert!(
        t.contains("step waiter_1: UPDATE t SET n = n + ('10'::integer) WHERE id = ('1'::integer) <waiting ...>"),
        "{t}"
    );
    assert!(t.contains("step waiter_1: <... completed>"), "{t}");
    assert!(t.contains("11"), "{t}");
}

#[test]
fn faults_cancel_in_flight_client_drop_and_server_drop() {
    require_server!();
    let r = record_client("faults", "faults.spec", COUNTER_ROW);
    let (d, inst, out, spec) = (r.dir.path(), &r.inst, &r.out, &r.spec);
    let seen = expect_exit(out, 0);
    let err = text(&out.stderr);
    assert!(seen.contains("canceled: 57014"), "{seen}");
    // The database the recording made is gone (no --keep-database), its
    // sessions closed first.
    let srv = Server::ready(&inst.data_dir);
    assert_eq!(
        srv.query(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'isolation_regression'"
        )
        .unwrap(),
        ["0"],
        "{err}"
    );
    // The canceled statement and the one whose client vanished are comments, with warnings.
    assert!(spec.contains("# session canceled: a statement was left out: it was canceled by a cancel request while it ran:"), "{spec}");
    // The client that vanished while its statement waited: the server still
    // ran the statement once the lock was released (the proxy reads the
    // backend's last words until it closes), so it is a step that waits.
    assert!(
        spec.contains("step dropped_1 { UPDATE t SET n = 3 WHERE id = 1 }\n# the client closed its connection before it said goodbye (Terminate)\n")
            && spec.contains("# dropped_1 waited for a lock; holder_2 released it\n"),
        "{spec}"
    );
    // The server's FATAL ends the session, and the statement the client
    // sent after it is left out.  When the client's statement reaches the
    // dead backend's socket first, the FATAL may be lost to the reset:
    // then the connection failed or closed.  Whichever ending happened,
    // the spec's comment and the warning on stderr say the same.
    assert!(
        spec.contains("step victim_1 { SELECT 1 }") && !spec.contains("step victim_2"),
        "{spec}"
    );
    let victim = spec
        .split("session victim\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{spec}"));
    let ending = victim
        .lines()
        .find_map(|l| {
            l.strip_prefix("# ")
                .filter(|l| l.ends_with("before it said goodbye (Terminate)"))
        })
        .unwrap_or_else(|| panic!("no ending for victim:\n{spec}"));
    assert!(
        [
            "the server ended the session (FATAL: terminating connection due to administrator command)",
            "the server's connection failed",
            "the server closed the connection",
        ]
        .iter()
        .any(|e| ending.starts_with(e)),
        "{ending}"
    );
    assert!(
        err.contains(&format!("warning: session victim: {ending}")),
        "{ending}\n{err}"
    );
    // Each statement left out is quoted in its warning, with its place.
    assert!(
        err.contains("warning: session canceled: its statement 1 was left out: it was canceled by a cancel request while it ran: UPDATE t SET n = 2 WHERE id = 1\n"),
        "{err}"
    );
    // The client that vanished mid-statement: its ending, paired likewise.
    assert!(
        spec.contains("# the client closed its connection before it said goodbye (Terminate)")
            && err.contains("warning: session dropped: the client closed its connection before it said goodbye (Terminate)"),
        "{spec}\n{err}"
    );
    let check = isospec()
        .arg("check")
        .arg(d.join("faults.spec"))
        .output()
        .unwrap();
    expect_exit(&check, 0);
    replay_twice(inst, d, "faults.spec");
}

#[test]
fn the_command_exit_status_is_record_s_and_a_bad_setup_is_named() {
    require_server!();
    let dir = workdir();
    let d = dir.path();
    let inst = start_instance(d);
    let out = record(
        &inst,
        d,
        "x.spec",
        &[],
        &["sh", "-c", "psql -X -c 'SELECT 1' >/dev/null; exit 3"],
    );
    expect_exit(&out, 3);
    assert!(d.join("x.spec").exists());
    write(d, "bad.sql", "CREATE TABLE (;\n");
    let out = record(&inst, d, "y.spec", &["--setup", "bad.sql"], &["true"]);
    let err = text(&out.stderr);
    expect_exit(&out, 2);
    assert!(
        err.contains("the setup (bad.sql) failed on") && err.contains("syntax error"),
        "{err}"
    );
    write(d, "brace.sql", "SELECT '{1}';\n");
    let out = record(&inst, d, "z.spec", &["--setup", "brace.sql"], &["true"]);
    expect_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("brace.sql:1: contains '}'"),
        "{}",
        text(&out.stderr)
    );
    // Nothing connected: nothing to write, said so.
    let out = record(&inst, d, "w.spec", &[], &["true"]);
    expect_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("no client connected to the proxy"),
        "{}",
        text(&out.stderr)
    );
    // A client that demands TLS is recorded over the proxy's own
    // certificate; one that verifies it against a CA cannot be, and the
    // error says why.
    let out = record(
        &inst,
        d,
        "tls.spec",
        &[],
        &["sh", "-c", "PGSSLMODE=require psql -X -At -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'"],
    );
    expect_exit(&out, 0);
    let spec = std::fs::read_to_string(d.join("tls.spec")).unwrap();
    assert!(
        spec.contains("step psql_1 { SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid() }"),
        "{spec}"
    );
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    write(d, "ca.crt", &ca.self_signed(&ca_key).unwrap().pem());
    let out = record(
        &inst,
        d,
        "v.spec",
        &[],
        &[
            "sh",
            "-c",
            "PGSSLMODE=verify-ca PGSSLROOTCERT=ca.crt psql -X -c 'SELECT 1'; true",
        ],
    );
    expect_exit(&out, 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("no client connection was recorded. The proxy refused: TLS with a client that did not accept the proxy's certificate (sslmode=verify-ca or verify-full")
            && err.contains("warning: a client's TLS handshake with the proxy failed"),
        "{err}"
    );
    // Clients that connected and sent only what cannot be a step.
    let out = record(&inst, d, "u.spec", &[], &["psql", "-X", "-c", "LISTEN x"]);
    expect_exit(&out, 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: session psql: its statement 1 was left out: LISTEN cannot be replayed as a step: LISTEN x\n")
            && err.contains("1 client connection sent 1 statement, and every one was left out"),
        "{err}"
    );
}

#[test]
fn without_a_command_it_records_until_sigint_and_prints_the_address() {
    require_server!();
    use std::io::BufRead;
    let dir = workdir();
    let d = dir.path();
    let inst = start_instance(d);
    let mut child = isospec()
        .current_dir(d)
        .args(["record", "-o", "live.spec", "--host"])
        .arg(&inst.socket_dir)
        .args(["--port", &inst.port.to_string(), "--user", &Server::user()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let port = loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "isospec record ended early:\n{seen}"
        );
        seen.push_str(&line);
        if let Some(rest) = line
            .trim()
            .strip_prefix("isospec record: recording proxy on 127.0.0.1:")
        {
            break rest.to_string();
        }
    };
    assert!(seen.contains("recording proxy on 127.0.0.1:"), "{seen}");
    // A client pointed at the printed address by hand; sslmode=prefer
    // asks for TLS first and gets the proxy's 'N'.
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            &Server::user(),
            "-d",
            "isolation_regression",
        ])
        .args(["-c", "SELECT 40 + 2"])
        .env("PGSSLMODE", "prefer")
        .env("PGAPPNAME", "by_hand")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), "42", "{}", text(&out.stderr));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen}{rest}");
    let spec = std::fs::read_to_string(d.join("live.spec")).unwrap();
    assert!(
        spec.contains("step by_hand_1 { SELECT 40 + 2 }") && spec.contains("permutation by_hand_1"),
        "{spec}"
    );
}

#[test]
fn a_wait_the_detector_cannot_see_is_marked_star() {
    require_server!();
    let r = record_client("invisible_wait", "star.spec", "SELECT 1;\n");
    let (d, inst, out, spec) = (r.dir.path(), &r.inst, &r.out, &r.spec);
    expect_exit(out, 0);
    let err = text(&out.stderr);
    assert!(
        err.contains("that step is marked (*) in the permutation"),
        "{err}"
    );
    assert!(
        spec.contains("permutation sleeper_1(*) other_1 sleeper_2\n"),
        "{spec}"
    );
    let t = replay_twice(inst, d, "star.spec");
    assert!(
        t.contains(
            "step sleeper_1: SELECT pg_advisory_lock(7) <waiting ...>\nstep other_1: SELECT 1"
        ),
        "{t}"
    );
    assert!(t.contains("step sleeper_1: <... completed>"), "{t}");
}

/// The recorded programs.  Ignored: `isospec record` runs them.
mod client {
    use std::time::Duration;
    use tokio_postgres::{Client, NoTls};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A connection through the proxy (libpq's variables), named `app`.
    async fn connect(app: &str) -> (Client, tokio::task::JoinHandle<()>) {
        let var = |v: &str| {
            std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set: run by isospec record"))
        };
        let (c, conn) = tokio_postgres::Config::new()
            .host(var("PGHOST"))
            .port(var("PGPORT").parse().unwrap())
            .user(var("PGUSER"))
            .dbname(var("PGDATABASE"))
            .application_name(app)
            .connect(NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        (c, task)
    }

    /// A connection to the server itself (not recorded), to wait for states.
    async fn direct() -> Client {
        let d = std::env::var("ISOSPEC_TEST_DIRECT").unwrap();
        let (dir, port) = d.rsplit_once(':').unwrap();
        let (c, conn) = tokio_postgres::Config::new()
            .host_path(dir)
            .port(port.parse().unwrap())
            .user(std::env::var("PGUSER").unwrap())
            .dbname(std::env::var("PGDATABASE").unwrap())
            .connect(NoTls)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        c
    }

    /// Waits until a backend of `app` waits for a lock.
    async fn until_waiting(direct: &Client, app: &str) {
        for _ in 0..15_000 {
            let r = direct
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    &[&app],
                )
                .await
                .unwrap();
            if r.get::<_, i64>(0) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{app} never waited for a lock");
    }

    #[test]
    #[ignore = "a program for isospec record, run by the record tests"]
    fn binary_types() {
        rt().block_on(async {
            let (c, _t) = connect("typer").await;
            let st = c
                .prepare("INSERT INTO vals VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .await
                .unwrap();
            let arr: Vec<Option<i64>> = vec![Some(1), None, Some(-3)];
            c.execute(
                &st,
                &[
                    &true,
                    &-7i16,
                    &2_000_000_000i32,
                    &i64::MIN,
                    &1.5f32,
                    &0.1f64,
                    &"it's } here",
                    &"vc",
                    &vec![0u8, 255, 0x7d],
                    &arr,
                    &None::<i32>,
                ],
            )
            .await
            .unwrap();
            let (a, _t2) = connect("reader").await;
            let rows = a
                .simple_query("SELECT b, s, i, l, r, f, t, v, y, a, n FROM vals")
                .await
                .unwrap();
            for m in rows {
                if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                    let cols: Vec<String> = (0..r.len())
                        .map(|i| r.get(i).unwrap_or("").to_string())
                        .collect();
                    println!("row: {}", cols.join("|"));
                }
            }
        });
    }

    #[test]
    #[ignore = "a program for isospec record, run by the record tests"]
    fn lock_wait() {
        rt().block_on(async {
            let d = direct().await;
            let (holder, _t1) = connect("holder").await;
            let (waiter, _t2) = connect("waiter").await;
            holder.batch_execute("BEGIN").await.unwrap();
            holder
                .execute("UPDATE t SET n = n + $1 WHERE id = $2", &[&1i32, &1i32])
                .await
                .unwrap();
            let w = tokio::spawn(async move {
                waiter
                    .execute("UPDATE t SET n = n + $1 WHERE id = $2", &[&10i32, &1i32])
                    .await
                    .unwrap();
                let n: i32 = waiter
                    .query_one("SELECT n FROM t WHERE id = 1", &[])
                    .await
                    .unwrap()
                    .get(0);
                println!("n = {n}");
            });
            until_waiting(&d, "waiter").await;
            holder.batch_execute("COMMIT").await.unwrap();
            w.await.unwrap();
        });
    }

    #[test]
    #[ignore = "a program for isospec record, run by the record tests"]
    fn faults() {
        rt().block_on(async {
            let d = direct().await;
            let (holder, _t1) = connect("holder").await;
            holder.batch_execute("BEGIN; UPDATE t SET n = 1 WHERE id = 1").await.unwrap();
            // A cancel while the statement waits: forwarded to its backend.
            let (canceled, _t2) = connect("canceled").await;
            let token = canceled.cancel_token();
            let w = tokio::spawn(async move { canceled.batch_execute("UPDATE t SET n = 2 WHERE id = 1").await });
            until_waiting(&d, "canceled").await;
            token.cancel_query(NoTls).await.unwrap();
            let e = w.await.unwrap().unwrap_err();
            println!("canceled: {}", e.code().map(|c| c.code()).unwrap_or("?"));
            // A client that vanishes while its statement waits.
            let (dropped, t3) = connect("dropped").await;
            let w = tokio::spawn(async move { dropped.batch_execute("UPDATE t SET n = 3 WHERE id = 1").await });
            until_waiting(&d, "dropped").await;
            w.abort();
            t3.abort();
            let _ = w.await;
            let _ = t3.await;
            // The server ends a session.
            let (victim, _t4) = connect("victim").await;
            victim.batch_execute("SELECT 1").await.unwrap();
            d.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'", &[])
                .await
                .unwrap();
            assert!(victim.batch_execute("SELECT 2").await.is_err());
            holder.batch_execute("COMMIT").await.unwrap();
        });
    }
    #[test]
    #[ignore = "a program for isospec record, run by the record tests"]
    fn invisible_wait() {
        rt().block_on(async {
            let d = direct().await;
            // A lock held outside the recorded sessions: the detector
            // does not count a wait for it.
            d.batch_execute("SELECT pg_advisory_lock(7)").await.unwrap();
            let (sleeper, _t1) = connect("sleeper").await;
            let w = tokio::spawn(async move {
                sleeper
                    .batch_execute("SELECT pg_advisory_lock(7)")
                    .await
                    .unwrap();
                sleeper
                    .batch_execute("SELECT pg_advisory_unlock(7)")
                    .await
                    .unwrap();
            });
            until_waiting(&d, "sleeper").await;
            let (other, _t2) = connect("other").await;
            other.batch_execute("SELECT 1").await.unwrap();
            d.batch_execute("SELECT pg_advisory_unlock(7)")
                .await
                .unwrap();
            w.await.unwrap();
        });
    }
}
