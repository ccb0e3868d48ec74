//! `isospec run` against a temp instance: transcripts, diffs, exit codes, errors that name the server, repeats.

use crate::util::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn fixtures_match_isolationtester_transcripts_with_both_detectors() {
    require_server!();
    for detector in ["function", "pg-locks"] {
        let dir = workdir();
        let specs = manifest().join("tests/fixtures/specs");
        let out = run_in(
            dir.path(),
            &["--wait-detector", detector, specs.to_str().unwrap()],
        );
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "detector {detector}\nstdout:\n{stdout}\nstderr:\n{}",
            text(&out.stderr)
        );
        assert!(stdout.contains("test locks"), "{stdout}");
        assert!(stdout.contains("5 passed, 0 failed"), "{stdout}");
        // The transcript is written where users look for it.
        let result = std::fs::read_to_string(dir.path().join("results/locks.out")).unwrap();
        let expected =
            std::fs::read_to_string(manifest().join("tests/fixtures/expected/locks.out")).unwrap();
        assert_eq!(result, expected);
        assert!(!dir.path().join("regression.diffs").exists());
    }
}

#[test]
fn mismatch_gives_exit_1_and_a_unified_diff() {
    require_server!();
    let dir = workdir();
    copy_dir(
        &manifest().join("tests/fixtures"),
        &dir.path().join("suite"),
    );
    let exp = dir.path().join("suite/expected/locks.out");
    let changed = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("203.00", "999.00");
    std::fs::write(&exp, changed).unwrap();
    // A variant that matches would make it pass; a non-matching one must not.
    std::fs::write(
        dir.path().join("suite/expected/unused_1.out"),
        "nothing like it\n",
    )
    .unwrap();
    let suite = dir.path().join("suite");
    let out = run_in(
        dir.path(),
        &["--inputdir", suite.to_str().unwrap(), "locks", "unused"],
    );
    let stdout = expect_exit(&out, 1);
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
    let diffs = std::fs::read_to_string(dir.path().join("regression.diffs")).unwrap();
    assert!(
        diffs.contains("-  1| 999.00|checking\n+  1| 203.00|checking"),
        "{diffs}"
    );
    assert!(
        diffs.contains("--- ") && diffs.contains("+++ ") && diffs.contains("@@ "),
        "{diffs}"
    );
    let regression_out = std::fs::read_to_string(dir.path().join("regression.out")).unwrap();
    assert!(regression_out.contains("test locks"), "{regression_out}");
}

#[test]
fn invalid_spec_in_a_run_is_reported_and_others_still_run() {
    require_server!();
    let dir = workdir();
    let specs = write_new_specs(
        dir.path(),
        &[
            (
                "broken",
                "session s\nstep a { SELECT 1; }\npermutation nosuch\n",
            ),
            ("fine", "session s\nstep a { SELECT 1 AS x; }\n"),
        ],
    );
    let out = run_in(dir.path(), &[specs.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("test broken") && stdout.contains(" ms  (spec error)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "broken.spec:3:13: error: undefined step \"nosuch\" specified in permutation"
        ),
        "{stdout}"
    );
    // The new spec without expected output still ran and says how to accept it.
    assert!(
        stdout.contains("test fine") && stdout.contains("NEW"),
        "{stdout}"
    );
    let fine = std::fs::read_to_string(dir.path().join("results/fine.out")).unwrap();
    assert_eq!(fine, "Parsed test spec with 1 sessions\n\nstarting permutation: a\nstep a: SELECT 1 AS x;\nx\n-\n1\n(1 row)\n\n");
}

#[test]
fn no_server_named_means_a_temp_instance_and_says_so() {
    require_server!();
    let dir = workdir();
    let tmp = dir.path().join("tmpdir");
    std::fs::create_dir(&tmp).unwrap();
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let out = isospec()
        .current_dir(dir.path())
        .env("TMPDIR", &tmp)
        .arg("run")
        .arg("--inputdir")
        .arg(manifest().join("tests/fixtures"))
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("no server named"),
        "{}",
        text(&out.stderr)
    );
    assert!(dir.path().join("results/allperms.out").is_file());
    // The instance lived under $TMPDIR, not in the working tree, and is
    // gone with the run.
    let said = text(&out.stderr);
    assert!(
        said.contains(&format!("temporary instance in {}/isospec-", tmp.display())),
        "{said}"
    );
    assert!(!dir.path().join("tmp_check").exists());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "{said}");
    // --keep-instance keeps it, with its server log, and says where.
    let out = isospec()
        .current_dir(dir.path())
        .env("TMPDIR", &tmp)
        .args(["run", "--keep-instance", "--inputdir"])
        .arg(manifest().join("tests/fixtures"))
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let kept: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1, "{}", text(&out.stderr));
    assert!(kept[0].path().join("log/postmaster.log").is_file());
    assert!(text(&out.stderr).contains(&format!("{} stays", kept[0].path().display())));
}

