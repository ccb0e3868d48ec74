//! `isospec run` checks a spec's `# isospec: invariant` lines after each
//! permutation: a found bug, pinned by `--accept`, keeps failing until the
//! SQL is fixed; the transcript itself is what isolationtester prints.
//! And a spec without an expected file is new, not failed.

use crate::util::{expect_exit, isospec, run_in, text, workdir, write_new_specs};

/// Two sessions book room 1 if it looks free; read committed lets both in
/// when they check before either commits.
fn booking(permutation: &str, guarded: bool) -> String {
    let insert = if guarded {
        // The fix: a unique index makes the second booking fail.
        "INSERT INTO booking VALUES (1) ON CONFLICT DO NOTHING"
    } else {
        "INSERT INTO booking SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM booking WHERE room = 1)"
    };
    let unique = if guarded {
        " CREATE UNIQUE INDEX ON booking (room);"
    } else {
        ""
    };
    format!(
        "# Double booking.\n\
         # isospec: invariant SELECT count(*) <= 1 FROM booking WHERE room = 1\n\
         setup {{ CREATE TABLE booking (room int);{unique} }}\n\
         teardown {{ DROP TABLE booking; }}\n\
         session a\nsetup {{ BEGIN; }}\nstep a_book {{ {insert}; }}\nstep a_c {{ COMMIT; }}\n\
         session b\nsetup {{ BEGIN; }}\nstep b_book {{ {insert}; }}\nstep b_c {{ COMMIT; }}\n\
         permutation {permutation}\n"
    )
}

#[test]
fn a_violated_invariant_fails_the_spec_in_every_report_until_the_sql_is_fixed() {
    require_server!();
    let dir = workdir();
    let d = dir.path();
    let specs = write_new_specs(d, &[("booking", &booking("a_book b_book a_c b_c", false))]);
    let spec = specs.join("booking.spec");
    let spec_arg = spec.to_str().unwrap();

    // Pinned with --accept: the transcript is kept, the spec still fails.
    let out = run_in(d, &["--accept", spec_arg]);
    let stdout = expect_exit(&out, 1);
    assert!(stdout.contains(" ms  (invariant)"), "{stdout}");
    assert!(stdout.contains("invariant SELECT count(*) <= 1 FROM booking WHERE room = 1 returned false after permutation 1 of 1 (a_book b_book a_c b_c)"), "{stdout}");
    assert!(
        stdout.contains("(its transcript was accepted into"),
        "{stdout}"
    );
    assert!(d.join("suite/expected/booking.out").is_file());
    let transcript = std::fs::read(d.join("results/booking.out")).unwrap();

    // Every rendering says so.
    let junit = d.join("r.xml");
    let json = d.join("r.json");
    let out = isospec()
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", d.join("suite"))
        .arg("run")
        .arg("--outputdir")
        .arg(d)
        .arg("--temp-instance")
        .arg(d.join("tmp_check"))
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .arg("--tap")
        .arg(&spec)
        .output()
        .unwrap();
    let stdout = expect_exit(&out, 1);
    assert!(stdout.contains("not ok 1 - booking"), "{stdout}");
    assert!(
        stdout.contains("# invariant SELECT count(*) <= 1"),
        "{stdout}"
    );
    // The annotation sits at the invariant's line (2).
    assert!(
        stdout.contains("::error file=specs/booking.spec,line=2,title=booking%3A invariant violated after permutation 1 of 1"),
        "{stdout}"
    );
    let j: serde_json::Value = crate::util::read_json(&json);
    let s = &j["specs"][0];
    assert_eq!(s["status"], "invariant-violated");
    assert_eq!(s["violations"][0]["line"], 2);
    assert_eq!(s["violations"][0]["got"], "false");
    assert_eq!(s["where"]["kind"], "invariant");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<failure") && xml.contains("invariant SELECT count(*) &lt;= 1"),
        "{xml}"
    );

    // The transcript is isolationtester's: the same bytes without the check.
    let out = run_in(d, &["--no-invariants", spec_arg]);
    expect_exit(&out, 0);
    assert_eq!(
        std::fs::read(d.join("results/booking.out")).unwrap(),
        transcript
    );

    // An order that keeps the invariant passes.
    let specs2 = write_new_specs(
        &d.join("ok"),
        &[("serial", &booking("a_book a_c b_book b_c", false))],
    );
    let serial = specs2.join("serial.spec");
    let out = run_in(d, &["--accept", serial.to_str().unwrap()]);
    expect_exit(&out, 0);
    let out = run_in(d, &[serial.to_str().unwrap()]);
    expect_exit(&out, 0);

    // Fixing the SQL (a unique index) makes the pinned order pass: the
    // expected file changes with the fix, and the invariant holds.
    std::fs::write(&spec, booking("a_book b_book a_c b_c", true)).unwrap();
    let out = run_in(d, &["--accept", spec_arg]);
    expect_exit(&out, 0);
    let out = run_in(d, &[spec_arg]);
    let stdout = expect_exit(&out, 0);
    assert!(stdout.contains("The test passed."), "{stdout}");
}

