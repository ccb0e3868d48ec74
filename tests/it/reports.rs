//! The GitHub summary, colour diffs and wait graphs.

use crate::util::*;

/// A step that waits on a lock nobody releases.
const BLOCKED: &str = "setup { CREATE TABLE wg (a int); }\nteardown { DROP TABLE wg; }\n\
    session s1\nstep s1lock { BEGIN; LOCK wg; }\nteardown { ROLLBACK; }\n\
    session s2\nstep s2lock { BEGIN; LOCK wg; }\nteardown { ROLLBACK; }\n\
    permutation s1lock s2lock\n";

/// A spec whose expected output differs from what it gives.
const DIFFERS: &str = "session s1\nstep s1a { SELECT 1 AS one; }\npermutation s1a\n";

#[test]
fn the_wait_graph_goes_into_the_transcript_when_asked() {
    require_server!();
    let dir = workdir();
    // A step that waits on a lock nobody releases: cancelled after 1 s,
    // with the server's wait graph in the transcript.
    let specs = write_suite(dir.path(), &[("blocked", BLOCKED, "something else\n")]);
    let out = run_in_env(
        dir.path(),
        &[("PGISOLATIONTIMEOUT", "1".as_ref())],
        &["--wait-graph-in-transcript", specs.to_str().unwrap()],
    );
    expect_exit(&out, 1);
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
}

#[test]
fn the_failing_diff_is_printed_in_colour_when_asked() {
    require_server!();
    let dir = workdir();
    let specs = write_suite(dir.path(), &[("differs", DIFFERS, "something else\n")]);
    let out = run_in(dir.path(), &["--color", "always", specs.to_str().unwrap()]);
    let stdout = expect_exit(&out, 1);
    assert!(stdout.contains("\x1b[32m+step s1a"), "{stdout}");
    assert!(stdout.contains("\x1b[31m-something else"), "{stdout}");
}

#[test]
fn github_actions_get_a_markdown_summary_with_the_diff() {
    require_server!();
    let dir = workdir();
    let specs = write_suite(dir.path(), &[("differs", DIFFERS, "something else\n")]);
    let summary = dir.path().join("summary.md");
    let out = run_in_env(
        dir.path(),
        &[("GITHUB_STEP_SUMMARY", &summary)],
        &[specs.to_str().unwrap()],
    );
    expect_exit(&out, 1);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("0 of 1 spec passed") && md.contains("differs (failed)"),
        "{md}"
    );
    assert!(md.contains("```diff") && md.contains("+step s1a"), "{md}");
}

/// By default a cancelled step's transcript is isolationtester's: the wait
/// graph goes to results/NAME.waits, which regression.diffs points to.
#[test]
fn wait_graph_goes_beside_the_transcript_by_default() {
    require_server!();
    let dir = workdir();
    let specs = write_suite(dir.path(), &[("blocked", BLOCKED, "something else\n")]);
    let out = run_in_env(
        dir.path(),
        &[("PGISOLATIONTIMEOUT", "1".as_ref())],
        &[specs.to_str().unwrap()],
    );
    expect_exit(&out, 1);
    let result = std::fs::read_to_string(dir.path().join("results/blocked.out")).unwrap();
    assert!(
        result.ends_with(
            "step s2lock: BEGIN; LOCK wg; <waiting ...>\n\
             isolationtester: canceling step s2lock after 1 seconds\n\
             step s2lock: <... completed>\n\
             ERROR:  canceling statement due to user request\n"
        ),
        "{result}"
    );
    let waits_path = dir.path().join("results/blocked.waits");
    let waits = std::fs::read_to_string(&waits_path).unwrap();
    assert!(
        waits.contains("wait graph for step s2lock of session s2"),
        "{waits}"
    );
    assert!(waits.contains("blocked by s1 (pid "), "{waits}");
    let diffs = std::fs::read_to_string(dir.path().join("regression.diffs")).unwrap();
    assert!(
        diffs.contains(&format!(
            "wait graphs of the steps of blocked that ran long: {}",
            waits_path.display()
        )),
        "{diffs}"
    );
    assert!(
        text(&out.stderr).contains("wait graph for step s2lock"),
        "{}",
        text(&out.stderr)
    );
}