#[test]
fn missing_os_user_for_root_is_a_clear_error() {
    require_server!();
    if !is_root() {
        return;
    }
    let dir = workdir();
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let out = run_in(
        dir.path(),
        &[
            "--temp-instance-user",
            "no_such_user_x",
            spec.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("runs as root")
            && err.contains("\"no_such_user_x\" to run them as does not exist"),
        "{err}"
    );
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let dir = workdir();
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let out = isospec()
        .arg("run")
        .arg("--outputdir")
        .arg(dir.path())
        .args(["--host", "/nonexistent-dir", "--port", "1"])
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("/nonexistent-dir/.s.PGSQL.1"), "{err}");
}

#[test]
fn unwritable_results_dir_is_a_clear_error() {
    let dir = workdir();
    // A file where results/ should be: not even root can create the directory.
    std::fs::write(dir.path().join("results"), "not a directory").unwrap();
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let out = run_in(dir.path(), &[spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("could not write") && err.contains("results"),
        "{err}"
    );
}

#[test]
fn rejected_credentials_name_the_server() {
    require_server!();
    // A real server started by the library, then the binary with a role
    // that does not exist.
    let dir = workdir();
    let inst = start_instance(dir.path());
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let out = isospec()
        .arg("run")
        .arg("--outputdir")
        .arg(dir.path())
        .args([
            "--host",
            inst.socket_dir.to_str().unwrap(),
            "--port",
            &inst.port.to_string(),
            "--user",
            "no_such_role",
        ])
        .arg(&spec)
        .output()
        .unwrap();
    drop(inst);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("role \"no_such_role\" does not exist") && err.contains(".s.PGSQL."),
        "{err}"
    );
}

#[test]
fn unreachable_instance_dir_is_relocated_for_the_server_user() {
    require_server!();
    if !is_root() {
        return;
    }
    // A directory the server's OS user cannot enter, like a checkout in /root.
    let dir = workdir();
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let out = isospec()
        .arg("run")
        .arg("--outputdir")
        .arg(&private)
        .arg("--temp-instance")
        .arg(private.join("tmp_check"))
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("is not reachable by OS user") && err.contains("/tmp/isospec-instance-"),
        "{err}"
    );
    // The server's log is where the user asked for it.
    assert!(private.join("tmp_check/log/postmaster.log").is_file());
}

#[test]
fn repeat_runs_a_partition_several_times_with_one_transcript_each() {
    require_server!();
    let dir = workdir();
    let specs = manifest().join("tests/fixtures/specs");
    let out = run_in(
        dir.path(),
        &[
            "--repeat",
            "3",
            "--partition",
            "1/3",
            specs.to_str().unwrap(),
        ],
    );
    let stdout = expect_exit(&out, 0);
    // Fixtures sorted: allperms, locks, messages, terminate, unused -> 1/3 is allperms, terminate.
    assert!(
        stdout.contains("stable allperms: 1 transcript in 3 runs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stable terminate: 1 transcript in 3 runs"),
        "{stdout}"
    );
    assert!(!stdout.contains("test locks"), "{stdout}");
    assert!(stdout.contains("6 passed, 0 failed"), "{stdout}");
}

/// `isospec list --permutations` prints every permutation, no server needed.
#[test]
fn list_prints_every_permutation() {
    let specs = manifest().join("tests/fixtures/specs");
    let list = isospec()
        .arg("list")
        .arg("--permutations")
        .arg(specs.join("allperms.spec"))
        .output()
        .unwrap();
    assert_eq!(
        text(&list.stdout).lines().skip(3).collect::<Vec<_>>(),
        vec![
            "permutation a1 a2 b1",
            "permutation a1 b1 a2",
            "permutation b1 a1 a2"
        ]
    );
}

