//! The executor's ordering rules (isolationtester's run_permutation,
//! try_complete_steps and try_complete_step) against a scripted connection:
//! a tiny lock server in memory instead of PostgreSQL, so each rule is
//! checked alone and exactly.  Steps speak a small language, statements
//! separated by `;`: `lock NAME` (waits while another session holds it),
//! `unlock` (releases this session's locks), `select V` (one row, column
//! `v`), `notice TEXT`, `fail TEXT` (an error ends the query) and `hang`
//! (runs until cancelled).

use super::*;
use crate::pgwire::messages::ServerMessage;
use crate::pgwire::protocol::Notification;
use crate::pgwire::Tuples;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// The server all scripted connections share: who holds which lock, and
/// what each backend waits for.
#[derive(Default)]
struct Server {
    holders: HashMap<String, i32>,
    waiting_for: HashMap<i32, String>,
}

impl Server {
    fn blocked(&self, pid: i32) -> bool {
        self.waiting_for
            .get(&pid)
            .and_then(|l| self.holders.get(l))
            .is_some_and(|&h| h != pid)
    }
}

#[derive(Default)]
struct State {
    pending: VecDeque<String>,
    busy: bool,
    results: VecDeque<PgResult>,
    notices: VecDeque<ServerMessage>,
    error: String,
    last_query: String,
}

struct Scripted {
    pid: i32,
    server: Rc<RefCell<Server>>,
    state: RefCell<State>,
}

fn message(severity: &str, text: &str) -> ServerMessage {
    ServerMessage {
        fields: vec![
            (b'S', severity.to_string()),
            (b'V', severity.to_string()),
            (b'M', text.to_string()),
        ],
    }
}

impl Scripted {
    fn new(pid: i32, server: &Rc<RefCell<Server>>) -> Self {
        Scripted {
            pid,
            server: server.clone(),
            state: RefCell::new(State::default()),
        }
    }

    /// Runs the query's statements as far as the locks allow.
    fn advance(&self) {
        let mut st = self.state.borrow_mut();
        let mut server = self.server.borrow_mut();
        while let Some(stmt) = st.pending.front().cloned() {
            let (word, arg) = stmt.split_once(' ').unwrap_or((stmt.as_str(), ""));
            match word {
                "lock" => {
                    server.waiting_for.insert(self.pid, arg.to_string());
                    if server.blocked(self.pid) {
                        return;
                    }
                    server.waiting_for.remove(&self.pid);
                    server.holders.insert(arg.to_string(), self.pid);
                }
                "unlock" => server.holders.retain(|_, h| *h != self.pid),
                "select" => st.results.push_back(PgResult::Tuples(Tuples {
                    columns: vec!["v".into()],
                    rows: vec![vec![Some(arg.to_string())]],
                })),
                "notice" => st.notices.push_back(message("NOTICE", arg)),
                "fail" => {
                    st.error = format!("ERROR:  {arg}\n");
                    st.results.push_back(PgResult::Error(message("ERROR", arg)));
                    st.pending.clear();
                    break;
                }
                "hang" => return,
                _ => st.results.push_back(PgResult::Command(word.to_uppercase())),
            }
            st.pending.pop_front();
        }
        st.busy = false;
    }
}

