//! The recording as a spec: sessions with their startup settings, one step
//! per statement (or per transaction), the parameters inlined as literals,
//! comments where a statement could not become a step, and one
//! permutation line in the order the statements reached the server.

use super::lex::{block_comment_end, is_ident, line_comment_end};
use super::literal::{self, quote_string, TypeInfo};
use super::trace::{Log, Outcome, Stmt};
use crate::spec::quote_name;
use std::collections::HashMap;
use std::fmt::Write;

/// `--steps`: how statements become steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StepsMode {
    /// One step per statement.
    #[default]
    Statement,
    /// One step per transaction (BEGIN … COMMIT, or one autocommit statement).
    Transaction,
}

/// What goes around the recorded sessions.
pub struct Frame<'a> {
    pub command: &'a str,
    pub setup: Option<&'a str>,
    pub teardown: Option<&'a str>,
    pub steps: StepsMode,
}

/// The spec text, and the warnings (one per statement left out).
pub struct Written {
    pub text: String,
    pub warnings: Vec<String>,
    pub sessions: usize,
    pub steps: usize,
}

/// Replaces `$n` outside literals, quoted identifiers and comments.
pub fn inline_params(sql: &str, values: &[String]) -> Result<String, String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' => {
                let escapes = c == b'\''
                    && i > 0
                    && matches!(b[i - 1], b'E' | b'e')
                    && (i < 2 || !is_ident(b[i - 2]));
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => i = line_comment_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => i = block_comment_end(b, i),
            b'$' if i == 0 || !is_ident(b[i - 1]) => {
                let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits > 0 {
                    let n: usize = sql[i + 1..i + 1 + digits]
                        .parse()
                        .map_err(|_| format!("bad parameter number in {sql:?}"))?;
                    let v = values.get(n.wrapping_sub(1)).ok_or_else(|| {
                        format!(
                            "the statement names ${n} but {} parameter(s) were bound",
                            values.len()
                        )
                    })?;
                    out.push_str(&sql[last..i]);
                    out.push('(');
                    out.push_str(v);
                    out.push(')');
                    i += 1 + digits;
                    last = i;
                    continue;
                }
                // A dollar quote: $tag$ … $tag$.
                let tag_len = b[i + 1..]
                    .iter()
                    .take_while(|&&c| c != b'$' && is_ident(c))
                    .count();
                if b.get(i + 1 + tag_len) == Some(&b'$') {
                    let tag = &sql[i..i + tag_len + 2];
                    match sql[i + tag.len()..].find(tag) {
                        Some(k) => i += tag.len() + k + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// A statement's step text, or why it cannot be one.
fn step_sql(
    s: &Stmt,
    types: &HashMap<u32, TypeInfo>,
    k: usize,
    flows: &super::flow::Flows,
) -> Result<String, String> {
    if let Some(why) = &s.unrepresentable {
        return Err(format!("{why} cannot be replayed as a step"));
    }
    if s.canceled {
        return Err("it was canceled by a cancel request while it ran".into());
    }
    if s.outcome == Outcome::Running && !s.skipped {
        return Err("it was still running when its connection or the recording ended (the server may have completed it)".into());
    }
    let sql = if let Some(copy) = &s.copy {
        let sql = if s.extended {
            inline_params(&s.sql, &[])?
        } else {
            s.sql.clone()
        };
        super::copy::step(&sql, copy)?
    } else if s.extended {
        let mut values = Vec::with_capacity(s.params.len());
        for (i, p) in s.params.iter().enumerate() {
            let oid = s.oids.get(i).copied().unwrap_or(0);
            // A value received earlier in the session is read where it
            // was kept (see flow.rs), else written as the literal sent.
            values.push(match flows.uses.get(&(k, i)) {
                Some(expr) => expr.clone(),
                None => literal::literal(i + 1, p.value.as_deref(), p.binary, oid, types)
                    .map_err(|e| e.to_string())?,
            });
        }
        inline_params(&s.sql, &values)?
    } else {
        s.sql.clone()
    };
    // A `}` ends a step in the spec language: literals, quoted names and
    // comments holding one are spelled without it.
    let sql = super::braces::escape_braces(&sql)
        .map_err(|why| format!("{why}, and a '}}' ends a step in the spec language"))?;
    let trimmed = sql.trim().trim_end_matches(';').trim_end();
    if trimmed.is_empty() {
        return Err("it is empty".into());
    }
    let sql = match s.row_limit {
        // The client fetched only the first rows and let the rest go: a
        // query that only reads is replayed with that many rows.
        Some(n) if s.suspended => {
            if crate::spec::sql::read_only(trimmed) {
                let nl = if ends_in_comment(trimmed) { "\n" } else { "" };
                format!("SELECT * FROM ({trimmed}{nl}) AS fetched LIMIT {n}")
            } else {
                return Err(format!("an Execute with a row limit ({n} rows) whose remaining rows were never fetched, of a statement that writes, cannot be replayed as a step"));
            }
        }
        _ => trimmed.to_string(),
    };
    // Its result holds a value a later statement sends back: kept.
    let sql = match flows.sources.get(&k) {
        Some(cols) => super::flow::keep(&sql, cols),
        None => sql,
    };
    // A line comment at the end would swallow the `;` or `}` after it.
    Ok(if ends_in_comment(&sql) {
        format!("{sql}\n")
    } else {
        sql
    })
}

/// Whether the last line of `sql` may end in a `--` comment (conservative:
/// `--` inside a string on that line counts too).
fn ends_in_comment(sql: &str) -> bool {
    sql.lines().last().is_some_and(|l| l.contains("--"))
}

/// The name in `SET application_name = 'name'` (or TO), if that is the
/// statement and the name fits a spec's step names.
fn set_application_name(sql: &str) -> Option<String> {
    let t = sql.trim().trim_end_matches(';').trim_end();
    let lower = t.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("set ")
        .map(|r| {
            r.trim_start()
                .strip_prefix("session ")
                .unwrap_or(r)
                .trim_start()
        })?
        .strip_prefix("application_name")?
        .trim_start();
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix("to "))?
        .trim_start();
    let value = &t[t.len() - rest.len()..];
    let inner = value.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then(|| inner.to_string())
}

/// Encodes the order in which waiters got their locks.  Two statements
/// of different sessions that wait at the same time are queued one behind
/// the other, but a release that wakes both lets them race inside the
/// server to queue again (a tuple lock taken anew on the row's newest
/// version), so a replay that launched both before the release would give
/// the recorded winner only by chance.  A waiting statement is therefore
/// launched in the spec right after every other session's waiting
/// statement that completed while it was in flight: it then queues behind
/// those deterministically, and nothing else changes, since it waited all
/// along.  Only completions that succeeded count: a deadlock victim's
/// error came from the waits themselves.
fn queue_order(log: &Log, steps: &mut [(u64, String, Option<usize>)]) {
    for (key, _, first) in steps.iter_mut() {
        let Some(x) = first.map(|i| &log.stmts[i]) else {
            continue;
        };
        let Some(x_done) = x.finished.filter(|_| x.waited) else {
            continue;
        };
        let ahead = log
            .stmts
            .iter()
            .filter(|y| {
                y.session != x.session
                    && y.waited
                    && y.sent > 0
                    && matches!(y.outcome, Outcome::Done(_))
                    && y.finished.is_some_and(|f| f > x.sent && f < x_done)
            })
            .filter_map(|y| y.finished)
            .max();
        if let Some(f) = ahead {
            *key = (*key).max(f);
        }
    }
}

/// The first `max` characters of `sql` on one line, `…` when cut.
fn excerpt(sql: &str, max: usize) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &one[..at]),
        None => one,
    }
}

