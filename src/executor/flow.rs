//! isolationtester's control flow: the permutations, each step launched,
//! waited for or polled, completions reported in isolationtester's order,
//! and the setup and teardown blocks around them.

use super::*;

impl<'a, C: Connection> Executor<'a, C> {
    pub(super) async fn run_all(&mut self) -> Result<(), SpecError> {
        let spec = self.spec;
        for (i, perm) in spec.iter_permutations().enumerate() {
            if self.interrupted() {
                return Err(SpecError::Interrupted);
            }
            if let Some(only) = self.opts.only_permutation {
                if only != i + 1 {
                    continue;
                }
            }
            self.check_backends().await?;
            self.run_permutation(i, &perm).await?;
        }
        self.check_backends().await
    }

    pub(super) async fn run_permutation(
        &mut self,
        index: usize,
        steps: &[CheckedStep],
    ) -> Result<(), SpecError> {
        let spec = self.spec;
        let names: Vec<String> = steps
            .iter()
            .map(|p| self.step_name(p).to_string())
            .collect();
        self.emit(Event::PermutationStart {
            index,
            steps: names,
        });
        self.started = true;
        self.in_permutation = true;

        for sql in &spec.spec.setup {
            let r = self.control_exec(sql).await;
            if let Err(message) = self.block_result(Target::Control, r) {
                let error = SpecError::Setup(message.trim_end().to_string());
                self.emit(Event::SetupFailed {
                    session: None,
                    message,
                });
                return Err(error);
            }
        }
        for si in 0..spec.spec.sessions.len() {
            let Some(sql) = &spec.spec.sessions[si].setup else {
                continue;
            };
            let r = self.session_exec(si, sql).await;
            if let Err(message) = self.block_result(Target::Session(si), r) {
                let session = self.sessions[si].name.clone();
                let error = SpecError::SessionSetup {
                    session: session.clone(),
                    message: message.trim_end().to_string(),
                };
                self.emit(Event::SetupFailed {
                    session: Some(session),
                    message,
                });
                return Err(error);
            }
        }

        let mut st = PermState {
            steps,
            targets: steps.iter().map(|p| vec![0; p.blockers.len()]).collect(),
        };
        let mut waiting: Vec<usize> = Vec::new();
        for i in 0..steps.len() {
            if self.interrupted() {
                return Err(SpecError::Interrupted);
            }
            let pstep = &steps[i];
            let si = pstep.session;
            if self.sessions[si].active.is_some() {
                let start = Instant::now();
                while let Some(old) = self.sessions[si].active {
                    // Exploring, the step is only polled, so that a stall
                    // (below) is seen instead of waited out.
                    let attempt = if self.opts.end_stalled { POLL } else { FINISH };
                    if !self.try_complete_step(&mut st, old, attempt).await? {
                        match waiting.iter().position(|&w| w == old) {
                            Some(w) => {
                                waiting.remove(w);
                            }
                            None => unreachable!("completed step was not waiting"),
                        }
                    }
                    self.try_complete_steps(&mut st, &mut waiting, POLL).await?;
                    if self.opts.end_stalled
                        && self.sessions[si].active.is_some()
                        && self.stalled(si).await?
                    {
                        self.emit(Event::Unrealizable {
                            step: self.step_name(pstep).to_string(),
                            waiting: self.step_name(&steps[old]).to_string(),
                        });
                        return self.abandon_permutation().await;
                    }
                    if self.opts.end_stalled && self.sessions[si].active.is_some() {
                        // Not stalled: a deadlock the server will break, or
                        // a long step.  Wait a little for news from it.
                        let _ = self.sessions[si]
                            .conn
                            .wait_readable(self.opts.poll_max)
                            .await;
                    }
                    if let Some(active) = self.sessions[si].active {
                        let td = start.elapsed();
                        if td > 2 * self.opts.step_timeout {
                            let secs = td.as_secs();
                            let name = self.step_name(&steps[active]).to_string();
                            let active = self
                                .sessions
                                .iter()
                                .filter_map(|s| s.active)
                                .map(|a| self.step_name(&steps[a]).to_string())
                                .collect();
                            return Err(self.gave_up(si, name, secs, Some(active)));
                        }
                    }
                }
            }

            let sql = self.step_sql(pstep);
            if let Err(e) = self.sessions[si].conn.send_query(sql).await {
                let step = self.step_name(pstep).to_string();
                self.emit(Event::SendFailed {
                    step: step.clone(),
                    message: format!("{e}\n"),
                });
                return Err(SpecError::Send {
                    session: self.sessions[si].name.clone(),
                    step,
                    source: e,
                });
            }
            self.sessions[si].active = Some(i);
            self.sessions[si].launched_at = Some(Instant::now());
            for (j, b) in pstep.blockers.iter().enumerate() {
                if let CheckedBlocker::Notices { session, count, .. } = b {
                    st.targets[i][j] = count + self.sessions[*session].total_notices;
                }
            }
            let mustwait = self.try_complete_step(&mut st, i, LAUNCH).await?;
            self.try_complete_steps(&mut st, &mut waiting, POLL).await?;
            if mustwait {
                waiting.push(i);
            }
        }

        if self.opts.end_stalled {
            // Steps still blocked at the end by sessions that have nothing
            // left to run would wait out the timeout.
            loop {
                self.try_complete_steps(&mut st, &mut waiting, POLL).await?;
                let Some(&w) = waiting.first() else { break };
                if self.stalled(steps[w].session).await? {
                    self.emit(Event::Unrealizable {
                        step: String::new(),
                        waiting: self.step_name(&steps[w]).to_string(),
                    });
                    return self.abandon_permutation().await;
                }
                let si = steps[w].session;
                let _ = self.sessions[si]
                    .conn
                    .wait_readable(self.opts.poll_max)
                    .await;
            }
        }
        self.try_complete_steps(&mut st, &mut waiting, FINISH)
            .await?;
        if !waiting.is_empty() {
            self.emit(Event::MutuallyBlocking);
            return Err(SpecError::MutuallyBlocking);
        }

        self.after_steps().await?;
        self.teardown().await
    }

