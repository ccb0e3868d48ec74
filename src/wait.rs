//! Lock-wait detection: asks the server whether a session's backend is
//! blocked by one of the spec's own sessions.  Never guesses from time.
//!
//! Two detectors give the same answers:
//! - `function`: `pg_isolation_test_session_is_blocked(pid, '{pids}')`, the
//!   server function isolationtester uses (it covers heavyweight locks with
//!   parallel groups, safe-snapshot waits and, on 17+, injection points);
//! - `pg-locks`: the same question answered from `pg_locks` (a lock the pid's
//!   lock group waits for conflicts with a lock held, or queued ahead, by
//!   another session's group) plus `pg_safe_snapshot_blocking_pids`, for
//!   servers or poolers where that function is missing.
//!
//! Waits on processes outside the test (autovacuum) never count.  A wait on
//! a *prepared transaction* (no backend; pg_blocking_pids shows pid 0) is not
//! a wait for isolationtester either -- PostgreSQL's own specs rely on that
//! (prepared-transactions-cic lets such a wait run into lock_timeout) -- so
//! it counts only when the spec asks (`# isospec: prepared-waits`) or the
//! run does (`--prepared-waits`).

use crate::pgwire::{Connection, PgResult};

const PREP_WAITING: &str = "isolationtester_waiting";
/// The same question for many backends in one round trip.
const PREP_WAITING_MANY: &str = "isospec_waiting_many";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DetectorKind {
    #[default]
    Function,
    PgLocks,
}

/// What asks whether a step waits: one of the two detectors, or the
/// user's function or query (for proxies that do not expose
/// pg_isolation_test_session_is_blocked or the backends' pids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Builtin(DetectorKind),
    /// `--wait-function NAME`: NAME(pid int, pids int[]) returns boolean.
    Function(String),
    /// `--wait-query SQL`: $1 the waiting pid, $2 the sessions' pids.
    Query(String),
}

/// The wait query on the control connection: isolationtester's prepared
/// statement for the builtin detectors; for a swapped probe (meant for
/// proxies) a plain query with the pids written in, which needs neither
/// bound parameters nor a prepared statement that outlives a transaction.
pub struct Detector {
    /// For a swapped probe: the query, with `$1` for the waiting pid.
    literal: Option<String>,
    /// The many-backends form is prepared (builtin detectors).
    many: bool,
}

/// The single-backend wait query `single` (with `$1` for the pid) asked for
/// every pid of an int[] at once, in the array's order; `array` is `$1`
/// or a literal.
fn many_query(single: &str, array: &str) -> String {
    format!(
        "SELECT u.p, ({}) FROM pg_catalog.unnest({array}::int[]) WITH ORDINALITY AS u(p, o) ORDER BY u.o",
        replace_param1(single, "u.p")
    )
}

/// Writes the pids into a probe's text: `$2` (the sessions' pids, an
/// int[] literal) and `$1` (the waiting pid, filled in at each check).
fn probe_text(probe: &Probe, list: &str) -> Option<String> {
    let pids = format!("'{{{list}}}'::int[]");
    match probe {
        Probe::Builtin(_) => None,
        Probe::Function(f) => Some(format!("SELECT {f}($1, {pids})")),
        Probe::Query(q) => Some(q.replace("$2", &pids)),
    }
}