#[test]
fn specs_without_expected_files_are_new_not_failed() {
    require_server!();
    let dir = workdir();
    let d = dir.path();
    let one = "session s\nstep a { SELECT 1; }\n";
    let specs = write_new_specs(d, &[("n1", one), ("n2", one)]);
    std::fs::write(specs.join("../expected/n2.out"), "Parsed test spec with 1 sessions\n\nstarting permutation: a\nstep a: SELECT 1;\n?column?\n--------\n       1\n(1 row)\n\n").unwrap();
    let out = run_in(d, &[specs.to_str().unwrap()]);
    let stdout = expect_exit(&out, 1);
    assert!(stdout.contains("1 passed, 1 new"), "{stdout}");
    assert!(!stdout.contains("failed"), "new is not failed: {stdout}");
    assert!(
        stdout.contains(" 1 of 2 tests new (no expected output). "),
        "{stdout}"
    );
    assert!(
        stdout.contains("New spec without expected output: n1."),
        "{stdout}"
    );
    let _ = text(&out.stderr);
}

/// A bug found by `explore --invariant` stays a failing test: `--write`
/// puts the invariant into the spec beside the pinned permutation, so
/// `run --accept` fails naming it; and the HTML report names every
/// violated invariant in red, also when the transcript differs as well.
#[test]
fn explore_write_keeps_a_found_violation_failing_and_the_html_names_it() {
    require_server!();
    let browser = require_browser!();
    let dir = workdir();
    let d = dir.path();
    // The booking spec without its invariant line and permutation.
    let text: String = booking("a_book b_book a_c b_c", false)
        .lines()
        .filter(|l| !l.starts_with("# isospec: invariant") && !l.starts_with("permutation"))
        .map(|l| format!("{l}\n"))
        .collect();
    let specs = write_new_specs(d, &[("booking", &text)]);
    let spec = specs.join("booking.spec");
    let invariant = "SELECT count(*) <= 1 FROM booking WHERE room = 1";
    let out = isospec()
        .args(["explore", "--write", "--temp-instance"])
        .arg(d.join("tmp_check"))
        .args(["--invariant", invariant])
        .arg(&spec)
        .output()
        .unwrap();
    let said = expect_exit(&out, 1);
    assert!(said.contains("and the command line's 1 query"), "{said}");
    let written = std::fs::read_to_string(&spec).unwrap();
    assert!(
        written.contains(&format!("\n# isospec: invariant {invariant}\n")),
        "{written}"
    );
    // Pinning every class: the violating one still fails, named.
    let out = run_in(d, &["--accept", spec.to_str().unwrap()]);
    let stdout = expect_exit(&out, 1);
    assert!(stdout.contains(" ms  (invariant)"), "{stdout}");
    assert!(
        stdout.contains(&format!("invariant {invariant} returned false")),
        "{stdout}"
    );
    // No difference was left to fail: regression.diffs is not there.
    assert!(!d.join("regression.diffs").exists());

    // Transcript changed as well (an expected file edited by hand): the
    // HTML and the JSON still name the invariant.
    let expected = d.join("suite/expected/booking.out");
    let old = std::fs::read_to_string(&expected).unwrap();
    std::fs::write(
        &expected,
        old.replacen("step a_c: COMMIT;", "step a_c: COMMIT; ", 1),
    )
    .unwrap();
    for (name, want_status) in [("both.html", "failed"), ("only.html", "invariant-violated")] {
        if want_status == "invariant-violated" {
            std::fs::write(&expected, &old).unwrap();
        }
        let html = d.join(name);
        let out = run_in(
            d,
            &["--html", html.to_str().unwrap(), spec.to_str().unwrap()],
        );
        expect_exit(&out, 1);
        // The rendered page without its scripts (whose data holds JSON nulls).
        let mut page = browser.dump_dom(&html, "#all");
        while let Some(start) = page.find("<script") {
            let end = page[start..]
                .find("</script>")
                .map_or(page.len(), |e| start + e + 9);
            page.replace_range(start..end, "");
        }
        let dom = scraper::Html::parse_document(&page);
        let sel = |css: &str| -> Vec<String> {
            dom.select(&scraper::Selector::parse(css).unwrap())
                .map(|e| e.text().collect::<String>())
                .collect()
        };
        let items = sel(".violations li");
        assert!(
            items
                .iter()
                .any(|t| t.contains(invariant) && t.contains("returned false")),
            "{name}: {items:?}"
        );
        let badges = sel(&format!("span.badge.{want_status}"));
        assert!(!badges.is_empty(), "{name}: no {want_status} badge");
        let body = sel("body").concat();
        assert!(!body.contains("null"), "{name}: {body}");
    }
}
