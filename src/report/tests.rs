//! Snapshot tests of the renderings, without a server: a scripted run
//! with every `RunEvent` variant, rendered as isospec's lines, as TAP and
//! as pg_regress (classic and TAP), compared with tests/golden/report-*.out
//! (stdout, stderr and regression.out, in that order).

use super::*;
use crate::outcome::{FlakyReport, Phase, Status, StepTiming, TempServer};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// A writer the test can read afterwards.
#[derive(Clone, Default)]
struct Buffer(Rc<RefCell<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.borrow().clone()).unwrap()
    }
}

fn outcome(name: &str, status: Status, ms: u64) -> TestOutcome {
    let mut o = TestOutcome::new(name, status, Duration::from_millis(ms), 2);
    o.steps.push(StepTiming {
        step: "s1a".into(),
        micros: 42,
    });
    o
}

/// A run of five specs: passed, failed (with a diff), new, a run error,
/// and one not run; with notes, a diagnostic, flakes and the end.
fn events(version_num: u32) -> Vec<RunEvent> {
    let outcomes = vec![
        outcome("ok-spec", Status::Ok, 12),
        outcome("diff-spec", Status::Failed, 30),
        outcome("new-spec", Status::New, 7),
        outcome(
            "broken-spec",
            Status::RunError("server closed the connection\nunexpectedly".into()),
            3,
        ),
        outcome("later-spec", Status::NotRun("interrupted".into()), 0),
    ];
    let diff = "diff -U3 expected/diff-spec.out results/diff-spec.out\n--- expected/diff-spec.out\n+++ results/diff-spec.out\n@@ -1,2 +1,2 @@\n step s1a: SELECT 1;\n-1\n+2\n".to_string();
    let mut ev = vec![
        RunEvent::Phase(Phase::CreatingInstance("/tmp/x/tmp_check".into())),
        RunEvent::Phase(Phase::InitializingCluster),
        RunEvent::Phase(Phase::StartingServer),
        RunEvent::Phase(Phase::ServerReady {
            version_num,
            temp: Some(TempServer {
                port: 50848,
                pid: 4242,
            }),
        }),
        RunEvent::Phase(Phase::DroppingDatabase("isolation_regression".into())),
        RunEvent::Phase(Phase::CreatingDatabase("isolation_regression".into())),
        RunEvent::Phase(Phase::Command("CREATE DATABASE".into())),
        RunEvent::Phase(Phase::Installing("plpgsql".into())),
        RunEvent::Phase(Phase::DroppingRole("r1".into())),
        RunEvent::Phase(Phase::CreatingRole("r1".into())),
        RunEvent::Note("a note for the user".into()),
        RunEvent::Started { total: Some(5) },
        RunEvent::Phase(Phase::RunningTests),
        RunEvent::Diagnostic {
            spec: "diff-spec".into(),
            text: "step s1a of session s1 has been running for 1 s\nsecond line".into(),
        },
    ];
    for (i, o) in outcomes.iter().enumerate() {
        ev.push(RunEvent::SpecFinished {
            number: i + 1,
            outcome: Box::new(o.clone()),
            diff: (o.name == "diff-spec").then(|| diff.clone()),
            new_transcript: (o.name == "new-spec").then(|| {
                "Parsed test spec with 1 sessions\n\nstarting permutation: s1a\n".to_string()
            }),
        });
    }
    ev.extend([
        RunEvent::StoppedAfterPass(2),
        RunEvent::Flaky(FlakyReport {
            name: "diff-spec".into(),
            counts: vec![3, 1],
            diffs: vec!["-1\n+2\n".into()],
        }),
        RunEvent::Stable {
            name: "ok-spec".into(),
            runs: 4,
        },
        RunEvent::Phase(Phase::StoppingServer),
        RunEvent::Phase(Phase::RemovingInstance("/tmp/x/tmp_check".into())),
        RunEvent::Finished {
            outcomes,
            wall: Duration::from_millis(1234),
            diffs_file: Some("regression.diffs".into()),
        },
    ]);
    ev
}

/// stdout, stderr and regression.out of a rendering of `events`.
fn render(opts: ReporterOptions, version_num: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("regression.out");
    let opts = ReporterOptions {
        regression_out: Some(log.clone()),
        ..opts
    };
    let (out, err) = (Buffer::default(), Buffer::default());
    let mut r = Reporter::with_writers(opts, Box::new(out.clone()), Box::new(err.clone()));
    for e in events(version_num) {
        r.handle(e);
    }
    r.finish().unwrap();
    // The absolute path of regression.out, as pg_regress prints it, varies.
    let text = format!(
        "=== stdout\n{}=== stderr\n{}=== regression.out\n{}",
        out.text(),
        err.text(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    text.replace(
        &std::path::absolute(&log).unwrap().display().to_string(),
        "REGRESSION.OUT",
    )
    .replace(
        &std::path::absolute("regression.diffs")
            .unwrap()
            .display()
            .to_string(),
        "REGRESSION.DIFFS",
    )
}

fn golden(name: &str, got: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if crate::cli::env::snapshot().get("ISOSPEC_BLESS") == Some("1") {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        got, want,
        "{path} differs (ISOSPEC_BLESS=1 rewrites it):\n{got}"
    );
}

#[test]
fn isospecs_own_lines() {
    golden(
        "report-human.out",
        &render(ReporterOptions::default(), 150018),
    );
}

#[test]
fn tap_lines() {
    let opts = ReporterOptions {
        tap: true,
        ..Default::default()
    };
    golden("report-tap.out", &render(opts, 150018));
}

#[test]
fn pg_regress_classic_for_15() {
    let opts = ReporterOptions {
        pg_regress: Some(PgRegressStyle::default()),
        ..Default::default()
    };
    golden("report-pg_regress-15.out", &render(opts, 150018));
}

#[test]
fn pg_regress_tap_for_17() {
    // With --isospec-verbose: isospec's own notes and diagnostics are shown
    // (the classic test above shows them left out, as pg_regress prints none).
    let opts = ReporterOptions {
        pg_regress: Some(PgRegressStyle {
            verbose: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    golden("report-pg_regress-17.out", &render(opts, 170009));
}

#[test]
fn quiet_keeps_only_regression_out_and_stderr() {
    let opts = ReporterOptions {
        quiet: true,
        ..Default::default()
    };
    let text = render(opts, 150018);
    let stdout = text.split("=== stderr\n").next().unwrap();
    assert_eq!(stdout, "=== stdout\n");
    assert!(text.contains("test ok-spec"), "{text}");
}

#[test]
fn counts_exclude_specs_not_run() {
    let c = counts::Counts::of(&[
        outcome("a", Status::Ok, 1),
        outcome("b", Status::Failed, 1),
        outcome("c", Status::NotRun("interrupted".into()), 0),
    ]);
    assert_eq!(
        (c.total, c.ran, c.passed, c.failed, c.not_run),
        (3, 2, 1, 1, 1)
    );
    assert_eq!(c.not_run_note(), ", 1 not run (interrupted)");
}
