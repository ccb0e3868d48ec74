//! `isospec check`: spec errors with file:line:col, one per mistake (no server).

use crate::util::*;
use std::path::PathBuf;

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
        text(&out.stdout).contains("ok (2 sessions, 4 steps, 1 permutation)"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("warning: unused step name: a2"));
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
