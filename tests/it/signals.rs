//! SIGINT/SIGTERM: no spec starts after an interrupt, running specs have
//! their step cancelled and run their own teardown, specs not started are
//! reported as not run (their old results untouched), the temp instance
//! stops, and the exit code is 128 + the signal.

use crate::util::*;
use std::process::{Child, Command, Output, Stdio};

fn kill(signal: &str, pid: u32) {
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn finish(child: Child, code: i32) -> (String, String) {
    let out: Output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by signal {}", code - 128)),
        "{stderr}"
    );
    (stdout, stderr)
}

/// `specs` specs that sleep (each with a teardown that says it ran), run
/// with `-j jobs` in one group; interrupted once every running spec's step
/// is under way.  With more specs than jobs, the rest never start.
fn interrupt_case(signal: &str, code: i32, specs: usize, jobs: usize) {
    let dir = workdir();
    let spec_dir = dir.path().join("specs");
    std::fs::create_dir_all(&spec_dir).unwrap();
    let names: Vec<String> = (1..=specs).map(|i| format!("slow{i}")).collect();
    for n in &names {
        std::fs::write(
            spec_dir.join(format!("{n}.spec")),
            "teardown { SELECT 'teardown ran' AS t; }\nsession s\nstep sleep { SELECT pg_sleep(600); }\n",
        )
        .unwrap();
    }
    let tmp = dir.path().join("tmp_check");
    let child = spawn_run(dir.path(), &tmp, &spec_dir, &jobs.to_string());
    let server = Server::ready(&tmp.join("data"));
    // The specs that start first: -j starts the longest first, and these
    // are all alike, so whichever they are, `jobs` of them run at once.
    let running = || -> Vec<String> {
        server
            .query(
                "postgres",
                "SELECT split_part(application_name, '/', 2) FROM pg_stat_activity \
                 WHERE state = 'active' AND application_name LIKE 'isolation/%' \
                 AND strpos(query, 'pg_sleep(600)') > 0 ORDER BY 1",
            )
            .unwrap_or_default()
    };
    wait_for("every lane's step under way", || running().len() == jobs);
    let started = running();
    kill(signal, child.id());
    let (stdout, _) = finish(child, code);
    // The running steps were cancelled and each spec's teardown ran.
    for n in &started {
        let slow = std::fs::read_to_string(dir.path().join(format!("results/{n}.out"))).unwrap();
        assert!(
            slow.contains("isospec: interrupted: canceling the running steps of session s, running the teardown"),
            "{n}: {slow}"
        );
        assert!(slow.contains("teardown ran"), "{n}: {slow}");
    }
    // The others never started: reported, and no results written.
    for n in names.iter().filter(|n| !started.contains(n)) {
        assert!(
            stdout.contains(&format!("test {n:<28} ... not run (interrupted)")),
            "{n}: {stdout}"
        );
        assert!(!dir.path().join(format!("results/{n}.out")).exists());
    }
    assert!(
        postgres_processes_for(&tmp).is_empty(),
        "orphans: {:?}",
        postgres_processes_for(&tmp)
    );
}

#[test]
fn sigterm_stops_the_temp_instance_and_exits_143() {
    require_server!();
    interrupt_case("TERM", 143, 1, 1);
}

#[test]
fn sigint_stops_the_temp_instance_and_exits_130() {
    require_server!();
    interrupt_case("INT", 130, 1, 1);
}

#[test]
fn sigint_under_jobs_tears_down_every_running_spec_and_starts_no_other() {
    require_server!();
    interrupt_case("INT", 130, 4, 2);
}