/// Server major version from the `server_version` parameter ("15.18 (Debian…)").
pub fn major_version(server_version: &str) -> u32 {
    server_version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const CONFLICTS: &str = "CASE waiter.mode \
WHEN 'AccessShareLock' THEN ARRAY['AccessExclusiveLock'] \
WHEN 'RowShareLock' THEN ARRAY['ExclusiveLock','AccessExclusiveLock'] \
WHEN 'RowExclusiveLock' THEN ARRAY['ShareLock','ShareRowExclusiveLock','ExclusiveLock','AccessExclusiveLock'] \
WHEN 'ShareUpdateExclusiveLock' THEN ARRAY['ShareUpdateExclusiveLock','ShareLock','ShareRowExclusiveLock','ExclusiveLock','AccessExclusiveLock'] \
WHEN 'ShareLock' THEN ARRAY['RowExclusiveLock','ShareUpdateExclusiveLock','ShareRowExclusiveLock','ExclusiveLock','AccessExclusiveLock'] \
WHEN 'ShareRowExclusiveLock' THEN ARRAY['RowExclusiveLock','ShareUpdateExclusiveLock','ShareLock','ShareRowExclusiveLock','ExclusiveLock','AccessExclusiveLock'] \
WHEN 'ExclusiveLock' THEN ARRAY['RowShareLock','RowExclusiveLock','ShareUpdateExclusiveLock','ShareLock','ShareRowExclusiveLock','ExclusiveLock','AccessExclusiveLock'] \
WHEN 'AccessExclusiveLock' THEN ARRAY['AccessShareLock','RowShareLock','RowExclusiveLock','ShareUpdateExclusiveLock','ShareLock','ShareRowExclusiveLock','ExclusiveLock','AccessExclusiveLock'] \
WHEN 'SIReadLock' THEN ARRAY[]::text[] \
ELSE ARRAY[]::text[] END";

/// The text of the wait query for a detector, the session pids and the
/// server's major version.  Pids are integers from the server, never user text.
pub fn wait_query(kind: DetectorKind, pids: &[i32], major: u32, prepared_waits: bool) -> String {
    let list = pid_list(pids);
    match kind {
        DetectorKind::Function => {
            let prepared = if prepared_waits {
                " OR 0 = ANY (pg_catalog.pg_blocking_pids($1))"
            } else {
                ""
            };
            format!("SELECT pg_catalog.pg_isolation_test_session_is_blocked($1, '{{{list}}}'){prepared}")
        }
        DetectorKind::PgLocks => {
            let (group, join) = lock_group(major);
            let prepared = if prepared_waits {
                "holder.pid IS NULL OR "
            } else {
                ""
            };
            let injection = if major >= 17 {
                " OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity s WHERE s.pid = $1 AND s.wait_event_type = 'InjectionPoint')"
            } else {
                ""
            };
            format!(
                "WITH l AS (SELECT l.*, {group} AS grp, l.pid AS realpid FROM pg_catalog.pg_locks l {join}) \
SELECT EXISTS (SELECT 1 FROM l waiter, l holder \
WHERE NOT waiter.granted AND waiter.grp = $1 \
AND ({prepared}(holder.grp <> $1 AND holder.grp = ANY ('{{{list}}}'::int[]))) \
AND (holder.granted OR holder.realpid <> waiter.realpid) \
AND holder.mode = ANY ({CONFLICTS}) \
AND holder.locktype IS NOT DISTINCT FROM waiter.locktype \
AND holder.database IS NOT DISTINCT FROM waiter.database \
AND holder.relation IS NOT DISTINCT FROM waiter.relation \
AND holder.page IS NOT DISTINCT FROM waiter.page \
AND holder.tuple IS NOT DISTINCT FROM waiter.tuple \
AND holder.virtualxid IS NOT DISTINCT FROM waiter.virtualxid \
AND holder.transactionid IS NOT DISTINCT FROM waiter.transactionid \
AND holder.classid IS NOT DISTINCT FROM waiter.classid \
AND holder.objid IS NOT DISTINCT FROM waiter.objid \
AND holder.objsubid IS NOT DISTINCT FROM waiter.objsubid) \
OR pg_catalog.cardinality(pg_catalog.pg_safe_snapshot_blocking_pids($1)) > 0{injection}"
            )
        }
    }
}

/// The columns of pg_locks that name the locked object, as one text key a
/// hash join can use (`IS NOT DISTINCT FROM` on ten columns cannot).
const LOCK_KEY: &str = "ROW(l.locktype, l.database, l.relation, l.page, l.tuple, l.virtualxid, \
l.transactionid, l.classid, l.objid, l.objsubid)::text";

/// The wait question for every pid of the int[] `$1` at once, answered in
/// the array's order, from one read of `pg_locks`: its cost grows with the
/// size of the lock table, where asking per pid costs (waiters x length of
/// the lock's queue) when many sessions queue on one lock.
///
/// - `function`: a pid whose awaited lock is *held* (granted) in a
///   conflicting mode by another of the spec's sessions is blocked: that
///   holder is in `pg_blocking_pids(pid)`, so
///   `pg_isolation_test_session_is_blocked` says true at that instant.
///   Every other pid is asked through the function itself, so the answers
///   are the function's (soft blockers, parallel groups, safe snapshots,
///   injection points, prepared transactions).
/// - `pg-locks`: the single query's conditions, for all pids in one pass.
pub fn many_wait_query(
    kind: DetectorKind,
    pids: &[i32],
    major: u32,
    prepared_waits: bool,
) -> String {
    let list = pid_list(pids);
    let conflicts = CONFLICTS.replace("waiter.mode", "l.mode");
    let order = "FROM pg_catalog.unnest($1::int[]) WITH ORDINALITY AS u(p, o) ORDER BY u.o";
    match kind {
        DetectorKind::Function => {
            let single = replace_param1(&wait_query(kind, pids, major, prepared_waits), "u.p");
            // Only the spec's sessions' rows matter (waiters and holders
            // alike); a key is computed only for waiting rows and the held
            // rows of a lock type something waits for.
            format!(
                "WITH l AS MATERIALIZED (SELECT * FROM pg_catalog.pg_locks l WHERE l.pid = ANY ('{{{list}}}'::int[])), \
waiter AS MATERIALIZED (SELECT {LOCK_KEY} AS k, l.pid, l.locktype, {conflicts} AS conflicts FROM l WHERE NOT l.granted), \
holder AS (SELECT {LOCK_KEY} AS k, l.pid, l.mode FROM l WHERE l.granted AND l.locktype IN (SELECT waiter.locktype FROM waiter)), \
hard AS (SELECT waiter.pid FROM waiter WHERE EXISTS (SELECT 1 FROM holder WHERE holder.k = waiter.k \
AND holder.pid <> waiter.pid AND holder.mode = ANY (waiter.conflicts))) \
SELECT u.p, CASE WHEN u.p IN (SELECT hard.pid FROM hard) THEN true ELSE ({single}) END {order}"
            )
        }
        DetectorKind::PgLocks => {
            let (group, join) = lock_group(major);
            let prepared = if prepared_waits {
                "holder.realpid IS NULL OR "
            } else {
                ""
            };
            let injection = if major >= 17 {
                " OR u.p IN (SELECT s.pid FROM pg_catalog.pg_stat_activity s WHERE s.wait_event_type = 'InjectionPoint')"
            } else {
                ""
            };
            format!(
                "WITH l AS MATERIALIZED (SELECT l.*, {group} AS grp FROM pg_catalog.pg_locks l {join}), \
waiter AS MATERIALIZED (SELECT {LOCK_KEY} AS k, l.grp, l.pid AS realpid, l.locktype, {conflicts} AS conflicts \
FROM l WHERE NOT l.granted AND l.grp = ANY ($1::int[])), \
holder AS (SELECT {LOCK_KEY} AS k, l.grp, l.pid AS realpid, l.granted, l.mode FROM l \
WHERE l.locktype IN (SELECT waiter.locktype FROM waiter)), \
b AS (SELECT waiter.grp FROM waiter WHERE EXISTS (SELECT 1 FROM holder WHERE holder.k = waiter.k \
AND ({prepared}(holder.grp <> waiter.grp AND holder.grp = ANY ('{{{list}}}'::int[]))) \
AND (holder.granted OR holder.realpid <> waiter.realpid) \
AND holder.mode = ANY (waiter.conflicts))) \
SELECT u.p, u.p IN (SELECT b.grp FROM b) \
OR pg_catalog.cardinality(pg_catalog.pg_safe_snapshot_blocking_pids(u.p)) > 0{injection} {order}"
            )
        }
    }
}

/// How the pg-locks detector maps a lock row to its session: parallel
/// workers to their leader (PostgreSQL 13+ shows leader_pid), so a worker's
/// lock counts for its session.
fn lock_group(major: u32) -> (&'static str, &'static str) {
    if major >= 13 {
        (
            "COALESCE(a.leader_pid, l.pid)",
            "LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid",
        )
    } else {
        ("l.pid", "")
    }
}

impl Detector {
    /// Prepares the wait query on the control connection.  The error text is
    /// libpq-formatted, as isolationtester prints it.
    pub async fn prepare(
        control: &mut impl Connection,
        probe: &Probe,
        pids: &[i32],
        prepared_waits: bool,
    ) -> Result<Detector, String> {
        let major = major_version(control.server_version());
        let list = pid_list(pids);
        if let Some(text) = probe_text(probe, &list) {
            return Ok(Detector {
                literal: Some(text),
                many: false,
            });
        }
        let Probe::Builtin(kind) = probe else {
            unreachable!("swapped probes returned above")
        };
        let sql = wait_query(*kind, pids, major, prepared_waits);
        match control.prepare(PREP_WAITING, &sql).await {
            Ok(Some(PgResult::Command(_))) => {}
            Ok(_) => return Err(control.error_message().to_string()),
            Err(e) => return Err(format!("{e}\n")),
        }
        // Best effort: without it, steps are asked about one by one.
        let many = matches!(
            control
                .prepare(
                    PREP_WAITING_MANY,
                    &many_wait_query(*kind, pids, major, prepared_waits)
                )
                .await,
            Ok(Some(PgResult::Command(_)))
        );
        while control.take_notice().is_some() {}
        Ok(Detector {
            literal: None,
            many,
        })
    }

    /// Whether each of `pids` is blocked by one of the spec's sessions, in
    /// one round trip (the same question as `is_blocked`, for each pid).
    pub async fn are_blocked(
        &self,
        control: &mut impl Connection,
        pids: &[i32],
    ) -> Result<Vec<bool>, String> {
        let list = format!("{{{}}}", pid_list(pids));
        let r = match (&self.literal, self.many) {
            (Some(text), _) => control.exec(&many_query(text, &format!("'{list}'"))).await,
            (None, true) => control.exec_prepared(PREP_WAITING_MANY, &[&list]).await,
            (None, false) => {
                let mut out = Vec::with_capacity(pids.len());
                for &p in pids {
                    out.push(self.is_blocked(control, p).await?);
                }
                return Ok(out);
            }
        };
        while control.take_notice().is_some() {}
        match r {
            Ok(Some(PgResult::Tuples(t))) if t.rows.len() == pids.len() => Ok(t
                .rows
                .iter()
                .map(|r| {
                    r.get(1)
                        .and_then(|v| v.as_deref())
                        .is_some_and(|v| v.starts_with('t'))
                })
                .collect()),
            Ok(_) => Err(control.error_message().to_string()),
            Err(e) => Err(format!("{e}\n")),
        }
    }

    /// Whether backend `pid` is blocked by one of the spec's sessions.
    pub async fn is_blocked(
        &self,
        control: &mut impl Connection,
        pid: i32,
    ) -> Result<bool, String> {
        let pid = pid.to_string();
        let r = match &self.literal {
            Some(text) => control.exec(&replace_param1(text, &pid)).await,
            None => control.exec_prepared(PREP_WAITING, &[&pid]).await,
        };
        while control.take_notice().is_some() {}
        match r {
            Ok(Some(PgResult::Tuples(t))) if t.rows.len() == 1 && !t.rows[0].is_empty() => {
                Ok(t.rows[0][0].as_deref().is_some_and(|v| v.starts_with('t')))
            }
            Ok(_) => Err(control.error_message().to_string()),
            Err(e) => Err(format!("{e}\n")),
        }
    }
}

/// Pids as the elements of an int[] literal: `1,2,3`.
fn pid_list(pids: &[i32]) -> String {
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Replaces `$1` (not `$10`…) with `value`.
fn replace_param1(text: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len() + value.len());
    let mut rest = text;
    while let Some(i) = rest.find("$1") {
        let after = &rest[i + 2..];
        out.push_str(&rest[..i]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str("$1");
        } else {
            out.push_str(value);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_form_asks_the_same_question_per_pid() {
        // Swapped probes: the single question per pid, in the array's order.
        let single = "SELECT gw.blocked($1, '{11,22}'::int[])";
        assert_eq!(
            many_query(single, "$1"),
            "SELECT u.p, (SELECT gw.blocked(u.p, '{11,22}'::int[])) \
FROM pg_catalog.unnest($1::int[]) WITH ORDINALITY AS u(p, o) ORDER BY u.o"
        );
        // Builtin: held conflicting locks answer from pg_locks, every other
        // pid through isolationtester's function.
        let f = many_wait_query(DetectorKind::Function, &[11, 22], 15, false);
        assert!(f.contains("WHERE l.pid = ANY ('{11,22}'::int[])"));
        assert!(f.contains(
            "ELSE (SELECT pg_catalog.pg_isolation_test_session_is_blocked(u.p, '{11,22}')) END"
        ));
        assert!(f.ends_with(
            "FROM pg_catalog.unnest($1::int[]) WITH ORDINALITY AS u(p, o) ORDER BY u.o"
        ));
        assert!(many_wait_query(DetectorKind::Function, &[1], 15, true)
            .contains("OR 0 = ANY (pg_catalog.pg_blocking_pids(u.p))"));
        let locks = many_wait_query(DetectorKind::PgLocks, &[1, 2], 17, true);
        assert!(locks.contains("holder.realpid IS NULL OR "));
        assert!(locks.contains("'{1,2}'::int[]"));
        assert!(locks.contains("InjectionPoint"));
        assert!(locks.contains("pg_safe_snapshot_blocking_pids(u.p)"));
        assert!(!many_wait_query(DetectorKind::PgLocks, &[1], 12, false).contains("leader_pid"));
    }

    #[test]
    fn swapped_probes_get_the_pids_written_in() {
        let f = probe_text(&Probe::Function("gw.blocked".into()), "1,2").unwrap();
        assert_eq!(f, "SELECT gw.blocked($1, '{1,2}'::int[])");
        assert_eq!(
            replace_param1(&f, "7"),
            "SELECT gw.blocked(7, '{1,2}'::int[])"
        );
        let q = probe_text(&Probe::Query("SELECT f($1, $2, $10)".into()), "3").unwrap();
        assert_eq!(replace_param1(&q, "9"), "SELECT f(9, '{3}'::int[], $10)");
        assert_eq!(
            probe_text(&Probe::Builtin(DetectorKind::Function), "1"),
            None
        );
    }

    #[test]
    fn versions() {
        assert_eq!(major_version("15.18 (Debian 15.18-0+deb12u1)"), 15);
        assert_eq!(major_version("17.9"), 17);
        assert_eq!(major_version("18beta1"), 18);
        assert_eq!(major_version(""), 0);
    }

    #[test]
    fn function_query_like_isolationtester() {
        assert_eq!(
            wait_query(DetectorKind::Function, &[11, 22], 15, false),
            "SELECT pg_catalog.pg_isolation_test_session_is_blocked($1, '{11,22}')"
        );
        assert!(wait_query(DetectorKind::Function, &[11, 22], 15, true)
            .ends_with(" OR 0 = ANY (pg_catalog.pg_blocking_pids($1))"));
        assert!(!wait_query(DetectorKind::PgLocks, &[1], 15, false).contains("holder.pid IS NULL"));
        assert!(wait_query(DetectorKind::PgLocks, &[1], 15, true).contains("holder.pid IS NULL"));
    }

    #[test]
    fn pg_locks_query_is_version_aware() {
        let q15 = wait_query(DetectorKind::PgLocks, &[1, 2], 15, false);
        assert!(q15.contains("leader_pid"));
        assert!(!q15.contains("InjectionPoint"));
        assert!(q15.contains("'{1,2}'::int[]"));
        assert!(!wait_query(DetectorKind::PgLocks, &[1], 12, false).contains("leader_pid"));
        assert!(wait_query(DetectorKind::PgLocks, &[1], 17, false).contains("InjectionPoint"));
    }
}
