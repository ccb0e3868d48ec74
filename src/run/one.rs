//! One spec, once: read and check it, run it through the executor in a
//! database, write `results/NAME.out` (and `NAME.waits`), and compare it
//! with the expected files.

use super::{Events, RunConfig, RunError, Runtime};
use crate::differ::{compare, Comparison};
use crate::executor::{run_spec, Event, SpecError};
use crate::outcome::{Departure, DepartureKind, Status, StepTiming, TestOutcome, Violation};
use crate::pgwire::ConnParams;
use crate::run::TestCase;
use crate::spec::{CheckedSpec, Pos};
use crate::timeline::{self, Recorder};
use crate::transcript;
use std::path::Path;
use std::time::{Duration, Instant};

/// Session parameters that pg_regress sets through the environment.
pub fn session_params(base: &ConnParams, dbname: &str, test: &str) -> ConnParams {
    let mut p = base.clone();
    p.dbname = dbname.to_string();
    p.application_name = Some(format!("isolation/{test}"));
    let mut opts = p.options.clone().unwrap_or_default();
    if !opts.is_empty() {
        opts.push(' ');
    }
    opts.push_str("-c intervalstyle=postgres_verbose");
    p.options = Some(opts);
    p.extra.retain(|(k, _)| k != "datestyle" && k != "timezone");
    p.extra.push(("datestyle".into(), "Postgres, MDY".into()));
    p.extra
        .push(("timezone".into(), "America/Los_Angeles".into()));
    p
}

/// What one run of one spec produced.
pub(super) struct SpecRun {
    pub outcome: TestOutcome,
    pub transcript: String,
    pub diff: Option<String>,
}

impl SpecRun {
    /// A spec that was not started (the run was interrupted first).
    fn not_run(t: &TestCase) -> SpecRun {
        SpecRun {
            outcome: TestOutcome::new(
                &t.name,
                Status::NotRun("interrupted".into()),
                Duration::ZERO,
                0,
            ),
            transcript: String::new(),
            diff: None,
        }
    }
}

/// A spec as read, parsed and checked once (an error names file:line:col,
/// and its first position).
pub(super) type Loaded = Result<std::sync::Arc<CheckedSpec>, (String, Option<Pos>)>;

/// The invariants a run checks for a spec, with their lines: `--invariant`
/// (no line) and the spec's own, each once.
fn invariants_of(cfg: &RunConfig, spec: &CheckedSpec) -> Vec<(String, Option<u32>)> {
    let Some(extra) = &cfg.invariants else {
        return Vec::new();
    };
    let opts = &spec.spec.options;
    let mut all: Vec<(String, Option<u32>)> = opts
        .invariants
        .iter()
        .enumerate()
        .map(|(i, sql)| (sql.clone(), opts.invariant_pos.get(i).map(|p| p.line)))
        .collect();
    for sql in extra {
        if !all.iter().any(|(s, _)| s == sql) {
            all.push((sql.clone(), None));
        }
    }
    all
}