    /// Runs `ExecOptions::after_steps` on the control connection, each
    /// bounded by the step timeout, emitting their rows.
    pub(super) async fn after_steps(&mut self) -> Result<(), SpecError> {
        for i in 0..self.opts.after_steps.len() {
            let sql = self.opts.after_steps[i].clone();
            let r = self.bounded(Target::Control, &sql).await?;
            let rows = match r {
                Ok(Some(PgResult::Tuples(t))) => Ok(t.rows),
                Ok(Some(PgResult::Error(m))) => Err(m.primary().unwrap_or("error").to_string()),
                Ok(_) => Ok(Vec::new()),
                Err(e) => Err(e.to_string()),
            };
            self.emit(Event::AfterSteps { rows });
        }
        Ok(())
    }

    /// Runs each session's teardown, then the spec's (isolationtester's order).
    pub(super) async fn teardown(&mut self) -> Result<(), SpecError> {
        self.in_permutation = false;
        let spec = self.spec;
        for si in 0..spec.spec.sessions.len() {
            let Some(sql) = &spec.spec.sessions[si].teardown else {
                continue;
            };
            if self.sessions[si].dead {
                continue;
            }
            let session = self.sessions[si].name.clone();
            let r = self.bounded(Target::Session(si), sql).await?;
            if let Err(message) = self.block_result(Target::Session(si), r) {
                self.emit(Event::TeardownFailed {
                    session: Some(session),
                    message,
                });
            }
        }
        if let Some(sql) = &spec.spec.teardown {
            let r = self.bounded(Target::Control, sql).await?;
            if let Err(message) = self.block_result(Target::Control, r) {
                self.emit(Event::TeardownFailed {
                    session: None,
                    message,
                });
            }
        }
        Ok(())
    }

