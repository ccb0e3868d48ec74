//! Output formatting: turns executor events into isolationtester's
//! transcript text, byte for byte, including libpq's PQprint table layout
//! and every message isolationtester writes to stderr (which
//! pg_isolation_regress captures into the transcript); also the text of
//! what isospec says beside the transcript (wait graphs, diagnostics).

use crate::executor::{Event, WaitGraph, Who};
use crate::pgwire::Tuples;

/// Appends the transcript text of one event.
pub fn render(event: &Event, out: &mut String) {
    match event {
        Event::SpecWarning(w) => {
            out.push_str(w);
            out.push('\n');
        }
        Event::Parsed { sessions } => {
            out.push_str(&format!("Parsed test spec with {sessions} sessions\n"))
        }
        Event::ConnectFailed { index, message } => {
            out.push_str(&format!("Connection {index} failed: {message}"))
        }
        Event::AppNameFailed { message } => {
            out.push_str(&format!("setting of application name failed: {message}"))
        }
        Event::PrepareWaitFailed { message } => {
            out.push_str(&format!("prepare of lock wait query failed: {message}"))
        }
        Event::PermutationStart { steps, .. } => {
            out.push_str("\nstarting permutation:");
            for s in steps {
                out.push(' ');
                out.push_str(s);
            }
            out.push('\n');
        }
        Event::SetupFailed { session, message } => match session {
            None => out.push_str(&format!("setup failed: {message}")),
            Some(s) => out.push_str(&format!("setup of session {s} failed: {message}")),
        },
        Event::StepLaunched { step, sql, .. } => out.push_str(&format!("step {step}: {sql}\n")),
        Event::StepWaiting { step, sql, .. } => {
            out.push_str(&format!("step {step}: {sql} <waiting ...>\n"))
        }
        Event::StepCompleted { step, .. } => {
            out.push_str(&format!("step {step}: <... completed>\n"))
        }
        Event::Tuples(t) => print_tuples(t, out),
        Event::StepError { text, .. } => {
            out.push_str(text);
            out.push('\n');
        }
        Event::UnexpectedStatus(status) => {
            out.push_str(&format!("unexpected result status: {status}\n"))
        }
        Event::Notice { session, text } => {
            out.push_str(session);
            out.push_str(": ");
            out.push_str(text);
        }
        Event::Notify {
            session,
            channel,
            payload,
            sender,
        } => out.push_str(&format!(
            "{session}: NOTIFY \"{channel}\" with payload \"{payload}\" from {sender}\n"
        )),
        Event::Canceling { step, secs } => out.push_str(&format!(
            "isolationtester: canceling step {step} after {secs} seconds\n"
        )),
        Event::CancelFailed { message } => out.push_str(&format!("PQcancel failed: {message}")),
        Event::SendFailed { step, message } => {
            out.push_str(&format!("failed to send query for step {step}: {message}"))
        }
        Event::WaitQueryFailed { message } => {
            out.push_str(&format!("lock wait query failed: {message}"))
        }
        Event::StepTimedOut { step, secs, active } => {
            out.push_str(&format!("step {step} timed out after {secs} seconds\n"));
            if let Some(active) = active {
                out.push_str("active steps are:");
                for a in active {
                    out.push(' ');
                    out.push_str(a);
                }
                out.push('\n');
            }
        }
        Event::MutuallyBlocking => {
            out.push_str("failed to complete permutation due to mutually-blocking steps\n")
        }
        Event::TeardownCanceling { session, secs } => {
            let what = session
                .as_ref()
                .map_or("the spec".to_string(), |s| format!("session {s}"));
            out.push_str(&format!(
                "teardown of {what} did not finish within {secs} seconds; canceling it\n"
            ))
        }
        Event::TeardownGraceEnded { session } => {
            let what = session
                .as_ref()
                .map_or("the spec".to_string(), |s| format!("session {s}"));
            out.push_str(&format!(
                "isospec: teardown of {what} did not finish within the grace period; canceling it\n"
            ))
        }
        Event::SessionsTerminated { sessions } => out.push_str(&if sessions.len() == 1 {
            format!(
                "isospec: interrupted: session {} did not end its transaction in time; its backend was terminated\n",
                sessions[0]
            )
        } else {
            format!(
                "isospec: interrupted: sessions {} did not end their transactions in time; their backends were terminated\n",
                sessions.join(", ")
            )
        }),
        Event::TeardownFailed { session, message } => match session {
            None => out.push_str(&format!("teardown failed: {message}")),
            Some(s) => out.push_str(&format!("teardown of session {s} failed: {message}")),
        },
        Event::Interrupted { running, teardown } => {
            if !*teardown {
                out.push_str("isospec: interrupted between permutations\n");
            } else if running.is_empty() {
                out.push_str("isospec: interrupted: running the teardown\n");
            } else {
                out.push_str(&format!(
                    "isospec: interrupted: canceling the running steps of session {}, running the teardown\n",
                    running.join(", ")
                ));
            }
        }
        Event::WaitGraph {
            graph,
            in_transcript,
        } => {
            if *in_transcript {
                out.push_str(&wait_graph(graph));
            }
        }
        Event::StepTimings { .. }
        | Event::BlockedBy { .. }
        | Event::AfterSteps { .. }
        | Event::Unrealizable { .. }
        | Event::SlowStep { .. }
        | Event::ConnectionLost { .. }
        | Event::PreparedRolledBack { .. } => {}
    }
}