/// A 4-spec schedule interrupted during its first spec, in a database the
/// user owns (`--use-existing`) holding a table named like the one the
/// other specs' teardown drops: nothing after the first spec runs, so the
/// user's table survives, and specs 2–4 are reported as not run
/// everywhere while their earlier results stay as they were.
fn schedule_interrupt_case(jobs: &str) {
    let dir = workdir();
    let slow = "setup { CREATE TABLE first_t (i int); }\nteardown { DROP TABLE first_t; }\n\
                session s\nstep sleep { SELECT pg_sleep(600); }\n";
    // A sloppy but common pattern: had these run their teardown without
    // their setup, they would drop the user's table.
    let other = "setup { CREATE TABLE IF NOT EXISTS t (i int); }\nteardown { DROP TABLE t; }\n\
                 session s\nstep one { SELECT 1 AS one; }\n";
    let specs = write_suite(
        dir.path(),
        &[
            ("first", slow, ""),
            ("b", other, ""),
            ("c", other, ""),
            ("d", other, ""),
        ],
    );
    let suite = specs.parent().unwrap();
    let schedule = dir.path().join("schedule");
    std::fs::write(&schedule, "test: first\ntest: b c d\n").unwrap();
    std::fs::create_dir_all(dir.path().join("results")).unwrap();
    for n in ["b", "c", "d"] {
        std::fs::write(dir.path().join(format!("results/{n}.out")), "earlier run\n").unwrap();
    }

    let inst = start_instance(dir.path());
    let server = Server::ready(&inst.data_dir);
    server.query("postgres", "CREATE DATABASE userdb").unwrap();
    server
        .query(
            "userdb",
            "CREATE TABLE t (i int); INSERT INTO t VALUES (42)",
        )
        .unwrap();

    let (junit, json) = (dir.path().join("junit.xml"), dir.path().join("report.json"));
    let child = run_against(&inst, dir.path())
        .args(["--dbname", "userdb", "--use-existing", "-j", jobs, "--tap"])
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .arg("--inputdir")
        .arg(suite)
        .arg("--schedule")
        .arg(&schedule)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_running(&["isolation/first/s".into()], "pg_sleep(600)");
    kill("INT", child.id());
    let (stdout, stderr) = finish(child, 130);
    // The server is the user's: nothing claims to have stopped it.
    assert!(!stderr.contains("temporary instance"), "{stderr}");

    // The user's table survived; the first spec's teardown ran.
    assert_eq!(server.query("userdb", "SELECT i FROM t").unwrap(), ["42"]);
    assert_eq!(
        server
            .query(
                "userdb",
                "SELECT count(*) FROM pg_class WHERE relname = 'first_t'"
            )
            .unwrap(),
        ["0"]
    );
    let first = std::fs::read_to_string(dir.path().join("results/first.out")).unwrap();
    assert!(first.contains("running the teardown"), "{first}");
    // Specs 2–4: not run on stdout (TAP), in regression.out, JUnit and JSON,
    // and their earlier results are untouched.
    let regression_out = std::fs::read_to_string(dir.path().join("regression.out")).unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    let report: serde_json::Value = crate::util::read_json(&json);
    for n in ["b", "c", "d"] {
        let tap = format!("- {n} # SKIP not run (interrupted)");
        assert!(stdout.contains(&tap), "{stdout}");
        assert!(regression_out.contains(&tap), "{regression_out}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(format!("results/{n}.out"))).unwrap(),
            "earlier run\n"
        );
        let spec = report["specs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap();
        assert_eq!(spec["status"], "not-run", "{report}");
        assert_eq!(spec["detail"], "interrupted", "{report}");
    }
    assert!(
        stdout.contains("# 0 passed, 1 failed, 3 not run (interrupted)"),
        "{stdout}"
    );
    assert_eq!(xml.matches("<skipped").count(), 3, "{xml}");
    assert!(xml.contains("not run (interrupted)"), "{xml}");
    drop(inst);
}

#[test]
fn interrupted_schedule_runs_nothing_more_in_the_users_database() {
    require_server!();
    schedule_interrupt_case("1");
}

#[test]
fn interrupted_schedule_under_jobs_runs_nothing_more_in_the_users_database() {
    require_server!();
    schedule_interrupt_case("2");
}

/// A second interrupt stops at once, without waiting for a teardown that
/// blocks; the temp instance is stopped all the same.
#[test]
fn second_interrupt_stops_at_once() {
    require_server!();
    let dir = workdir();
    // The teardown itself takes long: the first interrupt's cleanup cannot
    // finish within the (long) grace period; the second stops at once.
    let spec = "teardown { SELECT pg_sleep(600); }\n\
                session s\nstep sleep { SELECT pg_sleep(600); }\npermutation sleep\n";
    let specs = write_suite(dir.path(), &[("stuck", spec, "")]);
    let tmp = dir.path().join("tmp_check");
    let child = isospec()
        .arg("run")
        .arg("--outputdir")
        .arg(dir.path())
        .arg("--temp-instance")
        .arg(&tmp)
        .args(["--timeout", "600", "--grace", "600"])
        .arg(&specs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = Server::ready(&tmp.join("data"));
    server.wait_running(&["isolation/stuck/s".into()], "pg_sleep(600)");
    kill("INT", child.id());
    // The spec's teardown now sleeps on the control connection.
    server.wait_running(
        &["isolation/stuck/control connection".into()],
        "pg_sleep(600)",
    );
    kill("INT", child.id());
    let (_, stderr) = finish(child, 130);
    assert!(
        stderr.contains("interrupted again: stopping at once"),
        "{stderr}"
    );
    assert!(stderr.contains("temporary instance in"), "{stderr}");
    assert!(
        postgres_processes_for(&tmp).is_empty(),
        "orphans: {:?}",
        postgres_processes_for(&tmp)
    );
}
