//! pg_regress's own output, for `isospec pg_isolation_regress`: the lines
//! pg_regress of the server's major version prints, so that build logs and
//! the scripts reading them see no difference.  Up to PostgreSQL 15 the
//! classic `============== … ==============` headers and `test NAME ... ok`
//! lines; from 16 on, TAP.  Which one is known only once the server
//! answers, so lines before that are held back.
//!
//! This module only decides the text; `report` prints it.

use super::render::{line, note, Context, Line, Render, To};
use crate::outcome::{Phase, RunEvent, Status, TestOutcome};

/// pg_regress's `header()`: at most 63 bytes of text, padded to 38.
fn header(text: &str) -> Line {
    let mut t = text.to_string();
    while t.len() > 63 {
        t.pop();
    }
    line(format!("============== {t:<38} =============="), To::Stdout)
}

/// The output of one pg_regress run, as events arrive.
#[derive(Debug, Default)]
pub struct PgRegressOutput {
    /// TAP (server ≥ 16) or classic; None until the server answered.
    tap: Option<bool>,
    held: Vec<Phase>,
    /// pg_regress's "(using postmaster on …)" words for a server it did
    /// not start: "HOST, port N", "Unix socket, default port", ….
    existing_server: Option<String>,
    counted: usize,
}

impl PgRegressOutput {
    pub fn new(existing_server: Option<String>) -> Self {
        PgRegressOutput {
            existing_server,
            ..Default::default()
        }
    }

    /// The lines for a phase (none while the output style is unknown).
    pub fn phase(&mut self, p: Phase) -> Vec<Line> {
        if let Phase::ServerReady { version_num, .. } = &p {
            if self.tap.is_none() {
                self.tap = Some(*version_num >= 160000);
                let mut out = Vec::new();
                for h in std::mem::take(&mut self.held) {
                    out.extend(self.render_phase(&h));
                }
                out.extend(self.render_phase(&p));
                return out;
            }
        }
        if self.tap.is_none() {
            self.held.push(p);
            return Vec::new();
        }
        self.render_phase(&p)
    }

    /// Held lines, in the classic style, when the run ends before the
    /// server answered.
    pub fn flush(&mut self) -> Vec<Line> {
        if self.tap.is_some() {
            return Vec::new();
        }
        self.tap = Some(false);
        let held = std::mem::take(&mut self.held);
        held.iter().flat_map(|h| self.render_phase(h)).collect()
    }

    fn tap(&self) -> bool {
        self.tap == Some(true)
    }

