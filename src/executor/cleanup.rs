//! The end of a spec: an interrupted permutation stopped within the grace
//! period, an abandoned spec's backends terminated, prepared transactions
//! rolled back, connections closed.

use super::*;

impl<'a, C: Connection> Executor<'a, C> {
    /// After the permutations: an interrupted permutation is stopped
    /// within the grace, an abandoned spec's backends are terminated, the
    /// prepared transactions it left are rolled back, and the connections
    /// closed; returns the spec's result.
    pub(super) async fn finish(mut self, result: Result<(), SpecError>) -> Result<(), SpecError> {
        let mut result = result;
        if matches!(result, Err(SpecError::Interrupted)) && !self.started {
            result = Err(SpecError::NotStarted);
        }
        if matches!(result, Err(SpecError::Interrupted)) {
            let running: Vec<String> = self
                .sessions
                .iter()
                .filter(|s| s.active.is_some())
                .map(|s| s.name.clone())
                .collect();
            self.emit(Event::Interrupted {
                running,
                teardown: self.in_permutation,
            });
        }
        if matches!(result, Err(SpecError::Interrupted)) && self.in_permutation {
            if let Err(e) = self.stop_permutation().await {
                result = Err(e);
            }
        }
        if matches!(
            result,
            Err(SpecError::StepTimeout { .. }) | Err(SpecError::TeardownTimeout { .. })
        ) {
            // The spec is abandoned: make sure its backends stop too, so the
            // next spec does not meet their locks -- only backends that reported
            // their own pid and still carry this spec's application_name.
            let known: Vec<String> = self
                .sessions
                .iter()
                .zip(&self.rt.backends.app_names)
                .map(|(s, app)| format!("({}, {})", s.conn.backend_pid(), quote_literal(app)))
                .collect();
            if !known.is_empty() {
                let sql = format!(
                    "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                     WHERE (pid, application_name) IN ({})",
                    known.join(", ")
                );
                let limit = self
                    .stop_deadline()
                    .map_or(Duration::from_secs(10), crate::stop::remaining);
                let _ = tokio::time::timeout(limit, self.control.exec(&sql)).await;
            }
        }
        // Bounded like any control query: a stalled server or pooler must not
        // hang the run after the spec's own error; after a signal, by what
        // is left of the grace period.
        let limit = self
            .stop_deadline()
            .map_or(self.opts.step_timeout, crate::stop::remaining);
        if !self.opts.keep_prepared {
            let _ = tokio::time::timeout(limit, self.cleanup_prepared()).await;
        }
        let _ = tokio::time::timeout(limit, self.close()).await;
        result
    }

    /// Rolls back prepared transactions the spec left in its database, so
    /// that the next spec does not meet their locks (isolationtester leaves
    /// them).  Uses the control connection; the server quotes the GIDs.
    pub(super) async fn cleanup_prepared(&mut self) {
        let found = self
            .control
            .exec(
                "SELECT gid, format('ROLLBACK PREPARED %L', gid) FROM pg_catalog.pg_prepared_xacts \
                 WHERE database = current_database() ORDER BY gid",
            )
            .await;
        let Ok(Some(PgResult::Tuples(t))) = found else {
            return;
        };
        for row in t.rows {
            let (Some(Some(gid)), Some(Some(sql))) = (row.first(), row.get(1)) else {
                continue;
            };
            let error = match self.control.exec(sql).await {
                Ok(Some(PgResult::Command(_))) => None,
                _ => Some(self.control.error_message().trim_end().to_string()),
            };
            self.emit(Event::PreparedRolledBack {
                gid: gid.clone(),
                error,
            });
        }
        while self.control.take_notice().is_some() {}
    }

    /// Closes every connection at once and returns when the server has
    /// closed them all: the next spec (or permutation's database work)
    /// then does not share the CPUs with backends still exiting, as the
    /// next isolationtester process does not, which starts later.
    pub(super) async fn close(self) {
        let all = std::iter::once(self.control)
            .chain(self.sessions.into_iter().map(|s| s.conn))
            .map(Connection::close);
        futures_util::future::join_all(all).await;
    }