/// What isospec says about an event beside the transcript (on stderr), if
/// anything: a slow step, a wait graph, cleanup done after the spec.
pub fn diagnostic(event: &Event) -> Option<String> {
    match event {
        Event::SlowStep {
            session,
            step,
            secs,
        } => Some(format!(
            "step {step} of session {session} has been running for {secs} s"
        )),
        Event::WaitGraph { graph, .. } => Some(wait_graph(graph)),
        Event::ConnectionLost {
            session,
            step,
            server,
        } => Some(format!(
            "session {session} lost its connection to {server} during step {step}"
        )),
        Event::PreparedRolledBack { gid, error: None } => Some(format!(
            "rolled back prepared transaction \"{gid}\" that the spec left behind"
        )),
        Event::PreparedRolledBack {
            gid,
            error: Some(e),
        } => Some(format!(
            "could not roll back prepared transaction \"{gid}\": {e}"
        )),
        _ => None,
    }
}

fn who(w: &Who) -> String {
    match w {
        Who::Session { name, pid } => format!("{name} (pid {pid})"),
        Who::Pid(pid) => format!("pid {pid}"),
        Who::PreparedTransaction => "a prepared transaction".to_string(),
    }
}

/// A wait graph as text: one line per session, then the locks involved.
pub fn wait_graph(g: &WaitGraph) -> String {
    let mut text = format!(
        "wait graph for step {} of session {} after {} seconds:\n",
        g.step, g.session, g.secs
    );
    for r in &g.sessions {
        let blocked = if r.blocked_by.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = r.blocked_by.iter().map(who).collect();
            format!(", blocked by {}", names.join(", "))
        };
        text.push_str(&format!(
            "  {}: {}, waiting on {}{}: {}\n",
            who(&r.who),
            r.state,
            r.wait_event,
            blocked,
            r.query
        ));
    }
    if !g.locks.is_empty() {
        text.push_str("  locks involved:\n");
    }
    for l in &g.locks {
        let state = if l.granted { "holds" } else { "waits for" };
        text.push_str(&format!(
            "    {} {state} {} on {} {}\n",
            who(&l.who),
            l.mode,
            l.locktype,
            l.object
        ));
    }
    text
}

/// Renders a whole event list (the golden test's).
#[cfg(test)]
pub fn render_all(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        render(e, &mut out);
    }
    out
}

