//! Running a class's representative again, outside the walk: shrinking
//! it to the steps its outcome needs (`--shrink`), and recording the
//! representatives' timelines for a drawing (`--html`).

use super::classes::Outcome;
use super::observe::{observers, StepRows};
use super::space::Space;
use super::walk::{explore_options, psteps, run_batch, Plan};
use crate::executor::{run_spec, Event, ExecOptions};
use crate::pgwire::ConnParams;
use crate::spec::{CheckedSpec, CheckedStep};
use std::time::Duration;

/// What `shrink` shrinks: a class's representative and outcome, and the
/// uneventful interleaving its observers are told apart from.
#[derive(Debug, Clone, Copy)]
pub struct ShrinkTarget<'a> {
    pub interleaving: &'a [usize],
    /// None: the serial interleaving (each session's steps in turn).
    pub baseline: Option<&'a [usize]>,
    pub outcome: &'a Outcome,
}

/// Shrinks a class's representative: drops whole sessions (the last
/// first), then single steps (the last first), keeping each drop that
/// leaves the outcome as it was, so that what remains is a permutation
/// line with no step the outcome does not need.  Each candidate runs once.
///
/// Observers stay: a step that only reads and whose rows in the
/// representative differ from its rows in `baseline` (an uneventful
/// interleaving, the serial one where the walk found none) shows what the
/// outcome is about, so neither it nor its session is dropped, and a
/// candidate must leave each observer showing something other than the
/// baseline's rows.
///
/// A session's last step (its COMMIT or ROLLBACK, as a rule) is dropped
/// only with the whole session: a transaction left open would hold its
/// locks into the teardown.  Candidates run with a step timeout of at most
/// 10 s; a candidate that cannot run its setup ends the shrinking with
/// what was found so far.
pub async fn shrink(
    spec: &CheckedSpec,
    params: &ConnParams,
    exec: &ExecOptions,
    stop: Option<&crate::stop::StopSignal>,
    plan: &Plan,
    target: ShrinkTarget<'_>,
) -> Vec<CheckedStep> {
    let ShrinkTarget {
        interleaving,
        baseline,
        outcome,
    } = target;
    let sessions = spec.spec.sessions.len();
    let mut opts = explore_options(exec, plan);
    opts.step_timeout = opts.step_timeout.min(Duration::from_secs(10));
    let mut current = psteps(interleaving, sessions);
    let n = plan.outcomes.len();
    // The observers, from one run of the representative and one of the
    // baseline (none where either cannot run as it did in the walk).
    let steps: Vec<(&str, &str)> = spec
        .spec
        .sessions
        .iter()
        .flat_map(|s| s.steps.iter().map(|st| (st.name.as_str(), st.sql.as_str())))
        .collect();
    let serial: Vec<usize> = spec
        .spec
        .sessions
        .iter()
        .enumerate()
        .flat_map(|(i, s)| std::iter::repeat_n(i, s.steps.len()))
        .collect();
    let baseline = baseline.unwrap_or(&serial);
    let mut base_rows = StepRows::new();
    let mut watched: Vec<String> = Vec::new();
    if steps
        .iter()
        .any(|(_, sql)| crate::spec::sql::read_only(sql))
    {
        let perms = vec![current.clone(), psteps(baseline, sessions)];
        let (res, mut fold) = run_batch(spec, params, &opts, stop, n, perms, true).await;
        if res.is_ok() && fold.rows.len() == 2 && fold.setup_failed.is_none() {
            let base_outcome = &fold.outcomes[1].0;
            if matches!(fold.outcomes.first(), Some((o, false)) if o == outcome)
                && base_outcome.violated.is_empty()
            {
                base_rows = fold.rows.pop().expect("two runs");
                let shown = fold.rows.pop().expect("two runs");
                watched = observers(steps.iter().copied(), &shown, &base_rows);
            }
        }
    }
    let step_name = |p: &CheckedStep| spec.spec.sessions[p.session].steps[p.step].name.as_str();
    let watched_ref = &watched;
    let base_ref = &base_rows;
    // Some(keeps the outcome); None: the candidate could not run at all.
    let keeps = |cand: Vec<CheckedStep>| {
        let opts = &opts;
        async move {
            let observe = !watched_ref.is_empty();
            let (res, fold) = run_batch(spec, params, opts, stop, n, vec![cand], observe).await;
            if fold.setup_failed.is_some() {
                return None;
            }
            let shows = |rows: Option<&StepRows>| {
                watched_ref.iter().all(|w| {
                    matches!((rows.and_then(|r| r.get(w)), base_ref.get(w)), (Some(a), Some(b)) if a != b)
                })
            };
            Some(
                res.is_ok()
                    && matches!(fold.outcomes.first(), Some((o, false)) if o == outcome)
                    && (!observe || shows(fold.rows.first())),
            )
        }
    };
    for s in (0..sessions).rev() {
        if current
            .iter()
            .any(|p| p.session == s && watched.iter().any(|w| w == step_name(p)))
        {
            continue;
        }
        let cand: Vec<CheckedStep> = current.iter().filter(|p| p.session != s).cloned().collect();
        if cand.is_empty() || cand.len() == current.len() {
            continue;
        }
        match keeps(cand.clone()).await {
            Some(true) => current = cand,
            Some(false) => {}
            None => return current,
        }
    }
    let mut i = current.len();
    while i > 0 && current.len() > 1 {
        i -= 1;
        let session = current[i].session;
        if !current[i + 1..].iter().any(|p| p.session == session)
            || watched.iter().any(|w| w == step_name(&current[i]))
            || brackets(&spec.spec.sessions[session].steps[current[i].step].sql)
        {
            continue;
        }
        let mut cand = current.clone();
        cand.remove(i);
        match keeps(cand.clone()).await {
            Some(true) => current = cand,
            Some(false) => {}
            None => return current,
        }
    }
    current
}

