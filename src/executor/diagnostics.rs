//! What a long or stuck step shows: the wait graph (who blocks whom, the
//! lock rows) and the slow-step reports.

use super::*;

impl<'a, C: Connection> Executor<'a, C> {
    /// The backends that block session `si`'s running step, as the
    /// server's `pg_blocking_pids` names them (sessions by name), within
    /// the step timeout; empty when the question fails.
    pub(super) async fn blocked_by(&mut self, si: usize) -> Vec<Who> {
        let pid = self.sessions[si].conn.backend_pid();
        let sql =
            format!("SELECT pg_catalog.array_to_string(pg_catalog.pg_blocking_pids({pid}), ',')");
        // Bounded as any control query: cancelled at the step timeout, so
        // the control connection is never left with a query under way.
        let r = self.bounded(Target::Control, &sql).await;
        while self.control.take_notice().is_some() {}
        let Ok(Ok(Some(PgResult::Tuples(t)))) = r else {
            return Vec::new();
        };
        let list = t
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default();
        list.split(',')
            .filter(|p| !p.is_empty())
            .map(|p| who(&self.sessions, p))
            .collect()
    }

    /// Asks the server what every session is doing and waiting for: pid,
    /// state, wait event, blocking pids and query, then the lock rows
    /// involved in waits.  None if the control connection cannot answer.
    /// `wait_graph`, bounded by the step timeout (a stalled server or
    /// pooler must not hang the run in a diagnostic).
    pub(super) async fn bounded_wait_graph(
        &mut self,
        step: &str,
        session: &str,
        secs: u64,
    ) -> Option<WaitGraph> {
        let limit = self.opts.step_timeout;
        tokio::time::timeout(limit, self.wait_graph(step, session, secs))
            .await
            .ok()
            .flatten()
    }

    pub(super) async fn wait_graph(
        &mut self,
        step: &str,
        session: &str,
        secs: u64,
    ) -> Option<WaitGraph> {
        let pids: Vec<String> = self
            .sessions
            .iter()
            .map(|s| s.conn.backend_pid().to_string())
            .collect();
        let arr = format!("{{{}}}", pids.join(","));
        let sessions = &self.sessions;
        let who = |pid: &str| who(sessions, pid);
        let activity = self
            .control
            .exec_params(
                "SELECT a.pid, a.state, coalesce(a.wait_event_type || '/' || a.wait_event, '-'), \
                 array_to_string(pg_catalog.pg_blocking_pids(a.pid), ','), \
                 regexp_replace(left(a.query, 120), '\\s+', ' ', 'g') \
                 FROM pg_catalog.pg_stat_activity a WHERE a.pid = ANY ($1::int[]) ORDER BY a.pid",
                &[&arr],
            )
            .await;
        while self.control.take_notice().is_some() {}
        let Ok(Some(PgResult::Tuples(rows))) = activity else {
            return None;
        };
        let field =
            |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let sessions = rows
            .rows
            .iter()
            .map(|r| WaitRow {
                who: who(&field(r, 0)),
                state: field(r, 1),
                wait_event: field(r, 2),
                blocked_by: field(r, 3)
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(&who)
                    .collect(),
                query: field(r, 4),
            })
            .collect();
        let locks = self
            .control
            .exec_params(
                "SELECT l.pid, l.locktype, l.mode, l.granted, \
                 coalesce(l.relation::regclass::text, l.transactionid::text, l.virtualxid, l.objid::text, '') \
                 FROM pg_catalog.pg_locks l \
                 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_locks w WHERE NOT w.granted AND w.pid = ANY ($1::int[]) \
                   AND w.locktype = l.locktype \
                   AND w.relation IS NOT DISTINCT FROM l.relation AND w.page IS NOT DISTINCT FROM l.page \
                   AND w.tuple IS NOT DISTINCT FROM l.tuple AND w.virtualxid IS NOT DISTINCT FROM l.virtualxid \
                   AND w.transactionid IS NOT DISTINCT FROM l.transactionid AND w.classid IS NOT DISTINCT FROM l.classid \
                   AND w.objid IS NOT DISTINCT FROM l.objid AND w.objsubid IS NOT DISTINCT FROM l.objsubid) \
                 ORDER BY l.granted DESC, l.pid",
                &[&arr],
            )
            .await;
        while self.control.take_notice().is_some() {}
        let locks = match locks {
            Ok(Some(PgResult::Tuples(rows))) => rows
                .rows
                .iter()
                .map(|r| LockRow {
                    who: who(&field(r, 0)),
                    locktype: field(r, 1),
                    mode: field(r, 2),
                    granted: field(r, 3) == "t",
                    object: field(r, 4),
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(WaitGraph {
            step: step.to_string(),
            session: session.to_string(),
            secs,
            sessions,
            locks,
        })
    }

    /// A step running long: at half the timeout a note and its wait graph;
    /// at the timeout a cancel (isolationtester's line); at twice the
    /// timeout the spec is abandoned.
    pub(super) async fn check_long_step(
        &mut self,
        si: usize,
        name: &str,
        session: &str,
        td: Duration,
        slow_reported: &mut bool,
        canceled: &mut bool,
    ) -> Result<(), SpecError> {
        {
            if !*slow_reported && td > self.opts.step_timeout / 2 {
                *slow_reported = true;
                self.emit(Event::SlowStep {
                    session: session.to_string(),
                    step: name.to_string(),
                    secs: td.as_secs(),
                });
                if let Some(graph) = self.bounded_wait_graph(name, session, td.as_secs()).await {
                    self.emit(Event::WaitGraph {
                        graph,
                        in_transcript: false,
                    });
                }
            }
            if td > self.opts.step_timeout && !*canceled {
                if let Some(graph) = self.bounded_wait_graph(name, session, td.as_secs()).await {
                    let in_transcript = self.opts.wait_graph_in_transcript;
                    self.emit(Event::WaitGraph {
                        graph,
                        in_transcript,
                    });
                }
                match self.sessions[si].conn.cancel().await {
                    Ok(()) => {
                        self.emit(Event::Canceling {
                            step: name.to_string(),
                            secs: td.as_secs(),
                        });
                        *canceled = true;
                    }
                    Err(e) => self.emit(Event::CancelFailed {
                        message: format!("{e}\n"),
                    }),
                }
            }
            if td > 2 * self.opts.step_timeout {
                return Err(self.gave_up(si, name.to_string(), td.as_secs(), None));
            }
        }
        Ok(())
    }

    /// isolationtester's give-up at twice the step timeout: shown (with
    /// the steps still active, when known), and the spec's error.
    pub(super) fn gave_up(
        &self,
        si: usize,
        step: String,
        secs: u64,
        active: Option<Vec<String>>,
    ) -> SpecError {
        self.emit(Event::StepTimedOut {
            step: step.clone(),
            secs,
            active,
        });
        SpecError::StepTimeout {
            session: self.sessions[si].name.clone(),
            step,
            secs,
            server: self.sessions[si].conn.server_description(),
        }
    }
}

/// A backend by its pid: one of the spec's sessions, a prepared
/// transaction (pid 0), or another process.
fn who<C: Connection>(sessions: &[SessionConn<C>], pid: &str) -> Who {
    if pid.is_empty() || pid == "0" {
        return Who::PreparedTransaction;
    }
    sessions
        .iter()
        .find(|s| s.conn.backend_pid().to_string() == pid)
        .map(|s| Who::Session {
            name: s.name.clone(),
            pid: pid.to_string(),
        })
        .unwrap_or_else(|| Who::Pid(pid.to_string()))
}
