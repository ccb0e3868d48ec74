//! Steps that never end, a server that dies, specs that ignore cancels: the run ends cleanly and on time.

use crate::util::*;
use std::path::PathBuf;
use std::process::Command;

/// Runs tests/timeout (steps that never end, a teardown that blocks) with
/// `env`, and checks that each transcript is byte-identical to what
/// isolationtester printed: cancelled after 2 s, no wait graph in the
/// transcript; the wait graphs go to stderr and results/NAME.waits.
fn timeout_case(bindir: Option<&std::path::Path>, env: &[(&str, &str)]) -> String {
    let dir = workdir();
    let mut cmd = isospec();
    cmd.envs(env.iter().copied()).arg("run");
    if let Some(b) = bindir {
        cmd.arg("--bindir").arg(b);
    }
    let out = cmd
        .arg("--outputdir")
        .arg(dir.path())
        .arg("--temp-instance")
        .arg(dir.path().join("tmp_check"))
        .arg(manifest().join("tests/timeout/specs"))
        .output()
        .unwrap();
    let stdout = expect_exit(&out, 0);
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");
    for name in ["stuck", "stuck-teardown"] {
        let result = std::fs::read_to_string(dir.path().join(format!("results/{name}.out")));
        let expected =
            std::fs::read_to_string(manifest().join(format!("tests/timeout/expected/{name}.out")));
        assert_eq!(result.unwrap(), expected.unwrap(), "{name}");
    }
    let waits = std::fs::read_to_string(dir.path().join("results/stuck.waits")).unwrap();
    assert!(
        waits.contains("wait graph for step s1sleep of session s1"),
        "{waits}"
    );
    assert!(
        waits.contains("wait graph for step s2lock of session s2"),
        "{waits}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("step s1sleep of session s1 has been running for"),
        "{stderr}"
    );
    assert!(stderr.contains("wait graph for step s2lock"), "{stderr}");
    stderr
}

#[test]
fn step_timeout_on_15_follows_pgisolationtimeout() {
    require_server!();
    // isolationtester 15 reads PGISOLATIONTIMEOUT only.
    let stderr = timeout_case(
        None,
        &[
            ("PGISOLATIONTIMEOUT", "2"),
            ("PG_TEST_TIMEOUT_DEFAULT", "50"),
        ],
    );
    assert!(
        stderr.contains("PG_TEST_TIMEOUT_DEFAULT is ignored with a PostgreSQL 15 server"),
        "{stderr}"
    );
}

#[test]
fn step_timeout_on_17_follows_pg_test_timeout_default() {
    require_server!();
    // PostgreSQL 17.9's binaries, as make conformance17 gets them.
    let fetched = crate::util::isospec()
        .args(["postgres", "fetch", "17.9.0-beta.17"])
        .output()
        .unwrap();
    if !fetched.status.success() {
        skip(&format!(
            "PostgreSQL 17.9 binaries could not be fetched: {}",
            text(&fetched.stderr)
        ));
        return;
    }
    let bindir = PathBuf::from(text(&fetched.stdout).trim());
    // isolationtester 17 waits twice PG_TEST_TIMEOUT_DEFAULT, and ignores
    // PGISOLATIONTIMEOUT.
    let stderr = timeout_case(
        Some(&bindir),
        &[
            ("PG_TEST_TIMEOUT_DEFAULT", "1"),
            ("PGISOLATIONTIMEOUT", "50"),
        ],
    );
    assert!(
        stderr.contains("PGISOLATIONTIMEOUT is ignored with a PostgreSQL 17 server"),
        "{stderr}"
    );
}

#[test]
fn fault_matrix_specs_end_cleanly_and_the_run_goes_on() {
    require_server!();
    let dir = workdir();
    let specs = manifest().join("tests/faults/specs");
    let out = run_in_env(
        dir.path(),
        &[("PGISOLATIONTIMEOUT", "2".as_ref())],
        &[specs.to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    // Each fault ends its spec the way the expected file (and isolationtester)
    // says, and every later spec still runs.
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    assert!(
        stderr.contains("rolled back prepared transaction \"left-behind\""),
        "{stderr}"
    );
    // The stubborn step's wait graph went to stderr.
    assert!(
        stderr.contains("wait graph for step s1stubborn of session s1"),
        "{stderr}"
    );
}

#[test]
fn server_killed_mid_run_ends_the_run_without_hanging() {
    require_server!();
    server_killed_case("1");
}

#[test]
fn server_killed_under_jobs_ends_the_run_without_hanging() {
    require_server!();
    server_killed_case("3");
}

fn server_killed_case(jobs: &str) {
    let dir = workdir();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(
        specs.join("a-slow.spec"),
        "session s\nstep sleep { SELECT pg_sleep(600); }\n",
    )
    .unwrap();
    std::fs::write(
        specs.join("b-after.spec"),
        "session s\nstep one { SELECT 1 AS one; }\n",
    )
    .unwrap();
    let tmp = dir.path().join("tmp_check");
    let child = spawn_run(dir.path(), &tmp, &specs, jobs);
    // Once the slow step is under way, kill the postmaster.
    let server = Server::ready(&tmp.join("data"));
    server.wait_running(&["isolation/a-slow/s".into()], "pg_sleep(600)");
    assert!(Command::new("kill")
        .args(["-9", &server.pid.to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    // The slow spec reports the lost connection; the next one cannot connect.
    let slow = std::fs::read_to_string(dir.path().join("results/a-slow.out")).unwrap();
    assert!(
        // Whichever connection notices first: the session's, or the control
        // connection asking whether the step is blocked.
        slow.contains("server closed the connection unexpectedly")
            || slow.contains("lock wait query failed"),
        "{slow}"
    );
    assert!(
        stdout.contains("test a-slow") && stdout.contains("test b-after"),
        "{stdout}"
    );
    // The backends leave once they notice that their postmaster died.
    wait_for("no server process left", || {
        postgres_processes_for(&tmp).is_empty()
    });
}