/// libpq's PQprint with `header`, `align` and `fieldSep = "|"`, as
/// isolationtester calls it.  Widths are in bytes, like printf's `%-*s`.
pub fn print_tuples(t: &Tuples, out: &mut String) {
    let n = t.columns.len();
    if n == 0 {
        return;
    }
    let mut max: Vec<usize> = t.columns.iter().map(|c| c.len()).collect();
    let mut not_num = vec![false; n];
    for row in &t.rows {
        for (j, v) in row.iter().enumerate().take(n) {
            let Some(v) = v.as_deref() else { continue };
            if v.is_empty() {
                continue;
            }
            if !not_num[j] {
                let b = v.as_bytes();
                let bad = b.iter().any(|&c| {
                    !(c.is_ascii_digit() || matches!(c, b'.' | b'E' | b'e' | b' ' | b'-'))
                });
                let last = *b.last().unwrap_or(&b'0');
                if bad || b[0] == b'E' || b[0] == b'e' || !last.is_ascii_digit() {
                    not_num[j] = true;
                }
            }
            max[j] = max[j].max(v.len());
        }
    }
    let pad = |out: &mut String, s: &str, width: usize, left: bool| {
        let fill = width.saturating_sub(s.len());
        if left {
            out.push_str(s);
            out.extend(std::iter::repeat_n(' ', fill));
        } else {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(s);
        }
    };
    for (j, c) in t.columns.iter().enumerate() {
        pad(out, c, max[j], not_num[j]);
        if j + 1 < n {
            out.push('|');
        }
    }
    out.push('\n');
    let border: Vec<String> = max.iter().map(|&m| "-".repeat(m)).collect();
    out.push_str(&border.join("+"));
    out.push('\n');
    for row in &t.rows {
        for j in 0..n {
            let v = row.get(j).and_then(|v| v.as_deref()).unwrap_or("");
            pad(out, v, max[j], not_num[j]);
            if j + 1 < n {
                out.push('|');
            }
        }
        out.push('\n');
    }
    let rows = t.rows.len();
    out.push_str(&format!(
        "({} row{})\n\n",
        rows,
        if rows == 1 { "" } else { "s" }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{LockRow, WaitRow};

    fn graph() -> WaitGraph {
        let s1 = Who::Session {
            name: "s1".into(),
            pid: "101".into(),
        };
        let s2 = Who::Session {
            name: "s2".into(),
            pid: "102".into(),
        };
        WaitGraph {
            step: "s2lock".into(),
            session: "s2".into(),
            secs: 2,
            sessions: vec![
                WaitRow {
                    who: s1.clone(),
                    state: "idle in transaction".into(),
                    wait_event: "Client/ClientRead".into(),
                    blocked_by: vec![],
                    query: "BEGIN; LOCK t;".into(),
                },
                WaitRow {
                    who: s2.clone(),
                    state: "active".into(),
                    wait_event: "Lock/relation".into(),
                    blocked_by: vec![s1.clone(), Who::PreparedTransaction, Who::Pid("7".into())],
                    query: "BEGIN; LOCK t;".into(),
                },
            ],
            locks: vec![
                LockRow {
                    who: s1,
                    granted: true,
                    mode: "AccessExclusiveLock".into(),
                    locktype: "relation".into(),
                    object: "t".into(),
                },
                LockRow {
                    who: s2,
                    granted: false,
                    mode: "AccessExclusiveLock".into(),
                    locktype: "relation".into(),
                    object: "t".into(),
                },
            ],
        }
    }

    /// Every message the executor can report, rendered as isolationtester
    /// writes it; the golden file holds the exact bytes.
    #[test]
    fn every_message_renders_like_isolationtester() {
        let s = |x: &str| x.to_string();
        let err = s("ERROR:  relation \"t\" does not exist\n");
        let events = vec![
            Event::SpecWarning(s("unused step name: a2")),
            Event::Parsed { sessions: 2 },
            Event::ConnectFailed {
                index: 1,
                message: s("connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: No such file or directory\n"),
            },
            Event::AppNameFailed { message: err.clone() },
            Event::PrepareWaitFailed { message: err.clone() },
            Event::PermutationStart {
                index: 0,
                steps: vec![s("s1lock"), s("s2lock")],
            },
            Event::SetupFailed { session: None, message: err.clone() },
            Event::SetupFailed { session: Some(s("s1")), message: err.clone() },
            Event::StepLaunched { session: s("s1"), step: s("s1lock"), sql: s("BEGIN; LOCK t;") },
            Event::StepWaiting { session: s("s2"), step: s("s2lock"), sql: s("BEGIN; LOCK t;") },
            Event::WaitGraph { graph: graph(), in_transcript: false },
            Event::Canceling { step: s("s2lock"), secs: 2 },
            Event::WaitGraph { graph: graph(), in_transcript: true },
            Event::StepCompleted { session: s("s2"), step: s("s2lock") },
            Event::StepError { step: s("s2lock"), text: s("ERROR:  canceling statement due to user request"), sqlstate: Some(s("57014")) },
            Event::UnexpectedStatus(s("PGRES_COPY_OUT")),
            Event::Notice { session: s("s1"), text: s("NOTICE:  hello\n") },
            Event::Notify { session: s("s1"), channel: s("ch"), payload: s("p"), sender: s("s2") },
            Event::CancelFailed { message: s("could not send cancel request\n") },
            Event::SendFailed { step: s("s1lock"), message: s("server closed the connection unexpectedly\n") },
            Event::WaitQueryFailed { message: err.clone() },
            Event::StepTimedOut { step: s("s2lock"), secs: 4, active: None },
            Event::StepTimedOut { step: s("s2lock"), secs: 4, active: Some(vec![s("s1lock"), s("s2lock")]) },
            Event::MutuallyBlocking,
            Event::TeardownCanceling { session: Some(s("s1")), secs: 2 },
            Event::TeardownCanceling { session: None, secs: 2 },
            Event::TeardownGraceEnded { session: Some(s("s1")) },
            Event::SessionsTerminated { sessions: vec![s("s1"), s("s2")] },
            Event::TeardownFailed { session: Some(s("s1")), message: err.clone() },
            Event::TeardownFailed { session: None, message: err },
            Event::Interrupted { running: vec![s("s1"), s("s2")], teardown: true },
            Event::Interrupted { running: vec![], teardown: true },
            Event::Interrupted { running: vec![], teardown: false },
            Event::StepTimings { step: s("s1lock"), micros: 5 },
            Event::SlowStep { session: s("s2"), step: s("s2lock"), secs: 1 },
            Event::PreparedRolledBack { gid: s("g"), error: None },
        ];
        let got = render_all(&events);
        let golden = include_str!("../tests/golden/transcript-messages.out");
        assert_eq!(got, golden, "got:\n{got}");
        // Beside the transcript: diagnostics for stderr and results/NAME.waits.
        let notes: Vec<String> = events.iter().filter_map(diagnostic).collect();
        assert_eq!(notes.len(), 4);
        assert_eq!(notes[0], wait_graph(&graph()));
        assert_eq!(
            notes[2],
            "step s2lock of session s2 has been running for 1 s"
        );
        assert_eq!(
            notes[3],
            "rolled back prepared transaction \"g\" that the spec left behind"
        );
    }

    fn t(cols: &[&str], rows: &[&[Option<&str>]]) -> String {
        let tuples = Tuples {
            columns: cols.iter().map(|s| s.to_string()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(|s| s.to_string())).collect())
                .collect(),
        };
        let mut out = String::new();
        print_tuples(&tuples, &mut out);
        out
    }

    #[test]
    fn numeric_right_aligned_text_left_aligned() {
        assert_eq!(
            t(
                &["id", "name"],
                &[&[Some("1"), Some("a")], &[Some("100"), Some("bcd")]]
            ),
            " id|name\n---+----\n  1|a   \n100|bcd \n(2 rows)\n\n"
        );
    }

    #[test]
    fn single_row_and_null() {
        assert_eq!(t(&["x"], &[&[None]]), "x\n-\n \n(1 row)\n\n");
        assert_eq!(
            t(&["longname"], &[&[Some("-1.5e3")]]),
            "longname\n--------\n  -1.5e3\n(1 row)\n\n"
        );
    }

    #[test]
    fn numeric_rules_of_pqprint() {
        // Leading 'e' and a trailing non-digit are not numeric.
        assert_eq!(t(&["a"], &[&[Some("e1")]]), "a \n--\ne1\n(1 row)\n\n");
        assert_eq!(t(&["a"], &[&[Some("1.")]]), "a \n--\n1.\n(1 row)\n\n");
        // Empty strings don't count either way.
        assert_eq!(
            t(&["ab"], &[&[Some("")], &[Some("7")]]),
            "ab\n--\n  \n 7\n(2 rows)\n\n"
        );
        // t/f booleans are text.
        assert_eq!(t(&["ok"], &[&[Some("t")]]), "ok\n--\nt \n(1 row)\n\n");
    }

    #[test]
    fn zero_rows_and_zero_columns() {
        assert_eq!(t(&["a", "b"], &[]), "a|b\n-+-\n(0 rows)\n\n");
        assert_eq!(t(&[], &[&[]]), "");
    }

    #[test]
    fn width_in_bytes() {
        assert_eq!(t(&["é"], &[&[Some("x")]]), "é\n--\nx \n(1 row)\n\n");
    }
}
