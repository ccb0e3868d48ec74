//! `isospec explore` beyond `--max`: preemption bounds, commuting steps
//! (checked against the exhaustive walk), shrinking, and shards merged.

use crate::explore::explore_against as explore;
use crate::util::{expect_exit, isospec, manifest, skip, start_instance, text, workdir};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Runs explore with `args` on `spec`, expecting exit code `code` (None:
/// 0 or 1, as invariants hold or not); (stdout, the spec's JSON).
fn explore_json(
    inst: &isospec::server::TempInstance,
    dir: &Path,
    spec: &Path,
    args: &[&str],
    code: impl Into<Option<i32>>,
) -> (String, Value) {
    let json = dir.join(format!(
        "explore-{}.json",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let out = explore(inst)
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg(spec)
        .output()
        .unwrap();
    let stdout = match code.into() {
        Some(c) => expect_exit(&out, c),
        None => {
            let c = out.status.code().unwrap_or(-1);
            assert!(
                c == 0 || c == 1,
                "{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            text(&out.stdout)
        }
    };
    let v: Value = crate::util::read_json(&json);
    (stdout, v["specs"][0].clone())
}

/// Outcome description → interleavings, and the unrealizable count.
fn grouping(v: &Value) -> (BTreeMap<String, u64>, u64) {
    let classes = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["description"].as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    (classes, v["unrealizable"].as_u64().unwrap())
}

/// A bug that needs one exact schedule of 4 sessions of 3 steps (369,600
/// interleavings): each step advances a shared stage only when it finds
/// the stage it expects, and the invariant breaks when all twelve did,
/// which only the order a1 b1 b2 b3 a2 c1 c2 c3 a3 d1 d2 d3 (2
/// preemptions) does.
fn narrow_spec() -> String {
    let order = [
        "a1", "b1", "b2", "b3", "a2", "c1", "c2", "c3", "a3", "d1", "d2", "d3",
    ];
    let mut s = String::from(
        "# isospec: invariant SELECT n < 12 FROM stage\n\
         setup { CREATE TABLE stage (n int); INSERT INTO stage VALUES (0); }\n\
         teardown { DROP TABLE stage; }\n",
    );
    for session in ["a", "b", "c", "d"] {
        s.push_str(&format!("session {session}\n"));
        for i in 1..=3 {
            let name = format!("{session}{i}");
            let k = order.iter().position(|x| *x == name).unwrap();
            let ret = if name == "d3" { " RETURNING n" } else { "" };
            s.push_str(&format!(
                "step {name} {{ UPDATE stage SET n = n + 1 WHERE n = {k}{ret}; }}\n"
            ));
        }
    }
    s
}

const NARROW_LINE: &str = "permutation a1 b1 b2 b3 a2 c1 c2 c3 a3 d1 d2 d3";

#[test]
fn a_preemption_bound_finds_the_narrow_violation_and_its_line_pins_it() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let path = specs.join("narrow.spec");
    std::fs::write(&path, narrow_spec()).unwrap();
    let (stdout, v) = explore_json(
        &inst,
        dir.path(),
        &path,
        &["--preemptions", "2", "--shrink", "--write"],
        1,
    );
    // Its size, printed before it runs.
    assert!(
        stdout.starts_with(&format!(
            "{}: K=2: 2,424 interleavings with at most 2 preemptions (of 369,600); steps seen waiting add more\n",
            path.display()
        )),
        "{stdout}"
    );
    assert_eq!(v["runs"], 2424);
    assert_eq!(v["complete"], true);
    let violating: Vec<&Value> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["violated"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(violating.len(), 1, "{v}");
    assert_eq!(violating[0]["count"], 1);
    assert_eq!(violating[0]["preemptions"], 2);
    assert_eq!(violating[0]["permutation"], NARROW_LINE);
    // Nothing to drop: every step is needed.
    assert_eq!(violating[0]["shrunk"], NARROW_LINE);
    // --write pinned it; isospec run reproduces the violation.
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains(&format!("\n{NARROW_LINE}\n")), "{written}");
    let out = crate::util::run_against(&inst, dir.path())
        .arg(&path)
        .output()
        .unwrap();
    expect_exit(&out, 1); // new: no expected file yet
    let result = std::fs::read_to_string(dir.path().join("results/narrow.out")).unwrap();
    assert!(
        result.contains(
            "step d3: UPDATE stage SET n = n + 1 WHERE n = 11 RETURNING n;\n n\n--\n12\n(1 row)\n"
        ),
        "{result}"
    );
}

/// One of the project's explore specs without what pins it: its
/// permutation lines, their comments and `known-violations`.
fn unpinned(name: &str) -> String {
    std::fs::read_to_string(manifest().join("specs").join(name))
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("permutation")
                && !l.starts_with("# isospec explore,")
                && *l != "# isospec: known-violations"
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn shrinking_drops_what_the_outcome_does_not_need() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    // The lost update at READ COMMITTED, with a session that only reads.
    let src = unpinned("explore-lost-update-rc.spec")
        + "\nsession bystander\nstep look { SELECT count(*) FROM acct; }\n";
    let path = dir.path().join("lu.spec");
    std::fs::write(&path, src).unwrap();
    let (stdout, v) = explore_json(&inst, dir.path(), &path, &["--shrink"], 1);
    let lost: Vec<&Value> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["violated"].as_array().unwrap().is_empty())
        .collect();
    assert!(!lost.is_empty(), "{stdout}");
    for c in lost {
        let shrunk = c["shrunk"].as_str().unwrap();
        // The bystander's read and the commits of the lost write are not
        // needed for the invariant to break.
        assert!(!shrunk.contains("look"), "{shrunk}");
        assert!(
            shrunk.len() < c["permutation"].as_str().unwrap().len(),
            "{c}"
        );
        assert!(
            stdout.contains(&format!("  shrunk: {shrunk}\n")),
            "{stdout}"
        );
    }
}

#[test]
fn shrinking_keeps_the_observer_that_shows_the_violation() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    // Three sessions taking max(id) + 1, an audit session listing the
    // ids (what shows the duplicate) and one whose read shows the same
    // thing whatever the order.
    let src = unpinned("explore-max-id-plain.spec")
        + "\nsession audit\nstep look { SELECT id, who FROM t ORDER BY id, who; }\n\
           session bystander\nstep other { SELECT count(*) > 0 AS any FROM pg_class; }\n";
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let path = specs.join("ids.spec");
    std::fs::write(&path, src).unwrap();
    let (stdout, v) = explore_json(&inst, dir.path(), &path, &["--shrink", "--write"], 1);
    let violating: Vec<&Value> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["violated"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(violating.len(), 2, "{stdout}");
    for c in &violating {
        let shrunk = c["shrunk"].as_str().unwrap();
        assert!(shrunk.ends_with(" look"), "{stdout}");
        assert!(!shrunk.contains("other"), "{stdout}");
    }
    // Pinned and accepted, the transcript shows the duplicate id.
    let out = crate::util::run_against(&inst, dir.path())
        .arg("--accept")
        .arg(&path)
        .output()
        .unwrap();
    expect_exit(&out, 1); // the invariant is still violated
    let expected = std::fs::read_to_string(dir.path().join("expected/ids.out")).unwrap();
    assert!(
        expected.contains("step look: SELECT id, who FROM t ORDER BY id, who;\nid|who\n--+---\n 1|s1 \n 2|s2 \n 2|s3 \n(3 rows)\n"),
        "{expected}"
    );
}

#[test]
fn parts_merge_into_what_the_whole_reports() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let spec = manifest().join("specs/explore-max-id-plain.spec");
    // Without --seed each run draws its own seed from the clock: only a
    // sample's parts need the same one.
    for search in [
        &[][..],
        &["--preemptions", "1"][..],
        &["--max", "40", "--seed", "3"][..],
    ] {
        let whole = dir.path().join("whole.json");
        let out = explore(&inst)
            .args(search)
            .arg("--json")
            .arg(&whole)
            .arg(&spec)
            .output()
            .unwrap();
        // (max-id-plain's invariant breaks: exit code 1.)
        let whole_text = expect_exit(&out, 1);
        let mut parts = Vec::new();
        for k in 1..=3 {
            let part = dir.path().join(format!("part{k}.json"));
            let out = explore(&inst)
                .args(search)
                .args(["--partition", &format!("{k}/3"), "--json"])
                .arg(&part)
                .arg(&spec)
                .output()
                .unwrap();
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{}",
                text(&out.stderr)
            );
            crate::util::read_json(&part);
            parts.push(part);
        }
        let merged = dir.path().join("merged.json");
        let out = isospec()
            .args(["explore", "--json"])
            .arg(&merged)
            .arg("--merge")
            .args(&parts)
            .output()
            .unwrap();
        let merged_text = expect_exit(&out, 1);
        let read = |p: &Path| -> Value {
            let mut v: Value = crate::util::read_json(p);
            v["specs"][0]["seconds"] = Value::Null;
            if v["specs"][0]["sampled"] == false {
                v["specs"][0]["seed"] = Value::Null;
            }
            v["specs"][0].clone()
        };
        assert_eq!(read(&merged), read(&whole), "{search:?}");
        // The text too, but for the timing.
        let untimed = |t: &str| -> String {
            t.lines()
                .map(|l| l.split(" in ").next().unwrap_or(l).to_string())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(untimed(&merged_text), untimed(&whole_text), "{search:?}");
    }
    // A part missing is an error that names it.
    let out = isospec()
        .args(["explore", "--merge"])
        .arg(dir.path().join("part1.json"))
        .arg(dir.path().join("part3.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("missing parts 2/3"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_preemption_bound_gives_the_same_classes_on_two_lanes() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let spec = manifest().join("specs/explore-max-id-plain.spec");
    // (max-id-plain's invariant breaks: exit code 1.)
    let (_, one) = explore_json(&inst, dir.path(), &spec, &["--preemptions", "1"], 1);
    let (_, two) = explore_json(
        &inst,
        dir.path(),
        &spec,
        &["--preemptions", "1", "-j", "2"],
        1,
    );
    assert_eq!(one["runs"], two["runs"]);
    assert_eq!(one["classes"], two["classes"]);
}

#[test]
fn rising_preemptions_walk_the_space_by_k() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let spec = manifest().join("specs/explore-lost-update-rc.spec");
    let (stdout, v) = explore_json(&inst, dir.path(), &spec, &["--preemptions", "auto"], 1);
    // 2 sessions of 3 steps (20 interleavings) by preemptions. Counted
    // from the interleaving alone they would be 2, 4, 8, 4, 2 for K = 0..4;
    // w1 and w2 wait, and moving on from them is no preemption (CHESS):
    // counted with both seen waiting, once the walk is over.
    assert_eq!(v["per_k"], serde_json::json!(["6", "8", "6"]));
    assert_eq!(v["exhaustive"], true);
    assert!(
        stdout.contains("(K=0: 6, K=1: 8, K=2: 6), all of them"),
        "{stdout}"
    );
    assert!(
        stdout.contains("moving on from a step that waits is no preemption; seen waiting: w1 w2"),
        "{stdout}"
    );
}

/// One preemption reaches the lock-wait races: `r1 w1 r2 w2 c1 c2`
/// switches away from w2 only because it waits for w1, so it counts one
/// preemption (the switch after w1), not two; counted from the
/// interleaving alone, K=1 never lets w2 wait and see c1 commit.
#[test]
fn one_preemption_reaches_a_lock_wait_race() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let spec = manifest().join("specs/explore-lost-update-rc.spec");
    let (stdout, v) = explore_json(&inst, dir.path(), &spec, &["--preemptions", "1"], 1);
    assert!(
        stdout.contains(
            "K=1: 6 interleavings with at most 1 preemption (of 20); steps seen waiting add more"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("explored 14 interleavings with at most 1 preemption, all of them"),
        "{stdout}"
    );
    let waited: Vec<&Value> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["waited"] == serde_json::json!(["w2"]))
        .collect();
    assert!(!waited.is_empty(), "{stdout}");
}

/// A spec's variant whose sessions begin their transactions in a step of
/// their own (`setup { BEGIN … }` becomes the session's first step), so
/// that it has commuting steps; no permutation lines.
fn with_begin_steps(src: &str) -> String {
    let mut out = Vec::new();
    let mut session = None;
    for l in src.lines() {
        if l.starts_with("permutation") || l.starts_with("# isospec explore,") {
            continue;
        }
        if let Some(name) = l.strip_prefix("session") {
            session = name.split_whitespace().next().map(str::to_string);
        }
        let t = l.trim_start();
        let block = t
            .strip_prefix("setup")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('{'))
            .and_then(|r| r.trim_end().strip_suffix('}'));
        match (&session, block) {
            (Some(s), Some(sql))
                if ["begin", "start transaction", "set "]
                    .iter()
                    .any(|k| sql.trim_start().to_ascii_lowercase().starts_with(k)) =>
            {
                out.push(format!("step {s}_begin {{{sql}}}"));
            }
            _ => out.push(l.to_string()),
        }
    }
    out.join("\n") + "\n"
}

