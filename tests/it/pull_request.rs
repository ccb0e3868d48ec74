//! Failures where reviewers look: GitHub annotations at the spec line, the
//! step summary's and the JSON report's "where", and the HTML report
//! rendered in a real headless Chromium.
//!
//! The held-back breaks are the project's own deadlock spec with its
//! expected file broken one way each: a changed row, a missing
//! `<waiting ...>`, an error that moved; and a spec that does not parse.

use crate::util::*;
use scraper::{Html, Selector};
use std::path::{Path, PathBuf};

/// The breaks: (test name, what to replace in deadlock's expected file, by
/// what).
const BREAKS: &[(&str, &str, &str)] = &[
    ("changed-row", " 3|    120\n", " 3|    121\n"),
    (
        "missing-waiting",
        "step r2_row3: UPDATE accounts SET balance = balance + 20 WHERE id = 3; <waiting ...>\n",
        "step r2_row3: UPDATE accounts SET balance = balance + 20 WHERE id = 3;\n",
    ),
    (
        "error-moved",
        "step s1_row2: <... completed>\nstep s2_row1: <... completed>\nERROR:  deadlock detected\n",
        "step s1_row2: <... completed>\nERROR:  deadlock detected\nstep s2_row1: <... completed>\n",
    ),
];

const BAD_SPEC: &str = "setup { CREATE TABLE t (a int); }\nsession s1\nstep s1a { SELECT 1; }\n\
    permutation s1a s1b\n";

/// `DIR/suite` with the breaks, the bad spec, and deadlock itself
/// (passing); returns the specs directory.
fn broken_suite(dir: &Path) -> PathBuf {
    let spec = std::fs::read_to_string(manifest().join("specs/deadlock.spec")).unwrap();
    let expected = std::fs::read_to_string(manifest().join("expected/deadlock.out")).unwrap();
    let mut suite = vec![("deadlock", spec.clone(), expected.clone())];
    for (name, from, to) in BREAKS {
        assert!(expected.contains(from), "deadlock.out lacks {from:?}");
        suite.push((name, spec.clone(), expected.replacen(from, to, 1)));
    }
    suite.push(("bad-parse", BAD_SPEC.to_string(), String::new()));
    let refs: Vec<(&str, &str, &str)> = suite
        .iter()
        .map(|(n, s, e)| (*n, s.as_str(), e.as_str()))
        .collect();
    write_suite(dir, &refs)
}

/// Compares `got` with `tests/golden/NAME`; ISOSPEC_BLESS=1 rewrites it.
fn golden(name: &str, got: &str) {
    let path = manifest().join("tests/golden").join(name);
    if std::env::var("ISOSPEC_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "{} differs (ISOSPEC_BLESS=1 rewrites it)",
        path.display()
    );
}

#[test]
fn under_github_actions_each_break_is_annotated_at_its_spec_line() {
    require_server!();
    let dir = workdir();
    let specs = broken_suite(dir.path());
    let workspace = dir.path().join("suite");
    let out = run_in_env(
        dir.path(),
        &[
            ("GITHUB_ACTIONS", "true".as_ref()),
            ("GITHUB_WORKSPACE", &workspace),
        ],
        &[specs.to_str().unwrap()],
    );
    let stdout = expect_exit(&out, 2);
    let annotations: String = stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .map(|l| format!("{l}\n"))
        .collect();
    golden("annotations-github.out", &annotations);
    // The diffs are folded in the log, one group each.
    for (name, _, _) in BREAKS {
        assert!(
            stdout.contains(&format!("::group::diff of {name}\n")),
            "{stdout}"
        );
    }
    assert_eq!(
        stdout.matches("::endgroup::").count(),
        BREAKS.len(),
        "{stdout}"
    );
}

#[test]
fn annotations_only_under_github_actions_or_when_asked() {
    require_server!();
    let dir = workdir();
    let specs = write_suite(dir.path(), &[("bad-parse", BAD_SPEC, "")]);
    let out = run_in(dir.path(), &[specs.to_str().unwrap()]);
    let stdout = expect_exit(&out, 2);
    assert!(!stdout.contains("::error"), "{stdout}");
    let out = run_in(
        dir.path(),
        &["--annotations", "github", specs.to_str().unwrap()],
    );
    let stdout = expect_exit(&out, 2);
    assert!(
        stdout.contains(
            ",line=4,col=17,title=bad-parse%3A the spec does not parse::undefined step \"s1b\""
        ),
        "{stdout}"
    );
    let out = run_in_env(
        dir.path(),
        &[("GITHUB_ACTIONS", "true".as_ref())],
        &["--annotations", "none", specs.to_str().unwrap()],
    );
    assert!(!expect_exit(&out, 2).contains("::error"));
}