/// Whether a step opens or ends a transaction (BEGIN, START TRANSACTION,
/// COMMIT, ROLLBACK, END, ABORT, PREPARE TRANSACTION): shrinking keeps
/// such steps, so that it never drops a session's BEGIN and keeps its
/// COMMIT ("there is no transaction in progress") or the reverse.
fn brackets(sql: &str) -> bool {
    sql.split(';').any(|stmt| {
        let words: Vec<String> = stmt
            .split_whitespace()
            .take(2)
            .map(str::to_ascii_uppercase)
            .collect();
        let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        match w(0) {
            "BEGIN" | "COMMIT" | "END" | "ABORT" => w(1) != "PREPARED",
            "START" | "PREPARE" => w(1) == "TRANSACTION",
            "ROLLBACK" => !matches!(w(1), "TO" | "PREPARED"),
            _ => false,
        }
    })
}

/// Runs the interleavings `indices` once more, as permutations in that
/// order, recording their timelines (with blockers) for a drawing: the
/// representatives of an exploration's classes (`--html`).
pub async fn trace(
    spec: &CheckedSpec,
    params: &ConnParams,
    exec: &ExecOptions,
    stop: Option<&crate::stop::StopSignal>,
    plan: &Plan,
    indices: &[u128],
) -> Result<crate::outcome::SpecTrace, String> {
    let sessions = spec.spec.sessions.len();
    let space = Space::of(spec);
    let mut batch_spec = spec.clone();
    batch_spec.permutations = indices
        .iter()
        .filter_map(|&i| space.nth(i))
        .map(|il| psteps(&il, sessions))
        .collect();
    batch_spec.warnings.clear();
    let mut opts = explore_options(exec, plan);
    opts.blockers_on_wait = true;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut recorder = crate::timeline::Recorder::new(spec);
    let collect = async {
        let mut text = String::new();
        let mut piece = String::new();
        while let Some(ev) = rx.recv().await {
            piece.clear();
            crate::transcript::render(&ev, &mut piece);
            recorder.record(&ev, &piece);
            text.push_str(&piece);
        }
        text
    };
    let (res, text) = tokio::join!(
        run_spec(
            &batch_spec,
            params,
            opts,
            crate::executor::ExecRuntime {
                stop: stop.cloned(),
                ..Default::default()
            },
            tx,
        ),
        collect
    );
    res.map_err(|e| e.to_string())?;
    let mut trace = recorder.into_trace();
    trace.actual = text;
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_brackets_are_recognised() {
        for yes in [
            "BEGIN;",
            "begin isolation level serializable",
            "START TRANSACTION",
            "COMMIT",
            "ROLLBACK;",
            "END",
            "SELECT 1; COMMIT;",
            "PREPARE TRANSACTION 'x'",
        ] {
            assert!(brackets(yes), "{yes}");
        }
        for no in [
            "SELECT 1",
            "ROLLBACK TO a",
            "COMMIT PREPARED 'x'",
            "ROLLBACK PREPARED 'x'",
            "SAVEPOINT a",
            "UPDATE t SET begin = 1",
        ] {
            assert!(!brackets(no), "{no}");
        }
    }
}