fn comment_lines(out: &mut String, text: &str) {
    for l in text.lines() {
        let _ = writeln!(out, "# {l}");
    }
}

/// The settings a session's setup restores: those of its startup packet,
/// then the reported DateStyle, IntervalStyle and TimeZone it did not set
/// (the server's defaults where it was recorded, which `run`, like
/// pg_regress, would otherwise replace).
fn session_settings(info: &super::trace::SessionInfo) -> Vec<(String, String)> {
    let mut out = info.settings.clone();
    for name in ["DateStyle", "IntervalStyle", "TimeZone"] {
        let given = out.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if let Some((_, v)) = info
            .reported
            .iter()
            .find(|(k, _)| k == name)
            .filter(|_| !given)
        {
            out.push((name.to_string(), v.clone()));
        }
    }
    out
}

/// A setting from the startup packet as a statement of the session's setup.
fn setting(name: &str, value: &str) -> Option<String> {
    match name.to_ascii_lowercase().as_str() {
        "application_name" | "fallback_application_name" => None,
        "client_encoding"
            if matches!(
                value
                    .to_ascii_lowercase()
                    .replace(['-', '_', '\''], "")
                    .as_str(),
                "utf8" | "unicode"
            ) =>
        {
            None
        }
        // A list setting whose items are identifiers takes a string as one
        // item in SET (GUC_LIST_QUOTE): set_config takes the list as sent.
        "search_path"
        | "temp_tablespaces"
        | "local_preload_libraries"
        | "session_preload_libraries" => Some(format!(
            "SELECT pg_catalog.set_config({}, {}, false)",
            quote_string(name),
            quote_string(value)
        )),
        _ => Some(format!(
            "SET {} TO {}",
            quote_name(name),
            quote_string(value)
        )),
    }
}

