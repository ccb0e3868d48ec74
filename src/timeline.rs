//! What happened when, and where each transcript line came from.
//!
//! `transcript` turns the executor's events into isolationtester's text;
//! this module watches the same events, with the time each arrived, and
//! keeps what the text loses: which permutation and which step printed
//! each line (so that a diff's first differing line can be pointed back at
//! the spec: `Departure`), and, for reports that draw it (`--html`), each
//! step's box on its session's lane (`outcome::SpecTrace`).

use crate::differ::FirstChange;
use crate::executor::{Event, Who};
use crate::outcome::{Departure, DepartureKind, PermTrace, SpecTrace, StepBox};
use crate::spec::{CheckedSpec, Pos};
use std::time::Instant;

/// Which permutation (an index into `Recorder::perms`) and which step
/// (session index, step name) printed the transcript lines from `line` on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    line: usize,
    perm: Option<usize>,
    step: Option<(usize, String)>,
}

/// Watches a spec run's events as they come.
#[derive(Debug)]
pub struct Recorder {
    t0: Instant,
    sessions: Vec<String>,
    perms: Vec<PermTrace>,
    origins: Vec<Origin>,
    /// The box each session's running step has, in the current permutation.
    active: Vec<Option<usize>>,
    /// The step whose output the transcript is printing (results, errors
    /// and notices follow their step's line).
    current: Option<(usize, String)>,
    /// The last step launched, completed or reported: where a run error
    /// happened.
    last_step: Option<(usize, String)>,
    /// The step a timeout, a lost connection or a failed send names.
    failed_step: Option<(usize, String)>,
    /// The session whose connection could not be made.
    failed_session: Option<usize>,
    /// Per session, notices printed before the step they came from was
    /// reported (isolationtester prints a step's notices before its
    /// `step X:` line): (text, their origin's index, their lines), given to
    /// the session's next box.
    pending: Vec<Vec<(String, usize, std::ops::Range<usize>)>>,
    /// The session of a notice being recorded that waits for its step.
    pending_for: Option<usize>,
    lines: usize,
}

impl Recorder {
    /// A recorder for a spec with these sessions (one lane each), starting
    /// its clock now.
    pub fn new(spec: &CheckedSpec) -> Self {
        let sessions: Vec<String> = spec.spec.sessions.iter().map(|s| s.name.clone()).collect();
        Recorder {
            t0: Instant::now(),
            active: vec![None; sessions.len()],
            pending: vec![Vec::new(); sessions.len()],
            pending_for: None,
            sessions,
            perms: Vec::new(),
            origins: Vec::new(),
            current: None,
            last_step: None,
            failed_step: None,
            failed_session: None,
            lines: 0,
        }
    }

    fn session(&self, name: &str) -> Option<usize> {
        self.sessions.iter().position(|s| s == name)
    }

    /// The session of a step named in an event that does not say it: the
    /// one whose running step it is, else the last box of that name.
    fn session_of_step(&self, step: &str) -> Option<usize> {
        let perm = self.perms.last()?;
        self.active
            .iter()
            .flatten()
            .map(|&b| &perm.boxes[b])
            .find(|b| b.step == step)
            .or_else(|| perm.boxes.iter().rev().find(|b| b.step == step))
            .map(|b| b.session)
    }

    /// The box of `session`'s running step, or its last one.
    fn box_of(&mut self, session: usize) -> Option<&mut StepBox> {
        let perm = self.perms.last_mut()?;
        match self.active[session] {
            Some(b) => perm.boxes.get_mut(b),
            None => perm.boxes.iter_mut().rev().find(|b| b.session == session),
        }
    }

    fn box_named(&mut self, step: &str) -> Option<&mut StepBox> {
        let s = self.session_of_step(step)?;
        self.box_of(s).filter(|b| b.step == step)
    }

    fn open_box(&mut self, session: usize, step: &str, sql: &str, at: u64) -> Option<usize> {
        let perm = self.perms.last_mut()?;
        perm.boxes.push(StepBox {
            session,
            step: step.to_string(),
            sql: sql.to_string(),
            start_us: at,
            ..Default::default()
        });
        let b = perm.boxes.len() - 1;
        self.active[session] = Some(b);
        // The notices its session printed before it was reported.
        for (text, origin, lines) in std::mem::take(&mut self.pending[session]) {
            perm.boxes[b].notices.push(text);
            perm.boxes[b].lines.extend(lines);
            if let Some(o) = self.origins.get_mut(origin) {
                o.step = Some((session, step.to_string()));
            }
        }
        Some(b)
    }

