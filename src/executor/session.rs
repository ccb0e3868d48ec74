//! Connecting a spec's sessions and identifying them (application name,
//! the backend's own pid behind a pooler), and checking between
//! permutations that each keeps a server connection of its own.

use super::*;

/// Runs a whole spec: connects, runs every permutation, disconnects.
pub async fn run_spec(
    spec: &CheckedSpec,
    params: &ConnParams,
    opts: ExecOptions,
    rt: ExecRuntime,
    tx: UnboundedSender<Event>,
) -> Result<(), SpecError> {
    if rt.stop.as_ref().is_some_and(StopSignal::requested) {
        return Err(SpecError::NotStarted);
    }
    for w in &spec.warnings {
        let _ = tx.send(Event::SpecWarning(w.to_string()));
    }
    let _ = tx.send(Event::Parsed {
        sessions: spec.spec.sessions.len(),
    });
    let mut conns = Vec::new();
    let mut proxied = false;
    let mut app_names = Vec::new();
    let names: Vec<String> = std::iter::once("control connection".to_string())
        .chain(spec.spec.sessions.iter().map(|s| s.name.clone()))
        .collect();
    // All connections are opened, and then identified, at once: set-up
    // time would otherwise grow with the number of sessions.  Failures
    // are reported for the first connection in the spec's order.
    let opened = futures_util::future::join_all(names.iter().map(|_| Conn::connect(params))).await;
    for (i, (name, c)) in names.iter().zip(opened).enumerate() {
        match c {
            Ok(c) => conns.push(c),
            Err(e) => {
                let _ = tx.send(Event::ConnectFailed {
                    index: i,
                    message: format!("{e}\n"),
                });
                return Err(SpecError::Connect {
                    index: i,
                    session: name.clone(),
                    source: e,
                });
            }
        }
    }
    // Bounded: a pooler with no free server connection for a client
    // (pool exhausted, pooler stalled) answers nothing.
    let limit = opts.step_timeout;
    let answers =
        futures_util::future::join_all(conns.iter_mut().zip(&names).map(|(conn, name)| {
            let sql = identify_query(conn, params, name);
            async move { tokio::time::timeout(limit, conn.exec(&sql)).await }
        }))
        .await;
    for (i, answer) in answers.into_iter().enumerate() {
        let name = &names[i];
        let conn = &mut conns[i];
        let answer = match answer {
            Ok(a) => a,
            Err(_) => {
                let message = format!(
                    "no answer from {} within {} s (a pooler with no free server connection for this session, or a stalled server)",
                    params.describe(),
                    limit.as_secs()
                );
                let _ = tx.send(Event::AppNameFailed {
                    message: format!("{message}\n"),
                });
                return Err(SpecError::AppName {
                    session: name.clone(),
                    message,
                });
            }
        };
        match answer {
            Ok(Some(PgResult::Tuples(t))) => {
                let row = t.rows.first();
                let app = row.and_then(|r| r.first().cloned().flatten());
                let pid = row
                    .and_then(|r| r.get(1).cloned().flatten())
                    .and_then(|p| p.parse::<i32>().ok());
                if let Some(pid) = pid {
                    proxied |= pid != conn.backend_pid();
                    conn.set_backend_pid(pid);
                }
                if i > 0 {
                    app_names.push(app.unwrap_or_default());
                }
            }
            Ok(_) => {
                let message = conn.error_message().to_string();
                let _ = tx.send(Event::AppNameFailed {
                    message: message.clone(),
                });
                return Err(SpecError::AppName {
                    session: name.clone(),
                    message,
                });
            }
            Err(e) => {
                return Err(SpecError::AppName {
                    session: name.clone(),
                    message: e.to_string(),
                })
            }
        }
        // Drop notices from the control connection (isolationtester's
        // blackhole processor); session notices of this query are dropped too,
        // as none can occur.
        while conn.take_notice().is_some() {}
    }
    let control = conns.remove(0);
    let mut rt = rt;
    rt.backends = Backends { proxied, app_names };
    execute(spec, control, conns, opts, rt, tx).await
}

/// The query that identifies a session: isolationtester's application
/// name, and the backend's own pid (a pooler's connection key names a pid
/// of its own).  A literal, not a bound parameter, so that proxies without
/// the extended protocol take it.  Settings a pooler refused as startup
/// options, and intervalstyle (which a pooler told to ignore `options`
/// drops silently), are set in the same round trip.
fn identify_query(conn: &Conn, params: &ConnParams, name: &str) -> String {
    let mut settings: Vec<(String, String)> = conn.deferred_settings().to_vec();
    if settings.is_empty() {
        settings = crate::pgwire::parse_options(params.options.as_deref().unwrap_or(""))
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("intervalstyle"))
            .collect();
    }
    let set: String = settings
        .iter()
        .map(|(k, v)| {
            format!(
                ", pg_catalog.set_config({}, {}, false)",
                quote_literal(k),
                quote_literal(v)
            )
        })
        .collect();
    format!(
        "SELECT pg_catalog.set_config('application_name',\n  pg_catalog.current_setting('application_name') || '/' || {},\n  false), pg_catalog.pg_backend_pid(){set}",
        quote_literal(name)
    )
}

/// A SQL string literal.
pub(crate) fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

impl<'a, C: Connection> Executor<'a, C> {
    /// Behind a pooler: whether every session is still on the backend it
    /// reported at connect (transaction pooling hands a client another
    /// server connection between transactions).  Direct connections are
    /// not asked: it would cost a round trip per session.
    pub(super) async fn check_backends(&mut self) -> Result<(), SpecError> {
        if !self.rt.backends.proxied || self.spec.spec.options.pooled {
            return Ok(());
        }
        for si in 0..self.sessions.len() {
            let was = self.sessions[si].conn.backend_pid();
            let r = self.sessions[si]
                .conn
                .exec("SELECT pg_catalog.pg_backend_pid()")
                .await;
            while self.sessions[si].conn.take_notice().is_some() {}
            let now = match r {
                Ok(Some(PgResult::Tuples(t))) => t
                    .rows
                    .first()
                    .and_then(|r| r.first().cloned().flatten())
                    .and_then(|p| p.parse::<i32>().ok()),
                _ => None,
            };
            if let Some(now) = now.filter(|&n| n != was) {
                return Err(SpecError::BackendChanged(format!(
                    "session {} is no longer on backend pid {was} but on {now}: the pooler moved it to another server connection",
                    self.sessions[si].name
                )));
            }
        }
        Ok(())
    }
}