impl Connection for Scripted {
    fn backend_pid(&self) -> i32 {
        self.pid
    }
    fn server_description(&self) -> String {
        "the scripted server".into()
    }
    fn server_version(&self) -> &str {
        "15.0"
    }
    fn error_message(&self) -> &str {
        // Only read between queries; leaked to outlive the borrow.
        Box::leak(self.state.borrow().error.clone().into_boxed_str())
    }
    fn last_query(&self) -> &str {
        Box::leak(self.state.borrow().last_query.clone().into_boxed_str())
    }
    fn take_notice(&mut self) -> Option<ServerMessage> {
        self.state.borrow_mut().notices.pop_front()
    }
    fn take_notify(&mut self) -> Option<Notification> {
        None
    }
    fn is_busy(&mut self) -> Result<bool, WireError> {
        self.advance();
        Ok(self.state.borrow().busy)
    }
    fn consume_input(&mut self) -> Result<(), WireError> {
        Ok(())
    }
    async fn send_query(&mut self, sql: &str) -> Result<(), WireError> {
        let mut st = self.state.borrow_mut();
        st.pending = sql
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        st.busy = true;
        st.error.clear();
        st.last_query = sql.to_string();
        Ok(())
    }
    async fn exec(&mut self, sql: &str) -> Result<Option<PgResult>, WireError> {
        self.send_query(sql).await?;
        let mut last = None;
        while let Some(r) = self.get_result().await? {
            last = Some(r);
        }
        Ok(last)
    }
    async fn exec_params(&mut self, _: &str, _: &[&str]) -> Result<Option<PgResult>, WireError> {
        Ok(Some(PgResult::Tuples(Tuples::default())))
    }
    async fn prepare(&mut self, _: &str, _: &str) -> Result<Option<PgResult>, WireError> {
        Ok(Some(PgResult::Command("PREPARE".into())))
    }
    /// The wait query: is backend `params[0]` blocked?  (For the
    /// many-backends form, each of the array `params[0]`.)
    async fn exec_prepared(
        &mut self,
        name: &str,
        params: &[&str],
    ) -> Result<Option<PgResult>, WireError> {
        if name == "isospec_waiting_many" {
            let list = params[0].trim_matches(|c| c == '{' || c == '}');
            let rows = list
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let blocked = self.server.borrow().blocked(p.parse().unwrap());
                    vec![
                        Some(p.to_string()),
                        Some(if blocked { "t" } else { "f" }.into()),
                    ]
                })
                .collect();
            return Ok(Some(PgResult::Tuples(Tuples {
                columns: vec!["p".into(), "blocked".into()],
                rows,
            })));
        }
        let pid: i32 = params[0].parse().unwrap();
        let blocked = self.server.borrow().blocked(pid);
        Ok(Some(PgResult::Tuples(Tuples {
            columns: vec!["pg_isolation_test_session_is_blocked".into()],
            rows: vec![vec![Some(if blocked { "t" } else { "f" }.into())]],
        })))
    }
    async fn wait_readable(&self, timeout: Duration) -> Result<bool, WireError> {
        self.advance();
        if self.state.borrow().busy {
            tokio::time::sleep(timeout).await;
            self.advance();
        }
        Ok(!self.state.borrow().busy)
    }
    async fn get_result(&mut self) -> Result<Option<PgResult>, WireError> {
        loop {
            self.advance();
            {
                let mut st = self.state.borrow_mut();
                if let Some(r) = st.results.pop_front() {
                    return Ok(Some(r));
                }
                if !st.busy {
                    return Ok(None);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    async fn cancel(&self) -> Result<(), WireError> {
        let mut st = self.state.borrow_mut();
        if st.busy {
            st.pending.clear();
            st.busy = false;
            st.error = "ERROR:  canceling statement due to user request\n".into();
            st.results.push_back(PgResult::Error(message(
                "ERROR",
                "canceling statement due to user request",
            )));
            self.server.borrow_mut().waiting_for.remove(&self.pid);
        }
        Ok(())
    }
    async fn close(self) {}
}

/// Runs `spec` against scripted connections; its transcript and result.
async fn run(spec: &str, timeout: Duration) -> (String, Result<(), SpecError>) {
    let parsed = crate::spec::parse("t.spec", spec.as_bytes()).unwrap();
    let checked = crate::spec::check("t.spec", parsed).unwrap();
    let server = Rc::new(RefCell::new(Server::default()));
    let control = Scripted::new(100, &server);
    let sessions = (0..checked.spec.sessions.len())
        .map(|i| Scripted::new(101 + i as i32, &server))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = ExecOptions {
        step_timeout: timeout,
        ..Default::default()
    };
    let r = execute(
        &checked,
        control,
        sessions,
        opts,
        ExecRuntime::default(),
        tx,
    )
    .await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (crate::transcript::render_all(&events), r)
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_waiting_step_completes_after_the_step_that_frees_it() {
    let (t, r) = run(
        "session s1\nstep s1l { lock a }\nstep s1u { unlock; select 1 }\n\
         session s2\nstep s2l { lock a; select 2 }\npermutation s1l s2l s1u\n",
        SECOND,
    )
    .await;
    r.unwrap();
    assert_eq!(
        t,
        "\nstarting permutation: s1l s2l s1u\nstep s1l: lock a\nstep s2l: lock a; select 2 <waiting ...>\n\
         step s1u: unlock; select 1\nv\n-\n1\n(1 row)\n\nstep s2l: <... completed>\nv\n-\n2\n(1 row)\n\n"
    );
}

#[tokio::test(start_paused = true)]
async fn a_star_marker_reports_waiting_and_completes_at_the_next_step() {
    let (t, r) = run(
        "session s1\nstep a { select 1 }\nsession s2\nstep b { select 2 }\npermutation a(*) b\n",
        SECOND,
    )
    .await;
    r.unwrap();
    assert_eq!(
        t,
        "\nstarting permutation: a b\nstep a: select 1 <waiting ...>\nstep b: select 2\nv\n-\n2\n(1 row)\n\n\
         step a: <... completed>\nv\n-\n1\n(1 row)\n\n"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_marker_holds_back_completion_only_while_that_step_is_running() {
    // b(c): b finishes on the server at once, but is reported completed
    // only once c, which is waiting for a lock, is no longer running.
    let spec = "session s1\nstep a { lock x }\nstep u { unlock }\nsession s2\nstep c { lock x }\n\
                session s3\nstep b { select 2 }\n";
    let (t, r) = run(&format!("{spec}permutation a c b(c) u\n"), SECOND).await;
    r.unwrap();
    assert_eq!(
        t,
        "\nstarting permutation: a c b u\nstep a: lock x\nstep c: lock x <waiting ...>\n\
         step b: select 2 <waiting ...>\nstep u: unlock\nstep c: <... completed>\n\
         step b: <... completed>\nv\n-\n2\n(1 row)\n\n"
    );
    // A marker naming a step that is not running holds nothing back
    // (isolationtester's step_has_blocker looks at the active step only).
    let (t, r) = run(&format!("{spec}permutation b(c) a c u\n"), SECOND).await;
    r.unwrap();
    assert!(
        t.starts_with("\nstarting permutation: b a c u\nstep b: select 2\nv\n"),
        "{t}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_past_the_timeout_is_cancelled_like_isolationtester() {
    let (t, r) = run(
        "session s1\nstep h { hang }\nstep after { select 3 }\n",
        Duration::from_secs(2),
    )
    .await;
    r.unwrap();
    assert_eq!(
        t,
        "\nstarting permutation: h after\nisolationtester: canceling step h after 2 seconds\nstep h: hang\n\
         ERROR:  canceling statement due to user request\nstep after: select 3\nv\n-\n3\n(1 row)\n\n"
    );
}

#[tokio::test(start_paused = true)]
async fn notices_come_before_their_step_and_a_failed_setup_ends_the_spec() {
    // As under isolationtester, a notice is printed when it arrives, before
    // the step's line (printed once the step is done).
    let (t, r) = run("session s1\nstep n { notice hello; select 1 }\n", SECOND).await;
    r.unwrap();
    assert_eq!(
        t,
        "\nstarting permutation: n\ns1: NOTICE:  hello\nstep n: notice hello; select 1\nv\n-\n1\n(1 row)\n\n"
    );
    let (t, r) = run(
        "setup { fail no such table }\nsession s1\nstep n { select 1 }\n",
        SECOND,
    )
    .await;
    assert!(matches!(r, Err(SpecError::Setup(m)) if m == "ERROR:  no such table"));
    assert_eq!(
        t,
        "\nstarting permutation: n\nsetup failed: ERROR:  no such table\n"
    );
}