    /// Takes one event, with the transcript text `transcript::render` made
    /// of it (possibly empty).
    pub fn record(&mut self, ev: &Event, rendered: &str) {
        let at = self.t0.elapsed().as_micros() as u64;
        let first_line = self.lines;
        let n_lines = rendered.lines().count();
        let step_of =
            |r: &Self, session: &str, step: &str| r.session(session).map(|s| (s, step.to_string()));
        match ev {
            Event::PermutationStart { index, steps } => {
                if let Some(p) = self.perms.last_mut() {
                    p.end_us = at;
                }
                self.perms.push(PermTrace {
                    index: *index,
                    steps: steps.clone(),
                    start_us: at,
                    end_us: at,
                    lines: (first_line, first_line),
                    ..Default::default()
                });
                self.active.iter_mut().for_each(|a| *a = None);
                self.pending.iter_mut().for_each(Vec::clear);
                self.current = None;
                self.failed_step = None;
            }
            Event::StepLaunched { session, step, sql } => {
                if let Some(si) = self.session(session) {
                    self.open_box(si, step, sql, at);
                }
                self.current = step_of(self, session, step);
            }
            Event::StepWaiting { session, step, sql } => {
                if let Some(si) = self.session(session) {
                    if let Some(b) = self.open_box(si, step, sql, at) {
                        if let Some(p) = self.perms.last_mut() {
                            p.boxes[b].waited_us = Some(at);
                        }
                    }
                }
                self.current = step_of(self, session, step);
            }
            Event::StepCompleted { session, step } => {
                self.current = step_of(self, session, step);
            }
            Event::BlockedBy { session, by, .. } => {
                if let Some(si) = self.session(session) {
                    if let Some(b) = self.box_of(si) {
                        b.blocked_by = by.iter().map(who).collect();
                    }
                }
            }
            Event::StepTimings { step, micros } => {
                if let Some(si) = self.session_of_step(step) {
                    if let Some(b) = self.box_of(si) {
                        b.end_us = Some(at);
                        b.start_us = b.start_us.min(at.saturating_sub(*micros));
                    }
                    self.active[si] = None;
                }
            }
            Event::StepError { step, .. } => {
                self.current = self.session_of_step(step).map(|s| (s, step.clone()));
                if let Some(b) = self.box_named(step) {
                    b.errors.push(rendered.trim_end().to_string());
                }
            }
            Event::Tuples(_) => {
                if let Some((si, _)) = self.current.clone() {
                    if let Some(b) = self.box_of(si) {
                        b.rows.extend(rendered.lines().map(str::to_string));
                    }
                }
            }
            // A notice of a session with no step under way comes from the
            // step it is about to report.
            Event::Notice { session, .. }
                if self
                    .session(session)
                    .is_some_and(|si| self.active[si].is_none()) =>
            {
                self.pending_for = self.session(session);
            }
            Event::Notice { session, .. } | Event::Notify { session, .. } => {
                if let Some(si) = self.session(session) {
                    let step = self.box_of(si).map(|b| {
                        b.notices.push(rendered.trim_end().to_string());
                        b.step.clone()
                    });
                    if let Some(step) = step {
                        self.current = Some((si, step));
                    }
                }
            }
            Event::Canceling { step, .. } => {
                if let Some(b) = self.box_named(step) {
                    b.canceled = true;
                }
            }
            Event::StepTimedOut { step, .. } => {
                self.failed_step = self.session_of_step(step).map(|s| (s, step.clone()));
                if let Some(b) = self.box_named(step) {
                    b.timed_out = true;
                }
            }
            Event::ConnectFailed { index, .. } => {
                // Connection 0 is the control connection.
                self.failed_session = index.checked_sub(1);
            }
            Event::SendFailed { step, .. } => {
                self.failed_step = self.session_of_step(step).map(|s| (s, step.clone()));
            }
            Event::ConnectionLost { session, step, .. } => {
                self.failed_step = step_of(self, session, step);
            }
            Event::SetupFailed { .. }
            | Event::TeardownFailed { .. }
            | Event::TeardownCanceling { .. }
            | Event::TeardownGraceEnded { .. }
            | Event::SessionsTerminated { .. }
            | Event::Interrupted { .. }
            | Event::MutuallyBlocking
            | Event::UnexpectedStatus(_)
            | Event::WaitQueryFailed { .. } => {
                self.current = None;
                if let Some(p) = self.perms.last_mut() {
                    p.marks.push((at, rendered.trim_end().to_string()));
                }
            }
            _ => {}
        }
        if self.current.is_some() {
            self.last_step = self.current.clone();
        }
        if let Some(si) = self.pending_for.take() {
            let perm = self.perms.len().checked_sub(1);
            self.origins.push(Origin {
                line: first_line,
                perm,
                step: None,
            });
            self.pending[si].push((
                rendered.trim_end().to_string(),
                self.origins.len() - 1,
                first_line..first_line + n_lines,
            ));
            self.lines += n_lines;
            if let Some(p) = self.perms.last_mut() {
                p.lines.1 = self.lines;
                p.end_us = at;
            }
            return;
        }
        if n_lines > 0 {
            let perm = self.perms.len().checked_sub(1);
            let origin = Origin {
                line: first_line,
                perm,
                step: self.current.clone(),
            };
            if self.origins.last().map(|o| (o.perm, &o.step)) != Some((origin.perm, &origin.step)) {
                self.origins.push(origin);
            }
            if let Some((si, _)) = self.current.clone() {
                let lines = first_line..first_line + n_lines;
                if let Some(b) = self.box_of(si) {
                    b.lines.extend(lines);
                }
            }
            self.lines += n_lines;
            if let Some(p) = self.perms.last_mut() {
                p.lines.1 = self.lines;
                p.end_us = at;
            }
        }
    }

