//! One SIGTERM stops a run soon, whatever its sessions hold: a session
//! idle in a transaction holding the row lock the teardown needs, another
//! waiting for it, a third in a long statement, and a step timeout far
//! above the grace period.  The run must end within the grace (default
//! 10 s), with the teardown done, no backend of the run and no postgres
//! process left behind.

use crate::util::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The held-lock scenario for table `t`; its teardown says it ran.
fn held_spec(t: &str) -> String {
    format!(
        "setup {{ CREATE TABLE {t} (i int); INSERT INTO {t} VALUES (1); }}\n\
         teardown {{ DROP TABLE {t}; SELECT 'teardown of {t} done' AS t; }}\n\
         session h\nstep take {{ BEGIN; UPDATE {t} SET i = 2; }}\n\
         session w\nstep wait {{ UPDATE {t} SET i = 3; }}\n\
         session l\nstep long {{ SELECT pg_sleep(600); }}\n\
         permutation take wait long\n"
    )
}

fn sigterm(child: &Child) {
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Waits for the child's exit; its stdout, stderr, exit code, and the time
/// from `since`.
fn wait(child: Child, since: Instant) -> (String, String, Option<i32>, Duration) {
    let out = child.wait_with_output().unwrap();
    let took = since.elapsed();
    (
        text(&out.stdout),
        text(&out.stderr),
        out.status.code(),
        took,
    )
}

fn spawn(args: &[&str], dir: &Path, specs: &Path) -> Child {
    isospec()
        .arg("run")
        .arg("--outputdir")
        .arg(dir)
        .args(args)
        .arg(specs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every spec's `long` step runs and its `wait` step waits.
fn wait_until_stuck(server: &Server, specs: &[&str]) {
    let apps: Vec<String> = specs.iter().map(|s| format!("isolation/{s}/l")).collect();
    server.wait_running(&apps, "pg_sleep(600)");
    let waiters: Vec<String> = specs.iter().map(|s| format!("'isolation/{s}/w'")).collect();
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name IN ({})",
        waiters.join(",")
    );
    wait_for("the waiters queued", || {
        server
            .query("postgres", &sql)
            .is_ok_and(|r| r == [specs.len().to_string()])
    });
}

fn assert_stopped_soon(
    dir: &Path,
    specs: &[&str],
    stderr: &str,
    code: Option<i32>,
    took: Duration,
) {
    assert_eq!(code, Some(143), "{stderr}");
    // The default grace is 10 s; the step timeout (120 s) is not waited for.
    assert!(took < Duration::from_secs(12), "took {took:?}: {stderr}");
    for s in specs {
        let out = std::fs::read_to_string(dir.join(format!("results/{s}.out"))).unwrap_or_default();
        assert!(
            out.contains(&format!("teardown of {s} done")),
            "{s}: the teardown did not run:\n{out}\n{stderr}"
        );
    }
}

#[test]
fn one_sigterm_stops_within_the_grace_with_the_teardown_done() {
    require_server!();
    let dir = workdir();
    let specs = write_new_specs(dir.path(), &[("held", &held_spec("held"))]);
    let tmp = dir.path().join("tmp_check");
    let tmp_s = tmp.to_str().unwrap();
    let child = spawn(
        &["--temp-instance", tmp_s, "--timeout", "120"],
        dir.path(),
        &specs,
    );
    let server = Server::ready(&tmp.join("data"));
    wait_until_stuck(&server, &["held"]);
    let since = Instant::now();
    sigterm(&child);
    let (_, stderr, code, took) = wait(child, since);
    assert_stopped_soon(dir.path(), &["held"], &stderr, code, took);
    assert!(
        postgres_processes_for(&tmp).is_empty(),
        "{:?}",
        postgres_processes_for(&tmp)
    );
}

#[test]
fn one_sigterm_under_jobs_stops_every_spec_within_the_grace() {
    require_server!();
    let dir = workdir();
    let specs = write_new_specs(
        dir.path(),
        &[
            ("held1", &held_spec("held1")),
            ("held2", &held_spec("held2")),
        ],
    );
    let tmp = dir.path().join("tmp_check");
    let tmp_s = tmp.to_str().unwrap();
    let child = spawn(
        &["--temp-instance", tmp_s, "--timeout", "120", "-j", "2"],
        dir.path(),
        &specs,
    );
    let server = Server::ready(&tmp.join("data"));
    wait_until_stuck(&server, &["held1", "held2"]);
    let since = Instant::now();
    sigterm(&child);
    let (_, stderr, code, took) = wait(child, since);
    assert_stopped_soon(dir.path(), &["held1", "held2"], &stderr, code, took);
    assert!(
        postgres_processes_for(&tmp).is_empty(),
        "{:?}",
        postgres_processes_for(&tmp)
    );
}

#[test]
fn one_sigterm_leaves_no_backend_on_the_users_server() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let server = Server::ready(&inst.data_dir);
    let specs = write_new_specs(dir.path(), &[("held", &held_spec("held"))]);
    let child = run_against(&inst, &dir.path().join("out"))
        .args(["--timeout", "120"])
        .arg(&specs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_stuck(&server, &["held"]);
    let since = Instant::now();
    sigterm(&child);
    let (_, stderr, code, took) = wait(child, since);
    assert_stopped_soon(&dir.path().join("out"), &["held"], &stderr, code, took);
    wait_for("no backend of the run left", || {
        server
            .query(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'isolation/%' \
                 OR application_name = 'isospec'",
            )
            .is_ok_and(|r| r == ["0"])
    });
}

#[test]
fn the_end_of_the_grace_stops_a_cleanup_that_cannot_finish() {
    require_server!();
    let dir = workdir();
    // The teardown itself never ends: the grace (3 s) does.
    let spec =
        "teardown { SELECT pg_sleep(600); }\nsession s\nstep sleep { SELECT pg_sleep(600); }\n";
    let specs = write_new_specs(dir.path(), &[("endless", spec)]);
    let tmp = dir.path().join("tmp_check");
    let tmp_s = tmp.to_str().unwrap();
    let child = spawn(
        &["--temp-instance", tmp_s, "--timeout", "120", "--grace", "3"],
        dir.path(),
        &specs,
    );
    let server = Server::ready(&tmp.join("data"));
    server.wait_running(&["isolation/endless/s".into()], "pg_sleep(600)");
    let since = Instant::now();
    sigterm(&child);
    let (stdout, stderr, code, took) = wait(child, since);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(took < Duration::from_secs(6), "took {took:?}: {stderr}");
    // What could not finish is reported: in the transcript, and in the run's output.
    let result =
        std::fs::read_to_string(dir.path().join("results/endless.out")).unwrap_or_default();
    let all = format!("{stdout}{stderr}{result}");
    assert!(
        all.contains(
            "isospec: teardown of the spec did not finish within the grace period; canceling it"
        ),
        "{all}"
    );
    assert!(
        stdout.contains("endless") && stdout.contains("teardown"),
        "{stdout}"
    );
    assert!(
        postgres_processes_for(&tmp).is_empty(),
        "{:?}",
        postgres_processes_for(&tmp)
    );
}