    /// A setup or teardown block's result: its rows go to the transcript;
    /// a failure gives libpq's message as isolationtester prints it.
    pub(super) fn block_result(
        &mut self,
        target: Target,
        r: Result<Option<PgResult>, WireError>,
    ) -> Result<(), String> {
        match r {
            Ok(Some(PgResult::Tuples(t))) => {
                self.emit(Event::Tuples(t));
                Ok(())
            }
            Ok(Some(PgResult::Error(_) | PgResult::ClientError(_) | PgResult::Copy(_))) => {
                Err(self.conn(target).error_message().to_string())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{e}\n")),
        }
    }

    /// Runs a teardown block with the step timeout as a bound: after it, the
    /// query is cancelled; if the cancel does not end it within the same
    /// time again, the spec is abandoned.  (isolationtester would hang.)
    pub(super) async fn bounded(
        &mut self,
        target: Target,
        sql: &str,
    ) -> Result<Result<Option<PgResult>, WireError>, SpecError> {
        if let Some(deadline) = self.deadline {
            return self.bounded_by_grace(target, sql, deadline).await;
        }
        let limit = self.opts.step_timeout;
        // First bound: the step timeout.
        if let Some(r) = self.exec_within(target, sql, limit).await {
            return Ok(r);
        }
        // Timed out: cancel, then wait for the outcome up to the limit again.
        let _ = self.conn(target).cancel().await;
        let session = self.session_name(target);
        self.emit(Event::TeardownCanceling {
            session: session.clone(),
            secs: limit.as_secs(),
        });
        drain(self.conn(target), limit)
            .await
            .ok_or_else(|| SpecError::TeardownTimeout {
                what: session.map_or("the spec".to_string(), |s| format!("session {s}")),
                secs: 2 * limit.as_secs(),
            })
    }

    /// Runs a setup or teardown block on `target` within `limit`; None when
    /// the limit passed first (the block is still running then).
    pub(super) async fn exec_within(
        &mut self,
        target: Target,
        sql: &str,
        limit: Duration,
    ) -> Option<Result<Option<PgResult>, WireError>> {
        let fut = async {
            match target {
                Target::Control => self.control_exec(sql).await,
                Target::Session(si) => self.session_exec(si, sql).await,
            }
        };
        tokio::time::timeout(limit, fut).await.ok()
    }

    /// isolationtester's try_complete_steps.
    pub(super) async fn try_complete_steps(
        &mut self,
        st: &mut PermState<'_>,
        waiting: &mut Vec<usize>,
        flags: Attempt,
    ) -> Result<(), SpecError> {
        loop {
            self.any_new_notice = false;
            let old_n = waiting.len();
            let mut have_blocker = false;
            let mut w = 0;
            // Polling several waiting steps: ask about all of them at once,
            // again after each completion, instead of once per step.
            let batch = flags.nonblock && flags.retry && waiting.len() > 1;
            while w < waiting.len() {
                if batch && self.blocked.is_none() {
                    self.ask_blocked(st, &waiting[w..]).await?;
                }
                let still_waiting = self.try_complete_step(st, waiting[w], flags).await;
                if !matches!(still_waiting, Ok(true)) {
                    self.blocked = None;
                }
                if still_waiting? {
                    if !st.steps[waiting[w]].blockers.is_empty() {
                        have_blocker = true;
                    }
                    w += 1;
                } else {
                    waiting.remove(w);
                }
            }
            self.blocked = None;
            if !(have_blocker && (waiting.len() < old_n || self.any_new_notice)) {
                return Ok(());
            }
        }
    }

    /// Asks the server, in one round trip, which of the backends of steps
    /// `idxs` are blocked; the answers stand until a step completes.
    pub(super) async fn ask_blocked(
        &mut self,
        st: &PermState<'_>,
        idxs: &[usize],
    ) -> Result<(), SpecError> {
        let pids: Vec<i32> = idxs
            .iter()
            .map(|&i| self.sessions[st.steps[i].session].conn.backend_pid())
            .collect();
        let limit = self.opts.step_timeout;
        let answers =
            tokio::time::timeout(limit, self.detector.are_blocked(&mut self.control, &pids))
                .await
                .unwrap_or_else(|_| Err(no_answer(&self.control.server_description(), limit)));
        match answers {
            Ok(a) => {
                self.blocked = Some(pids.into_iter().zip(a).collect());
                Ok(())
            }
            Err(message) => {
                let step = self.step_name(&st.steps[idxs[0]]).to_string();
                Err(self.wait_query_failed(step, message))
            }
        }
    }

    pub(super) fn step_has_blocker(&self, st: &PermState<'_>, idx: usize) -> bool {
        let pstep = &st.steps[idx];
        for (j, b) in pstep.blockers.iter().enumerate() {
            match b {
                CheckedBlocker::Once => {}
                CheckedBlocker::OtherStep { session, step } => {
                    if let Some(a) = self.sessions[*session].active {
                        let ap = &st.steps[a];
                        if ap.session == *session && ap.step == *step {
                            return true;
                        }
                    }
                }
                CheckedBlocker::Notices { session, .. } => {
                    if self.sessions[*session].total_notices < st.targets[idx][j] {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// isolationtester's try_complete_step.  Returns true when the step is
    /// not complete (waiting on a lock with `nonblock`, or held back by a
    /// marker), false when it completed and its results were reported.
    pub(super) async fn try_complete_step(
        &mut self,
        st: &mut PermState<'_>,
        idx: usize,
        flags: Attempt,
    ) -> Result<bool, SpecError> {
        let pstep = &st.steps[idx];
        let si = pstep.session;
        let name = self.step_name(pstep).to_string();
        let sql = self.step_sql(pstep);
        let session = self.sessions[si].name.clone();

        // A `(*)` step is reported waiting at once; otherwise the step
        // waits while the server says it is blocked, or while a step named
        // in its markers is running.  Each is looked at only if the one
        // before did not hold the step back (isolationtester's order).
        let waiting = (!flags.retry && pstep.blockers.contains(&CheckedBlocker::Once))
            || matches!(
                self.watch_step(si, &name, &session, flags).await?,
                Watch::Blocked
            )
            || self.step_has_blocker(st, idx);
        if waiting {
            if !flags.retry {
                self.emit(Event::StepWaiting {
                    session: session.clone(),
                    step: name.clone(),
                    sql: sql.to_string(),
                });
                if self.opts.blockers_on_wait {
                    let by = self.blocked_by(si).await;
                    self.emit(Event::BlockedBy {
                        session,
                        step: name,
                        by,
                    });
                }
            }
            return Ok(true);
        }

        if flags.retry {
            self.emit(Event::StepCompleted {
                session: session.clone(),
                step: name.clone(),
            });
        } else {
            self.emit(Event::StepLaunched {
                session: session.clone(),
                step: name.clone(),
                sql: sql.to_string(),
            });
        }
        self.read_results(si, &name, &session).await?;
        Ok(false)
    }

    /// Waits for a running step as isolationtester's try_complete_step
    /// does: until its results are in (`Done`), or, with `nonblock`, until
    /// the server says it is blocked (`Blocked`); watching the timeout.
    pub(super) async fn watch_step(
        &mut self,
        si: usize,
        name: &str,
        session: &str,
        flags: Attempt,
    ) -> Result<Watch, SpecError> {
        let start = Instant::now();
        let mut canceled = false;
        // A step polled again was blocked when last asked: asking the server
        // at once beats waiting first for a result that is unlikely to come
        // (a step just launched usually finishes within poll_min).
        let mut interval = if flags.nonblock && flags.retry {
            Duration::ZERO
        } else {
            self.opts.poll_min
        };
        let mut slow_reported = false;
        // Asked already in this round and blocked: if nothing has arrived
        // since, it still waits (nothing of the spec's has moved meanwhile).
        if flags.nonblock && flags.retry {
            let pid = self.sessions[si].conn.backend_pid();
            let known = self.blocked.as_ref().and_then(|b| b.get(&pid)).copied();
            if known == Some(true) {
                if !self.still_busy(si, true, session, name)? {
                    return Ok(Watch::Done);
                }
                return Ok(Watch::Blocked);
            }
        }
        // This step runs (or was not asked about): whatever it does may
        // change the others' state, so their answers are asked again.
        self.blocked = None;
        loop {
            if !self.still_busy(si, false, session, name)? {
                break;
            }
            let readable = self.sessions[si]
                .conn
                .wait_readable(interval)
                .await
                .map_err(|e| wire(session, name, e))?;
            if readable {
                self.sessions[si]
                    .conn
                    .consume_input()
                    .map_err(|e| wire(session, name, e))?;
                continue;
            }
            interval = (interval * 2).clamp(self.opts.poll_min, self.opts.poll_max);
            if self.interrupted() {
                return Err(SpecError::Interrupted);
            }
            if flags.nonblock {
                let pid = self.sessions[si].conn.backend_pid();
                // A stalled server or pooler must not hang the run: the
                // wait query gets the step timeout too.
                let limit = self.opts.step_timeout;
                let waiting =
                    tokio::time::timeout(limit, self.detector.is_blocked(&mut self.control, pid))
                        .await
                        .unwrap_or_else(|_| {
                            Err(no_answer(&self.control.server_description(), limit))
                        })
                        .map_err(|message| self.wait_query_failed(name.to_string(), message))?;
                if waiting {
                    if !self.still_busy(si, true, session, name)? {
                        break;
                    }
                    return Ok(Watch::Blocked);
                }
            }
            self.check_long_step(
                si,
                name,
                session,
                start.elapsed(),
                &mut slow_reported,
                &mut canceled,
            )
            .await?;
        }
        Ok(Watch::Done)
    }

    /// Whether session `si`'s step is still busy (PQisBusy), after reading
    /// what has arrived when `read` (PQconsumeInput); its notices are
    /// reported either way.
    pub(super) fn still_busy(
        &mut self,
        si: usize,
        read: bool,
        session: &str,
        name: &str,
    ) -> Result<bool, SpecError> {
        let conn = &mut self.sessions[si].conn;
        if read {
            conn.consume_input().map_err(|e| wire(session, name, e))?;
        }
        let busy = conn.is_busy().map_err(|e| wire(session, name, e))?;
        self.flush_notices(si);
        Ok(busy)
    }

    /// Reads a completed step's results into the transcript, then the
    /// notifications that came with them.
    pub(super) async fn read_results(
        &mut self,
        si: usize,
        name: &str,
        session: &str,
    ) -> Result<(), SpecError> {
        loop {
            let r = self.sessions[si].conn.get_result().await;
            self.flush_notices(si);
            let Some(res) = r.map_err(|e| wire(session, name, e))? else {
                break;
            };
            match res {
                PgResult::Command(_) | PgResult::Empty => {}
                PgResult::Tuples(t) => self.emit(Event::Tuples(t)),
                PgResult::Error(m) => {
                    let text = match (m.severity(), m.primary()) {
                        (Some(sev), Some(msg)) => format!("{sev}:  {msg}"),
                        _ => m.format_libpq(true, None),
                    };
                    self.emit(Event::StepError {
                        step: name.to_string(),
                        text,
                        sqlstate: m.sqlstate().map(str::to_string),
                    });
                }
                PgResult::ClientError(text) => {
                    self.emit(Event::StepError {
                        step: name.to_string(),
                        text,
                        sqlstate: None,
                    });
                    self.emit(Event::ConnectionLost {
                        session: session.to_string(),
                        step: name.to_string(),
                        server: self.sessions[si].conn.server_description(),
                    });
                }
                PgResult::Copy(status) => self.emit(Event::UnexpectedStatus(status.to_string())),
            }
        }

        // Report any available NOTIFY messages, too.
        let _ = self.sessions[si].conn.consume_input();
        self.flush_notices(si);
        while let Some(n) = self.sessions[si].conn.take_notify() {
            let sender = self
                .sessions
                .iter()
                .find(|s| s.conn.backend_pid() == n.pid)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| format!("PID {}", n.pid));
            self.emit(Event::Notify {
                session: session.to_string(),
                channel: n.channel,
                payload: n.payload,
                sender,
            });
            let _ = self.sessions[si].conn.consume_input();
            self.flush_notices(si);
        }

        if let Some(t0) = self.sessions[si].launched_at.take() {
            self.emit(Event::StepTimings {
                step: name.to_string(),
                micros: t0.elapsed().as_micros() as u64,
            });
        }
        self.sessions[si].active = None;
        Ok(())
    }

    /// The wait question failed: shown, and the spec's error.
    fn wait_query_failed(&self, step: String, message: String) -> SpecError {
        self.emit(Event::WaitQueryFailed {
            message: message.clone(),
        });
        SpecError::WaitQuery { step, message }
    }
}