    /// Where transcript line `line` (0-based) came from: the permutation
    /// (an index into the recorded permutations) and the step.  A line past
    /// the end belongs to the last one.
    fn origin(&self, line: usize) -> Option<&Origin> {
        let i = self.origins.partition_point(|o| o.line <= line);
        self.origins.get(i.checked_sub(1)?)
    }

    /// Where a transcript that differs from its expected output departs,
    /// pointing at the spec's line.
    pub fn departure(
        &self,
        spec: &CheckedSpec,
        permutations: u128,
        first: &FirstChange,
    ) -> Departure {
        // A line missing from the result belongs with the line before the
        // gap, not the one after it (which may be another step's or
        // permutation's).
        let at = if first.missing {
            first.actual_line.saturating_sub(1)
        } else {
            first.actual_line
        };
        let origin = self.origin(at);
        let mut d = self.point(
            spec,
            permutations,
            origin.and_then(|o| o.perm),
            origin.and_then(|o| o.step.clone()),
        );
        d.expected = first.expected.clone();
        d.actual = first.actual.clone();
        d.expected_line = first.expected_line;
        d.actual_line = first.actual_line;
        d
    }

    /// Where a spec that stopped early stopped: the step a timeout, a lost
    /// connection or a failed send names, else the last step seen.
    pub fn run_error(&self, spec: &CheckedSpec, permutations: u128, error: &str) -> Departure {
        let step = self.failed_step.clone().or_else(|| self.last_step.clone());
        let perm = self.perms.len().checked_sub(1);
        let mut d = self.point(spec, permutations, perm, step.clone());
        if let (None, Some(si)) = (&step, self.failed_session) {
            if let Some(session) = spec.spec.sessions.get(si) {
                d.line = session.pos.line.max(1);
                d.col = session.pos.col.max(1);
                d.session = Some(session.name.clone());
            }
        }
        d.kind = DepartureKind::RunError;
        d.actual = Some(error.to_string());
        d.actual_line = self.lines;
        d
    }

    fn point(
        &self,
        spec: &CheckedSpec,
        permutations: u128,
        perm: Option<usize>,
        step: Option<(usize, String)>,
    ) -> Departure {
        let perm = perm.and_then(|p| self.perms.get(p));
        let explicit = perm.and_then(|p| spec.spec.permutations.get(p.index));
        let step_pos = step.as_ref().and_then(|(si, name)| {
            spec.spec
                .sessions
                .get(*si)
                .and_then(|s| s.steps.iter().find(|st| &st.name == name))
                .map(|st| st.pos)
        });
        let pos = match (explicit, step_pos) {
            (Some(p), _) => p.pos,
            (None, Some(p)) => p,
            // Before any step: the first permutation line, else the first
            // session.
            (None, None) => spec
                .spec
                .permutations
                .first()
                .map(|p| p.pos)
                .or_else(|| spec.spec.sessions.first().map(|s| s.pos))
                .unwrap_or(Pos { line: 1, col: 1 }),
        };
        Departure {
            kind: DepartureKind::Differs,
            line: pos.line.max(1),
            col: pos.col.max(1),
            permutation: perm.map(|p| p.index + 1),
            permutations,
            permutation_steps: perm.map(|p| p.steps.clone()).unwrap_or_default(),
            session: step
                .as_ref()
                .and_then(|(si, _)| self.sessions.get(*si).cloned()),
            step: step.map(|(_, name)| name),
            expected: None,
            actual: None,
            expected_line: 0,
            actual_line: 0,
        }
    }