#[test]
fn the_step_summary_says_where_each_spec_departs() {
    require_server!();
    let dir = workdir();
    let specs = broken_suite(dir.path());
    let summary = dir.path().join("summary.md");
    let out = run_in_env(
        dir.path(),
        &[("GITHUB_STEP_SUMMARY", &summary)],
        &[specs.to_str().unwrap()],
    );
    expect_exit(&out, 2);
    let md = std::fs::read_to_string(&summary).unwrap();
    let spec = |n: &str| specs.join(format!("{n}.spec")).display().to_string();
    for want in [
        format!("**Where:** `{}:75` — permutation 2 of 3 (r1_row1 r2_row2 r3_row3 r1_row2 r2_row3 r3_row1 r3_c r2_c r1_c balances), step balances", spec("changed-row")),
        format!("**Where:** `{}:75` — permutation 2 of 3 (r1_row1 r2_row2 r3_row3 r1_row2 r2_row3 r3_row1 r3_c r2_c r1_c balances), step r2_row3", spec("missing-waiting")),
        format!("**Where:** `{}:71` — permutation 1 of 3 (s1_row1 s2_row2 s1_row2 s2_row1 s1_c s2_c balances), step s2_row1", spec("error-moved")),
        format!("**Where:** `{}:4`", spec("bad-parse")),
    ] {
        assert!(md.contains(&want), "{want}\nnot in\n{md}");
    }
}

#[test]
fn the_json_report_carries_the_diff_and_where() {
    require_server!();
    let dir = workdir();
    let specs = broken_suite(dir.path());
    let json = dir.path().join("report.json");
    let out = run_in(
        dir.path(),
        &["--json", json.to_str().unwrap(), specs.to_str().unwrap()],
    );
    expect_exit(&out, 2);
    let v: serde_json::Value = crate::util::read_json(&json);
    let spec = |name: &str| {
        v["specs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let w = &spec("missing-waiting")["where"];
    assert_eq!(w["kind"], "differs");
    assert_eq!(w["line"], 75);
    assert_eq!(w["permutation"], 2);
    assert_eq!(w["permutations"], "3");
    assert_eq!(w["step"], "r2_row3");
    assert_eq!(w["session"], "r2");
    assert_eq!(
        w["expected"],
        "step r2_row3: UPDATE accounts SET balance = balance + 20 WHERE id = 3;"
    );
    assert!(spec("missing-waiting")["diff"].as_str().unwrap().contains(
        "+step r2_row3: UPDATE accounts SET balance = balance + 20 WHERE id = 3; <waiting ...>"
    ));
    assert!(spec("missing-waiting")["result_file"]
        .as_str()
        .unwrap()
        .ends_with("results/missing-waiting.out"));
    let bad = &spec("bad-parse")["where"];
    assert_eq!(
        (
            bad["kind"].as_str(),
            bad["line"].as_u64(),
            bad["column"].as_u64()
        ),
        (Some("spec-error"), Some(4), Some(17))
    );
    let passing = spec("deadlock");
    assert!(
        passing["where"].is_null() && passing["diff"].is_null(),
        "the unbroken spec did not pass: {passing}"
    );
}

/// The rendered DOM's elements matching `css`.
fn select<'a>(dom: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    dom.select(&Selector::parse(css).unwrap()).collect()
}

/// The screenshot of a report: under target/ always, and into docs/ (for
/// the README) when blessing.
fn screenshot(browser: &Browser, page: &Path, fragment: &str, name: &str) {
    let dir = manifest().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(name);
    browser.screenshot(page, fragment, &png, (1400, 1000));
    assert_eq!(png_size(&png), (1400, 1000));
    assert!(
        std::fs::metadata(&png).unwrap().len() > 20_000,
        "an empty screenshot?"
    );
    if std::env::var("ISOSPEC_BLESS").is_ok_and(|v| v == "1") {
        std::fs::copy(&png, manifest().join("docs").join(name)).unwrap();
    }
}

#[test]
fn the_html_of_a_failing_100_session_run_has_a_lane_per_session_and_the_departing_step_marked() {
    require_server!();
    let browser = require_browser!();
    let dir = workdir();
    let name = "contention-refresh-queue";
    let spec = std::fs::read_to_string(manifest().join(format!("specs/{name}.spec"))).unwrap();
    let expected =
        std::fs::read_to_string(manifest().join(format!("expected/{name}.out"))).unwrap();
    // Break the first `<waiting ...>`: that step is where it departs.
    let waiting = expected
        .lines()
        .find(|l| l.ends_with(" <waiting ...>"))
        .expect("a waiting step")
        .to_string();
    let step = waiting["step ".len()..waiting.find(':').unwrap()].to_string();
    let broken = expected.replacen(&waiting, waiting.trim_end_matches(" <waiting ...>"), 1);
    let specs = write_suite(dir.path(), &[(name, &spec, &broken)]);
    let html = dir.path().join("report.html");
    // 101 sessions: the project's temp-instance settings (max_connections).
    let conf = manifest().join("conf/isolation.conf");
    let out = run_in(
        dir.path(),
        &[
            "--temp-config",
            conf.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            specs.to_str().unwrap(),
        ],
    );
    expect_exit(&out, 1);
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 3_000_000, "the page is {size} bytes");

    let dom = Html::parse_document(&browser.dump_dom(&html, ""));
    assert_eq!(select(&dom, "body[data-rendered=true]").len(), 1);
    let sessions = spec.lines().filter(|l| l.starts_with("session ")).count();
    assert_eq!(sessions, 101);
    let perm = select(&dom, "details.perm[data-departs=true]");
    assert_eq!(perm.len(), 1, "one departing permutation");
    let lanes = Selector::parse(".lane[data-session]").unwrap();
    assert_eq!(perm[0].select(&lanes).count(), sessions);
    let marked = select(&dom, ".step-box.departs");
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].value().attr("data-step"), Some(step.as_str()));
    // Waits are drawn, with who blocked them.
    assert!(!select(&dom, ".step-box[data-waited=true] .wait").is_empty());
    assert!(select(&dom, ".step-box[data-waited=true] .label")
        .iter()
        .any(|l| l.text().collect::<String>().contains('⟵')));
    // Both transcripts side by side, from the departing line.
    let first = select(&dom, ".diff-view tr.first-change");
    assert_eq!(first.len(), 1);
    let cells: Vec<String> = first[0].text().map(str::to_string).collect();
    assert!(cells.iter().any(|c| c == &waiting), "{cells:?}");
    assert_eq!(
        select(&dom, "table.summary tr[data-status=failed]").len(),
        1
    );
    screenshot(&browser, &html, "", "report-failing.png");
}

