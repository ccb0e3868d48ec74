//! `isospec pg_isolation_regress`: pg_regress's command line, output and
//! database handling, as extension builds call it.  The golden file
//! tests/golden/pg_isolation_regress-15.out is PostgreSQL 15's own
//! pg_isolation_regress's stdout for the same command (port, pid and times
//! masked).

use crate::util::{expect_exit, isospec, manifest, start_instance, text, workdir, Server};
use std::path::Path;
use std::process::{Command, Output};

fn drop_in(args: &[&str]) -> Output {
    isospec()
        .arg("pg_isolation_regress")
        .args(args)
        .output()
        .unwrap()
}

/// Port, pid and durations vary from run to run.
fn masked(stdout: &str) -> String {
    stdout
        .lines()
        .map(|l| {
            let l = match l.strip_prefix("running on port ") {
                Some(_) => "running on port PORT with PID PID".to_string(),
                None => l.to_string(),
            };
            match l.strip_suffix(" ms") {
                Some(head) if head.ends_with(|c: char| c.is_ascii_digit()) => {
                    format!(
                        "{} N ms",
                        head.trim_end_matches(|c: char| c.is_ascii_digit())
                            .trim_end()
                    )
                }
                _ => l,
            }
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn command_line_errors_help_and_version_are_pg_regress_s() {
    let out = drop_in(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("unrecognized option '--bogus'"), "{err}");
    assert!(
        err.contains("Try \"isospec pg_isolation_regress --help\""),
        "{err}"
    );

    let out = drop_in(&["--load=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is ambiguous"));

    let help = expect_exit(&drop_in(&["--inputdir=x", "-h"]), 0);
    assert!(help.contains("--temp-instance=DIR") && help.contains("--max-concurrent-tests"));
    // pg_regress configures SSPI on Windows only and exits at once.
    expect_exit(&drop_in(&["--config-auth=/nonexistent"]), 0);
}

#[test]
fn a_link_named_pg_isolation_regress_is_the_drop_in() {
    let dir = workdir();
    let link = dir.path().join("pg_isolation_regress");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_isospec"), &link).unwrap();
    let out = Command::new(&link).arg("-V").output().unwrap();
    let v = expect_exit(&out, 0);
    assert!(v.starts_with("pg_isolation_regress (isospec) "), "{v}");
    let out = Command::new(&link).arg("--nope").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("pg_isolation_regress: unrecognized option"));
}

#[test]
fn check_mode_prints_what_pg_regress_15_prints() {
    require_server!();
    let dir = workdir();
    let tmp = dir.path().join("tmp_check_iso");
    let outdir = dir.path().join("out");
    let fixtures = manifest().join("tests/fixtures");
    let out = drop_in(&[
        &format!("--temp-instance={}", tmp.display()),
        "--inputdir",
        fixtures.to_str().unwrap(),
        &format!("--outputdir={}", outdir.display()),
        "--bindir=",
        "--dbname=iso_a,iso_b",
        "--create-role=regress_r1,regress_r2",
        "--load-ext=plpgsql",
        "locks",
        "messages",
    ]);
    let stdout = expect_exit(&out, 0);
    let golden =
        std::fs::read_to_string(manifest().join("tests/golden/pg_isolation_regress-15.out"))
            .unwrap();
    assert_eq!(masked(&stdout), golden, "stderr: {}", text(&out.stderr));
    // pg_regress's result files: transcripts kept, logs in OUTPUTDIR/log,
    // regression.out and the temp instance removed when all passed.
    assert!(outdir.join("results/locks.out").is_file());
    assert!(outdir.join("log/postmaster.log").is_file());
    // Nothing of isospec's own on stderr, and every session (the admin
    // connection too) had closed before the server stopped: no backend
    // cut off in the server's log.
    assert_eq!(text(&out.stderr), "");
    let log = std::fs::read_to_string(outdir.join("log/postmaster.log")).unwrap();
    assert!(
        !log.contains("terminating connection due to administrator command")
            && !log.contains("could not send data to client"),
        "{log}"
    );
    assert!(!outdir.join("regression.out").exists());
    assert!(!outdir.join("regression.diffs").exists());
    assert!(!tmp.exists());
}

/// A suite with one spec whose expected output is wrong.
fn failing_suite(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("specs")).unwrap();
    std::fs::create_dir_all(input.join("expected")).unwrap();
    std::fs::write(
        input.join("specs/one.spec"),
        "session s\nstep a { SELECT 1 AS x; }\n",
    )
    .unwrap();
    std::fs::write(
        input.join("expected/one.out"),
        "Parsed test spec with 1 sessions\n",
    )
    .unwrap();
    input
}

#[test]
fn installcheck_drops_and_recreates_the_database_like_pg_regress() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let srv = Server::ready(&inst.data_dir);
    // A database of that name that isospec did not create (say, left by
    // PostgreSQL's own pg_isolation_regress), holding a table.
    srv.query("postgres", "CREATE DATABASE isolation_regression")
        .unwrap();
    srv.query("isolation_regression", "CREATE TABLE leftover (i int)")
        .unwrap();
    let server_args = [
        format!("--host={}", inst.socket_dir.display()),
        format!("--port={}", inst.port),
        format!("--user={}", Server::user()),
        format!("--inputdir={}", manifest().join("tests/fixtures").display()),
        format!("--outputdir={}", dir.path().join("out").display()),
    ];
    let mut args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    args.push("locks");
    let stdout = expect_exit(&drop_in(&args), 0);
    assert!(
        stdout.starts_with(&format!(
            "(using postmaster on {}, port {})\n============== dropping database \"isolation_regression\" ==============\nSET\nDROP DATABASE\n",
            inst.socket_dir.display(),
            inst.port
        )),
        "{stdout}"
    );
    assert!(stdout.contains(" All 1 tests passed. "), "{stdout}");
    let tables = srv
        .query(
            "isolation_regression",
            "SELECT count(*) FROM pg_class WHERE relname = 'leftover'",
        )
        .unwrap();
    assert_eq!(tables, ["0"]);

    // --use-existing: no DROP/CREATE; the database and what it holds stay.
    srv.query("isolation_regression", "CREATE TABLE kept (i int)")
        .unwrap();
    args.insert(0, "--use-existing");
    let stdout = expect_exit(&drop_in(&args), 0);
    assert!(!stdout.contains("dropping database"), "{stdout}");
    let tables = srv
        .query(
            "isolation_regression",
            "SELECT count(*) FROM pg_class WHERE relname = 'kept'",
        )
        .unwrap();
    assert_eq!(tables, ["1"]);

    // A failing test: exit 1, pg_regress's summary, both files kept.
    let input = failing_suite(dir.path());
    let out = dir.path().join("fail");
    let outdir = format!("--outputdir={}", out.display());
    let inputdir = format!("--inputdir={}", input.display());
    args.truncate(4);
    args.extend([outdir.as_str(), inputdir.as_str(), "one"]);
    let stdout = expect_exit(&drop_in(&args), 1);
    assert!(
        stdout.contains("test one                          ... FAILED"),
        "{stdout}"
    );
    assert!(stdout.contains(" 1 of 1 tests failed. "), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "file \"{}\".",
            out.join("regression.diffs").display()
        )),
        "{stdout}"
    );
    let log = std::fs::read_to_string(out.join("regression.out")).unwrap();
    assert!(log.starts_with("test one "), "{log}");
    assert!(std::fs::read_to_string(out.join("regression.diffs"))
        .unwrap()
        .contains("+step a: SELECT 1 AS x;"));
}