/// What an invariant returned instead of true (one row, one column, `t`),
/// or None when it held.
fn violated(rows: &Result<Vec<Vec<Option<String>>>, String>) -> Option<String> {
    match rows {
        Err(e) => Some(format!("an error ({e})")),
        Ok(r) if r.is_empty() => Some("no rows".into()),
        Ok(r) if r.len() > 1 => Some(format!("{} rows", r.len())),
        Ok(r) => match r[0].first() {
            Some(Some(v)) if v == "t" && r[0].len() == 1 => None,
            Some(Some(v)) if v == "f" && r[0].len() == 1 => Some("false".into()),
            Some(None) if r[0].len() == 1 => Some("NULL".into()),
            _ => Some(format!(
                "({})",
                r[0].iter()
                    .map(|c| c.as_deref().unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
    }
}

/// Where a spec whose transcript matched departs: at the first violated
/// invariant's line.
pub(super) fn invariant_departure(v: &Violation) -> Departure {
    Departure {
        kind: if v.anomaly {
            DepartureKind::Anomaly
        } else {
            DepartureKind::Invariant
        },
        line: v.line.unwrap_or(1),
        col: 1,
        permutation: Some(v.permutation),
        permutations: v.permutations,
        permutation_steps: v.steps.clone(),
        step: None,
        session: None,
        expected: Some(if v.anomaly {
            v.invariant.clone()
        } else {
            format!("{} returns true", v.invariant)
        }),
        actual: Some(if v.anomaly {
            v.got.clone()
        } else {
            format!("it returned {}", v.got)
        }),
        expected_line: 0,
        actual_line: 0,
    }
}

/// What an anomaly found by `# isospec: anomalies` stands in for.
const ANOMALY: &str = "some serial order of the committed transactions gives the same outcome";

/// Reads, parses and checks a spec.
pub(super) fn load_spec(t: &TestCase) -> Loaded {
    crate::spec::load(&t.spec_path)
        .map(std::sync::Arc::new)
        .map_err(|e| (e.to_string(), e.position()))
}

/// Where a spec runs: the server, the database, and the CPU its lane and
/// backends are bound to (`-j` with pinning).
#[derive(Clone, Copy)]
pub(super) struct Place<'a> {
    pub params: &'a ConnParams,
    pub db: &'a str,
    pub pin: Option<(i32, usize)>,
}

/// Runs one test case, loaded as `loaded`, at `place`; writes
/// results/NAME.out.
pub(super) async fn run_one(
    cfg: &RunConfig,
    rt: &Runtime,
    place: Place<'_>,
    t: &TestCase,
    loaded: Loaded,
    events: &Events,
) -> Result<SpecRun, RunError> {
    let Place { params, db, pin } = place;
    if rt.interrupted() {
        return Ok(SpecRun::not_run(t));
    }
    let start = Instant::now();
    let result_path = cfg
        .outputdir
        .join("results")
        .join(format!("{}.out", t.name));
    let waits_path = result_path.with_extension("waits");
    let checked = match loaded {
        Ok(c) => c,
        Err((msg, pos)) => {
            let _ = std::fs::write(&result_path, format!("{msg}\n"));
            let mut outcome =
                TestOutcome::new(&t.name, Status::BadSpec(msg.clone()), start.elapsed(), 0);
            outcome.spec = Some(t.spec_path.clone());
            outcome.result_file = Some(result_path.clone());
            let first = msg.lines().next().unwrap_or_default();
            // The message without its "file:line:col: error: " prefix.
            let short = first.split_once(": error: ").map_or(first, |(_, m)| m);
            outcome.departure = Some(Box::new(timeline::bad_spec(pos.unwrap_or_default(), short)));
            return Ok(SpecRun {
                outcome,
                transcript: msg,
                diff: None,
            });
        }
    };
    let permutations = checked.permutation_count();
    let sp = session_params(params, db, &t.name);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let (mut exec_opts, exec_rt) = rt.exec_for(cfg, pin);
    exec_opts.blockers_on_wait = cfg.trace;
    // The invariants, run on the control connection after each
    // permutation's steps (as explore runs them); their rows are no part
    // of the transcript.
    let invariants = invariants_of(cfg, &checked);
    // `# isospec: anomalies`: the final state is read first, and each
    // permutation's outcome kept for its check against serial orders.
    let checker = cfg
        .serial_check
        .as_ref()
        .filter(|_| checked.spec.options.anomalies);
    exec_opts.after_steps = checker.map_or(Vec::new(), |c| c.0.finals(&checked));
    let n_finals = exec_opts.after_steps.len();
    let mut seen: Option<Vec<Event>> = checker.map(|_| Vec::new());
    exec_opts
        .after_steps
        .extend(invariants.iter().map(|(sql, _)| sql.clone()));
    let check_opts = exec_opts.clone();
    let stop = exec_rt.stop.clone();
    let name = t.name.clone();
    let mut recorder = Recorder::new(&checked);
    let collect = async {
        let mut text = String::new();
        let mut piece = String::new();
        let mut steps = Vec::new();
        let mut waits = String::new();
        let mut violations = Vec::new();
        let mut perm: Option<(usize, Vec<String>)> = None;
        let mut ran: Vec<(usize, Vec<String>)> = Vec::new();
        let mut after = 0;
        while let Some(ev) = rx.recv().await {
            if let Some(seen) = seen.as_mut() {
                seen.push(ev.clone());
            }
            match &ev {
                Event::PermutationStart { index, steps } => {
                    perm = Some((*index, steps.clone()));
                    ran.push((*index, steps.clone()));
                    after = 0;
                }
                Event::AfterSteps { .. } if after < n_finals => after += 1,
                Event::AfterSteps { rows } => {
                    if let Some(got) = violated(rows) {
                        let (sql, line) = invariants
                            .get(after - n_finals)
                            .cloned()
                            .unwrap_or_default();
                        let (index, steps) = perm.clone().unwrap_or_default();
                        violations.push(Violation {
                            invariant: sql,
                            line,
                            permutation: index + 1,
                            permutations,
                            steps,
                            got,
                            known: checked.spec.options.known_violations,
                            anomaly: false,
                        });
                    }
                    after += 1;
                }
                Event::StepTimings { step, micros } => steps.push(StepTiming {
                    step: step.clone(),
                    micros: *micros,
                }),
                Event::WaitGraph { graph, .. } => waits.push_str(&transcript::wait_graph(graph)),
                _ => {}
            }
            if let Some(d) = transcript::diagnostic(&ev) {
                events.diagnostic(&name, d);
            }
            piece.clear();
            transcript::render(&ev, &mut piece);
            recorder.record(&ev, &piece);
            text.push_str(&piece);
        }
        (text, steps, waits, violations, ran)
    };
    let (res, (text, steps, waits, mut violations, ran)) =
        tokio::join!(run_spec(&checked, &sp, exec_opts, exec_rt, tx), collect);
    if let (Some(c), Some(seen)) = (checker.filter(|_| res.is_ok()), seen) {
        let found =
            c.0.anomalies(&checked, &sp, &check_opts, stop.as_ref(), seen);
        for (index, got) in found.await {
            violations.push(Violation {
                invariant: ANOMALY.to_string(),
                line: checked.spec.permutations.get(index).map(|p| p.pos.line),
                permutation: index + 1,
                permutations,
                steps: ran
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default(),
                got,
                known: checked.spec.options.known_violations,
                anomaly: true,
            });
        }
    }
    if matches!(res, Err(SpecError::NotStarted)) {
        return Ok(SpecRun::not_run(t));
    }
    let output = |path: &Path| {
        let path = path.display().to_string();
        move |source| RunError::Output { path, source }
    };
    std::fs::write(&result_path, &text).map_err(output(&result_path))?;
    // The wait graphs of steps that ran long, beside the transcript (they
    // are not part of isolationtester's transcript).
    if waits.is_empty() {
        let _ = std::fs::remove_file(&waits_path);
    } else {
        std::fs::write(&waits_path, &waits).map_err(output(&waits_path))?;
    }
    let comparison = compare(&t.expected_dir, &t.name, &text, &result_path);
    let mut diff = None;
    let mut departure = None;
    let mut closest = None;
    let status = match (comparison, res) {
        // isolationtester stops the same way, and the expected file says so.
        (Ok(Comparison::Match(_)), _) => Status::Ok,
        (
            Ok(Comparison::Differs {
                diff: d,
                closest: c,
                ..
            }),
            Err(e),
        ) => {
            diff = Some(d);
            closest = Some(c);
            departure = Some(recorder.run_error(&checked, permutations, &e.to_string()));
            Status::RunError(format!("{}: {e}", t.name))
        }
        (_, Err(e)) => {
            departure = Some(recorder.run_error(&checked, permutations, &e.to_string()));
            Status::RunError(format!("{}: {e}", t.name))
        }
        (
            Ok(Comparison::Differs {
                diff: d,
                closest: c,
                first,
                ..
            }),
            Ok(()),
        ) => {
            diff = Some(d);
            closest = Some(c);
            departure = Some(recorder.departure(&checked, permutations, &first));
            Status::Failed
        }
        (Ok(Comparison::NoExpected), Ok(())) => Status::New,
        (Err(e), Ok(())) => Status::RunError(format!("could not read expected output: {e}")),
    };
    if let Some(d) = diff.as_mut().filter(|_| !waits.is_empty()) {
        d.push_str(&format!(
            "wait graphs of the steps of {} that ran long: {}\n",
            t.name,
            waits_path.display()
        ));
    }
    let mut outcome = TestOutcome::new(&t.name, status, start.elapsed(), permutations);
    outcome.steps = steps;
    outcome.spec = Some(t.spec_path.clone());
    outcome.result_file = Some(result_path.clone());
    if departure.is_none() {
        departure = violations
            .iter()
            .find(|v| !v.known)
            .map(invariant_departure);
    }
    outcome.departure = departure.map(Box::new);
    outcome.violations = violations;
    if cfg.trace {
        let mut trace = recorder.into_trace();
        trace.actual = text.clone();
        if let Some(c) = closest {
            trace.expected = std::fs::read(&c)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            trace.expected_file = Some(c);
        }
        outcome.trace = Some(std::sync::Arc::new(trace));
    }
    Ok(SpecRun {
        outcome,
        transcript: text,
        diff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_params_like_pg_regress() {
        let mut base = ConnParams::local("/tmp".into(), 1, "u", "postgres");
        base.options = Some("-c work_mem=1MB".into());
        let p = session_params(&base, "isolation_regression", "t1");
        assert_eq!(p.application_name.as_deref(), Some("isolation/t1"));
        assert_eq!(
            p.options.as_deref(),
            Some("-c work_mem=1MB -c intervalstyle=postgres_verbose")
        );
        assert!(p
            .extra
            .contains(&("timezone".into(), "America/Los_Angeles".into())));
    }
}
