//! The parser's tests: every construct, every error with its position.

use super::*;

fn ok(src: &str) -> TestSpec {
    parse("t.spec", src.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn errs(src: &str) -> Vec<String> {
    match parse("t.spec", src.as_bytes()) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.to_string().lines().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn full_spec() {
    let s = ok(r#"# comment
setup { CREATE TABLE t (a int); }
setup {INSERT INTO t VALUES (1);}
teardown
{
  DROP TABLE t;
}
session s1
setup { BEGIN; }
step s1a { SELECT 1; }
step "s1 b" { SELECT 2; }
teardown { COMMIT; }
session "s""2"
step s2a	{	UPDATE t SET a = 2;	}
permutation s1a(*) "s1 b"(s2a, s2a notices 3) s2a
permutation s2a s1a
"#);
    assert_eq!(
        s.setup,
        vec!["CREATE TABLE t (a int);", "INSERT INTO t VALUES (1);"]
    );
    assert_eq!(s.teardown.as_deref(), Some("\n  DROP TABLE t;\n"));
    assert_eq!(s.sessions.len(), 2);
    assert_eq!(s.sessions[1].name, "s\"2");
    assert_eq!(s.sessions[1].steps[0].sql, "UPDATE t SET a = 2;");
    assert_eq!(s.sessions[0].steps[1].name, "s1 b");
    assert_eq!(s.sessions[0].steps[1].pos, Pos { line: 11, col: 6 });
    assert_eq!(s.permutations.len(), 2);
    let p = &s.permutations[0];
    assert_eq!(
        p.steps[0].blockers,
        vec![Blocker::Once {
            pos: Pos { line: 15, col: 17 }
        }]
    );
    assert_eq!(p.steps[1].blockers.len(), 2);
    assert!(
        matches!(&p.steps[1].blockers[1], Blocker::Notices { step, count: 3, .. } if step == "s2a")
    );
}

#[test]
fn sql_block_trimming_matches_scanner() {
    let s = ok("session s\nstep a {\n  SELECT 1;\n}\nstep b { \t x \t}\nstep c {}\n");
    assert_eq!(s.sessions[0].steps[0].sql, "\n  SELECT 1;\n");
    assert_eq!(s.sessions[0].steps[1].sql, "x");
    assert_eq!(s.sessions[0].steps[2].sql, "");
}

#[test]
fn keyword_prefix_is_identifier() {
    let s = ok("session setup1\nstep steps { x }\npermutation steps");
    assert_eq!(s.sessions[0].name, "setup1");
    assert_eq!(s.sessions[0].steps[0].name, "steps");
}

#[test]
fn round_trip() {
    let src = "setup { A }\nteardown { B }\nsession s1\nsetup { C }\nstep a { D }\nstep \"two words\" { E }\nteardown { F }\nsession \"step\"\nstep b { G }\npermutation a(*) \"two words\"(b, b notices 2) b\n";
    let s = ok(src);
    let printed = s.to_string();
    let again = ok(&printed);
    // Positions differ; compare everything else.
    assert_eq!(again.to_string(), printed);
    assert_eq!(again.sessions[1].name, "step");
    assert_eq!(again.permutations[0].steps[1].blockers.len(), 2);
}

#[test]
fn error_positions_and_all_errors() {
    let e = errs("session s1\nstep a { x }\nstep { y }\nsession s2\nstep b x }\npermutation a(\n");
    // One message per mistake: no follow-on "session has no steps".
    assert_eq!(
        e,
        vec![
            "t.spec:3:6: error: expected step name, found SQL block",
            "t.spec:5:8: error: expected `{ SQL }` block after the step name, found name `x`",
            "t.spec:5:10: error: unexpected character \"}\"",
            "t.spec:7:1: error: expected a marker: `*`, a step name, or `STEP notices N`, found end of file",
        ]
    );
}

#[test]
fn lexical_errors() {
    assert_eq!(
        errs("session s\nstep a { x"),
        vec!["t.spec:2:8: error: unterminated sql block: `{` has no matching `}`"]
    );
    assert_eq!(
        errs("session \"s\nstep a { x }"),
        vec!["t.spec:1:9: error: unexpected newline in quoted identifier"]
    );
    assert_eq!(
        errs("session \"s"),
        vec![
            "t.spec:1:1: error: session s has no steps: a session needs at least one `step NAME { SQL }`",
            "t.spec:1:9: error: unterminated quoted identifier"
        ]
    );
    assert_eq!(
        errs("session s step a { x } ?"),
        vec!["t.spec:1:24: error: unexpected character \"?\""]
    );
}

#[test]
fn structural_errors() {
    assert_eq!(
        errs(""),
        vec!["t.spec:1:1: error: a spec needs at least one `session NAME` with one or more steps"]
    );
    assert_eq!(errs("session s\n"), vec!["t.spec:1:1: error: session s has no steps: a session needs at least one `step NAME { SQL }`"]);
    assert_eq!(
        errs("session s step a {x} permutation"),
        vec!["t.spec:1:33: error: expected a step name after `permutation`, found end of file"]
    );
    assert_eq!(
        errs("session s step a {x}\nsetup { y }"),
        vec!["t.spec:2:1: error: `setup` of session s must come before its steps"]
    );
    assert_eq!(
        errs("step a {x}\nsession s step b {x}"),
        vec!["t.spec:1:1: error: `step` outside a session: steps belong after `session NAME`"]
    );
    assert_eq!(
        errs("session s step a {x} permutation a(b notices) "),
        vec!["t.spec:1:45: error: expected a number after `notices`, found `)`"]
    );
}

#[test]
fn isospec_directives() {
    let s = ok("# isospec: prepared-waits\nsession s step a { x }");
    assert!(s.options.prepared_waits);
    assert!(s.to_string().starts_with("# isospec: prepared-waits\n"));
    assert!(
        !ok("# isospec talk, not a directive\nsession s step a { x }")
            .options
            .prepared_waits
    );
    assert_eq!(
        errs("#isospec: alone-ish\nsession s step a { x }"),
        vec!["t.spec:1:1: error: unknown isospec option \"alone-ish\" (known: prepared-waits, alone, pooled, known-violations, anomalies, outcome SQL, invariant SQL, commutes STEP…, volatile STEP…)"]
    );
    let e = ok("# isospec: outcome SELECT sum(v) FROM t\n#isospec: invariant  SELECT true \nsession s step a { x }");
    assert_eq!(e.options.outcomes, vec!["SELECT sum(v) FROM t".to_string()]);
    assert_eq!(e.options.invariants, vec!["SELECT true".to_string()]);
    assert!(e.to_string().starts_with(
        "# isospec: outcome SELECT sum(v) FROM t\n# isospec: invariant SELECT true\n"
    ));
    let p = ok("# isospec: pooled\nsession s step a { x }");
    assert!(p.options.pooled);
    assert!(p.to_string().starts_with("# isospec: pooled\n"));
}

#[test]
fn invalid_utf8() {
    let e = parse("t.spec", b"session s\nstep a { \xff }").unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.spec:2:10: error: the file is not valid UTF-8"
    );
}
