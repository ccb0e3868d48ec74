//! `-j`: worker databases, alone specs, shared objects, CPU binding, reports from parallel runs.

use crate::util::*;

/// The fixtures under -j 3 with one expected file broken and one spec
/// without expected output, reported as TAP, JUnit and JSON: the work
/// directory and stdout.
fn broken_parallel_run() -> (tempfile::TempDir, String) {
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
    (dir, stdout)
}

#[test]
fn a_parallel_run_reports_as_tap() {
    require_server!();
    let (_dir, stdout) = broken_parallel_run();
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
}

#[test]
fn a_parallel_runs_junit_report_carries_the_diff() {
    require_server!();
    let (dir, _) = broken_parallel_run();
    // Well-formed XML, six testcases, the broken one carries the diff.
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
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
}

#[test]
fn a_parallel_runs_json_report_has_status_permutations_and_steps() {
    require_server!();
    let (dir, _) = broken_parallel_run();
    let report = crate::util::read_json(&dir.path().join("report.json"));
    let specs = report["specs"].as_array().unwrap();
    let locks = specs.iter().find(|s| s["name"] == "locks").unwrap();
    assert_eq!(locks["status"], "failed");
    assert_eq!(locks["permutations"], "2");
    assert!(!locks["steps"].as_array().unwrap().is_empty());
}

#[test]
fn accept_copies_the_new_and_the_changed_transcripts() {
    require_server!();
    let (dir, _) = broken_parallel_run();
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
    let exp = dir.path().join("suite/expected/locks.out");
    assert!(std::fs::read_to_string(&exp).unwrap().contains("checking"));
    let suite = dir.path().join("suite");
    let again = run_in(
        dir.path(),
        &["-j", "2", suite.join("specs").to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
}

#[test]
fn alone_specs_run_in_the_main_database_under_jobs() {
    require_server!();
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
    require_server!();
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
    require_server!();
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
    require_server!();
    let dir = workdir();
    // Each spec holds a prepared transaction and then waits to see the
    // other spec's session in its `seen` step, or marked as having seen
    // this one; on seeing it, it marks itself (its application_name) and
    // stays until the other has marked itself too.  Only when they run at
    // the same time does each say "other seen: t"; run one after the other,
    // the first gives up after 3000 looks and says "f".
    let spec = |gid: &str, me: &str, other: &str| {
        format!(
            "session s\nsetup {{ BEGIN; }}\nstep p {{ PREPARE TRANSACTION '{gid}'; }}\n\
             step seen {{ DO $$ DECLARE seen bool := false; BEGIN \
             FOR i IN 1..3000 LOOP PERFORM pg_stat_clear_snapshot(); \
             seen := EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'saw-{other}' \
             OR (application_name = 'isolation/{other}/s' AND strpos(query, 'other seen') > 0)); \
             EXIT WHEN seen; PERFORM pg_sleep(0.01); END LOOP; \
             IF seen THEN PERFORM set_config('application_name', 'saw-{me}', false); \
             FOR i IN 1..3000 LOOP PERFORM pg_stat_clear_snapshot(); \
             EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'saw-{other}'); \
             PERFORM pg_sleep(0.01); END LOOP; END IF; \
             RAISE NOTICE 'other seen: %', seen; END $$; }}\n\
             step c {{ COMMIT PREPARED '{gid}'; }}\n"
        )
    };
    let (a, b) = (spec("ga", "gid-a", "gid-b"), spec("gb", "gid-b", "gid-a"));
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
