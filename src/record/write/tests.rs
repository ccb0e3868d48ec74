use super::*;

#[test]
fn parameters_are_inlined_outside_quotes_and_comments() {
    let v = vec!["'7'::integer".to_string(), "'x'::text".to_string()];
    assert_eq!(
        inline_params(
            "SELECT $1, '$1', \"$2\" -- $2\n, $2 /* $1 */, $$ $1 $$, E'\\'$1'",
            &v
        )
        .unwrap(),
        "SELECT ('7'::integer), '$1', \"$2\" -- $2\n, ('x'::text) /* $1 */, $$ $1 $$, E'\\'$1'"
    );
    assert_eq!(
        inline_params("SELECT $3", &v).unwrap_err(),
        "the statement names $3 but 2 parameter(s) were bound"
    );
    assert_eq!(
        inline_params("SELECT a$1 FROM t", &v).unwrap(),
        "SELECT a$1 FROM t"
    );
}

#[test]
fn a_session_named_by_set_application_name() {
    assert_eq!(
        set_application_name("SET application_name = 'waiter'").as_deref(),
        Some("waiter")
    );
    assert_eq!(
        set_application_name("set session APPLICATION_NAME to 'w-1';").as_deref(),
        Some("w-1")
    );
    assert_eq!(set_application_name("SET application_name = 'a b'"), None);
    assert_eq!(set_application_name("SET search_path = 'x'"), None);
}

#[test]
fn settings_become_set_statements() {
    assert_eq!(
        setting("DateStyle", "ISO, MDY").unwrap(),
        "SET DateStyle TO 'ISO, MDY'"
    );
    assert_eq!(setting("client_encoding", "UTF8"), None);
    assert_eq!(setting("client_encoding", "utf-8"), None);
    assert_eq!(setting("client_encoding", "'utf-8'"), None);
    assert_eq!(setting("application_name", "x"), None);
    assert_eq!(
        setting("search_path", "app,public").unwrap(),
        "SELECT pg_catalog.set_config('search_path', 'app,public', false)"
    );
}

#[test]
fn a_statement_ending_in_a_comment_keeps_what_follows() {
    let mut s = Stmt {
        session: 0,
        sql: "UPDATE t SET n = 1 -- bump".into(),
        params: Vec::new(),
        oids: Vec::new(),
        extended: false,
        sent: 1,
        finished: Some(2),
        outcome: Outcome::Done("UPDATE 1".into()),
        unrepresentable: None,
        skipped: false,
        waited: false,
        waiting: false,
        canceled: false,
        overtaken: false,
        txn_after: Some(b'T'),
        batch: 1,
        row_limit: None,
        suspended: false,
        rows: None,
        copy: None,
    };
    assert_eq!(
        step_sql(&s, &HashMap::new(), 0, &Default::default()).unwrap(),
        "UPDATE t SET n = 1 -- bump\n"
    );
    s.sql = "SELECT 1 -- one".into();
    s.row_limit = Some(1);
    s.suspended = true;
    assert_eq!(
        step_sql(&s, &HashMap::new(), 0, &Default::default()).unwrap(),
        "SELECT * FROM (SELECT 1 -- one\n) AS fetched LIMIT 1"
    );
}

fn stmt(session: usize, sql: &str, sent: u64, finished: u64, txn_after: u8) -> Stmt {
    Stmt {
        session,
        sql: sql.into(),
        params: Vec::new(),
        oids: Vec::new(),
        extended: false,
        sent,
        finished: Some(finished),
        outcome: Outcome::Done(String::new()),
        unrepresentable: None,
        skipped: false,
        waited: false,
        waiting: false,
        canceled: false,
        overtaken: false,
        txn_after: Some(txn_after),
        batch: sent,
        row_limit: None,
        suspended: false,
        rows: None,
        copy: None,
    }
}

