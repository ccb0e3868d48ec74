//! `isospec explore` on the classics of specs/ against a real server: the
//! classes it finds (by JSON), invariants and the exit code, seeded samples
//! that reproduce, and `--write` lines that `isospec run` then pins.

use crate::util::{
    expect_exit, isospec, manifest, start_instance, text, wait_for, workdir, Server,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// `isospec explore` against `inst`.
pub fn explore_against(inst: &isospec::server::TempInstance) -> Command {
    let mut c = isospec();
    c.arg("explore").arg("--host").arg(&inst.socket_dir).args([
        "--port",
        &inst.port.to_string(),
        "--user",
        &Server::user(),
    ]);
    c
}

/// Explores `spec` (with `args`), returning the exit code and its JSON.
fn explore(
    inst: &isospec::server::TempInstance,
    dir: &Path,
    spec: &Path,
    args: &[&str],
) -> (i32, Value) {
    let json = dir.join("explore.json");
    let out = explore_against(inst)
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg(spec)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "explore failed ({code}): {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v: Value = crate::util::read_json(&json);
    (code, v["specs"][0].clone())
}

fn classes(v: &Value) -> &Vec<Value> {
    v["classes"].as_array().unwrap()
}

fn violating(v: &Value) -> Vec<&Value> {
    classes(v)
        .iter()
        .filter(|c| !c["violated"].as_array().unwrap().is_empty())
        .collect()
}

fn failing_with<'a>(v: &'a Value, sqlstate: &str) -> Vec<&'a Value> {
    classes(v)
        .iter()
        .filter(|c| {
            c["failures"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["sqlstate"] == sqlstate)
        })
        .collect()
}

fn spec(name: &str) -> std::path::PathBuf {
    manifest().join("specs").join(format!("{name}.spec"))
}

#[test]
fn lost_update_found_at_read_committed_and_gone_at_repeatable_read() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let (code, rc) = explore(&inst, dir.path(), &spec("explore-lost-update-rc"), &[]);
    assert_eq!(code, 1, "a violated invariant gives exit code 1");
    assert_eq!(rc["space"], "20");
    assert_eq!(rc["exhaustive"], true);
    let lost = violating(&rc);
    assert!(!lost.is_empty(), "no lost-update class: {rc}");
    // The lost update: both committed, the balance moved by only one; its
    // representative is the member with the fewest preemptions (one).
    assert!(lost
        .iter()
        .any(|c| c["permutation"] == "permutation r2 r1 w1 c1 w2 c2" && c["preemptions"] == 1));
    assert!(failing_with(&rc, "40001").is_empty());

    let (code, rr) = explore(&inst, dir.path(), &spec("explore-lost-update-rr"), &[]);
    assert_eq!(code, 0, "{rr}");
    assert!(violating(&rr).is_empty());
    let failed = failing_with(&rr, "40001");
    assert!(!failed.is_empty(), "no serialization-failure class: {rr}");
    assert_eq!(
        rr["explored"].as_u64().unwrap(),
        20,
        "every interleaving is either a class member or not realizable"
    );
}

#[test]
fn write_skew_at_repeatable_read_but_not_serializable() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let (code, rr) = explore(&inst, dir.path(), &spec("explore-write-skew-rr"), &[]);
    assert_eq!(code, 1);
    let skew = violating(&rr);
    assert_eq!(skew.len(), 1, "{rr}");
    assert_eq!(skew[0]["results"][0][0][0], Value::Null, "nobody on call");
    let (code, ser) = explore(
        &inst,
        dir.path(),
        &spec("explore-write-skew-serializable"),
        &[],
    );
    assert_eq!(code, 0, "{ser}");
    assert!(!failing_with(&ser, "40001").is_empty());
}

#[test]
fn max_id_duplicates_become_unique_violations() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let (code, plain) = explore(&inst, dir.path(), &spec("explore-max-id-plain"), &[]);
    assert_eq!(code, 1);
    assert_eq!(plain["space"], "90");
    // Three sessions taking the same id, the worst class.
    assert!(violating(&plain)
        .iter()
        .any(|c| c["results"][0][0] == serde_json::json!(["3", "1"])));
    let (code, unique) = explore(&inst, dir.path(), &spec("explore-max-id-unique"), &[]);
    assert_eq!(code, 0, "{unique}");
    assert!(violating(&unique).is_empty());
    assert!(!failing_with(&unique, "23505").is_empty());
    assert!(unique["unrealizable"].as_u64().unwrap() > 0);
}

#[test]
fn a_seed_reproduces_a_sample_and_outcomes_come_from_the_command_line() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    // 3 sessions of 2 steps: 90 interleavings, 25 sampled.
    let args = [
        "--max",
        "25",
        "--seed",
        "7",
        "--outcome",
        "SELECT count(*) FROM t",
    ];
    let (_, a) = explore(&inst, dir.path(), &spec("explore-max-id-plain"), &args);
    let (_, b) = explore(&inst, dir.path(), &spec("explore-max-id-plain"), &args);
    assert_eq!(a["exhaustive"], false);
    assert_eq!(a["explored"], 25);
    assert_eq!(a["seed"], 7);
    assert_eq!(a["classes"], b["classes"]);
    // The command line's outcome comes first, the spec's after it.
    assert_eq!(classes(&a)[0]["results"][0][0][0], "3");
    let (_, c) = explore(
        &inst,
        dir.path(),
        &spec("explore-max-id-plain"),
        &["--max", "25", "--seed", "8"],
    );
    let sizes = |v: &Value| -> Vec<u64> {
        classes(v)
            .iter()
            .map(|c| c["count"].as_u64().unwrap())
            .collect()
    };
    assert_ne!(sizes(&a), sizes(&c), "another seed, another sample");
}

