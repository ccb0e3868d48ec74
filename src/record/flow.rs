//! Values that flow: an id the program received (`INSERT … RETURNING id`,
//! a `SELECT id`) and later sent back as a parameter (a child row's
//! `order_id`).  Written as the literal it was, the spec freezes it, and
//! in explore's other interleavings the child row points at another
//! session's parent: foreign-key errors the program could never hit.  So
//! the statement that returned the value keeps it in a session-local
//! setting (`set_config('isospec.v12_0', id::text, false)`, its rows
//! unchanged), and the statement that sent it back reads it there
//! (`current_setting('isospec.v12_0', true)::integer`).
//!
//! Only unambiguous flows are carried: the value came in one row of one
//! result of that session (received once), of an id-like type (integers,
//! oid, uuid), from a statement that can stand in a WITH clause; anything
//! else stays a literal.

use super::literal::{self, TypeInfo};
use super::trace::{Log, Outcome, Stmt};
use std::collections::HashMap;

/// The flows found in a recording.
#[derive(Debug, Default)]
pub struct Flows {
    /// Statements whose result a later one takes a value from: (column
    /// name, setting) for each column that flows.
    pub sources: HashMap<usize, Vec<(String, String)>>,
    /// (statement, parameter index): the expression that replaces the
    /// parameter's literal.
    pub uses: HashMap<(usize, usize), String>,
}

/// int2, int4, int8, oid, uuid: the types of ids.
const ID_TYPES: [u32; 5] = [21, 23, 20, 26, 2950];

/// A plain literal `'value'::type` as (value, type).
fn plain_literal(lit: &str) -> Option<(String, &str)> {
    let rest = lit.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if rest[i + 1..].starts_with('\'') {
                value.push('\'');
                chars.next();
                continue;
            }
            let ty = rest[i + 1..].strip_prefix("::")?;
            return (!ty.is_empty()).then_some((value, ty));
        }
        value.push(c);
    }
    None
}

/// Whether `sql` can be the body of a WITH clause's query.
/// (Not a statement with a WITH of its own, which may hold a statement
/// that modifies data and must stay at the top level, nor SELECT … INTO.)
fn can_be_wrapped(sql: &str) -> bool {
    let sql = sql.trim().trim_end_matches(';');
    let first = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    let shape = match first.as_str() {
        "SELECT" | "VALUES" | "TABLE" => !words.contains(&"INTO"),
        "INSERT" | "UPDATE" | "DELETE" => !words.contains(&"WITH"),
        _ => false,
    };
    shape && !sql.contains(';')
}

fn sets_value(s: &Stmt) -> bool {
    matches!(s.outcome, Outcome::Done(_))
        && !s.skipped
        && s.copy.is_none()
        && s.unrepresentable.is_none()
}

/// Finds the flows of each session.
pub fn find(log: &Log, types: &HashMap<u32, TypeInfo>) -> Flows {
    let mut flows = Flows::default();
    for k in 0..log.sessions.len() {
        // value -> where it came from (None: not capturable).
        let mut received: HashMap<String, Vec<Option<(usize, usize)>>> = HashMap::new();
        for (i, s) in log.stmts.iter().enumerate().filter(|(_, s)| s.session == k) {
            if s.extended && !s.skipped {
                for (j, p) in s.params.iter().enumerate() {
                    let oid = s.oids.get(j).copied().unwrap_or(0);
                    let Ok(lit) = literal::literal(j + 1, p.value.as_deref(), p.binary, oid, types)
                    else {
                        continue;
                    };
                    let Some((value, ty)) = plain_literal(&lit) else {
                        continue;
                    };
                    let Some([Some((src, col))]) = received.get(&value).map(Vec::as_slice) else {
                        continue;
                    };
                    let setting = format!("isospec.v{src}_{col}");
                    let name = log.stmts[*src]
                        .rows
                        .as_ref()
                        .and_then(|r| r.names.get(*col).cloned());
                    let Some(name) = name else { continue };
                    let cols = flows.sources.entry(*src).or_default();
                    if !cols.iter().any(|(_, s)| *s == setting) {
                        cols.push((name, setting.clone()));
                    }
                    // The literal sent stands in when the source did not
                    // run (left out of the spec, or it failed).
                    flows.uses.insert(
                        (i, j),
                        format!(
                            "(coalesce(pg_catalog.current_setting('{setting}', true), {})::{ty})",
                            literal::quote_string(&value)
                        ),
                    );
                }
            }
            let Some(r) = s.rows.as_deref() else { continue };
            let single = r.count == 1 && sets_value(s) && can_be_wrapped(&s.sql);
            for (c, v) in r.first.iter().enumerate() {
                let Some(v) = v.as_ref().filter(|v| !v.is_empty()) else {
                    continue;
                };
                let Some(name) = r.names.get(c) else { continue };
                let usable = single
                    && r.types.get(c).is_some_and(|t| ID_TYPES.contains(t))
                    && name != "?column?"
                    && r.names.iter().filter(|n| *n == name).count() == 1;
                received
                    .entry(v.clone())
                    .or_default()
                    .push(usable.then_some((i, c)));
            }
        }
    }
    flows
}

/// A source statement's SQL that also keeps its flowing columns in
/// session settings; its rows are unchanged.
pub fn keep(sql: &str, cols: &[(String, String)]) -> String {
    let nl = if sql.lines().last().is_some_and(|l| l.contains("--")) {
        "\n"
    } else {
        ""
    };
    let conds: Vec<String> = cols
        .iter()
        .map(|(name, setting)| {
            format!(
                "pg_catalog.set_config('{setting}', isospec_flow.\"{}\"::text, false) IS NOT NULL",
                name.replace('"', "\"\"")
            )
        })
        .collect();
    format!(
        "WITH isospec_flow AS ({sql}{nl}) SELECT * FROM isospec_flow WHERE {}",
        conds.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_sources() {
        assert_eq!(
            plain_literal("'it''s'::text"),
            Some(("it's".to_string(), "text"))
        );
        assert_eq!(plain_literal("'5'::integer"), Some(("5".into(), "integer")));
        assert_eq!(plain_literal("E'\\x7d'::text"), None);
        assert_eq!(plain_literal("NULL::integer"), None);
        assert!(can_be_wrapped("INSERT INTO t VALUES (1) RETURNING id"));
        assert!(can_be_wrapped("  select id from t"));
        assert!(!can_be_wrapped("FETCH 1 FROM c"));
        assert!(!can_be_wrapped("SELECT 1; SELECT 2"));
        assert!(!can_be_wrapped("WITH p AS (INSERT INTO t VALUES (1) RETURNING id) INSERT INTO u SELECT id FROM p RETURNING id"));
        assert!(!can_be_wrapped("SELECT id INTO copy_t FROM t"));
        assert_eq!(
            keep("INSERT INTO t (n) VALUES (1) RETURNING id", &[("id".into(), "isospec.v3_0".into())]),
            "WITH isospec_flow AS (INSERT INTO t (n) VALUES (1) RETURNING id) SELECT * FROM isospec_flow WHERE pg_catalog.set_config('isospec.v3_0', isospec_flow.\"id\"::text, false) IS NOT NULL"
        );
    }
}
