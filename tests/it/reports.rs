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

/// Every output counts in words: on one-element inputs (one spec, one
/// session, one step, one permutation, one class, one violation) no
/// command and no report file says "1 …s". The transcript's own "Parsed
/// test spec with 1 sessions" is isolationtester's, byte for byte.
#[test]
fn one_of_a_kind_is_never_plural() {
    require_server!();
    let dir = workdir();
    let d = dir.path();
    let spec_text =
        "# isospec: invariant SELECT false\nsession s\nstep only { SELECT 1 AS one; }\n";
    let specs = write_new_specs(d, &[("one", spec_text)]);
    let spec = specs.join("one.spec");
    let spec_arg = spec.to_str().unwrap();
    let mut said = String::new();
    let mut take = |out: std::process::Output| {
        said.push_str(&text(&out.stdout));
        said.push_str(&text(&out.stderr));
    };
    take(isospec().args(["check", spec_arg]).output().unwrap());
    take(
        isospec()
            .args(["list", "--permutations", spec_arg])
            .output()
            .unwrap(),
    );
    let f = |n: &str| d.join(n).display().to_string();
    let (html, json, junit) = (f("r.html"), f("r.json"), f("r.xml"));
    for extra in [None, Some("--tap")] {
        let mut args = vec!["--html", &html, "--json", &json, "--junit", &junit];
        args.extend(extra);
        args.push(spec_arg);
        take(run_in(d, &args));
    }
    take(run_in(d, &["--accept", spec_arg]));
    take(run_in(d, &["--annotations", "github", spec_arg]));
    let (ehtml, ejson) = (f("e.html"), f("e.json"));
    take(
        isospec()
            .args(["explore", "--write", "--shrink", "--temp-instance"])
            .arg(d.join("tmp_check"))
            .args([
                "--html",
                &ehtml,
                "--json",
                &ejson,
                "--invariant",
                "SELECT true",
                spec_arg,
            ])
            .output()
            .unwrap(),
    );
    for file in [
        "r.html",
        "r.json",
        "r.xml",
        "e.html",
        "e.json",
        "regression.out",
    ] {
        said.push_str(&std::fs::read_to_string(d.join(file)).unwrap_or_default());
    }
    said.push_str(&std::fs::read_to_string(&spec).unwrap());
    let nouns = [
        "permutations",
        "interleavings",
        "specs",
        "sessions",
        "classes",
        "steps",
        "tests",
        "preemptions",
        "queries",
        "lines",
        "runs",
        "violations",
        "invariants",
        "transcripts",
        "statements",
        "databases",
        "lanes",
        "connections",
        "rows",
        "errors",
        "failures",
    ];
    let found: Vec<&str> = said
        .lines()
        .filter(|l| !l.contains("Parsed test spec with 1 sessions"))
        .filter(|l| {
            nouns.iter().any(|n| {
                l.match_indices(&format!("1 {n}")).any(|(i, _)| {
                    i == 0
                        || !l.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && l.as_bytes()[i - 1] != b','
                            && l.as_bytes()[i - 1] != b'.'
                })
            })
        })
        .collect();
    assert!(found.is_empty(), "plural after one: {found:#?}");
    // It did see the outputs it checks.
    assert!(said.contains("1 permutation"), "{said}");
    assert!(said.contains("1 interleaving"), "{said}");
}