/// The drop-in prints what pg_regress prints and nothing of isospec's own
/// (a spec that kills a session on purpose has that in its transcript,
/// not on stderr) unless --isospec-verbose; it leaves prepared
/// transactions as pg_isolation_regress does; a failing spec's
/// regression.diffs has diff -U3's timestamps.
#[test]
fn the_drop_in_is_quiet_keeps_prepared_transactions_and_stamps_its_diffs() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let srv = Server::ready(&inst.data_dir);
    let faults = manifest().join("tests/faults");
    let server_args = [
        format!("--host={}", inst.socket_dir.display()),
        format!("--port={}", inst.port),
        format!("--user={}", Server::user()),
        format!("--inputdir={}", faults.display()),
        format!("--outputdir={}", dir.path().join("out").display()),
    ];
    let mut args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    args.push("b-killed");
    let out = drop_in(&args);
    assert_eq!(text(&out.stderr), "", "stdout: {}", text(&out.stdout));
    args.insert(0, "--isospec-verbose");
    let out = drop_in(&args);
    assert!(
        text(&out.stderr).contains("b-killed: session s2 lost its connection"),
        "{}",
        text(&out.stderr)
    );
    args.remove(0);
    args.pop();
    // A prepared transaction a spec leaves stays, as pg_isolation_regress
    // leaves it (isospec run rolls it back).
    args.push("c-leaves-prepared");
    let out = drop_in(&args);
    assert_eq!(text(&out.stderr), "");
    let left = srv
        .query("postgres", "SELECT gid FROM pg_prepared_xacts")
        .unwrap();
    assert_eq!(left, ["left-behind"]);
    srv.query("isolation_regression", "ROLLBACK PREPARED 'left-behind'")
        .unwrap();
    // diff -U3's header: path, a tab, the file's modification time.
    let input = failing_suite(dir.path());
    let out = drop_in(&[
        &server_args[0],
        &server_args[1],
        &server_args[2],
        &format!("--inputdir={}", input.display()),
        &format!("--outputdir={}", dir.path().join("out2").display()),
        "one",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let diffs = std::fs::read_to_string(dir.path().join("out2/regression.diffs")).unwrap();
    let header = diffs.lines().nth(1).unwrap_or_default().to_string();
    let (path, stamp) = header.split_once('\t').unwrap_or_else(|| panic!("{diffs}"));
    assert!(
        path.starts_with("--- ") && path.ends_with("expected/one.out"),
        "{diffs}"
    );
    assert!(stamp.len() == 35 && stamp.as_bytes()[19] == b'.', "{diffs}");
}