#[test]
fn flaky_spec_is_caught_by_repeat_and_until_fail() {
    require_server!();
    let dir = workdir();
    // A coin flip: two distinct transcripts over 30 runs, except with
    // probability 2^-29.
    let specs = write_new_specs(
        dir.path(),
        &[(
            "coin",
            "session s\nstep flip { SELECT random() < 0.5 AS heads; }\n",
        )],
    );
    let out = run_in(
        dir.path(),
        &["--repeat", "30", "-j", "2", specs.to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FLAKY coin: 2 distinct transcripts"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-t    \n+f    \n") || stdout.contains("-f    \n+t    \n"),
        "{stdout}"
    );

    // Accept one outcome, then --until-fail stops at the first pass that differs.
    let acc = isospec()
        .arg("accept")
        .arg("--outputdir")
        .arg(dir.path())
        .arg("coin")
        .output()
        .unwrap();
    assert_eq!(acc.status.code(), Some(0), "{}", text(&acc.stderr));
    let out = run_in(
        dir.path(),
        &["--until-fail", "--repeat", "200", specs.to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("stopping after pass"), "{stdout}");
}

#[test]
fn every_repeat_pass_starts_in_fresh_databases() {
    require_server!();
    let dir = workdir();
    // The specs leave their tables behind, as some of PostgreSQL's do: in
    // the same database, a second pass would fail in setup.
    let spec = |t: &str| {
        format!(
            "setup {{ CREATE TABLE {t} (i int); }}\n\
             session s\nstep one {{ SELECT count(*) AS n FROM {t}; }}\n"
        )
    };
    let out = |t: &str| {
        format!(
            "Parsed test spec with 1 sessions\n\nstarting permutation: one\n\
             step one: SELECT count(*) AS n FROM {t};\nn\n-\n0\n(1 row)\n\n"
        )
    };
    let (s1, o1, s2, o2) = (spec("left1"), out("left1"), spec("left2"), out("left2"));
    let specs = write_suite(dir.path(), &[("leaky", &s1, &o1), ("leaky2", &s2, &o2)]);
    for jobs in ["1", "2"] {
        let out = run_in(
            dir.path(),
            &["--repeat", "3", "-j", jobs, specs.to_str().unwrap()],
        );
        let stdout = expect_exit(&out, 0);
        assert!(stdout.contains("6 passed, 0 failed"), "-j {jobs}: {stdout}");
        assert!(
            stdout.contains("stable leaky: 1 transcript in 3 runs"),
            "-j {jobs}: {stdout}"
        );
    }
}

/// A run that fails before any spec runs (the test database exists and is
/// not isospec's) says why, and prints no pass banner or summary.
#[test]
fn setup_failure_prints_no_summary() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let server = Server::ready(&inst.data_dir);
    server
        .query("postgres", "CREATE DATABASE isolation_regression")
        .unwrap();
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let out = run_against(&inst, dir.path()).arg(&spec).output().unwrap();
    let stdout = expect_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("refusing to drop it"), "{stderr}");
    assert!(!stdout.contains("passed"), "{stdout}");
    assert!(!stdout.contains("tests"), "{stdout}");
    assert!(!dir.path().join("results/allperms.out").exists());
}

#[test]
fn a_second_temporary_instance_copies_the_first_ones_initdb() {
    require_server!();
    let dir = workdir();
    let cache = dir.path().join("initdb-cache");
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let run = |inst: &str, cache: &std::ffi::OsStr| {
        let out = isospec()
            .current_dir(dir.path())
            .env("ISOSPEC_INITDB_CACHE", cache)
            .args([
                "run",
                "--keep-instance",
                "--temp-instance",
                inst,
                "--inputdir",
            ])
            .arg(manifest().join("tests/fixtures"))
            .arg(&spec)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        std::fs::read_to_string(dir.path().join(inst).join("log/initdb.log")).unwrap()
    };
    let copied = "isospec: data directory copied from";
    let first = run("i1", cache.as_os_str());
    assert!(!first.contains(copied), "{first}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    // The second instance is a copy, says so in its initdb.log with what
    // initdb said, and runs the spec as the first did.
    let second = run("i2", cache.as_os_str());
    assert!(second.starts_with(copied), "{second}");
    assert!(second.contains(first.lines().next().unwrap()), "{second}");
    // off runs initdb again.
    let third = run("i3", std::ffi::OsStr::new("off"));
    assert!(!third.contains(copied), "{third}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("results/allperms.out")).ok(),
        std::fs::read_to_string(manifest().join("tests/fixtures/expected/allperms.out")).ok()
    );
}

/// `isospec list --permutations … | head`: the reader goes away after a
/// line, and isospec stops printing quietly (exit 0, no panic), as cat and
/// ripgrep do, instead of `println!`'s "failed printing to stdout".
#[test]
fn a_reader_that_goes_away_ends_the_printing_without_a_panic() {
    use std::io::{BufRead, BufReader};
    let dir = workdir();
    // 3 sessions of 4 steps: 34,650 permutations, megabytes of lines, far
    // more than a pipe holds, so isospec is still writing when it closes.
    let steps = |s: &str| {
        (1..=4)
            .map(|i| format!("step {s}{i} {{ SELECT {i}; }}\n"))
            .collect::<String>()
    };
    let spec = dir.path().join("many.spec");
    std::fs::write(
        &spec,
        format!(
            "session a\n{}session b\n{}session c\n{}",
            steps("a"),
            steps("b"),
            steps("c")
        ),
    )
    .unwrap();
    let mut child = isospec()
        .args(["list", "--permutations"])
        .arg(&spec)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("3 sessions"), "{first}");
    // The reader (and with it the pipe) is gone here.
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