fn two_sessions() -> Log {
    let mut log = Log::default();
    for app in ["worker", "worker"] {
        log.sessions.push(super::super::trace::SessionInfo {
            application_name: Some(app.into()),
            terminated: true,
            ..Default::default()
        });
    }
    log.stmts = vec![
        stmt(0, "BEGIN", 1, 2, b'T'),
        stmt(0, "UPDATE t SET n = n + 1", 3, 4, b'T'),
        stmt(1, "UPDATE t SET n = n + 10", 5, 8, b'I'),
        // The waiter's completion reached the proxy before the commit's.
        stmt(0, "COMMIT", 6, 9, b'I'),
    ];
    log.stmts[2].waited = true;
    log.stmts.push(stmt(1, "COPY t FROM STDIN", 9, 10, b'I'));
    log.stmts[4].copy = Some(Box::new(crate::record::copy::CopyData {
        binary: true,
        ..Default::default()
    }));
    log.notes.push("a replication connection (application_name x) went through the proxy: forwarded, not recorded".into());
    log
}

#[test]
fn a_recording_as_a_spec() {
    let frame = Frame {
        command: "python3 t.py",
        setup: Some("CREATE TABLE t (n int);"),
        teardown: None,
        steps: StepsMode::Statement,
    };
    let w = write(&two_sessions(), &HashMap::new(), &frame);
    // application_name "worker" is not unique: c1 and c2.
    assert!(w.text.contains("session c1\nstep c1_1 { BEGIN }\nstep c1_2 { UPDATE t SET n = n + 1 }\nstep c1_3 { COMMIT }"), "{}", w.text);
    assert!(w.text.contains("# session c2: a statement was left out: a binary COPY cannot be replayed as a step:\n# COPY t FROM STDIN"), "{}", w.text);
    assert!(
        w.text.contains(
            "# c2_1 waited for a lock; c1_3 released it\npermutation c1_1 c1_2 c2_1 c1_3\n"
        ),
        "{}",
        w.text
    );
    assert_eq!((w.sessions, w.steps, w.warnings.len()), (2, 4, 1));
    assert!(w.text.contains("\n# a replication connection (application_name x) went through the proxy: forwarded, not recorded\n"), "{}", w.text);
    crate::spec::parse("t.spec", w.text.as_bytes()).unwrap();
}

#[test]
fn a_waiter_that_won_the_race_goes_first_in_the_spec() {
    // c1 holds the row; c2 then c3 wait for it; c1's COMMIT wakes both
    // and c3 wins the race to queue again, so c2 completes after c3's
    // COMMIT.  The spec launches c2 after c3 completed.
    let mut log = Log::default();
    for _ in 0..3 {
        log.sessions.push(super::super::trace::SessionInfo {
            terminated: true,
            ..Default::default()
        });
    }
    log.stmts = vec![
        stmt(0, "UPDATE r SET n = 1", 1, 2, b'T'),
        stmt(1, "UPDATE r SET n = 2", 3, 9, b'T'),
        stmt(2, "UPDATE r SET n = 3", 4, 6, b'T'),
        stmt(0, "COMMIT", 5, 7, b'I'),
        stmt(2, "COMMIT", 8, 10, b'I'),
        stmt(1, "COMMIT", 11, 12, b'I'),
    ];
    log.stmts[1].waited = true;
    log.stmts[2].waited = true;
    let frame = Frame {
        command: "t",
        setup: None,
        teardown: None,
        steps: StepsMode::Statement,
    };
    let w = write(&log, &HashMap::new(), &frame);
    assert!(
        w.text
            .contains("permutation c1_1 c3_1 c1_2 c2_1 c3_2 c2_2\n"),
        "{}",
        w.text
    );
    // A deadlock victim's error does not reorder the other waiter.
    log.stmts[2].outcome = Outcome::Failed {
        sqlstate: "40P01".into(),
        message: "deadlock detected".into(),
    };
    let w = write(&log, &HashMap::new(), &frame);
    assert!(w.text.contains("permutation c1_1 c2_1 c3_1"), "{}", w.text);
}

#[test]
fn a_transaction_as_one_step() {
    let frame = Frame {
        command: "t",
        setup: None,
        teardown: None,
        steps: StepsMode::Transaction,
    };
    let w = write(&two_sessions(), &HashMap::new(), &frame);
    assert!(
        w.text
            .contains("step c1_1 { BEGIN;\nUPDATE t SET n = n + 1;\nCOMMIT }"),
        "{}",
        w.text
    );
    assert!(w.text.contains("permutation c1_1 c2_1\n"), "{}", w.text);
}