/// Writes the recording as a spec.
/// With no step (`steps` 0) the text is not a spec: the caller says why.
pub fn write(log: &Log, types: &HashMap<u32, TypeInfo>, frame: &Frame) -> Written {
    // Session names: unique application_names, else c1, c2, ...
    let mut counts: HashMap<&str, usize> = HashMap::new();
    // A session's name: its application_name, from the startup packet or
    // else from a `SET application_name` it ran (as pgjdbc does).
    let apps: Vec<Option<String>> = (0..log.sessions.len())
        .map(|k| {
            log.sessions[k]
                .application_name
                .clone()
                .filter(|a| !a.is_empty())
                .or_else(|| {
                    log.stmts
                        .iter()
                        .filter(|s| s.session == k && !s.skipped)
                        .find_map(|s| set_application_name(&s.sql))
                })
        })
        .collect();
    for a in apps.iter().flatten() {
        *counts.entry(a.as_str()).or_default() += 1;
    }
    let flows = super::flow::find(log, types);
    let mut warnings = Vec::new();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Recorded by `isospec record` from: {}",
        frame.command.replace('\n', " ")
    );
    comment_lines(
        &mut out,
        "Each client connection is a session and each statement a step; the
permutation at the end is the order in which the statements reached the
server.  An id the client received and sent back unchanged (INSERT ...
RETURNING id, then a child row's parent id) is carried from one step to the
other in a session setting (isospec_flow, current_setting('isospec.v...')).
Values the client computed from earlier results are frozen here as the
literals it sent: a read-modify-write done in the client replays with the
recorded numbers, and `isospec explore` cannot see that dependency.  To let
explore see it, move the computation into SQL (UPDATE ... SET n = n + 1,
INSERT ... SELECT, a server-side function).",
    );
    for n in &log.notes {
        comment_lines(&mut out, n);
    }
    out.push('\n');
    if let Some(s) = frame.setup {
        let _ = writeln!(out, "setup\n{{\n{}\n}}\n", s.trim_end());
    }
    if let Some(t) = frame.teardown {
        let _ = writeln!(out, "teardown\n{{\n{}\n}}\n", t.trim_end());
    }
    // (first statement's clock, step name, its first statement) per step;
    // a ROLLBACK the server did at a session's end has no statement.
    let mut steps: Vec<(u64, String, Option<usize>)> = Vec::new();
    let mut names: HashMap<usize, String> = HashMap::new();
    let mut sessions = 0;
    let mut used_names: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut anon = 0;
    for (k, info) in log.sessions.iter().enumerate() {
        let mine: Vec<usize> = (0..log.stmts.len())
            .filter(|&i| log.stmts[i].session == k && !log.stmts[i].skipped)
            .collect();
        let name = match apps[k].as_deref() {
            Some(a) if !a.is_empty() && counts.get(a) == Some(&1) && !used_names.contains(a) => {
                a.to_string()
            }
            _ => loop {
                anon += 1;
                let n = format!("c{anon}");
                if !counts.contains_key(n.as_str()) {
                    break n;
                }
            },
        };
        used_names.insert(name.clone());
        let mut body = String::new();
        let mut n = 0;
        let mut group: Vec<(usize, String)> = Vec::new();
        let mut flush = |group: &mut Vec<(usize, String)>, body: &mut String, n: &mut usize| {
            if group.is_empty() {
                return;
            }
            *n += 1;
            let step = format!("{name}_{n}");
            let sql: Vec<&str> = group.iter().map(|(_, s)| s.as_str()).collect();
            let text = if sql.len() == 1 {
                sql[0].to_string()
            } else {
                sql.join(";\n")
            };
            let _ = writeln!(body, "step {} {{ {} }}", quote_name(&step), text);
            let first = group[0].0;
            for (i, _) in group.iter() {
                names.insert(*i, step.clone());
            }
            steps.push((log.stmts[first].sent, step, Some(first)));
            group.clear();
        };
        // A client's batch (its statements up to a Sync) is one step: the
        // server ran it as one implicit transaction and skipped the rest of
        // it after an error, as it does a multi-statement query.
        let mut units: Vec<Vec<usize>> = Vec::new();
        for &i in &mine {
            let s = &log.stmts[i];
            match units.last_mut() {
                Some(u)
                    if s.extended
                        && log.stmts[u[0]].extended
                        && log.stmts[u[0]].batch == s.batch =>
                {
                    u.push(i)
                }
                _ => units.push(vec![i]),
            }
        }
        for unit in units {
            if unit.iter().all(|&i| log.stmts[i].skipped) {
                continue;
            }
            let rendered: Result<Vec<String>, String> = unit
                .iter()
                .map(|&i| step_sql(&log.stmts[i], types, i, &flows))
                .collect();
            let last = &log.stmts[*unit.last().unwrap()];
            match rendered {
                Ok(sql) => {
                    group.push((unit[0], sql.join(";\n")));
                    let ends = frame.steps == StepsMode::Statement
                        || last.txn_after != Some(b'T') && last.txn_after != Some(b'E');
                    if ends {
                        flush(&mut group, &mut body, &mut n);
                    }
                }
                Err(why) => {
                    flush(&mut group, &mut body, &mut n);
                    let sql: Vec<&str> = unit.iter().map(|&i| log.stmts[i].sql.trim()).collect();
                    let sql = sql.join(";\n");
                    let text = format!("session {name}: a statement was left out: {why}:\n{sql}");
                    // The warning quotes the statement and says where it was.
                    let position = mine.iter().position(|&i| i == unit[0]).unwrap_or(0) + 1;
                    warnings.push(format!(
                        "session {name}: its statement {position} was left out: {why}: {}",
                        excerpt(&sql, 120)
                    ));
                    comment_lines(&mut body, &text);
                }
            }
        }
        flush(&mut group, &mut body, &mut n);
        // A session that ended without saying goodbye: the comment and the
        // warning come from one ending; one whose transaction was still
        // open gets the ROLLBACK the server did, where it did it, so that
        // the replay never holds its locks past that point.
        let rollback = n > 0 && info.in_transaction();
        let ending = match &info.ended {
            Some((why, at)) => Some((
                format!("{why} before it said goodbye (Terminate)"),
                *at,
                true,
            )),
            // A goodbye inside a transaction is an ordinary close: the
            // server rolls back, and the spec says so without a warning.
            None if info.terminated && rollback => Some((
                "the client said goodbye (Terminate) inside its transaction".to_string(),
                info.terminated_at,
                false,
            )),
            None if !info.terminated && rollback => Some((
                "the recording ended while its transaction was open".to_string(),
                u64::MAX,
                true,
            )),
            None => None,
        };
        if let Some((text, at, warn)) = ending {
            let text = if rollback {
                format!("{text}; the server rolled its transaction back: ROLLBACK")
            } else {
                text
            };
            let _ = writeln!(body, "# {text}");
            if warn {
                warnings.push(format!("session {name}: {text}"));
            }
            if rollback {
                n += 1;
                let step = format!("{name}_{n}");
                let _ = writeln!(body, "step {} {{ ROLLBACK }}", quote_name(&step));
                steps.push((at, step, None));
            }
        }
        if n == 0 {
            if !body.is_empty() {
                let _ = writeln!(out, "# session {name} recorded no step");
                out.push_str(&body);
                out.push('\n');
            }
            continue;
        }
        sessions += 1;
        let _ = writeln!(out, "session {}", quote_name(&name));
        let set: Vec<String> = session_settings(info)
            .iter()
            .filter_map(|(k, v)| setting(k, v))
            .collect();
        if !set.is_empty() {
            let joined = set.join("; ");
            if joined.contains('}') {
                warnings.push(format!(
                    "session {name}: its startup settings contain '}}' and were left out"
                ));
            } else {
                let _ = writeln!(out, "setup {{ {joined}; }}");
            }
        }
        out.push_str(&body);
        out.push('\n');
    }
    queue_order(log, &mut steps);
    steps.sort();
    // Waits the detector saw, and what released each: the last statement of
    // another session forwarded while it waited (its completion came after
    // that statement reached the server; the order in which the two
    // completions reached the proxy says nothing).
    for (_, step, first) in &steps {
        let Some(first) = first else { continue };
        let s = &log.stmts[*first];
        if !s.waited {
            continue;
        }
        let done = s.finished.unwrap_or(u64::MAX);
        let releaser = log
            .stmts
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                o.session != s.session && o.sent > s.sent && o.sent < done && names.contains_key(i)
            })
            .max_by_key(|(_, o)| o.sent)
            .map(|(i, _)| names[&i].clone());
        match releaser {
            Some(r) => {
                let _ = writeln!(out, "# {step} waited for a lock; {r} released it");
            }
            None => {
                let _ = writeln!(out, "# {step} waited for a lock");
            }
        }
    }
    // A statement that ran on while others went, without a wait the
    // detector sees, is reported as waiting when launched (`(*)`): the
    // replay goes on to the next steps as the recording did.
    let overtaken: std::collections::HashSet<&str> = names
        .iter()
        .filter(|(i, _)| log.stmts[**i].overtaken)
        .map(|(_, n)| n.as_str())
        .collect();
    for (_, step, _) in &steps {
        if overtaken.contains(step.as_str()) {
            let _ = writeln!(
                out,
                "# {step} ran on while other sessions' statements went, without a wait the detector sees: (*)"
            );
        }
    }
    let line: Vec<String> = steps
        .iter()
        .map(|(_, s, _)| {
            if overtaken.contains(s.as_str()) {
                format!("{}(*)", quote_name(s))
            } else {
                quote_name(s)
            }
        })
        .collect();
    let _ = writeln!(out, "permutation {}", line.join(" "));
    Written {
        text: out,
        warnings,
        sessions,
        steps: steps.len(),
    }
}

#[cfg(test)]
mod tests;