#[test]
fn written_lines_are_what_run_then_pins() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    // The classic without its pinned lines.
    let src = std::fs::read_to_string(spec("explore-lost-update-rr")).unwrap();
    let bare: String = src
        .lines()
        .filter(|l| !l.starts_with("permutation") && !l.starts_with("# isospec explore,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let path = specs.join("lu.spec");
    std::fs::write(&path, bare.trim_end().to_string() + "\n").unwrap();
    let out = explore_against(&inst)
        .arg("--write")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = expect_exit(&out, 0);
    assert!(stdout.contains("wrote 5 permutation lines"), "{stdout}");
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.matches("\npermutation ").count(), 5);
    // Exploring again writes nothing new.
    let again = explore_against(&inst)
        .arg("--write")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!expect_exit(&again, 0).contains("wrote"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    // isospec run executes exactly those lines; the transcript is the
    // committed classic's (same lines, same steps).
    let out = crate::util::run_against(&inst, dir.path())
        .arg(&path)
        .output()
        .unwrap();
    let result = std::fs::read_to_string(dir.path().join("results/lu.out")).unwrap_or_else(|e| {
        panic!(
            "no results/lu.out ({e}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    let expected =
        std::fs::read_to_string(manifest().join("expected/explore-lost-update-rr.out")).unwrap();
    assert_eq!(result, expected);
}

#[test]
fn ctrl_c_reports_the_classes_so_far_and_cleans_up() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let server = Server::ready(&inst.data_dir);
    // The first interleaving (a1 a2 b1) sleeps in a2 until interrupted,
    // inside a transaction that holds the table the teardown drops.
    let path = dir.path().join("sleepy.spec");
    std::fs::write(
        &path,
        "setup { CREATE TABLE sleepy (i int); }\nteardown { DROP TABLE sleepy; }\n\
         session a\nsetup { BEGIN; LOCK sleepy; }\nstep a1 { SELECT 1 AS one; }\nstep a2 { SELECT pg_sleep(600); }\n\
         session b\nstep b1 { SELECT 2 AS two; }\n",
    )
    .unwrap();
    let child = explore_against(&inst)
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the sleeping step under way", || {
        server
            .query(
                "postgres",
                "SELECT 1 FROM pg_stat_activity WHERE state = 'active' \
                 AND strpos(query, 'pg_sleep(600)') > 0 AND pid <> pg_backend_pid()",
            )
            .is_ok_and(|r| !r.is_empty())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("interrupted: the classes above are those found so far"),
        "{stdout}"
    );
    assert!(stdout.contains("3 interleavings of 2 sessions"), "{stdout}");
    // The interleaving's transaction was rolled back and the teardown ran.
    assert_eq!(
        server
            .query(
                "isolation_regression",
                "SELECT count(*) FROM pg_class WHERE relname = 'sleepy'"
            )
            .unwrap(),
        vec!["0".to_string()]
    );
}

/// With no server named, explore starts a temporary instance as `run`
/// does, and cancels a never-ending step at the timeout of the server
/// version's isolationtester (PGISOLATIONTIMEOUT for 15).
#[test]
fn without_a_server_explore_uses_a_temporary_instance_and_the_versions_timeout() {
    crate::require_server!();
    let dir = crate::util::workdir();
    let spec = dir.path().join("forever.spec");
    std::fs::write(&spec, "session s\nstep forever { SELECT pg_sleep(600); }\n").unwrap();
    let out = crate::util::isospec()
        .current_dir(dir.path())
        .env("PGISOLATIONTIMEOUT", "2")
        .arg("explore")
        .arg(&spec)
        .output()
        .unwrap();
    let stdout = crate::util::text(&out.stdout);
    let stderr = crate::util::text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("using a temporary instance in /"),
        "{stdout}\n{stderr}"
    );
    // One class: the step failed with the cancel's SQLSTATE.
    assert!(
        stdout.contains("1 interleavings") || stdout.contains("1 interleaving"),
        "{stdout}"
    );
    assert!(stdout.contains("57014"), "{stdout}\n{stderr}");
    let tmp = std::path::PathBuf::from(
        stderr
            .split("using a temporary instance in ")
            .nth(1)
            .and_then(|r| r.lines().next())
            .unwrap(),
    );
    assert!(
        crate::util::postgres_processes_for(&tmp).is_empty(),
        "{:?}",
        crate::util::postgres_processes_for(&tmp)
    );
    assert!(!tmp.exists(), "{}", tmp.display());
    assert!(!dir.path().join("tmp_check").exists());
}
