//! Integration tests: run the built `isospec` binary in temporary
//! directories against real throwaway PostgreSQL instances that the binary
//! starts itself (`--temp-instance`).  Expected files under tests/fixtures
//! and tests/timeout were produced by PostgreSQL 15's own isolationtester.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn isospec() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_isospec"));
    for v in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGHOSTADDR",
        "PGSERVICE",
        "PGPASSWORD",
        "ISOSPEC_CONNINFO",
        "ISOSPEC_JOBS",
        "ISOSPEC_NO_PIN",
    ] {
        c.env_remove(v);
    }
    c.env_remove("PGISOLATIONTIMEOUT")
        .env_remove("PG_TEST_TIMEOUT_DEFAULT");
    c
}

/// A temporary directory the server's OS user can reach (when running as root).
fn workdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("isospec-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    let tmp = dir.join("tmp_check");
    isospec()
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
fn expect_exit(out: &Output, code: i32) -> String {
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
fn write_suite(dir: &Path, specs: &[(&str, &str, &str)]) -> PathBuf {
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

fn copy_dir(from: &Path, to: &Path) {
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

#[test]
fn fixtures_match_isolationtester_transcripts_with_both_detectors() {
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
fn step_timeout_cancels_and_run_continues() {
    let dir = workdir();
    let spec = manifest().join("tests/timeout/specs");
    let tmp = dir.path().join("tmp_check");
    let started = std::time::Instant::now();
    let out = isospec()
        .env("PGISOLATIONTIMEOUT", "2")
        .arg("run")
        .arg("--no-wait-graph")
        .arg("--outputdir")
        .arg(dir.path())
        .arg("--temp-instance")
        .arg(&tmp)
        .arg(&spec)
        .output()
        .unwrap();
    // Guard against a hang, not a speed check: three 2-second cancels.
    assert!(
        started.elapsed().as_secs() < 120,
        "took {:?}",
        started.elapsed()
    );
    let result = std::fs::read_to_string(dir.path().join("results/stuck.out")).unwrap();
    assert!(
        result.contains("isolationtester: canceling step s1sleep after 2 seconds\n"),
        "{result}"
    );
    assert!(result.contains("isolationtester: canceling step s2lock after 2 seconds\nstep s2lock: <... completed>\n"), "{result}");
    // A blocking teardown is cancelled and reported instead of hanging.
    let teardown = std::fs::read_to_string(dir.path().join("results/stuck-teardown.out")).unwrap();
    assert!(
        teardown.ends_with("teardown failed: ERROR:  canceling statement due to user request\n"),
        "{teardown}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("step s1sleep of session s1 has been running for"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_reports_every_error_with_file_line_col() {
    let dir = workdir();
    let bad = dir.path().join("bad.spec");
    std::fs::write(&bad, "session s1\nstep a { SELECT 1; }\nstep { SELECT 2; }\nsession s2\nstep b { x }\npermutation a(q) b\n").unwrap();
    let out = isospec().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].ends_with("bad.spec:3:6: error: expected step name, found SQL block"),
        "{err}"
    );

    std::fs::write(
        &bad,
        "session s1\nstep a { SELECT 1; }\nsession s2\nstep b { x }\npermutation a(q) c\n",
    )
    .unwrap();
    let out = isospec().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.spec:5:18: error: undefined step \"c\" specified in permutation"),
        "{err}"
    );

    let good = manifest().join("tests/fixtures/specs/unused.spec");
    let out = isospec().arg("check").arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("ok (2 sessions, 4 steps, 1 permutations)"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("warning: unused step name: a2"));
}

#[test]
fn invalid_spec_in_a_run_is_reported_and_others_still_run() {
    let dir = workdir();
    let specs = dir.path().join("suite/specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::create_dir_all(dir.path().join("suite/expected")).unwrap();
    std::fs::write(
        specs.join("broken.spec"),
        "session s\nstep a { SELECT 1; }\npermutation nosuch\n",
    )
    .unwrap();
    std::fs::write(
        specs.join("fine.spec"),
        "session s\nstep a { SELECT 1 AS x; }\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &[specs.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("test broken") && stdout.contains("FAILED (spec error)"),
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
    let dir = workdir();
    let spec = manifest().join("tests/fixtures/specs/allperms.spec");
    let out = isospec()
        .current_dir(dir.path())
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
    assert!(dir.path().join("tmp_check/log/postmaster.log").is_file());
}

#[test]
fn missing_os_user_for_root_is_a_clear_error() {
    if !nix_is_root() {
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

fn nix_is_root() -> bool {
    // SAFETY-free check through the id command keeps the test dependency-light.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| text(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn parallel_run_with_reports_and_accept() {
    let dir = workdir();
    copy_dir(
        &manifest().join("tests/fixtures"),
        &dir.path().join("suite"),
    );
    // Break one expected file: one failing testcase, with its diff.
    let exp = dir.path().join("suite/expected/locks.out");
    std::fs::write(
        &exp,
        std::fs::read_to_string(&exp)
            .unwrap()
            .replace("checking", "savings"),
    )
    .unwrap();
    // And a new spec without expected output.
    std::fs::write(
        dir.path().join("suite/specs/fresh.spec"),
        "session s\nstep a { SELECT 'fresh' AS x; }\n",
    )
    .unwrap();
    let suite = dir.path().join("suite");
    let junit = dir.path().join("junit.xml");
    let json = dir.path().join("report.json");
    let out = run_in(
        dir.path(),
        &[
            "-j",
            "3",
            "--tap",
            "--junit",
            junit.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            suite.join("specs").to_str().unwrap(),
        ],
    );
    let stdout = expect_exit(&out, 1);
    assert!(
        stdout.contains("not ok") && stdout.contains("- locks  "),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok ") && l.contains("- messages  ")),
        "{stdout}"
    );
    assert!(stdout.contains("1..6"), "{stdout}");

    // JUnit: well-formed XML, six testcases, the broken one carries the diff.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().expect("well-formed JUnit XML") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    _ => {}
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!((cases, failures), (6, 2), "{xml}");
    assert!(xml.contains("savings") && xml.contains("checking"), "{xml}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let specs = report["specs"].as_array().unwrap();
    let locks = specs.iter().find(|s| s["name"] == "locks").unwrap();
    assert_eq!(locks["status"], "failed");
    assert_eq!(locks["permutations"], "2");
    assert!(!locks["steps"].as_array().unwrap().is_empty());

    // accept copies the new and the changed transcripts into expected/.
    let acc = isospec()
        .arg("accept")
        .arg("--outputdir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(acc.status.code(), Some(0), "{}", text(&acc.stderr));
    let accepted = text(&acc.stdout);
    assert!(
        accepted.contains("expected/locks.out") && accepted.contains("expected/fresh.out"),
        "{accepted}"
    );
    assert!(std::fs::read_to_string(&exp).unwrap().contains("checking"));
    let again = run_in(
        dir.path(),
        &["-j", "2", suite.join("specs").to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
}

#[test]
fn repeat_partition_and_list() {
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
    let dir = workdir();
    let specs = dir.path().join("suite/specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::create_dir_all(dir.path().join("suite/expected")).unwrap();
    // A coin flip: two distinct transcripts over 30 runs, except with
    // probability 2^-29.
    std::fs::write(
        specs.join("coin.spec"),
        "session s\nstep flip { SELECT random() < 0.5 AS heads; }\n",
    )
    .unwrap();
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

/// Every malformed spec of tests/malformed gives exactly one precise error,
/// equal to its snapshot (NAME.err); ISOSPEC_BLESS=1 rewrites snapshots.
#[test]
fn malformed_spec_corpus_snapshots() {
    let dir = manifest().join("tests/malformed");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "spec"))
        .collect();
    specs.sort();
    assert!(specs.len() >= 50, "corpus has {} specs", specs.len());
    let bless = std::env::var_os("ISOSPEC_BLESS").is_some();
    let mut mismatches = Vec::new();
    for spec in &specs {
        // Run from the corpus directory so snapshots hold relative names.
        let name = spec.file_name().unwrap().to_str().unwrap();
        let out = isospec()
            .current_dir(&dir)
            .arg("check")
            .arg(name)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name} should be rejected");
        let err = text(&out.stderr);
        assert_eq!(
            err.lines().filter(|l| l.contains(": error: ")).count(),
            1,
            "{name}: {err}"
        );
        assert!(err.starts_with(&format!("{name}:")), "{name}: {err}");
        let snap = spec.with_extension("err");
        if bless {
            std::fs::write(&snap, &err).unwrap();
        } else if std::fs::read_to_string(&snap).unwrap_or_default() != err {
            mismatches.push(format!("{name}: got {err}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn huge_and_binary_inputs_get_one_precise_error() {
    let dir = workdir();
    // 100,000 steps, then a permutation naming a step that does not exist.
    let mut big = String::from("session s\n");
    for i in 0..100_000 {
        big.push_str(&format!("step s{i} {{ SELECT {i}; }}\n"));
    }
    big.push_str("permutation s1 nosuch\n");
    let huge = dir.path().join("huge.spec");
    std::fs::write(&huge, &big).unwrap();
    let out = isospec()
        .current_dir(dir.path())
        .args(["check", "huge.spec"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "huge.spec:100002:16: error: undefined step \"nosuch\" specified in permutation\n"
    );

    // Deterministic pseudo-random bytes (xorshift).
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let bytes: Vec<u8> = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(dir.path().join("garbage.spec"), &bytes).unwrap();
    let out = isospec()
        .current_dir(dir.path())
        .args(["check", "garbage.spec"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("garbage.spec:") && err.contains("error: the file is not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn fault_matrix_specs_end_cleanly_and_the_run_goes_on() {
    let dir = workdir();
    let specs = manifest().join("tests/faults/specs");
    let started = std::time::Instant::now();
    let out = isospec()
        .env("PGISOLATIONTIMEOUT", "2")
        .arg("run")
        .arg("--no-wait-graph")
        .arg("--outputdir")
        .arg(dir.path())
        .arg("--temp-instance")
        .arg(dir.path().join("tmp_check"))
        .arg(&specs)
        .output()
        .unwrap();
    assert!(
        started.elapsed().as_secs() < 120,
        "hang guard: {:?}",
        started.elapsed()
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

fn postgres_processes_for(dir: &Path) -> Vec<String> {
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
fn spawn_run(dir: &Path, tmp: &Path, specs: &Path, jobs: &str) -> std::process::Child {
    isospec()
        .arg("run")
        .arg("--outputdir")
        .arg(dir)
        .arg("--temp-instance")
        .arg(tmp)
        .args(["-j", jobs])
        .arg(specs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn server_killed_mid_run_ends_the_run_without_hanging() {
    server_killed_case("1");
}

#[test]
fn server_killed_under_jobs_ends_the_run_without_hanging() {
    server_killed_case("3");
}

fn server_killed_case(jobs: &str) {
    let dir = workdir();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(
        specs.join("a-slow.spec"),
        "session s\nstep sleep { SELECT pg_sleep(30); }\n",
    )
    .unwrap();
    std::fs::write(
        specs.join("b-after.spec"),
        "session s\nstep one { SELECT 1 AS one; }\n",
    )
    .unwrap();
    let tmp = dir.path().join("tmp_check");
    let child = spawn_run(dir.path(), &tmp, &specs, jobs);
    // Wait for the slow step to be running, then kill the postmaster.
    let pidfile = tmp.join("data/postmaster.pid");
    let started = std::time::Instant::now();
    while !pidfile.exists() || !dir.path().join("results").exists() {
        assert!(started.elapsed().as_secs() < 60, "server did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert!(Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed().as_secs() < 60,
        "run did not end in bounded time"
    );
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
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        postgres_processes_for(&tmp).is_empty(),
        "{:?}",
        postgres_processes_for(&tmp)
    );
}

/// Sends `signal` to a run whose step is busy: the step is cancelled, the
/// teardown runs, the temp instance stops, exit code 128 + signal number.
/// Interrupts a run of `jobs` specs that each sleep, run with `-j jobs`.
fn interrupt_case(signal: &str, code: i32, jobs: usize) {
    let dir = workdir();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let names: Vec<String> = (1..=jobs).map(|i| format!("slow{i}")).collect();
    for n in &names {
        std::fs::write(
            specs.join(format!("{n}.spec")),
            "teardown { SELECT 'teardown ran' AS t; }\nsession s\nstep sleep { SELECT pg_sleep(60); }\n",
        )
        .unwrap();
    }
    let tmp = dir.path().join("tmp_check");
    let child = spawn_run(dir.path(), &tmp, &specs, &jobs.to_string());
    let started = std::time::Instant::now();
    while !dir.path().join("results").exists() || postgres_processes_for(&tmp).is_empty() {
        assert!(started.elapsed().as_secs() < 60, "server did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed().as_secs() < 60,
        "did not stop in bounded time"
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains(&format!("interrupted by signal {}", code - 128)),
        "{}",
        text(&out.stderr)
    );
    // The running steps were cancelled and each spec's teardown ran.
    for n in &names {
        let slow = std::fs::read_to_string(dir.path().join(format!("results/{n}.out"))).unwrap();
        assert!(
            slow.contains("canceling running steps and running the teardown"),
            "{n}: {slow}"
        );
        assert!(slow.contains("teardown ran"), "{n}: {slow}");
    }
    assert!(
        postgres_processes_for(&tmp).is_empty(),
        "orphans: {:?}",
        postgres_processes_for(&tmp)
    );
}

#[test]
fn sigterm_stops_the_temp_instance_and_exits_143() {
    interrupt_case("TERM", 143, 1);
}

#[test]
fn sigint_stops_the_temp_instance_and_exits_130() {
    interrupt_case("INT", 130, 1);
}

#[test]
fn sigint_under_jobs_tears_down_every_running_spec() {
    interrupt_case("INT", 130, 2);
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
    // A real server started by the library, then the binary with a role
    // that does not exist.
    let dir = workdir();
    let inst = isospec::server::TempInstance::start(&isospec::server::TempInstanceOptions {
        dir: dir.path().join("srv"),
        bindir: None,
        os_user: "postgres".into(),
        temp_config: vec![],
        extra_settings: vec![],
    })
    .unwrap();
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
    if !nix_is_root() {
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
fn github_summary_colour_and_wait_graph_in_transcript() {
    let dir = workdir();
    let specs = dir.path().join("suite/specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::create_dir_all(dir.path().join("suite/expected")).unwrap();
    // A step that waits on a lock nobody releases: cancelled after 1 s,
    // with the server's wait graph in the transcript.
    std::fs::write(
        specs.join("blocked.spec"),
        "setup { CREATE TABLE wg (a int); }\nteardown { DROP TABLE wg; }\n\
         session s1\nstep s1lock { BEGIN; LOCK wg; }\nteardown { ROLLBACK; }\n\
         session s2\nstep s2lock { BEGIN; LOCK wg; }\nteardown { ROLLBACK; }\n\
         permutation s1lock s2lock\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("suite/expected/blocked.out"),
        "something else\n",
    )
    .unwrap();
    let summary = dir.path().join("summary.md");
    let out = isospec()
        .env("PGISOLATIONTIMEOUT", "1")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .arg("run")
        .args(["--color", "always", "--outputdir"])
        .arg(dir.path())
        .arg("--temp-instance")
        .arg(dir.path().join("tmp_check"))
        .arg(&specs)
        .output()
        .unwrap();
    let stdout = expect_exit(&out, 1);
    let result = std::fs::read_to_string(dir.path().join("results/blocked.out")).unwrap();
    assert!(
        result.contains("wait graph for step s2lock of session s2"),
        "{result}"
    );
    assert!(result.contains("blocked by s1 (pid "), "{result}");
    assert!(
        result.contains("holds AccessExclusiveLock on relation wg"),
        "{result}"
    );
    assert!(
        result.contains("isolationtester: canceling step s2lock after 1 seconds"),
        "{result}"
    );
    // The failing diff is printed in colour, and summarised for GitHub.
    assert!(stdout.contains("\x1b[32m+step s2lock"), "{stdout}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("0 of 1 specs passed") && md.contains("blocked (failed)"),
        "{md}"
    );
    assert!(
        md.contains("```diff") && md.contains("+step s1lock"),
        "{md}"
    );
}

#[test]
fn alone_specs_run_in_the_main_database_under_jobs() {
    let dir = workdir();
    let db_spec = "session s\nstep db { SELECT current_database() AS db; }\n";
    let db_out = "Parsed test spec with 1 sessions\n\nstarting permutation: db\nstep db: SELECT current_database() AS db;\ndb                  \n--------------------\nisolation_regression\n(1 row)\n\n";
    let one_spec = "session s\nstep one { SELECT 1 AS one; }\n";
    let one_out = "Parsed test spec with 1 sessions\n\nstarting permutation: one\nstep one: SELECT 1 AS one;\none\n---\n  1\n(1 row)\n\n";
    // One marked in the spec, one on the command line (without `alone`
    // they could get a worker slot's database).
    let marked = format!("# isospec: alone\n{db_spec}");
    let specs = write_suite(
        dir.path(),
        &[
            ("a-other", one_spec, one_out),
            ("b-marked", &marked, db_out),
            ("c-flag", db_spec, db_out),
            ("d-other", one_spec, one_out),
        ],
    );
    let out = run_in(
        dir.path(),
        &["-j", "2", "--alone", "c-flag", specs.to_str().unwrap()],
    );
    let stdout = expect_exit(&out, 0);
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
}

#[test]
fn jobs_keep_shared_objects_apart_and_database_naming_specs_in_the_main_database() {
    let dir = workdir();
    let conf = dir.path().join("prepared.conf");
    std::fs::write(&conf, "max_prepared_transactions = 5\n").unwrap();
    // Two specs prepare a transaction of the same (cluster-wide) name and
    // hold it for a while: side by side, the second PREPARE would fail.
    let gid_spec = "setup { CREATE TABLE gidtab (i int); }\nteardown { DROP TABLE gidtab; }\n\
        session s1\nstep ins { BEGIN; INSERT INTO gidtab VALUES (1); }\n\
        step prep { PREPARE TRANSACTION 'isospec_shared_gid'; }\n\
        step nap { SELECT pg_sleep(0.3); }\nstep fin { COMMIT PREPARED 'isospec_shared_gid'; }\n";
    let gid_out = "Parsed test spec with 1 sessions\n\nstarting permutation: ins prep nap fin\n\
        step ins: BEGIN; INSERT INTO gidtab VALUES (1);\n\
        step prep: PREPARE TRANSACTION 'isospec_shared_gid';\nstep nap: SELECT pg_sleep(0.3);\n\
        pg_sleep\n--------\n        \n(1 row)\n\nstep fin: COMMIT PREPARED 'isospec_shared_gid';\n";
    let nap_spec = "session s\nstep nap { SELECT pg_sleep(0.2); }\n";
    let nap_out = "Parsed test spec with 1 sessions\n\nstarting permutation: nap\n\
        step nap: SELECT pg_sleep(0.2);\npg_sleep\n--------\n        \n(1 row)\n\n";
    // A spec that names the run's database runs in it, whatever slot is free.
    let db_spec =
        "session s\nstep where { SELECT current_database() = 'isolation_regression' AS in_main; }\n";
    let db_out = "Parsed test spec with 1 sessions\n\nstarting permutation: where\n\
        step where: SELECT current_database() = 'isolation_regression' AS in_main;\n\
        in_main\n-------\nt      \n(1 row)\n\n";
    let specs = write_suite(
        dir.path(),
        &[
            ("a-nap", nap_spec, nap_out),
            ("b-nap", nap_spec, nap_out),
            ("p1", gid_spec, gid_out),
            ("p2", gid_spec, gid_out),
            ("z-named-db", db_spec, db_out),
        ],
    );
    let out = run_in(
        dir.path(),
        &[
            "-j",
            "3",
            "--temp-config",
            conf.to_str().unwrap(),
            specs.to_str().unwrap(),
        ],
    );
    let stdout = expect_exit(&out, 0);
    assert!(stdout.contains("5 passed, 0 failed"), "{stdout}");
    // Durations are kept for the next run's order.
    let timings = std::fs::read_to_string(dir.path().join("results/.isospec-timings")).unwrap();
    for name in ["a-nap", "b-nap", "p1", "p2", "z-named-db"] {
        assert!(timings.contains(&format!("{name}\t")), "{timings}");
    }
}

#[test]
fn every_repeat_pass_starts_in_fresh_databases() {
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

/// The `Cpus_allowed_list` line of /proc/PID/status text.
fn cpus_allowed(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn jobs_bind_each_lane_and_its_backends_to_one_cpu() {
    let dir = workdir();
    // Each backend reports the CPUs it may run on.
    let spec = "session s\nstep cpus { SELECT line FROM regexp_split_to_table(\
                pg_read_file('/proc/self/status'), E'\\n') AS line \
                WHERE line LIKE 'Cpus_allowed_list:%'; }\n";
    let specs = write_suite(
        dir.path(),
        &[("cpu1", spec, ""), ("cpu2", spec, ""), ("cpu3", spec, "")],
    );
    let mine = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    let lists = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["-j", "3"];
        args.extend(extra);
        args.push(specs.to_str().unwrap());
        // The expected files are empty, so every spec differs: exit 1.
        expect_exit(&run_in(dir.path(), &args), 1);
        ["cpu1", "cpu2", "cpu3"]
            .iter()
            .map(|n| {
                let out = std::fs::read_to_string(dir.path().join(format!("results/{n}.out")));
                cpus_allowed(
                    &out.unwrap()
                        .replace("Cpus_allowed_list:\t", "\nCpus_allowed_list:"),
                )
            })
            .collect()
    };
    let unbound = lists(&["--no-pin"]);
    assert_eq!(unbound, vec![mine.clone(); 3]);
    let bound = lists(&[]);
    if mine.contains(',') || mine.contains('-') {
        // More than one CPU: every spec's backend was bound to a single one.
        for l in &bound {
            assert!(
                l.parse::<usize>().is_ok(),
                "not bound to one CPU: {bound:?}"
            );
        }
    } else {
        assert_eq!(bound, vec![mine; 3]);
    }
}

#[test]
fn jobs_run_specs_with_different_prepared_transaction_names_side_by_side() {
    let dir = workdir();
    // Each spec holds a prepared transaction and then waits (up to 5 s) to
    // see the other spec's session, and stays 0.5 s longer so that the
    // other sees it too: only when they run at the same time does each say
    // "other seen: t".
    let spec = |gid: &str, other: &str| {
        format!(
            "session s\nsetup {{ BEGIN; }}\nstep p {{ PREPARE TRANSACTION '{gid}'; }}\n\
             step seen {{ DO $$ DECLARE seen bool := false; BEGIN FOR i IN 1..500 LOOP \
             seen := EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'isolation/{other}/s'); \
             EXIT WHEN seen; PERFORM pg_sleep(0.01); PERFORM pg_stat_clear_snapshot(); END LOOP; \
             PERFORM pg_sleep(0.5); RAISE NOTICE 'other seen: %', seen; END $$; }}\n\
             step c {{ COMMIT PREPARED '{gid}'; }}\n"
        )
    };
    let (a, b) = (spec("ga", "gid-b"), spec("gb", "gid-a"));
    let specs = write_suite(dir.path(), &[("gid-a", &a, ""), ("gid-b", &b, "")]);
    // The expected files are empty, so both specs differ: exit 1.
    expect_exit(
        &run_in(dir.path(), &["-j", "2", specs.to_str().unwrap()]),
        1,
    );
    for n in ["gid-a", "gid-b"] {
        let out = std::fs::read_to_string(dir.path().join(format!("results/{n}.out"))).unwrap();
        assert!(out.contains("other seen: t"), "{n}:\n{out}");
        assert!(out.contains("step c: COMMIT PREPARED"), "{n}:\n{out}");
    }
}