    /// The recorded run, for a drawing.
    pub fn into_trace(self) -> SpecTrace {
        SpecTrace {
            sessions: self.sessions,
            permutations: self.perms,
            ..Default::default()
        }
    }
}

/// A blocker as a timeline names it.
fn who(w: &Who) -> String {
    match w {
        Who::Session { name, .. } => name.clone(),
        Who::Pid(pid) => format!("PID {pid}"),
        Who::PreparedTransaction => "a prepared transaction".to_string(),
    }
}

/// Where a spec that does not parse or check goes wrong: the first
/// error's position.
pub fn bad_spec(pos: Pos, message: &str) -> Departure {
    Departure {
        kind: DepartureKind::BadSpec,
        line: pos.line.max(1),
        col: pos.col.max(1),
        permutation: None,
        permutations: 0,
        permutation_steps: Vec::new(),
        step: None,
        session: None,
        expected: None,
        actual: Some(message.to_string()),
        expected_line: 0,
        actual_line: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript;

    fn spec(src: &str) -> CheckedSpec {
        crate::spec::check(
            "t.spec",
            crate::spec::parse("t.spec", src.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn feed(r: &mut Recorder, events: &[Event]) -> String {
        let mut text = String::new();
        for e in events {
            let mut piece = String::new();
            transcript::render(e, &mut piece);
            r.record(e, &piece);
            text.push_str(&piece);
        }
        text
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn events() -> Vec<Event> {
        vec![
            Event::Parsed { sessions: 2 },
            Event::PermutationStart {
                index: 0,
                steps: vec![s("a1"), s("b1"), s("a2")],
            },
            Event::StepLaunched {
                session: s("a"),
                step: s("a1"),
                sql: s("BEGIN"),
            },
            Event::StepTimings {
                step: s("a1"),
                micros: 5,
            },
            Event::StepWaiting {
                session: s("b"),
                step: s("b1"),
                sql: s("LOCK t"),
            },
            Event::BlockedBy {
                session: s("b"),
                step: s("b1"),
                by: vec![Who::Session {
                    name: s("a"),
                    pid: s("42"),
                }],
            },
            Event::StepLaunched {
                session: s("a"),
                step: s("a2"),
                sql: s("COMMIT"),
            },
            Event::StepTimings {
                step: s("a2"),
                micros: 5,
            },
            Event::StepCompleted {
                session: s("b"),
                step: s("b1"),
            },
            Event::StepError {
                step: s("b1"),
                text: s("ERROR:  boom"),
                sqlstate: None,
            },
            Event::StepTimings {
                step: s("b1"),
                micros: 900,
            },
            Event::PermutationStart {
                index: 1,
                steps: vec![s("b1"), s("a1"), s("a2")],
            },
            Event::StepLaunched {
                session: s("b"),
                step: s("b1"),
                sql: s("LOCK t"),
            },
            Event::StepTimings {
                step: s("b1"),
                micros: 5,
            },
        ]
    }

    #[test]
    fn boxes_per_lane_with_waits_and_blockers() {
        let sp = spec("session a step a1 {BEGIN} step a2 {COMMIT}\nsession b step b1 {LOCK t}\npermutation a1 b1 a2\npermutation b1 a1 a2\n");
        let mut r = Recorder::new(&sp);
        feed(&mut r, &events());
        let t = r.into_trace();
        assert_eq!(t.sessions, vec![s("a"), s("b")]);
        assert_eq!(t.permutations.len(), 2);
        let p = &t.permutations[0];
        assert_eq!(p.boxes.len(), 3);
        let b1 = &p.boxes[1];
        assert_eq!((b1.session, b1.step.as_str()), (1, "b1"));
        assert!(b1.waited_us.is_some());
        assert_eq!(b1.blocked_by, vec![s("a")]);
        assert_eq!(b1.errors, vec![s("ERROR:  boom")]);
        assert!(b1.end_us.is_some());
        // Lines: 0 Parsed, 1 blank, 2 starting, 3 a1, 4 b1 waiting, 5 a2,
        // 6 b1 completed, 7 ERROR.
        assert_eq!(b1.lines, vec![4, 6, 7]);
        assert_eq!(p.lines, (1, 8));
    }

    #[test]
    fn departure_points_at_the_permutation_line_or_the_step() {
        let with_perms = spec("session a step a1 {BEGIN} step a2 {COMMIT}\nsession b step b1 {LOCK t}\npermutation a1 b1 a2\npermutation b1 a1 a2\n");
        let mut r = Recorder::new(&with_perms);
        let text = feed(&mut r, &events());
        let first = |line: usize| FirstChange {
            expected_line: line,
            actual_line: line,
            expected: Some(s("x")),
            actual: text.lines().nth(line).map(str::to_string),
            missing: false,
        };
        let d = r.departure(&with_perms, 2, &first(7));
        assert_eq!(
            (d.line, d.permutation, d.step.as_deref()),
            (3, Some(1), Some("b1"))
        );
        assert_eq!(d.permutation_steps, vec![s("a1"), s("b1"), s("a2")]);
        assert_eq!(d.actual.as_deref(), Some("ERROR:  boom"));
        // Second permutation's line.
        let d = r.departure(&with_perms, 2, &first(10));
        assert_eq!((d.line, d.permutation), (4, Some(2)));
        // Past the end: the last origin.
        assert_eq!(r.departure(&with_perms, 2, &first(99)).line, 4);

        // Without permutation lines: the step's definition.
        let all =
            spec("session a\nstep a1 {BEGIN}\nstep a2 {COMMIT}\nsession b\nstep b1 {LOCK t}\n");
        let mut r = Recorder::new(&all);
        feed(&mut r, &events());
        let d = r.departure(&all, 3, &first(4));
        assert_eq!((d.line, d.col, d.step.as_deref()), (5, 6, Some("b1")));
        let d = r.departure(&all, 3, &first(0));
        assert_eq!((d.line, d.step), (1, None));
    }

    #[test]
    fn a_notice_printed_before_its_step_belongs_to_that_step() {
        let sp =
            spec("session a\nstep a1 {BEGIN}\nstep a2 {COMMIT}\nsession b\nstep b1 {LOCK t}\n");
        let mut r = Recorder::new(&sp);
        let text = feed(
            &mut r,
            &[
                Event::PermutationStart {
                    index: 0,
                    steps: vec![s("a1"), s("b1"), s("a2")],
                },
                Event::StepLaunched {
                    session: s("a"),
                    step: s("a1"),
                    sql: s("BEGIN"),
                },
                Event::StepTimings {
                    step: s("a1"),
                    micros: 5,
                },
                Event::Notice {
                    session: s("b"),
                    text: s("NOTICE:  from b1\n"),
                },
                Event::StepLaunched {
                    session: s("b"),
                    step: s("b1"),
                    sql: s("LOCK t"),
                },
                Event::StepTimings {
                    step: s("b1"),
                    micros: 5,
                },
            ],
        );
        // Lines: 0 blank, 1 starting, 2 a1, 3 the notice, 4 b1.
        assert_eq!(text.lines().nth(3), Some("b: NOTICE:  from b1"));
        let first = FirstChange {
            expected_line: 3,
            actual_line: 3,
            ..Default::default()
        };
        let d = r.departure(&sp, 3, &first);
        assert_eq!((d.step.as_deref(), d.line), (Some("b1"), 5));
        let t = r.into_trace();
        let b1 = &t.permutations[0].boxes[1];
        assert_eq!(b1.notices, vec![s("b: NOTICE:  from b1")]);
        assert_eq!(b1.lines, vec![3, 4]);
    }

    #[test]
    fn a_missing_line_departs_where_the_gap_is() {
        let sp = spec("session a step a1 {BEGIN} step a2 {COMMIT}\nsession b step b1 {LOCK t}\npermutation a1 b1 a2\npermutation b1 a1 a2\n");
        let mut r = Recorder::new(&sp);
        feed(&mut r, &events());
        // The result lacks a line after its line 7 (ERROR of b1, the last
        // of permutation 1): the gap is in permutation 1, not in the
        // "starting permutation" line that follows it.
        let first = FirstChange {
            expected_line: 8,
            actual_line: 8,
            missing: true,
            ..Default::default()
        };
        let d = r.departure(&sp, 2, &first);
        assert_eq!(
            (d.line, d.permutation, d.step.as_deref()),
            (3, Some(1), Some("b1"))
        );
    }

    #[test]
    fn run_error_at_the_step_that_timed_out() {
        let sp =
            spec("session a\nstep a1 {BEGIN}\nstep a2 {COMMIT}\nsession b\nstep b1 {LOCK t}\n");
        let mut r = Recorder::new(&sp);
        let mut ev = events();
        ev.truncate(6);
        ev.push(Event::StepTimedOut {
            step: s("b1"),
            secs: 360,
            active: None,
        });
        feed(&mut r, &ev);
        let d = r.run_error(&sp, 3, "step b1 timed out");
        assert_eq!(d.kind, DepartureKind::RunError);
        assert_eq!(
            (d.line, d.step.as_deref(), d.session.as_deref()),
            (5, Some("b1"), Some("b"))
        );
    }
}