#[test]
fn the_html_of_a_passing_run_draws_every_permutation() {
    require_server!();
    let browser = require_browser!();
    let dir = workdir();
    let specs = dir.path().join("suite/specs");
    copy_dir(&manifest().join("specs"), &specs);
    let expected = dir.path().join("suite/expected");
    copy_dir(&manifest().join("expected"), &expected);
    // Two specs: one with waits and errors, one with several permutations.
    let keep = ["deadlock.spec", "skip-locked-queue.spec"];
    for e in std::fs::read_dir(&specs).unwrap() {
        let p = e.unwrap().path();
        if !keep.contains(&p.file_name().unwrap().to_str().unwrap()) {
            std::fs::remove_file(p).unwrap();
        }
    }
    let html = dir.path().join("report.html");
    let out = run_in(
        dir.path(),
        &["--html", html.to_str().unwrap(), specs.to_str().unwrap()],
    );
    expect_exit(&out, 0);
    let dom = Html::parse_document(&browser.dump_dom(&html, "#all"));
    assert_eq!(select(&dom, "body[data-failing='0']").len(), 1);
    assert_eq!(select(&dom, "table.summary tr[data-status=ok]").len(), 2);
    assert!(select(&dom, ".step-box.departs").is_empty());
    assert!(select(&dom, ".diff-view").is_empty());
    let deadlock = select(&dom, "details.spec[data-name=deadlock]");
    let perms = Selector::parse("details.perm").unwrap();
    let lanes = Selector::parse(".lane[data-session]").unwrap();
    assert_eq!(deadlock[0].select(&perms).count(), 3);
    for p in deadlock[0].select(&perms) {
        // deadlock.spec has six sessions: a lane each in every permutation.
        assert_eq!(p.select(&lanes).count(), 6);
    }
    // The deadlock victim's error is on its step.
    assert!(
        select(&dom, "details.spec[data-name=deadlock] .step-box.error")
            .iter()
            .any(|b| b.value().attr("data-step") == Some("s2_row1"))
    );
}

#[test]
fn the_explore_html_shows_each_class_with_its_representative_timeline() {
    require_server!();
    let browser = require_browser!();
    let dir = workdir();
    let spec = dir.path().join("explore-lost-update-rc.spec");
    std::fs::copy(manifest().join("specs/explore-lost-update-rc.spec"), &spec).unwrap();
    let html = dir.path().join("explore.html");
    let json = dir.path().join("explore.json");
    let out = isospec()
        .arg("explore")
        .arg("--temp-instance")
        .arg(dir.path().join("tmp_check"))
        .args([
            "--html",
            html.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .arg(&spec)
        .output()
        .unwrap();
    expect_exit(&out, 1);
    let v: serde_json::Value = crate::util::read_json(&json);
    let classes = v["specs"][0]["classes"].as_array().unwrap().len();
    assert!(classes >= 2);
    let dom = Html::parse_document(&browser.dump_dom(&html, "#all"));
    assert_eq!(select(&dom, "tr[data-class]").len(), classes);
    let perms = select(&dom, "details.perm");
    assert_eq!(perms.len(), classes, "a timeline per class");
    let lanes = Selector::parse(".lane[data-session]").unwrap();
    for p in &perms {
        assert_eq!(p.select(&lanes).count(), 2);
    }
    assert!(!select(&dom, "tr[data-violation=true]").is_empty());
    screenshot(&browser, &html, "", "explore-classes.png");
}
