//! `isospec explore`'s stall handling (`ExecOptions::end_stalled`): a step
//! due while its session waits for a step that only a later step could
//! release ends the interleaving at once.

use super::*;

impl<'a, C: Connection> Executor<'a, C> {
    /// Whether session `si`'s running step can only be released by a step
    /// not yet launched: it is blocked by a session with no running step,
    /// by a prepared transaction, or by a running step that is itself so
    /// blocked.  Blocks by processes outside the spec (autovacuum) and
    /// cycles among running steps (the deadlock detector ends those) are
    /// not stalls.
    pub(super) async fn stalled(&mut self, si: usize) -> Result<bool, SpecError> {
        let pids: Vec<String> = self
            .sessions
            .iter()
            .filter(|s| s.active.is_some())
            .map(|s| s.conn.backend_pid().to_string())
            .collect();
        let sql = format!(
            "SELECT u.p, pg_catalog.array_to_string(pg_catalog.pg_blocking_pids(u.p) \
             || pg_catalog.pg_safe_snapshot_blocking_pids(u.p), ',') \
             FROM pg_catalog.unnest('{{{}}}'::int[]) AS u(p)",
            pids.join(",")
        );
        let r = self.bounded(Target::Control, &sql).await?;
        let Ok(Some(PgResult::Tuples(t))) = r else {
            return Ok(false);
        };
        let session_of = |pid: i32| {
            self.sessions
                .iter()
                .position(|s| s.conn.backend_pid() == pid)
        };
        // (running session, its blockers)
        let blocked: Vec<(usize, Vec<i32>)> = t
            .rows
            .iter()
            .filter_map(|r| {
                let pid = r.first()?.as_deref()?.parse::<i32>().ok()?;
                let by = r
                    .get(1)?
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|p| p.parse::<i32>().ok())
                    .collect();
                Some((session_of(pid)?, by))
            })
            .collect();
        let mut stuck = vec![false; self.sessions.len()];
        loop {
            let mut changed = false;
            for (s, by) in &blocked {
                if stuck[*s] {
                    continue;
                }
                let hopeless = by.iter().any(|&b| {
                    b == 0
                        || session_of(b)
                            .is_some_and(|o| self.sessions[o].active.is_none() || stuck[o])
                });
                if hopeless {
                    stuck[*s] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(stuck[si])
    }

    /// Ends a permutation that cannot go on: cancels the running steps,
    /// rolls back every session's transaction, and runs the teardown.
    pub(super) async fn abandon_permutation(&mut self) -> Result<(), SpecError> {
        let limit = self.opts.step_timeout;
        for si in 0..self.sessions.len() {
            if self.sessions[si].active.take().is_some() {
                let _ = self.sessions[si].conn.cancel().await;
                let _ = drain(&mut self.sessions[si].conn, limit).await;
            }
        }
        for si in 0..self.sessions.len() {
            let _ = tokio::time::timeout(limit, self.sessions[si].conn.exec("ROLLBACK")).await;
            while self.sessions[si].conn.take_notice().is_some() {}
        }
        self.blocked = None;
        self.teardown().await
    }
}
