//! `explore --anomalies` and `# isospec: anomalies`: anomalies found with
//! no invariant written, by comparing each outcome with the serial orders
//! of its committed transactions, on a real server.

use crate::util::*;

const SKEW: &str = "\
setup { CREATE TABLE doctors (name text PRIMARY KEY, on_call bool); INSERT INTO doctors VALUES ('alice', true), ('bob', true); }
teardown { DROP TABLE doctors; }
session s1
setup { BEGIN ISOLATION LEVEL LEVEL_HERE; }
step r1 { SELECT count(*) FROM doctors WHERE on_call; }
step w1 { UPDATE doctors SET on_call = false WHERE name = 'alice'; }
step c1 { COMMIT; }
session s2
setup { BEGIN ISOLATION LEVEL LEVEL_HERE; }
step r2 { SELECT count(*) FROM doctors WHERE on_call; }
step w2 { UPDATE doctors SET on_call = false WHERE name = 'bob'; }
step c2 { COMMIT; }
";

/// Ids from a sequence and times from now(): an aborted insert uses up an
/// id, so the committed rows' ids differ from any serial run's; they are
/// set aside as volatile, never called an anomaly.
const LOG: &str = "\
setup { CREATE TABLE log (id serial PRIMARY KEY, who text, at timestamptz DEFAULT clock_timestamp()); }
teardown { DROP TABLE log; }
session a
step a_begin { BEGIN; }
step a_ins { INSERT INTO log (who) VALUES ('a'); }
step a_undo { ROLLBACK; }
session b
step b_ins { INSERT INTO log (who) VALUES ('b'); }
";

fn explore(inst: &isospec::server::TempInstance, args: &[&str]) -> std::process::Output {
    isospec()
        .arg("explore")
        .arg("--host")
        .arg(&inst.socket_dir)
        .args(["--port", &inst.port.to_string(), "--user", &Server::user()])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn write_skew_is_found_without_an_invariant_and_stays_a_failing_test() {
    require_server!();
    let dir = workdir();
    let d = dir.path();
    let inst = start_instance(d);
    let specs = write_new_specs(
        d,
        &[
            ("skew", &SKEW.replace("LEVEL_HERE", "REPEATABLE READ")),
            ("skew_ser", &SKEW.replace("LEVEL_HERE", "SERIALIZABLE")),
            ("log", LOG),
        ],
    );
    let skew = specs.join("skew.spec");

    // The transactions the check orders.
    let out = isospec()
        .args(["list", "--transactions"])
        .arg(&skew)
        .output()
        .unwrap();
    let listed = expect_exit(&out, 0);
    assert!(
        listed.contains("T1: s1[setup r1 w1 c1] commits\nT2: s2[setup r2 w2 c2] commits\n"),
        "{listed}"
    );
    assert!(
        listed.contains("final state: SELECT * FROM doctors"),
        "{listed}"
    );

    // REPEATABLE READ: both read 2 on-call doctors and both leave; no
    // serial order reads that.
    let json = d.join("skew.json");
    let out = explore(
        &inst,
        &[
            "--anomalies",
            "--write",
            "--json",
            json.to_str().unwrap(),
            skew.to_str().unwrap(),
        ],
    );
    let said = expect_exit(&out, 1);
    assert!(
        said.contains("checked against serial orders: 1 not serializable, 2 serializable"),
        "{said}"
    );
    assert!(
        said.contains("NOT SERIALIZABLE: step r2 read 2 where the closest serial order reads 1"),
        "{said}"
    );
    assert!(
        said.contains(
            "; closest serial order: s1[setup r1 w1 c1] s2[setup r2 w2 c2] (of 2 compared)"
        ),
        "{said}"
    );
    // Anomalies come first.
    let first_class = said.find("\nclass ").unwrap();
    assert!(
        said[first_class..].starts_with("\nclass 2 (18 interleavings"),
        "{said}"
    );
    let doc = read_json(&json);
    let verdicts: Vec<&str> = doc["specs"][0]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["anomaly"]["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["serializable", "anomaly", "serializable"]);
    let written = std::fs::read_to_string(&skew).unwrap();
    assert!(written.contains("\n# isospec: anomalies\n"), "{written}");

    // `run` fails the pinned anomaly, transcript accepted, named.
    let run_json = d.join("run.json");
    let summary = d.join("summary.md");
    let out = run_against(&inst, d)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args([
            "--accept",
            "--annotations",
            "github",
            "--json",
            run_json.to_str().unwrap(),
        ])
        .arg(&skew)
        .output()
        .unwrap();
    let said = expect_exit(&out, 1);
    assert!(said.contains(" ms  (anomaly)"), "{said}");
    // The annotation and the step summary say what failed.
    assert!(
        said.contains(",title=skew%3A not serializable%3A permutation 2 of 3"),
        "{said}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("not serializable: step r2 read 2"), "{md}");
    assert!(!md.contains("```diff\n```"), "{md}");
    assert!(
        said.contains("permutation 2 of 3 (r1 w1 r2 w2 c2 c1) is not serializable"),
        "{said}"
    );
    let doc = read_json(&run_json);
    let v = &doc["specs"][0]["violations"];
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{doc:#}");
    assert_eq!(v[0]["kind"], "anomaly");
    assert_eq!(doc["specs"][0]["where"]["kind"], "anomaly");
    assert_eq!(v[0]["permutation"], 2);
    // At the permutation's line.
    let line = written
        .lines()
        .position(|l| l == "permutation r1 w1 r2 w2 c2 c1")
        .unwrap()
        + 1;
    assert_eq!(v[0]["line"], line);

    // Pinned permutations that leave steps out: each has the transactions
    // of the steps it ran (b1 w1 a1 rolls back; nothing is an anomaly).
    let picked = specs.join("picked.spec");
    std::fs::write(
        &picked,
        "# isospec: anomalies\n\
         setup { CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }\n\
         teardown { DROP TABLE t; }\n\
         session s1\nstep b1 { BEGIN; }\nstep w1 { UPDATE t SET v = v + 1 WHERE k = 1; }\n\
         step c1 { COMMIT; }\nstep a1 { ROLLBACK; }\n\
         session s2\nstep r2 { SELECT v FROM t WHERE k = 1; }\n\
         permutation b1 w1 a1 r2\npermutation b1 w1 r2 c1\npermutation b1 w1 c1 r2\n",
    )
    .unwrap();
    let out = run_against(&inst, d)
        .arg("--accept")
        .arg(&picked)
        .output()
        .unwrap();
    let said = expect_exit(&out, 0);
    assert!(!said.contains("serializable"), "{said}");

    // SERIALIZABLE: the same interleavings, each outcome some serial order's.
    let out = explore(
        &inst,
        &["--anomalies", specs.join("skew_ser.spec").to_str().unwrap()],
    );
    let said = expect_exit(&out, 0);
    assert!(
        said.contains("checked against serial orders: 0 not serializable, 6 serializable"),
        "{said}"
    );
    assert!(
        said.contains("serializable: as s2[setup r2 w2 c2]\n"),
        "{said}"
    );

    // Sequence values and times differ from any serial run's: set aside.
    let out = explore(
        &inst,
        &["--anomalies", specs.join("log.spec").to_str().unwrap()],
    );
    let said = expect_exit(&out, 0);
    assert!(said.contains("0 not serializable"), "{said}");
    assert!(
        said.contains("set aside as volatile: final state 1 columns 1, 3"),
        "{said}"
    );
    // The blanked values no longer split classes: b's row, alone.
    assert!(said.contains("1 class over 4 interleavings"), "{said}");
    assert!(said.contains("outcome 1: …|b|…"), "{said}");
}
