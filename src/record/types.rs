//! Parameter types, asked of the server once the recording is over: for
//! a statement whose parameters the client left untyped (oid 0), the
//! server describes it as it did for the client (Parse + Describe on the
//! control connection, never executed); then every type's name as
//! `format_type` writes it, and for arrays their element types.

use super::literal::TypeInfo;
use super::trace::{message, Log};
use crate::pgwire::{Conn, PgResult};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use std::collections::{HashMap, HashSet};

/// The server's parameter types for `sql` with the client's declared
/// `oids` (None when it cannot parse the statement now).
async fn describe(control: &mut Conn, sql: &str, oids: &[u32]) -> Option<Vec<u32>> {
    let mut parse = vec![0u8];
    parse.extend(sql.as_bytes());
    parse.push(0);
    parse.extend((oids.len() as i16).to_be_bytes());
    for o in oids {
        parse.extend(o.to_be_bytes());
    }
    let out = [
        message(b'P', &parse),
        message(b'D', b"S\0"),
        message(b'S', b""),
    ]
    .concat();
    control.write_raw(&out).await.ok()?;
    let mut found = None;
    loop {
        match control.read_startup_message(false).await.ok()? {
            Message::ParameterDescription(d) => {
                found = d.parameters().collect::<Vec<u32>>().ok();
            }
            Message::ReadyForQuery(_) => return found,
            _ => {}
        }
    }
}

async fn names(control: &mut Conn, oids: &HashSet<u32>, into: &mut HashMap<u32, TypeInfo>) {
    let missing: Vec<String> = oids
        .iter()
        .filter(|o| !into.contains_key(o))
        .map(|o| o.to_string())
        .collect();
    if missing.is_empty() {
        return;
    }
    let sql = format!(
        "SELECT t.oid, pg_catalog.format_type(t.oid, NULL), CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem END, t.typtype = 'e' \
FROM pg_catalog.pg_type t WHERE t.oid = ANY ('{{{}}}'::pg_catalog.oid[])",
        missing.join(",")
    );
    if let Ok(Some(PgResult::Tuples(t))) = control.exec(&sql).await {
        for r in &t.rows {
            let get = |i: usize| r.get(i).cloned().flatten();
            let (Some(oid), Some(name)) = (get(0).and_then(|o| o.parse().ok()), get(1)) else {
                continue;
            };
            let elem = get(2).and_then(|e| e.parse().ok());
            let is_enum = get(3).as_deref() == Some("t");
            into.insert(
                oid,
                TypeInfo {
                    name,
                    elem,
                    is_enum,
                },
            );
        }
    }
}

/// Completes the statements' parameter types and names every type used.
pub async fn resolve(mut log: Log, control: &mut Conn) -> (Log, HashMap<u32, TypeInfo>) {
    let mut described: HashMap<(String, Vec<u32>), Option<Vec<u32>>> = HashMap::new();
    for k in 0..log.stmts.len() {
        let s = &log.stmts[k];
        if !s.extended || s.skipped || !s.oids.contains(&0) {
            continue;
        }
        let key = (s.sql.clone(), s.oids.clone());
        if !described.contains_key(&key) {
            let d = describe(control, &key.0, &key.1).await;
            described.insert(key.clone(), d);
        }
        if let Some(Some(d)) = described.get(&key) {
            let s = &mut log.stmts[k];
            for (i, o) in s.oids.iter_mut().enumerate() {
                if *o == 0 {
                    *o = d.get(i).copied().unwrap_or(0);
                }
            }
        }
    }
    let mut types = HashMap::new();
    let used: HashSet<u32> = log
        .stmts
        .iter()
        .flat_map(|s| s.oids.iter().copied())
        .filter(|&o| o != 0)
        .collect();
    names(control, &used, &mut types).await;
    let elems: HashSet<u32> = types.values().filter_map(|t| t.elem).collect();
    names(control, &elems, &mut types).await;
    (log, types)
}