/// Soundness of commuting steps, differentially: on the project's explore
/// specs and PostgreSQL's specs without permutation lines (each with its
/// sessions' BEGIN as a step), the classes found with reduction are the
/// classes of the exhaustive walk, with the same sizes.
#[test]
fn reduction_finds_the_classes_of_the_whole_space() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let mut specs: Vec<PathBuf> = [
        "explore-lost-update-rc",
        "explore-lost-update-rr",
        "explore-write-skew-rr",
        "explore-write-skew-serializable",
        "explore-max-id-unique",
    ]
    .iter()
    .map(|n| manifest().join(format!("specs/{n}.spec")))
    .collect();
    let pg = manifest().join("../shared/pg15-isolation/specs");
    if pg.is_dir() {
        for n in ["fk-contention", "nowait", "simple-write-skew", "total-cash"] {
            specs.push(pg.join(format!("{n}.spec")));
        }
    } else {
        skip(&format!(
            "{} not found: PostgreSQL's specs are not compared",
            pg.display()
        ));
    }
    let mut reduced_somewhere = false;
    for original in specs {
        let name = original.file_stem().unwrap().to_str().unwrap().to_string();
        let path = dir.path().join(format!("{name}.spec"));
        std::fs::write(
            &path,
            with_begin_steps(&std::fs::read_to_string(&original).unwrap()),
        )
        .unwrap();
        let (_, whole) = explore_json(&inst, dir.path(), &path, &["--max", "100000"], None);
        let (stdout, reduced) = explore_json(&inst, dir.path(), &path, &["--reduce"], None);
        assert_eq!(whole["exhaustive"], true, "{name}");
        assert_eq!(reduced["exhaustive"], true, "{name}: {stdout}");
        assert_eq!(grouping(&reduced), grouping(&whole), "{name}: {stdout}");
        if reduced["runs"].as_u64() < whole["runs"].as_u64() {
            reduced_somewhere = true;
            eprintln!(
                "{name}: {} interleavings with reduction, {} without",
                reduced["runs"], whole["runs"]
            );
        }
    }
    assert!(reduced_somewhere, "no spec had commuting steps");
}

/// Under -j, each lane's database name keeps within PostgreSQL's 63 bytes
/// by the rule `run -j` uses: with a 65-byte --dbname the lanes once
/// shared one database (the server cut `_2` off) and failed.
#[test]
fn lanes_of_a_long_dbname_get_databases_of_their_own() {
    require_server!();
    let dir = workdir();
    let inst = start_instance(dir.path());
    let spec = manifest().join("specs/explore-max-id-plain.spec");
    let long = "x".repeat(65);
    let (_, one) = explore_json(&inst, dir.path(), &spec, &["--preemptions", "1"], 1);
    let (_, two) = explore_json(
        &inst,
        dir.path(),
        &spec,
        &["--preemptions", "1", "-j", "2", "--dbname", &long],
        1,
    );
    // The violation is found, with the same classes as one lane gives.
    assert_eq!(one["classes"], two["classes"]);
    assert!(
        two["classes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| !c["violated"].as_array().is_none_or(|v| v.is_empty())),
        "{two}"
    );
}
