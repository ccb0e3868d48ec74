//! Output formatting: turns executor events into isolationtester's
//! transcript text, byte for byte, including libpq's PQprint table layout.

use crate::executor::Event;
use crate::pgwire::Tuples;

/// Appends the transcript text of one event.
pub fn render(event: &Event, out: &mut String) {
    match event {
        Event::Stderr(text) => out.push_str(text),
        Event::Parsed { sessions } => {
            out.push_str(&format!("Parsed test spec with {sessions} sessions\n"))
        }
        Event::PermutationStart { steps, .. } => {
            out.push_str("\nstarting permutation:");
            for s in steps {
                out.push(' ');
                out.push_str(s);
            }
            out.push('\n');
        }
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
        Event::WaitGraph {
            text,
            in_transcript,
        } => {
            if *in_transcript {
                out.push_str(text);
            }
        }
        Event::StepTimings { .. } | Event::SlowStep { .. } | Event::Diagnostic(_) => {}
    }
}

/// Renders a whole event list.
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
