//! Through PgBouncer: the same transcripts as directly (blocked steps seen
//! through the backends' own pids, NOTIFY senders named), and every fault
//! of the pooler -- stopped, stalled at connect or mid-run, refusing the
//! database or the user, pool exhausted -- a clear error naming the
//! pooler's address within the timeouts, with finished specs' results kept.

use crate::util::{
    expect_exit, manifest, start_instance, text, workdir, write_suite, Pooler, Server, BLOCKING,
    BLOCKING_OUT,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::{Output, Stdio};

/// Blocks for good: s1 never commits, s2 waits for its lock.
const HOLD: &str = "setup { CREATE TABLE h (i int); }\nteardown { DROP TABLE h; }\n\
session s1\nstep s1l { BEGIN; LOCK h; }\n\
session s2\nstep s2r { SELECT count(*) FROM h; }\n\
permutation s1l s2r\n";

/// Starts `isospec run` of `specs` through `pooler` (with `args`) and
/// returns once `spec`'s session s2 waits on the server.
fn run_until_s2_waits(
    pooler: &Pooler,
    srv: &Server,
    out: &Path,
    args: &[&str],
    specs: &[std::path::PathBuf],
    spec: &str,
) -> std::process::Child {
    let child = pooler
        .run(out)
        .args(args)
        .args(specs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    srv.wait_running(&[format!("isolation/{spec}/s2")], "FROM h");
    child
}

/// A server with database isolation_regression, and PgBouncer before it.
fn setup(dir: &Path, settings: &[&str]) -> (isospec::server::TempInstance, Server, Pooler) {
    let inst = start_instance(dir);
    let srv = Server::ready(&inst.data_dir);
    srv.query("postgres", "CREATE DATABASE isolation_regression")
        .unwrap();
    let pooler = Pooler::start(&inst, &dir.join("pgbouncer"), settings);
    (inst, srv, pooler)
}

/// `blocking.spec` through `pooler` with these connect and step timeouts
/// (seconds): its exit code and everything it printed.
fn run_blocking(pooler: &Pooler, dir: &Path, connect: &str, step: &str) -> (Option<i32>, String) {
    let specs = write_suite(dir, &[("blocking", BLOCKING, BLOCKING_OUT)]);
    let out = pooler
        .run(&dir.join("out"))
        .env("PGCONNECT_TIMEOUT", connect)
        .args(["--timeout", step])
        .arg(specs.join("blocking.spec"))
        .output()
        .unwrap();
    (out.status.code(), stderr_and_stdout(&out))
}

fn stderr_and_stdout(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[test]
fn through_pgbouncer_blocked_steps_and_notify_senders_are_as_direct() {
    require_pgbouncer!();
    let dir = workdir();
    let (_inst, _srv, pooler) = setup(dir.path(), &[]);
    let specs = write_suite(dir.path(), &[("blocking", BLOCKING, BLOCKING_OUT)]);
    let fixtures = manifest().join("tests/fixtures/specs");
    for det in ["function", "pg-locks"] {
        let out = pooler
            .run(&dir.path().join(det))
            .args(["--wait-detector", det, "--timeout", "60"])
            .arg(specs.join("blocking.spec"))
            .arg(fixtures.join("locks.spec"))
            .arg(fixtures.join("messages.spec"))
            .output()
            .unwrap();
        expect_exit(&out, 0);
    }
}

#[test]
fn a_swapped_wait_function_is_asked() {
    require_pgbouncer!();
    let dir = workdir();
    let (_inst, srv, pooler) = setup(dir.path(), &[]);
    // A proxy's own probe (here: the builtin under another name), which
    // records that it was asked.
    srv.query(
        "isolation_regression",
        "CREATE TABLE probe_calls (pid int); \
         CREATE FUNCTION proxy_is_blocked(pid int, pids int[]) RETURNS boolean \
         LANGUAGE plpgsql AS $$ BEGIN INSERT INTO probe_calls VALUES (pid); \
         RETURN pg_catalog.pg_isolation_test_session_is_blocked(pid, pids); END $$",
    )
    .unwrap();
    let calls = || {
        srv.query("isolation_regression", "SELECT count(*) FROM probe_calls")
            .unwrap()
    };
    let specs = write_suite(dir.path(), &[("blocking", BLOCKING, BLOCKING_OUT)]);
    let out = pooler
        .run(&dir.path().join("f"))
        .args(["--wait-function", "proxy_is_blocked", "--timeout", "60"])
        .arg(specs.join("blocking.spec"))
        .output()
        .unwrap();
    expect_exit(&out, 0);
    let after_function: i64 = calls()[0].parse().unwrap();
    assert!(after_function > 0, "the wait function was never asked");
    // A query probe: $1 the waiting pid, $2 the sessions' pids.
    let out = pooler
        .run(&dir.path().join("q"))
        .args([
            "--wait-query",
            "SELECT proxy_is_blocked($1, $2::int[])",
            "--timeout",
            "60",
        ])
        .arg(specs.join("blocking.spec"))
        .output()
        .unwrap();
    expect_exit(&out, 0);
    let after_query: i64 = calls()[0].parse().unwrap();
    assert!(
        after_query > after_function,
        "the wait query was never asked"
    );
}

#[test]
fn a_pooler_stopped_mid_run_is_a_clear_error_and_finished_results_stay() {
    require_pgbouncer!();
    let dir = workdir();
    let (_inst, srv, pooler) = setup(dir.path(), &[]);
    let quick = "session s\nstep one { SELECT 1 AS one; }\n";
    let quick_out =
        "Parsed test spec with 1 sessions\n\nstarting permutation: one\nstep one: SELECT 1 AS one;\none\n---\n  1\n(1 row)\n\n";
    // `second` blocks for good.
    let specs = write_suite(
        dir.path(),
        &[("first", quick, quick_out), ("second", HOLD, "")],
    );
    let out_dir = dir.path().join("out");
    let child = run_until_s2_waits(
        &pooler,
        &srv,
        &out_dir,
        &["--timeout", "120"],
        &[specs.join("first.spec"), specs.join("second.spec")],
        "second",
    );
    pooler.signal(Signal::SIGKILL);
    let out = child.wait_with_output().unwrap();
    let all = stderr_and_stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("session s2 lost its connection to server at 127.0.0.1"),
        "{all}"
    );
    assert!(
        all.contains(&format!("test {:<28} ... ok", "first")),
        "{all}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("results/first.out")).unwrap(),
        quick_out
    );
}

#[test]
fn a_pooler_stalled_at_connect_is_bounded_by_the_connect_timeout() {
    require_pgbouncer!();
    let dir = workdir();
    let (_inst, _srv, pooler) = setup(dir.path(), &[]);
    // The socket accepts, the handshake never ends.
    pooler.signal(Signal::SIGSTOP);
    let (code, all) = run_blocking(&pooler, &dir.path().join("a"), "2", "5");
    pooler.signal(Signal::SIGCONT);
    assert_ne!(code, Some(0), "{all}");
    assert!(
        all.contains("127.0.0.1") && all.contains("timeout expired: no complete answer within 2 s"),
        "{all}"
    );
}

#[test]
fn a_pooler_stalled_mid_run_is_bounded_by_the_step_timeout() {
    require_pgbouncer!();
    let dir = workdir();
    let (_inst, srv, pooler) = setup(dir.path(), &[]);
    // Stalled while s2 waits (s1 never commits); the wait query and
    // everything after it are bounded by the step timeout.
    let held = write_suite(dir.path(), &[("held", HOLD, "")]);
    let child = run_until_s2_waits(
        &pooler,
        &srv,
        &dir.path().join("b"),
        &["--timeout", "3"],
        &[held.join("held.spec")],
        "held",
    );
    pooler.signal(Signal::SIGSTOP);
    let out = child.wait_with_output().unwrap();
    pooler.signal(Signal::SIGCONT);
    let all = stderr_and_stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("timed out") && all.contains("server at 127.0.0.1"),
        "{all}"
    );
}

/// A server with database isolation_regression and PgBouncer before it,
/// and the blocking spec.
fn refusing_setup(dir: &Path) -> (isospec::server::TempInstance, Pooler, std::path::PathBuf) {
    let inst = start_instance(dir);
    let srv = Server::ready(&inst.data_dir);
    srv.query("postgres", "CREATE DATABASE isolation_regression")
        .unwrap();
    let pooler = Pooler::start(&inst, &dir.join("pgb"), &[]);
    let specs = write_suite(dir, &[("blocking", BLOCKING, BLOCKING_OUT)]);
    (inst, pooler, specs.join("blocking.spec"))
}

#[test]
fn a_pooler_refusing_the_database_names_itself_and_the_database() {
    require_pgbouncer!();
    let dir = workdir();
    let (_inst, pooler, spec) = refusing_setup(dir.path());
    let out = pooler
        .run(&dir.path().join("a"))
        .args(["--dbname", "no_such_db", "--timeout", "10"])
        .arg(spec)
        .output()
        .unwrap();
    let all = stderr_and_stdout(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("127.0.0.1") && all.contains("no_such_db"),
        "{all}"
    );
}

#[test]
fn a_pooler_refusing_the_user_names_itself_and_the_user() {
    require_pgbouncer!();
    let dir = workdir();
    let (_inst, pooler, spec) = refusing_setup(dir.path());
    let out = pooler
        .run_as(&dir.path().join("b"), "no_such_user")
        .args(["--timeout", "10"])
        .arg(spec)
        .output()
        .unwrap();
    let all = stderr_and_stdout(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("127.0.0.1") && all.contains("no_such_user"),
        "{all}"
    );
}

#[test]
fn an_exhausted_pool_is_a_clear_error_within_the_timeout() {
    require_pgbouncer!();
    let dir = workdir();
    // One server connection: the control connection takes it, the
    // sessions queue in PgBouncer.
    let (_inst, _srv, pooler) = setup(dir.path(), &["default_pool_size = 1"]);
    let (code, all) = run_blocking(&pooler, dir.path(), "3", "3");
    assert_eq!(code, Some(1), "{all}");
    assert!(
        all.contains("connection s1")
            && all.contains("127.0.0.1")
            && all.contains("no free server connection"),
        "{all}"
    );
}

#[test]
fn use_existing_needs_no_postgres_database_and_issues_no_ddl_also_under_j() {
    require_pgbouncer!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let srv = Server::ready(&inst.data_dir);
    srv.query("postgres", "CREATE DATABASE isolation_regression")
        .unwrap();
    // Only the test database is reachable through this pooler.
    let pooler = Pooler::start_for(&inst, &dir.path().join("pgb"), "isolation_regression", &[]);
    let quick = "session s\nstep one { SELECT 1 AS one; }\n";
    let quick_out =
        "Parsed test spec with 1 sessions\n\nstarting permutation: one\nstep one: SELECT 1 AS one;\none\n---\n  1\n(1 row)\n\n";
    let specs = write_suite(
        dir.path(),
        &[
            ("a", quick, quick_out),
            ("b", quick, quick_out),
            ("blocking", BLOCKING, BLOCKING_OUT),
        ],
    );
    let before = srv
        .query(
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
        )
        .unwrap();
    let out = pooler
        .run(&dir.path().join("out"))
        .args(["-j", "2", "--timeout", "60", "--load-extension", "plpgsql"])
        .arg(&specs)
        .output()
        .unwrap();
    expect_exit(&out, 0);
    assert!(text(&out.stderr).contains("one after another"));
    let after = srv
        .query(
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
        )
        .unwrap();
    assert_eq!(before, after);
}