    fn render_phase(&self, p: &Phase) -> Vec<Line> {
        if self.tap() {
            return match p {
                Phase::InitializingCluster => vec![line(
                    "# initializing database system by running initdb",
                    To::StdoutAndLog,
                )],
                Phase::ServerReady { temp: Some(t), .. } => vec![line(
                    format!(
                        "# using temp instance on port {} with PID {}",
                        t.port, t.pid
                    ),
                    To::StdoutAndLog,
                )],
                Phase::ServerReady { temp: None, .. } => match &self.existing_server {
                    Some(s) => vec![line(format!("# using postmaster on {s}"), To::StdoutAndLog)],
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
        }
        let h = |s: String| vec![header(&s)];
        match p {
            Phase::RemovingOldInstance(_) => h("removing existing temp instance".into()),
            Phase::CreatingInstance(_) => h("creating temporary instance".into()),
            Phase::InitializingCluster => h("initializing database system".into()),
            Phase::StartingServer => h("starting postmaster".into()),
            Phase::ServerReady { temp: Some(t), .. } => vec![line(
                format!("running on port {} with PID {}", t.port, t.pid),
                To::Stdout,
            )],
            Phase::ServerReady { temp: None, .. } => match &self.existing_server {
                Some(s) => vec![line(format!("(using postmaster on {s})"), To::Stdout)],
                None => Vec::new(),
            },
            Phase::DroppingDatabase(d) => h(format!("dropping database \"{d}\"")),
            Phase::CreatingDatabase(d) => h(format!("creating database \"{d}\"")),
            Phase::Installing(x) => h(format!("installing {x}")),
            Phase::DroppingRole(r) => h(format!("dropping role \"{r}\"")),
            Phase::CreatingRole(r) => h(format!("creating role \"{r}\"")),
            Phase::Command(tag) => vec![line(tag.clone(), To::Stdout)],
            Phase::RunningTests => h("running regression test queries".into()),
            Phase::StoppingServer => h("shutting down postmaster".into()),
            Phase::RemovingInstance(_) => h("removing temporary instance".into()),
        }
    }

    /// The status line of a finished test.
    pub fn outcome(&mut self, o: &TestOutcome) -> Vec<Line> {
        let mut out = self.flush();
        self.counted += 1;
        let ms = o.duration.as_secs_f64() * 1000.0;
        let ok = o.status.passed();
        if self.tap() {
            let not = if ok { "" } else { "not " };
            let pad = if ok { "    " } else { "" };
            let mut text = format!(
                "{not}ok {:<5}{pad} - {:<36} {ms:>8.0} ms",
                self.counted, o.name
            );
            if let Status::NotRun(why) = &o.status {
                text = format!("ok {:<5}     - {:<36} # SKIP {why}", self.counted, o.name);
            }
            out.push(line(text, To::StdoutAndLog));
        } else {
            let status = match &o.status {
                Status::NotRun(why) => format!("not run ({why})"),
                _ if ok => format!("ok     {ms:>8.0} ms"),
                _ => format!("FAILED {ms:>8.0} ms"),
            };
            out.push(line(
                format!("test {:<28} ... {status}", o.name),
                To::StdoutAndLog,
            ));
        }
        out
    }

    /// The closing summary; `diffs` and `log` are the absolute paths of
    /// regression.diffs (when it has differences) and regression.out.
    pub fn summary(
        &mut self,
        outcomes: &[TestOutcome],
        diffs: Option<&str>,
        log: Option<&str>,
    ) -> Vec<Line> {
        let mut out = self.flush();
        let total = outcomes.len();
        let failed = outcomes.iter().filter(|o| !o.status.passed()).count();
        if self.tap() {
            out.push(line(format!("1..{total}"), To::StdoutAndLog));
            if failed == 0 {
                out.push(line(
                    format!("# All {total} tests passed."),
                    To::StdoutAndLog,
                ));
            } else {
                out.push(line(
                    format!("# {failed} of {total} tests failed."),
                    To::StderrAndLog,
                ));
            }
            if let (Some(d), Some(l)) = (diffs, log) {
                out.push(line(
                    format!("# The differences that caused some tests to fail can be viewed in the file \"{d}\"."),
                    To::StderrAndLog,
                ));
                out.push(line(
                    format!("# A copy of the test summary that you see above is saved in the file \"{l}\"."),
                    To::StderrAndLog,
                ));
            }
            return out;
        }
        let msg = if failed == 0 {
            format!(" All {total} tests passed. ")
        } else {
            format!(" {failed} of {total} tests failed. ")
        };
        let bar = "=".repeat(msg.len());
        for l in ["", &bar, &msg, &bar, ""] {
            out.push(line(l, To::Stdout));
        }
        if let (Some(d), Some(l)) = (diffs, log) {
            out.push(line(
                format!("The differences that caused some tests to fail can be viewed in the\nfile \"{d}\".  A copy of the test summary that you see\nabove is saved in the file \"{l}\".\n"),
                To::Stdout,
            ));
        }
        out
    }
}

impl Render for PgRegressOutput {
    fn render(&mut self, event: &RunEvent, cx: &Context<'_>) -> Vec<Line> {
        match event {
            RunEvent::Phase(p) => self.phase(p.clone()),
            RunEvent::SpecFinished { outcome, .. } => {
                let mut lines = self.outcome(outcome);
                // Why a test failed at run time, or where a new one's
                // transcript is: on stderr, outside pg_regress's lines.
                match &outcome.status {
                    Status::BadSpec(e) | Status::RunError(e) => {
                        for l in e.lines() {
                            lines.push(note(&format!("{}: {l}", outcome.name)));
                        }
                    }
                    Status::New => lines.push(note(&format!(
                        "{}: no expected output; its transcript is in results/{}.out",
                        outcome.name, outcome.name
                    ))),
                    _ => {}
                }
                lines
            }
            RunEvent::Finished {
                outcomes,
                diffs_file,
                ..
            } => {
                let abs = |p: &std::path::Path| {
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.to_path_buf())
                        .display()
                        .to_string()
                };
                let diffs = diffs_file.as_deref().map(abs);
                let log = cx.regression_out.map(abs);
                self.summary(outcomes, diffs.as_deref(), log.as_deref())
            }
            _ => Vec::new(),
        }
    }

    fn prints_diffs(&self) -> bool {
        false
    }

    fn removes_logs_when_all_passed(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::TempServer;
    use std::time::Duration;

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn classic_output_of_pg_regress_15() {
        let mut o = PgRegressOutput::new(None);
        assert!(o.phase(Phase::CreatingInstance("t".into())).is_empty());
        let lines = o.phase(Phase::ServerReady {
            version_num: 150018,
            temp: Some(TempServer { port: 5, pid: 7 }),
        });
        assert_eq!(
            texts(&lines),
            [
                "============== creating temporary instance            ==============",
                "running on port 5 with PID 7"
            ]
        );
        let long = o.phase(Phase::CreatingDatabase("isolation_regression_x".into()));
        assert_eq!(
            texts(&long),
            ["============== creating database \"isolation_regression_x\" =============="]
        );
        let t = TestOutcome::new("eval_plan_qual", Status::Ok, Duration::from_millis(140), 1);
        assert_eq!(
            texts(&o.outcome(&t)),
            ["test eval_plan_qual               ... ok          140 ms"]
        );
        let f = TestOutcome::new("b", Status::Failed, Duration::from_millis(1234), 1);
        assert_eq!(
            texts(&o.outcome(&f)),
            ["test b                            ... FAILED     1234 ms"]
        );
        let s = o.summary(&[t], None, None);
        assert_eq!(
            texts(&s),
            [
                "",
                "=====================",
                " All 1 tests passed. ",
                "=====================",
                ""
            ]
        );
    }

    #[test]
    fn tap_output_of_pg_regress_16_and_later() {
        let mut o = PgRegressOutput::new(None);
        o.phase(Phase::InitializingCluster);
        let lines = o.phase(Phase::ServerReady {
            version_num: 170009,
            temp: Some(TempServer { port: 5, pid: 7 }),
        });
        assert_eq!(
            texts(&lines),
            [
                "# initializing database system by running initdb",
                "# using temp instance on port 5 with PID 7"
            ]
        );
        let t = TestOutcome::new("a", Status::Ok, Duration::from_millis(12), 1);
        let f = TestOutcome::new("b", Status::Failed, Duration::from_millis(3), 1);
        assert_eq!(
            texts(&o.outcome(&t)),
            ["ok 1         - a                                          12 ms"]
        );
        assert_eq!(
            texts(&o.outcome(&f)),
            ["not ok 2     - b                                           3 ms"]
        );
        let s = o.summary(
            &[t, f],
            Some("/o/regression.diffs"),
            Some("/o/regression.out"),
        );
        assert_eq!(s[0].text, "1..2");
        assert_eq!(s[1].text, "# 1 of 2 tests failed.");
        assert_eq!(s[1].to, To::StderrAndLog);
    }
}