    /// The deadline of an interrupted run's cleanup (without one, the
    /// step timeout bounds each part as for any teardown).
    pub(super) fn stop_deadline(&self) -> Option<std::time::Instant> {
        self.rt.stop.as_ref().and_then(StopSignal::deadline)
    }

    /// Ends an interrupted permutation within the grace period: cancels
    /// the running steps, ends every session's transaction (so that the
    /// teardown waits for no lock a session holds; a session that does not
    /// answer has its backend terminated), then runs the teardowns, each
    /// bounded by the deadline.
    pub(super) async fn stop_permutation(&mut self) -> Result<(), SpecError> {
        let deadline = self
            .stop_deadline()
            .unwrap_or_else(|| std::time::Instant::now() + self.opts.step_timeout);
        let left = || crate::stop::remaining(deadline);
        for si in 0..self.sessions.len() {
            if self.sessions[si].active.take().is_some() {
                let _ = tokio::time::timeout(left(), self.sessions[si].conn.cancel()).await;
                let limit = left().min(Duration::from_secs(5));
                let _ = drain(&mut self.sessions[si].conn, limit).await;
                while self.sessions[si].conn.take_notice().is_some() {}
            }
        }
        // Ending the transactions: a share of what is left for each.
        let mut unanswered = Vec::new();
        for si in 0..self.sessions.len() {
            let share = left() / 4;
            let ended = tokio::time::timeout(share, self.sessions[si].conn.exec("ROLLBACK")).await;
            if !matches!(ended, Ok(Ok(_))) {
                unanswered.push(si);
            }
            while self.sessions[si].conn.take_notice().is_some() {}
        }
        if !unanswered.is_empty() {
            let pids: Vec<i32> = unanswered
                .iter()
                .map(|&si| self.sessions[si].conn.backend_pid())
                .collect();
            let names: Vec<String> = unanswered
                .iter()
                .map(|&si| self.sessions[si].name.clone())
                .collect();
            self.emit(Event::SessionsTerminated { sessions: names });
            self.terminate_backends(&pids, left()).await;
            for &si in &unanswered {
                self.sessions[si].dead = true;
            }
        }
        self.deadline = Some(deadline);
        let r = self.teardown().await;
        self.deadline = None;
        r
    }

    /// Terminates backends `pids` through the control connection (idle
    /// between steps), within `limit`.
    pub(super) async fn terminate_backends(&mut self, pids: &[i32], limit: Duration) {
        if pids.is_empty() {
            return;
        }
        let list: Vec<String> = pids.iter().map(i32::to_string).collect();
        let sql = format!(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE pid IN ({})",
            list.join(", ")
        );
        let _ = tokio::time::timeout(limit, self.control.exec(&sql)).await;
        while self.control.take_notice().is_some() {}
    }

    /// A teardown block of an interrupted run: bounded by the grace
    /// period's deadline; past it, cancelled, and given up a second later.
    pub(super) async fn bounded_by_grace(
        &mut self,
        target: Target,
        sql: &str,
        deadline: std::time::Instant,
    ) -> Result<Result<Option<PgResult>, WireError>, SpecError> {
        let limit = crate::stop::remaining(deadline).min(self.opts.step_timeout);
        if let Some(r) = self.exec_within(target, sql, limit).await {
            return Ok(r);
        }
        // Past the deadline: cancel the block (so that it does not go on
        // in the server) and give up on it at once.
        let session = self.session_name(target);
        self.emit(Event::TeardownGraceEnded {
            session: session.clone(),
        });
        let _ = tokio::time::timeout(Duration::from_millis(300), self.conn(target).cancel()).await;
        Err(SpecError::GraceEnded {
            what: session.map_or("the spec".to_string(), |s| format!("session {s}")),
        })
    }
}
